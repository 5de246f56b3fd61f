"""A compile's outputs kept on disk: ``sqnxtc compile`` run again on the same model, target
and options replays what it wrote, without importing the compiler (docs/scheduler.md,
"The on-disk cache").

An entry is what one successful compile produced: the formats it rendered (the text of
each ``--emit`` format, or each file of ``-o DIR``), the final list of formats, and its
notes; pickled in ``out/`` under the cache root (:mod:`sqnxt_compiler.cachedir`), named by a
key (:func:`key`): sha256 over the format, sqnxtc's version, the source of **every** module
of sqnxtc (:func:`code_fingerprint`), the Python version and the versions of the
libraries whose answers reach an output (numpy, networkx, OR-Tools, onnx), the model as
given and, for a file, its bytes, the target (every field, as loaded), and every option of
the command line that reaches an output (the pipeline, the schedule flags, the activation
home, ``--emit``, ``--top`` and whether ``-o`` names nothing, standard output or a path).
Compiles are deterministic (same input, options and version: byte-identical outputs), so
a replay is what the compile would write; the tests hold the two equal.

Not stored (the compile runs every time): a run with a per-layer time limit (its answers
may depend on timing), with pass instrumentation (IR printing, timing, statistics), whose
notes say an on-disk cache entry was found invalid (they depend on the cache's state), a
model whose weights live in other files (external data: its bytes do not cover them) or
over :data:`MAX_FILE_MB`, an entry over :data:`MAX_ENTRY_MB`.  ``--no-cache`` neither reads
nor writes it; ``$SQNXTC_NO_OUTPUT_CACHE`` (non-empty) turns it alone off, the imported IR
and the schedules still cached.  An entry that cannot be read is a miss: the compile runs and overwrites it.
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import sys
from pathlib import Path

from . import __version__
from .cachedir import PACKAGE, cache_root, hash_file, package_dir, read_entry, write_entry

FORMAT = "sqnxtc-out-1"
#: files larger than this (MiB) are not keyed by their bytes (nor stored)
MAX_FILE_MB = 64
#: entries larger than this (MiB, pickled) are not stored
MAX_ENTRY_MB = 64
#: the size cap of the ``out/`` directory, MiB
CAP_MB = 256
SUFFIX = ".out.pickle"
#: libraries whose answers reach a compile's outputs (their installed versions key an entry)
LIBRARIES = ("numpy", "networkx", "ortools", "onnx")
#: the sub-packages that live beside the package in the source tree (cachedir.package_dir)
MAPPED = ("passes", "targets", "zoo")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over the source of every module of sqnxtc (``*.py`` under the package
    directory and the sub-packages mapped into it), by relative path in sorted order."""
    h = hashlib.sha256()
    roots = [("", PACKAGE)] + [(p, package_dir(PACKAGE, p)) for p in MAPPED
                               if package_dir(PACKAGE, p).resolve().parent != PACKAGE.resolve()]
    for prefix, root in roots:
        for f in sorted(root.rglob("*.py")):
            if "__pycache__" in f.parts:
                continue
            h.update(f"{prefix}/{f.relative_to(root).as_posix()}\0".encode())
            h.update(f.read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def library_versions() -> tuple[str, ...]:
    """The installed versions of :data:`LIBRARIES` (distribution metadata: nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in LIBRARIES:
        try:
            out.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            out.append(f"{name}=none")
    return tuple(out)


def directory() -> Path | None:
    """``out/`` under the cache root, or None (no cache, or ``$SQNXTC_NO_OUTPUT_CACHE`` set:
    the other caches stay on)."""
    root = cache_root()
    return None if root is None or os.environ.get("SQNXTC_NO_OUTPUT_CACHE") else root / "out"


def key(model: str, target, options: dict) -> str | None:
    """The entry key of compiling ``model`` for ``target`` with ``options`` (the command
    line's, module doc; values with a deterministic ``repr``), or None when the compile is
    not stored: the model is not a readable regular file of at most :data:`MAX_FILE_MB`
    (the compile then reports what is wrong with it) nor ``zoo:NAME``, or there is no
    output cache (:func:`directory`)."""
    if directory() is None:
        return None
    h = hashlib.sha256()
    for part in (FORMAT, __version__, code_fingerprint(), platform.python_version(), *library_versions(),
                 model, repr(target), repr(sorted(options.items()))):
        h.update(part.encode() + b"\0")
    if not model.startswith("zoo:") and not hash_file(h, model, MAX_FILE_MB):
        return None
    return h.hexdigest()


def storable(notes: list[str], model: str) -> bool:
    """Whether a compile with these notes may be stored (module doc): no note of an invalid
    on-disk cache entry, and no external data."""
    if any(" cache entry " in n for n in notes):
        return False
    if model.startswith("zoo:") or "onnx" not in sys.modules:
        return True       # without onnx loaded the graph came from the imported-IR cache: no external data
    from .import_cache import external_data

    return not external_data(model)


def get(k: str) -> dict | None:
    """Entry ``k`` (``emits``, ``outputs``, ``notes``), or None (no cache, no entry, or one
    that cannot be read)."""
    got = read_entry(directory(), k, SUFFIX, FORMAT)
    if got is None or not (isinstance(got.get("outputs"), dict) and isinstance(got.get("notes"), list)
                           and isinstance(got.get("emits"), tuple)):
        return None
    return got


def put(k: str, emits: tuple, outputs: dict, notes: list[str]) -> None:
    """Store entry ``k`` atomically (a temporary file renamed), then trim the directory to
    its cap; best effort: a cache that cannot be written is only colder."""
    write_entry(directory(), k, SUFFIX, {"format": FORMAT, "key": k, "emits": tuple(emits),
                                         "outputs": dict(outputs), "notes": list(notes)}, MAX_ENTRY_MB, CAP_MB)
