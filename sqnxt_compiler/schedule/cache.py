"""Where a layer's schedule is kept once solved: the in-process memo (:data:`_MEMO`, with
:data:`STATS` counting where each answer came from) and the on-disk schedule cache (one
JSON file per :func:`cache_key`, validated by :func:`.records.check_entry` when read).

The on-disk cache is on by default (:func:`resolve_dir`): ``--cache-dir DIR`` (the schedule
pass's ``cache-dir``), else ``schedules/`` under the user's cache root
(:mod:`sqnxt_compiler.cachedir`: ``$SQNXTC_CACHE_DIR``, else ``$XDG_CACHE_HOME/sqnxtc``
or ``~/.cache/sqnxtc``); ``--no-cache`` (``cache=false``) or ``$SQNXTC_NO_CACHE`` turn the
default off.  Entries are written atomically (a temporary file renamed), so concurrent
writers never leave a partial entry and a reader sees an old entry, a new one or none; a
hit refreshes the entry's modification time, and after a run that wrote entries the
directory is trimmed to its cap, least recently used first (:func:`evict`).  The key covers
the code that makes a schedule (:func:`code_fingerprint`), so an entry never outlives a
change of the cost model or the solver."""
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
from sqnxt_compiler.cachedir import PACKAGE, cache_root, cap_bytes, source_fingerprint, touch
from sqnxt_compiler.cachedir import evict as evict_lru
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
#: the default size cap of a schedule cache directory, MiB (``$SQNXTC_CACHE_MAX_MB`` overrides)
CAP_MB = 256


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """:func:`~sqnxt_compiler.cachedir.source_fingerprint` of the cost model and the
    scheduler of this installation, once per process: an edit to either changes every
    key, so the cache never answers with a schedule the current code would not make."""
    return source_fingerprint(PACKAGE, _CODE_PACKAGES)


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
    """The schedule cache used when no directory is given: ``schedules/`` under
    :func:`~sqnxt_compiler.cachedir.cache_root` (None: no cache)."""
    root = cache_root()
    return None if root is None else root / "schedules"


def resolve_dir(enabled: bool, cache_dir: str | os.PathLike | None) -> Path | None:
    """The directory the solver reads and writes: none when disabled, the one given, else
    :func:`default_dir`."""
    if not enabled:
        return None
    return Path(cache_dir) if cache_dir else default_dir()


def evict(d: Path, cap: int | None = None) -> int:
    """Trim the schedule cache ``d`` to ``cap`` bytes (default: :data:`CAP_MB` MiB or
    ``$SQNXTC_CACHE_MAX_MB``), least recently used first (:func:`~sqnxt_compiler.cachedir.evict`)."""
    return evict_lru(d, cap_bytes(CAP_MB) if cap is None else cap, ".json")


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
            touch(p)             # recently used: the last to be evicted
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


# ---------------------------------------------------------------------------------------
# network plans (the memory planner's answer), beside the layer schedules
# ---------------------------------------------------------------------------------------
def plan_key(net, cands, target: Target, objective: str, time_limit) -> str:
    """sha256 over everything a network plan depends on: the network (every step's layer
    shape and tensors, every tensor's words, live range, readers and whether it may be
    resident), every candidate (its homes, layer, mapping, cycles, energy and footprint),
    the target, the objective, the network time limit, the versions and the code."""
    import ortools

    payload = json.dumps({
        "steps": [[[str(x) for x in s.layer.key()], list(s.inputs), s.output, s.residual, s.output_at,
                   s.copy_of] for s in net.steps],
        "tensors": [[t.words, t.producer, t.last, t.plannable, list(t.readers)] for t in net.tensors],
        "cands": [[["skip"] if c.skip else
                   [c.resident_inputs, c.resident_output, c.resident_residual,
                    [str(x) for x in c.schedule.layer.key()], c.schedule.mapping.to_dict(),
                    c.schedule.cost.total_cycles, c.schedule.cost.energy_total, c.footprint] for c in cs]
                  for cs in cands],
        "target": target.fingerprint(), "objective": objective, "time_limit": time_limit,
        "sqnxtc": __version__, "ortools": ortools.__version__, "model_revision": MODEL_REVISION,
        "code": code_fingerprint()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def plan_get(d: Path, key: str, net, cands, target: Target, objective: str, notes: list | None = None):
    """The proven-optimal plan stored under ``key`` in ``d``, rebuilt over ``cands``, or
    None (a miss).  Nothing is trusted: the choice must index the candidates, every tensor
    and step have its home and offset, the value be the choice's, and the allocation pass
    :func:`~.plans.verify_allocation`; an entry that fails is a miss with a note (the plan
    is solved again and the entry overwritten)."""
    from .plans import Plan, plan_value, verify_allocation

    p = d / f"plan-{key}.json"
    try:
        doc = json.loads(p.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError):
        doc = None
    try:
        if not isinstance(doc, dict):
            raise BadEntry("not a JSON object")
        idx, res, offs, toffs = doc["choice"], doc["resident"], doc["offsets"], doc["tile_offsets"]
        if not (isinstance(idx, list) and len(idx) == len(cands)
                and all(isinstance(k, int) and 0 <= k < len(cs) for k, cs in zip(idx, cands))):
            raise BadEntry("its choice does not index the candidates")
        if not (isinstance(res, list) and len(res) == len(net.tensors) and all(isinstance(r, bool) for r in res)
                and isinstance(offs, list) and len(offs) == len(net.tensors)
                and all(o is None or isinstance(o, int) for o in offs)
                and isinstance(toffs, list) and len(toffs) == len(net.steps)
                and all(isinstance(o, int) for o in toffs)):
            raise BadEntry("its homes or offsets do not match the network")
        choice = tuple(cs[k] for k, cs in zip(idx, cands))
        value = plan_value(choice, objective)
        if doc.get("value") != value or not isinstance(doc.get("joint"), bool):
            raise BadEntry("its value is not its choice's")
        plan = Plan(tuple(res), tuple(offs), choice, tuple(toffs), objective, value, "optimal", value, doc["joint"])
        problems = verify_allocation(net, plan, target)
        if problems:
            raise BadEntry(problems[0])
    except (BadEntry, KeyError, TypeError) as exc:
        if notes is not None:
            why = str(exc) if isinstance(exc, BadEntry) else f"a field is missing or mistyped ({type(exc).__name__})"
            notes.append(f"memory plan cache entry {one_line(str(p), None)} ignored: {one_line(why)}; solved again")
        _count("plan-rejected")
        return None
    touch(p)
    _count("plan-disk")
    return plan


def plan_put(d: Path, key: str, plan, cands) -> None:
    """Store ``plan`` under ``key`` if it is proven optimal (a time-limited or fallback plan
    is never stored): the index of each step's chosen candidate, every home and offset."""
    from sqnxt_compiler.outputs import atomic_write

    if plan.status != "optimal" or plan.note:
        return
    doc = {"choice": [next(k for k, c in enumerate(cs) if c is ch) for ch, cs in zip(plan.choice, cands)],
           "resident": list(plan.resident), "offsets": list(plan.offsets),
           "tile_offsets": list(plan.tile_offsets), "value": plan.value, "joint": plan.joint}
    try:
        with atomic_write(d / f"plan-{key}.json") as fh:
            json.dump(doc, fh, sort_keys=True)
    except Exception:  # noqa: BLE001 - a cache that cannot be written is only slower
        pass
