"""Where a layer's schedule is kept once solved: the in-process memo (:data:`_MEMO`, with
:data:`STATS` counting where each answer came from) and the on-disk schedule cache (one
JSON file per :func:`cache_key`, validated by :func:`.records.check_entry` when read).

The on-disk cache is on by default (:func:`resolve_dir`): ``--cache-dir DIR`` (the schedule
pass's ``cache-dir``), else ``$SQNXTC_CACHE_DIR``, else the user's cache directory by the
XDG rules (``$XDG_CACHE_HOME/sqnxtc/schedules``, ``~/.cache/sqnxtc/schedules`` when it
is unset or relative); ``--no-cache`` (``cache=false``) or ``$SQNXTC_NO_CACHE`` turn the
default off.  Entries are written atomically (a temporary file renamed), so concurrent
writers never leave a partial entry and a reader sees an old entry, a new one or none;
a hit refreshes the entry's modification time, and after a run that wrote entries the
directory is trimmed to :func:`cap_bytes` by removing the least recently used ones
(:func:`evict`).  The key covers the code that makes a schedule (:func:`code_fingerprint`),
so an entry never outlives a change of the cost model or the solver."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path

from sqnxt_compiler import __version__
from sqnxt_compiler.cost.layer import Layer
from sqnxt_compiler.diagnostics import one_line
from sqnxt_compiler.targets import Target

from .records import BadEntry, LayerSchedule, check_entry
from .space import clear_spaces

#: bump when the cost model or the solver changes what a schedule contains
MODEL_REVISION = 4   # 3: the bias counted (dram bias_reads, its transfer, its additions);
#                      4: an lrn's k tile spans its channels (Layer.spanned)


#: the packages whose code decides a schedule: the cost model and the scheduler
_CODE_PACKAGES = ("cost", "schedule")
#: the default size cap of an on-disk cache directory (``$SQNXTC_CACHE_MAX_MB`` overrides)
CAP_MB = 256


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """:func:`source_fingerprint` of this installation, computed once per process."""
    return source_fingerprint(Path(__file__).resolve().parent.parent)


def source_fingerprint(root: Path) -> str:
    """sha256 over the source of every module of the cost model and the scheduler under
    the package directory ``root`` (by relative path, in sorted order), so that an edit to
    either, released or not, changes every key: the cache never answers with a schedule
    the current code would not make."""
    h = hashlib.sha256()
    for pkg in _CODE_PACKAGES:
        for f in sorted((root / pkg).glob("*.py")):
            h.update(f"{pkg}/{f.name}\0".encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def cache_key(layer: Layer, target: Target, objective: str, time_limit, fallback) -> str:
    """sha256 over the layer shape, the target's fields, the options, the versions and the
    code that makes a schedule (:func:`code_fingerprint`)."""
    import ortools

    payload = json.dumps({"layer": [str(x) for x in layer.key()], "target": target.fingerprint(),
                          "objective": objective, "time_limit": time_limit, "fallback": fallback,
                          "sqnxtc": __version__, "ortools": ortools.__version__,
                          "model_revision": MODEL_REVISION, "code": code_fingerprint()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def default_dir() -> Path | None:
    """The on-disk cache used when no directory is given: None if ``$SQNXTC_NO_CACHE`` is
    set (non-empty), else ``$SQNXTC_CACHE_DIR``, else ``$XDG_CACHE_HOME/sqnxtc/schedules``
    (an absolute ``XDG_CACHE_HOME``, as the XDG base directory rules ask), else
    ``~/.cache/sqnxtc/schedules``."""
    if os.environ.get("SQNXTC_NO_CACHE"):
        return None
    mine = os.environ.get("SQNXTC_CACHE_DIR")
    if mine:
        return Path(mine)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "sqnxtc" / "schedules"


def resolve_dir(enabled: bool, cache_dir: str | os.PathLike | None) -> Path | None:
    """The directory the solver reads and writes: none when disabled, the one given, else
    :func:`default_dir`."""
    if not enabled:
        return None
    return Path(cache_dir) if cache_dir else default_dir()


def cap_bytes() -> int:
    """The size cap of a cache directory: ``$SQNXTC_CACHE_MAX_MB`` MiB if it is a
    non-negative integer, else :data:`CAP_MB`."""
    v = os.environ.get("SQNXTC_CACHE_MAX_MB", "")
    mb = int(v) if v.isdigit() else CAP_MB
    return mb * 1024 * 1024


def evict(d: Path, cap: int | None = None) -> int:
    """Trim ``d``'s entries (``*.json``) to at most ``cap`` bytes (default :func:`cap_bytes`)
    by removing the least recently used first (oldest modification time; ties by name);
    returns how many were removed.  Entries another process removes meanwhile are skipped,
    and nothing here raises: a cache that cannot be trimmed is only larger."""
    cap = cap_bytes() if cap is None else cap
    entries = []
    try:
        with os.scandir(d) as it:
            for e in it:
                if e.name.endswith(".json"):
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


_MEMO: dict[str, LayerSchedule] = {}
#: Where this process's distinct-layer answers came from: ``solved`` (a solver or oracle
#: run), ``memory`` (the in-process cache), ``disk`` (the on-disk cache).
STATS: Counter[str] = Counter()
_STATS_LOCK = threading.Lock()


def _count(source: str) -> None:
    with _STATS_LOCK:          # solves run in threads (schedule_layers' jobs)
        STATS[source] += 1


def clear_cache() -> None:
    """Forget every in-process cache of scheduling: the answers and the mapping spaces
    (the counts in :data:`STATS` stay)."""
    _MEMO.clear()
    clear_spaces()


def _disk_get(d: Path, key: str, layer: Layer, target: Target, objective: str,
              notes: list | None = None) -> LayerSchedule | None:
    """The valid entry stored under ``key``, else None (a miss).  An entry that exists but
    is unreadable or fails :func:`check_entry` is a miss with a note naming the file and
    the reason (it is then overwritten by the new solve)."""
    p = d / f"{key}.json"
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = exc.strerror or str(exc)
    else:
        try:
            s = replace(check_entry(json.loads(text), layer, target, objective), cached=True)
            try:
                os.utime(p)          # recently used: the last to be evicted
            except OSError:
                pass
            return s
        except (ValueError, RecursionError) as exc:  # BadEntry and JSON errors are ValueErrors
            why = str(exc) if isinstance(exc, BadEntry) else "not valid JSON"
    if notes is not None:
        notes.append(f"schedule cache entry {one_line(str(p), None)} ignored (layer '{one_line(layer.name)}'): "
                     f"{one_line(why)}; solved again")
    _count("rejected")
    return None


def _disk_put(d: Path, key: str, s: LayerSchedule) -> None:
    from sqnxt_compiler.outputs import atomic_write

    try:
        with atomic_write(d / f"{key}.json") as fh:
            json.dump(s.to_dict(), fh, sort_keys=True)
    except Exception:  # noqa: BLE001 - a cache that cannot be written is only slower
        pass
