"""Where a layer's schedule is kept once solved: the in-process memo (:data:`_MEMO`, with
:data:`STATS` counting where each answer came from) and the on-disk schedule cache (one
JSON file per :func:`cache_key`, validated by :func:`.records.check_entry` when read)."""
from __future__ import annotations

import hashlib
import json
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


def cache_key(layer: Layer, target: Target, objective: str, time_limit, fallback) -> str:
    """sha256 over the layer shape, the target's fields, the options and the versions."""
    import ortools

    payload = json.dumps({"layer": [str(x) for x in layer.key()], "target": target.fingerprint(),
                          "objective": objective, "time_limit": time_limit, "fallback": fallback,
                          "sqnxtc": __version__, "ortools": ortools.__version__,
                          "model_revision": MODEL_REVISION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


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
            return replace(check_entry(json.loads(text), layer, target, objective), cached=True)
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
