"""The scheduler: the provably best mapping of every layer, by CP-SAT.

``schedule_layer(layer, target, objective=..., time_limit=..., fallback=...)`` solves one
layer; ``schedule_layers(layers, target, ...)`` solves a list (each distinct layer shape
once, with an in-process cache and an optional on-disk cache).

Lexicographic solve (docs/scheduler.md): stage 1 minimizes the objective; stage 2 fixes it
and minimizes the secondary objective (energy for cycles, cycles for energy and edp);
stage 3 fixes both and minimizes the tie key (dataflow WS < OS, order index, tx, ty, tc,
tk), so the answer is the same mapping the exhaustive oracle returns, whatever the search
did (stages 2 and 3 run as one weighted solve when it fits CP-SAT's integers).  One worker
and a fixed seed make the search itself reproducible.

Layers with a small reduced space are first enumerated for an *incumbent* (see
:func:`incumbent`): its objective becomes an upper-bound constraint and the mapping a hint.
It is a cutoff, not the answer: CP-SAT still proves every stage and breaks the ties.

Layers without MACs (pool, gap, add) are scheduled by the exhaustive oracle (their space
is tiny); their status is "optimal" and ``solver`` says "exhaustive".

The module is the entry point; the parts live beside it, one job each: :mod:`.records`
(:class:`LayerSchedule`, :func:`check_entry`), :mod:`.heuristic` (the fallback mapping,
incumbents, hints), :mod:`.layer_solve` (one layer's CP-SAT stages) on
:mod:`.staged` (the staged solve shared with the memory planner), :mod:`.edp` (the EDP
product's bounds) and :mod:`.cache` (the in-process memo and the on-disk cache).  Every
public name is re-exported here.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from sqnxt_compiler.cost.layer import Layer
from sqnxt_compiler.cost.mapping import Mapping
from sqnxt_compiler.cost.model import objective_value
from sqnxt_compiler.diagnostics import UsageError
from sqnxt_compiler.targets import Target

from .cache import _MEMO, MODEL_REVISION, STATS, _count, _disk_get, _disk_put, cache_key, clear_cache, evict
from .heuristic import _full_hint  # noqa: F401 - re-exported (tests)
from .heuristic import INCUMBENT_LIMIT, Incumbent, heuristic_mapping, hinted_incumbent, incumbent
from .oracle import OBJECTIVES, SECONDARY, exhaustive_best
from .records import BadEntry, LayerSchedule, check_entry

__all__ = ["BadEntry", "FALLBACKS", "INCUMBENT_LIMIT", "Incumbent", "LayerSchedule", "MODEL_REVISION",
           "OBJECTIVES", "SECONDARY", "STATS", "cache_key", "check_entry", "clear_cache",
           "default_jobs", "heuristic_mapping", "hinted_incumbent", "incumbent", "schedule_layer",
           "schedule_layers"]

FALLBACKS = (None, "heuristic")


def __getattr__(name: str):
    """``PARAMS`` and ``SEED``, the layer solve's CP-SAT configuration, imported from
    :mod:`.layer_solve` on first use (importing this module does not load CP-SAT)."""
    if name in ("PARAMS", "SEED"):
        from . import layer_solve
        return getattr(layer_solve, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------
def _check_opts(objective, time_limit, fallback):
    """Reject solver arguments no option can produce: a usage error (exit 2), not a
    scheduling one."""
    if objective not in OBJECTIVES:
        raise UsageError(f"unknown objective '{objective}' (known: {', '.join(OBJECTIVES)})")
    if time_limit is not None and not time_limit > 0:
        raise UsageError(f"time limit must be > 0 seconds, got {time_limit}")
    if fallback not in FALLBACKS:
        raise UsageError(f"unknown fallback '{fallback}' (known: heuristic)")


def schedule_layer(layer: Layer, target: Target, *, objective: str = "cycles",
                   time_limit: float | None = None, fallback: str | None = None,
                   hint: Mapping | None = None) -> LayerSchedule:
    """The best mapping of one layer (see module doc).

    ``time_limit``: seconds for this layer (all stages); on expiry the best mapping found
    is returned with status "feasible", the proven bound and the gap.  ``fallback``:
    ``"heuristic"`` turns a solver failure (time limit without any mapping, model error)
    into the documented heuristic mapping, status "heuristic".  A layer for which no
    mapping fits the buffer raises ScheduleError naming the layer and the smallest buffer
    it would need (with or without fallback).  ``hint``: a mapping to start CP-SAT from
    instead of the enumerated incumbent when it fits (:func:`hinted_incumbent`); it changes how fast
    the answer is proven, not the answer."""
    _check_opts(objective, time_limit, fallback)
    t0 = time.perf_counter()
    if not layer.is_mac:
        m, r = exhaustive_best(layer, target, objective)
        v = objective_value(r, objective)
        return LayerSchedule(layer, m, r, "optimal", objective, v, v, 0.0, "exhaustive", True,
                             solve_time=time.perf_counter() - t0)
    from .layer_solve import _solve_cpsat   # CP-SAT, loaded by the first solve (never on a warm compile)

    return _solve_cpsat(layer, target, objective, time_limit, fallback, hint)

def default_jobs() -> int:
    """Layers solved at once by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def schedule_layers(layers: list[Layer], target: Target, *, objective: str = "cycles",
                    time_limit: float | None = None, fallback: str | None = None,
                    cache_dir: str | os.PathLike | None = None,
                    progress=None, hints: list | None = None, jobs: int | None = None,
                    notes: list | None = None) -> list[LayerSchedule]:
    """Schedule every layer, in order; each distinct layer (``cache_key``: its
    ``layer.key()`` under these options) is solved once and shared by the later layers of
    that shape, each of which keeps its own layer (name).

    Results come from (in this order) the in-process cache, the on-disk cache in
    ``cache_dir`` (one JSON file per key, written atomically; only complete, optimal or
    heuristic answers are stored, never time-limited ones), or a solve.  ``hints``: per
    layer a mapping to start the solver from, or None (see :func:`schedule_layer`).

    ``jobs``: distinct layers solved at once, each in a thread of a standard-library
    ``ThreadPoolExecutor`` (CP-SAT releases the interpreter lock while it searches);
    None: :func:`default_jobs`.  Each solve is independent and deterministic (one CP-SAT
    worker, fixed seed, unique tie-broken optimum), so the answers are the same for any
    value; only a time limit makes an answer depend on timing, as it does serially.  The
    first failing layer in the list's order raises, the others are not waited for.
    ``progress(done, total, layer)``, if given, is told as each distinct layer's answer is
    awaited, in order, and once at the end with ``layer`` None.  ``notes``: receives a note
    for each on-disk entry found invalid (:func:`check_entry`) and solved again."""
    _check_opts(objective, time_limit, fallback)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise UsageError(f"jobs must be an integer >= 1 (None: one per CPU), got {jobs!r}")
    keys = [cache_key(L, target, objective, time_limit, fallback) for L in layers]
    first: dict[str, Layer] = {}
    hint_of: dict[str, Mapping | None] = {}
    for key, L, h in zip(keys, layers, hints or [None] * len(layers)):
        first.setdefault(key, L)
        hint_of.setdefault(key, h)
    items = list(first.items())

    def solve(key: str, L: Layer) -> LayerSchedule:
        return _lookup_or_solve(key, L, target, objective, time_limit, fallback, cache_dir, hint_of[key], notes)

    solved: dict[str, LayerSchedule] = {}
    workers = min(default_jobs() if jobs is None else jobs, len(items))
    if workers <= 1:
        for i, (key, L) in enumerate(items):
            if progress is not None:
                progress(i, len(items), L)
            solved[key] = solve(key, L)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sqnxtc-solve") as ex:
            futures = [ex.submit(solve, key, L) for key, L in items]
            try:
                for i, ((key, L), f) in enumerate(zip(items, futures)):
                    if progress is not None:
                        progress(i, len(items), L)
                    solved[key] = f.result()
            except BaseException:
                for f in futures:
                    f.cancel()            # the queued ones; running solves finish on exit
                raise
    if progress is not None:
        progress(len(items), len(items), None)
    if cache_dir is not None and any(not s.cached and s.status != "feasible" for s in solved.values()):
        evict(Path(cache_dir))       # entries were written: keep the directory under its cap
    out = []
    for key, L in zip(keys, layers):
        s = solved[key]
        out.append(s if s.layer == L else replace(s, layer=L))
    return out


def _lookup_or_solve(key, L, target, objective, time_limit, fallback, cache_dir,
                     hint: Mapping | None = None, notes: list | None = None) -> LayerSchedule:
    """The in-process cache, then the disk cache, then a solve (stored in both unless
    time-limited)."""
    s = _MEMO.get(key)
    if s is not None:
        _count("memory")
        return replace(s, cached=True, solve_time=0.0)
    if cache_dir is not None:
        s = _disk_get(Path(cache_dir), key, L, target, objective, notes)
        if s is not None:
            _count("disk")
            return s
    s = schedule_layer(L, target, objective=objective, time_limit=time_limit, fallback=fallback, hint=hint)
    _count("solved")
    if s.status != "feasible":
        _MEMO[key] = s
        if cache_dir is not None:
            _disk_put(Path(cache_dir), key, s)
    return s
