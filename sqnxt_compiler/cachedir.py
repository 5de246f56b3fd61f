"""Where sqnxtc keeps what it can recompute: the user's cache directory, the fingerprint of
the code an entry depends on, and least-recently-used eviction.

Two caches live under the root (docs/scheduler.md, "The on-disk cache"): solved layer
schedules (``schedules/``, :mod:`sqnxt_compiler.schedule.cache`) and built zoo models
(``zoo/``, :mod:`sqnxt_compiler.zoo.store`).  The root, by the first rule that applies:

* ``$SQNXTC_NO_CACHE`` set (non-empty): none (the test suite sets it);
* ``$SQNXTC_CACHE_DIR``: that directory;
* ``$XDG_CACHE_HOME/sqnxtc`` when ``XDG_CACHE_HOME`` is an absolute path (the XDG base
  directory rule: a relative one is ignored);
* ``~/.cache/sqnxtc``.

Every entry is a file written atomically (a temporary file renamed) whose name is a key
covering everything its content depends on, the source of the code that made it included
(:func:`source_fingerprint`), so concurrent writers are safe and a stale entry is never
read, only evicted (:func:`evict`).
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path

#: the package directory (``sqnxt_compiler/``)
PACKAGE = Path(__file__).resolve().parent


def cache_root() -> Path | None:
    """The root of sqnxtc's caches by the rules of the module docstring (None: no cache)."""
    if os.environ.get("SQNXTC_NO_CACHE"):
        return None
    mine = os.environ.get("SQNXTC_CACHE_DIR")
    if mine:
        return Path(mine)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "sqnxtc"


def cap_bytes(default_mb: int) -> int:
    """A cache directory's size cap: ``$SQNXTC_CACHE_MAX_MB`` MiB if it is a non-negative
    integer, else ``default_mb`` MiB."""
    v = os.environ.get("SQNXTC_CACHE_MAX_MB", "")
    return (int(v) if v.isdigit() else default_mb) * 1024 * 1024


def package_dir(root: Path, pkg: str) -> Path:
    """The directory of sub-package ``pkg`` of the package directory ``root``: ``root/pkg``,
    or where Python finds ``sqnxt_compiler.<pkg>`` when that is elsewhere (``zoo``,
    ``passes`` and ``targets`` live beside the package in the source tree and are mapped
    into it by pyproject's ``package-dir``: an editable install finds them there)."""
    if (root / pkg).is_dir():
        return root / pkg
    import importlib.util

    spec = importlib.util.find_spec(f"{PACKAGE.name}.{pkg}")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else root / pkg


def source_fingerprint(root: Path, packages: tuple[str, ...]) -> str:
    """sha256 over the source of every module (``*.py``) of the sub-packages ``packages`` of
    the package directory ``root`` (:func:`package_dir`), by relative path in sorted order:
    an edit to any of them, released or not, changes it."""
    h = hashlib.sha256()
    for pkg in packages:
        for f in sorted(package_dir(root, pkg).glob("*.py")):
            h.update(f"{pkg}/{f.name}\0".encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def touch(path: Path) -> None:
    """Mark an entry as just used (its modification time), best effort."""
    try:
        os.utime(path)
    except OSError:
        pass


def evict(d: Path, cap: int, suffix: str) -> int:
    """Trim the entries of ``d`` (files ending in ``suffix``) to at most ``cap`` bytes by
    removing the least recently used first (oldest modification time; ties by name);
    returns how many were removed.  Entries another process removes meanwhile are
    skipped, and nothing here raises: a cache that cannot be trimmed is only larger."""
    entries = []
    try:
        with os.scandir(d) as it:
            for e in it:
                if e.name.endswith(suffix):
                    try:
                        st = e.stat()
                    except OSError:
                        continue
                    entries.append((st.st_mtime_ns, e.name, st.st_size))
    except OSError:
        return 0
    total = sum(sz for _, _, sz in entries)
    removed = 0
    for _, name, sz in sorted(entries):
        if total <= cap:
            break
        try:
            (d / name).unlink()
            removed += 1
        except OSError:
            pass
        total -= sz
    return removed


def hash_file(h, spec: str, max_mb: int) -> bool:
    """Feed the bytes of model file ``spec`` to hash ``h``; False (nothing fed) when it is
    not a readable regular file of at most ``max_mb`` MiB."""
    try:
        p = Path(spec)
        if not p.is_file() or p.stat().st_size > max_mb * 1024 * 1024:
            return False
        h.update(p.read_bytes())
    except OSError:
        return False
    return True


def read_entry(d: Path | None, k: str, suffix: str, fmt: str) -> dict | None:
    """The pickled entry ``k`` of directory ``d`` (a dict whose ``format`` is ``fmt`` and
    ``key`` is ``k``), its use recorded (:func:`touch`); None when there is no cache, no
    entry, or one that cannot be read (a miss)."""
    if d is None:
        return None
    path = d / f"{k}{suffix}"
    try:
        with open(path, "rb") as f:
            got = pickle.load(f)
    except Exception:  # noqa: BLE001 - a missing, truncated or foreign entry is a miss
        return None
    if not (isinstance(got, dict) and got.get("format") == fmt and got.get("key") == k):
        return None
    touch(path)
    return got


def write_entry(d: Path | None, k: str, suffix: str, entry: dict, max_mb: int, cap_mb: int) -> None:
    """Store ``entry`` (its ``key`` must be ``k``) pickled as ``d/k+suffix``, atomically (a
    temporary file renamed), unless it is over ``max_mb`` MiB; then trim ``d`` to
    :func:`cap_bytes` of ``cap_mb``.  Best effort: a cache that cannot be written is only
    colder."""
    if d is None:
        return
    try:
        data = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > max_mb * 1024 * 1024:
            return
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=suffix + ".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, d / f"{k}{suffix}")
        evict(d, cap_bytes(cap_mb), suffix)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        return
