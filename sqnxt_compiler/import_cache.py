"""The imported IR kept on disk: a warm compile of a model imported before skips the
frontend, and with it ``import onnx`` (which loads ml_dtypes): most of a warm compile's
start-up (docs/scheduler.md, "The on-disk cache").

An entry is the graph the frontend returned (before any pass) and the import's notes,
pickled, in ``ir/`` under the cache root (:mod:`sqnxt_compiler.cachedir`), named by a key
(:func:`key`): sha256 over the format, sqnxtc's version, the source of the code that
imports (the ``frontend`` and ``ir`` packages, and the zoo's for ``zoo:NAME``), the Python
and numpy versions, the model as given (the path or ``zoo:NAME``: every location and note
names it) and, for a file, its bytes.  So a file edited in place, a moved file or an edit
of the frontend is a new key, and a stale entry is never read, only evicted.

Not stored: a model whose weights live in other files (external data: the model's bytes
do not cover them), a file over :data:`MAX_FILE_MB` (hashing it would cost what the cache
saves), a model cut before a host tail (``check`` needs its ONNX parts, and ``compile``
its report), an entry over :data:`MAX_ENTRY_MB`.  Only commands that need no ONNX model
(``compile``, ``sim``) read it: ``check`` imports for onnxruntime's reference anyway.  An
entry that cannot be read is imported again and overwritten; the graph is the same
either way, so every output is identical with or without it (tests).
"""
from __future__ import annotations

import functools
import hashlib
import platform
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .cachedir import PACKAGE, cache_root, hash_file, read_entry, source_fingerprint, write_entry

FORMAT = "sqnxtc-ir-1"
#: files larger than this (MiB) are not keyed by their bytes (nor stored)
MAX_FILE_MB = 64
#: entries larger than this (MiB, pickled) are not stored
MAX_ENTRY_MB = 128
#: the size cap of the ``ir/`` directory, MiB
CAP_MB = 512
SUFFIX = ".ir.pickle"


@functools.lru_cache(maxsize=2)
def code_fingerprint(zoo: bool) -> str:
    """The source of the code an entry depends on: the frontend, the IR and the protobuf
    reader the frontend's weights use (and the zoo)."""
    return hashlib.sha256((source_fingerprint(PACKAGE, ("frontend", "ir") + (("zoo",) if zoo else ()))
                           + hashlib.sha256((PACKAGE / "protowire.py").read_bytes()).hexdigest()).encode()
                          ).hexdigest()


def directory() -> Path | None:
    """``ir/`` under the cache root, or None (no cache)."""
    root = cache_root()
    return None if root is None else root / "ir"


def key(spec: str) -> str | None:
    """The entry key of model ``spec`` (module doc), or None when it is not cached: not a
    readable regular file of at most :data:`MAX_FILE_MB` (the import then reports what is
    wrong with it) and not ``zoo:NAME``."""
    import numpy

    h = hashlib.sha256()
    zoo = spec.startswith("zoo:")
    for part in (FORMAT, __version__, code_fingerprint(zoo), platform.python_version(), numpy.__version__,
                 spec):
        h.update(part.encode() + b"\0")
    if not zoo and not hash_file(h, spec, MAX_FILE_MB):
        return None
    return h.hexdigest()


@dataclass
class Imported:
    """An entry as the driver uses an import's result: the graph and the notes; no ONNX
    model (``model``) and no host tail (``tail``), which an entry never has."""

    graph: object
    notes: list
    model: None = None
    tail: None = None


def external_data(spec: str) -> bool:
    """Model ``spec`` keeps weights in other files (ONNX external data), which its bytes do
    not cover; read again without them (only when an entry is about to be stored: onnx is
    loaded by then)."""
    if spec.startswith("zoo:"):
        return False
    import onnx
    from onnx import external_data_helper as ext

    try:
        m = onnx.load(spec, load_external_data=False)
    except Exception:  # noqa: BLE001 - it was imported a moment ago: a file that changed since
        return True
    return any(ext.uses_external_data(t) for t in ext._get_all_tensors(m))


def get(k: str) -> Imported | None:
    """The graph and notes of entry ``k``, or None (no cache, no entry, or one that cannot
    be read: it is imported again)."""
    got = read_entry(directory(), k, SUFFIX, FORMAT)
    return None if got is None else Imported(got["graph"], list(got["notes"]))


def put(k: str, graph, notes: list[str]) -> None:
    """Store ``graph`` and ``notes`` as entry ``k``, atomically (a temporary file renamed),
    then trim the directory to its cap; best effort: a cache that cannot be written is only
    colder."""
    write_entry(directory(), k, SUFFIX, {"format": FORMAT, "key": k, "graph": graph, "notes": list(notes)},
                MAX_ENTRY_MB, CAP_MB)
