"""Built zoo models kept on disk: ``zoo:NAME`` is built once per version of the zoo's code.

Building a zoo model runs its definition and calibrates every BatchNorm on a batch of
images (about a second for 1.0-SqNxt-23); the result depends only on the preset, the
seed, the weight sparsity, the zoo's code and the onnx version, and is the same bytes every
time (:func:`sqnxt_compiler.zoo.build`).  :func:`load` keeps it in ``zoo/`` under the
user's cache root (:mod:`sqnxt_compiler.cachedir`; none with ``$SQNXTC_NO_CACHE``) as
``<name>-<key>.onnx``, the key a sha256 over all of those (:func:`key`).  An entry that
cannot be read, or whose recorded name and seed are not the ones asked, is built again and
overwritten; models over :data:`MAX_ENTRY_MB` (VGG-19's 575 MB of weights) are never
stored; the directory is trimmed to :data:`CAP_MB` (``$SQNXTC_CACHE_MAX_MB`` overrides),
least recently used first.  The model is the same object either way: the frontend sees
identical bytes, so every output is identical with or without the cache.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path

import onnx

from sqnxt_compiler import __version__
from sqnxt_compiler.cachedir import PACKAGE, cache_root, cap_bytes, evict, source_fingerprint, touch

#: the size cap of the zoo cache directory, MiB
CAP_MB = 512
#: models larger than this (serialized, MiB) are rebuilt each time rather than stored
MAX_ENTRY_MB = 64


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """:func:`~sqnxt_compiler.cachedir.source_fingerprint` of the zoo package (``zoo/``)."""
    return source_fingerprint(PACKAGE, ("zoo",))


def key(name: str, seed: int, weight_sparsity: float) -> str:
    """sha256 over what a built model depends on: the preset's name, the seed, the weight
    sparsity, sqnxtc's and onnx's versions and the zoo's code."""
    payload = json.dumps({"name": name, "seed": seed, "weight_sparsity": repr(float(weight_sparsity)),
                          "sqnxtc": __version__, "onnx": onnx.__version__, "code": code_fingerprint()},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _matches(model: onnx.ModelProto, name: str, seed: int) -> bool:
    """The entry records the preset and seed asked (a cheap check that it is the model)."""
    props = {p.key: p.value for p in model.metadata_props}
    return props.get("sqnxtc.zoo.name") == name and props.get("sqnxtc.zoo.seed") == str(seed)


def load(name: str, build, *, seed: int = 0, weight_sparsity: float = 0.0) -> onnx.ModelProto:
    """Zoo model ``name`` (its canonical preset name): from the cache when there, else
    ``build(name, seed=..., weight_sparsity=...)``, stored for next time (module doc)."""
    root = cache_root()
    if root is None:
        return build(name, seed=seed, weight_sparsity=weight_sparsity)
    d = root / "zoo"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:64]
    path = d / f"{safe}-{key(name, seed, weight_sparsity)[:32]}.onnx"
    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        model = None
    except Exception:  # noqa: BLE001 - an unreadable entry is a miss: it is built and overwritten
        model = None
    if model is not None and _matches(model, name, seed):
        touch(path)
        return model
    model = build(name, seed=seed, weight_sparsity=weight_sparsity)
    _store(d, path, model)
    return model


def _store(d: Path, path: Path, model: onnx.ModelProto) -> None:
    """Write ``model`` atomically unless it is over :data:`MAX_ENTRY_MB`; then trim the
    directory.  A cache that cannot be written is only slower."""
    from sqnxt_compiler.outputs import atomic_write

    from .serialize import iter_model_bytes

    if model.ByteSize() > MAX_ENTRY_MB * 1024 * 1024:
        return
    try:
        with atomic_write(path, "wb") as fh:
            for piece in iter_model_bytes(model):
                fh.write(piece)
    except Exception:  # noqa: BLE001
        return
    evict(d, cap_bytes(CAP_MB), ".onnx")
