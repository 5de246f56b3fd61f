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
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from ortools.sat.python import cp_model

from sqnxt_compiler import __version__
from sqnxt_compiler.cost.layer import Layer
from sqnxt_compiler.cost.mapping import DATAFLOWS, ORDERS, Mapping
from sqnxt_compiler.cost.model import (CostReport, allowed_dataflows, capacity_words, check_mapping, evaluate,
                                      objective_value)
from sqnxt_compiler.diagnostics import ScheduleError, UsageError, one_line
from sqnxt_compiler.targets import Target

from .cpsat import INT_MAX, SolveFailed, build_model, decode, run, set_hint, solution, value
from .oracle import OBJECTIVES, SECONDARY, exhaustive_best, infeasible_error
from .space import clear_spaces, get_space, min_footprint_words

FALLBACKS = (None, "heuristic")
SEED = 20180315          # fixed CP-SAT random seed
#: Layers whose reduced space (order representatives x candidate tile sizes, both
#: dataflows) has at most this many mappings are first enumerated (vectorized, the
#: oracle's code) for an incumbent: CP-SAT gets its objective as an upper bound and the
#: mapping as a hint, and still proves the optimum and breaks the ties itself
#: (docs/scheduler.md, "Incumbent").  0 disables it.
INCUMBENT_LIMIT = 1_000_000
#: bump when the cost model or the solver changes what a schedule contains
MODEL_REVISION = 2


@dataclass(frozen=True)
class LayerSchedule:
    """The scheduler's answer for one layer."""

    layer: Layer
    mapping: Mapping
    cost: CostReport
    status: str               # "optimal" | "feasible" (time limit) | "heuristic" (fallback)
    objective: str            # "cycles" | "energy" | "edp"
    objective_value: int
    bound: int                # proven lower bound of the objective (== value when optimal)
    gap: float                # (value - bound) / value
    solver: str               # "cp-sat" | "exhaustive" | "heuristic"
    tie_break: bool           # the documented tie-break was applied to completion
    note: str = ""            # why a fallback was used, if it was
    solve_time: float = field(default=0.0, compare=False)   # seconds (not in to_dict())
    cached: bool = field(default=False, compare=False)

    def to_dict(self, include_timing: bool = False) -> dict:
        """JSON-serializable and deterministic: timings only under "timing", on request."""
        L = self.layer
        d = {
            "layer": L.name,
            "kind": L.kind,
            "shape": {"C": L.C, "K": L.K, "H": L.H, "W": L.W, "R": L.R, "S": L.S, "P": L.P, "Q": L.Q,
                      "stride": [L.stride_h, L.stride_w],
                      "pad": [L.pad_top, L.pad_left, L.pad_bottom, L.pad_right],
                      "groups": L.groups, "n_inputs": L.n_inputs,
                      "dilation": [L.dilation_h, L.dilation_w],
                      "weight_zero_fraction": None if L.weight_zero_fraction is None
                      else str(L.weight_zero_fraction),
                      "pool": None if not L.pool else {
                          "kind": L.pool, "R": L.pool_R, "S": L.pool_S,
                          "stride": [L.pool_stride_h, L.pool_stride_w],
                          "pad": [L.pool_pad_top, L.pool_pad_left, L.pool_pad_bottom, L.pool_pad_right],
                          "conv_P": L.conv_P, "conv_Q": L.conv_Q},
                      "element": None if not L.fn else {
                          "fn": L.fn, "ops": L.elem_ops, "funcs": L.elem_funcs, "params": L.params}},
            "mapping": self.mapping.to_dict(),
            "status": self.status,
            "solver": self.solver,
            "objective": {"name": self.objective, "value": self.objective_value, "bound": self.bound,
                          "gap": self.gap},
            "tie_break": self.tie_break,
            "cost": self.cost.to_dict(),
        }
        if self.note:
            d["note"] = self.note
        if include_timing:
            d["timing"] = {"solve_time_s": round(self.solve_time, 6), "cached": self.cached}
        return d

    @staticmethod
    def from_dict(d: dict, layer: Layer, target: Target, objective: str | None = None) -> "LayerSchedule":
        """Rebuild from to_dict() output, trusting nothing (:func:`check_entry`); objective
        None: the one it names (which must be one of OBJECTIVES)."""
        if objective is None:
            objective = ((d.get("objective") or {}).get("name") if isinstance(d, dict) else None)
            if objective not in OBJECTIVES:
                raise BadEntry(f"unknown objective {objective!r}")
        return check_entry(d, layer, target, objective)


class BadEntry(ValueError):
    """A cached schedule that fails :func:`check_entry` (the reason is the message)."""


#: What each solver may claim: its statuses (a time-limited answer is never stored).
_CLAIMS = {"cp-sat": {"optimal"}, "exhaustive": {"optimal"}, "heuristic": {"heuristic"}}


def check_entry(d, layer: Layer, target: Target, objective: str) -> LayerSchedule:
    """A stored schedule (``LayerSchedule.to_dict()``) for ``layer`` under ``objective``,
    validated field by field; raises :class:`BadEntry` naming the first problem.

    Rules: the mapping is in the layer's space (:func:`check_mapping`: dataflow, order, every
    tile in 1..bound) and fits the buffer; the cost is recomputed and must equal the stored
    one; the objective is the one asked, its value is the recomputed cost's, its bound is
    an integer in 0..value (equal to it when optimal) and its gap is ``(value - bound) /
    value`` rounded to 6 places; status and solver are a pair a solve produces (cp-sat or
    exhaustive: optimal; heuristic: heuristic); tie_break is a bool, note a string."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise BadEntry(what)

    need(isinstance(d, dict), "not a JSON object")
    for k in ("mapping", "status", "solver", "objective", "tie_break", "cost"):
        need(k in d, f"no '{k}'")
    try:
        m = Mapping.from_dict(d["mapping"])
        check_mapping(layer, m)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadEntry(f"mapping unreadable ({type(exc).__name__})") from None
    except ScheduleError as exc:
        raise BadEntry(exc.message.split(": ", 1)[-1]) from None
    need(m.dataflow in allowed_dataflows(layer, target), f"dataflow {m.dataflow} is not allowed on this target")
    cost = evaluate(layer, target, m)
    need(cost.fits, f"mapping {m} does not fit the buffer")
    need(cost.to_dict() == d["cost"], "cost differs from the cost model's")
    o = d["objective"]
    need(isinstance(o, dict) and o.get("name") == objective, f"objective is not {objective}")
    value, bound, gap = o.get("value"), o.get("bound"), o.get("gap")
    need(value == objective_value(cost, objective) and type(value) is int,
         "objective value differs from the cost's")
    need(type(bound) is int and 0 <= bound <= value, "objective bound outside 0..value")
    need(isinstance(gap, float | int) and not isinstance(gap, bool) and gap == _gap(value, bound),
         "gap disagrees with value and bound")
    need(d["solver"] in _CLAIMS and d["status"] in _CLAIMS[d["solver"]],
         f"status {d['status']!r} / solver {d['solver']!r} is not a stored answer")
    need(d["status"] != "optimal" or bound == value, "an optimal answer's bound must equal its value")
    need(isinstance(d["tie_break"], bool), "tie_break is not a bool")
    need(isinstance(d.get("note", ""), str), "note is not a string")
    return LayerSchedule(layer, m, cost, d["status"], objective, value, bound, float(gap),
                         d["solver"], d["tie_break"], d.get("note", ""))


def _int_bound(b: float) -> int:
    """CP-SAT's objective bound (a float) as an integer lower bound of an integer
    objective: the nearest integer when the float is one up to rounding, else its ceiling."""
    r = round(b)
    return int(r) if abs(b - r) <= 1e-6 * max(1.0, abs(b)) else math.ceil(b)


def _gap(value: int, bound: int) -> float:
    return 0.0 if value <= 0 else round((value - bound) / value, 6)


# ---------------------------------------------------------------------------------------
# heuristic (fallback)
# ---------------------------------------------------------------------------------------
def heuristic_mapping(layer: Layer, target: Target) -> tuple[Mapping, CostReport]:
    """The documented fallback: start from whole-loop tiles and halve (rounding up) the
    tiles in the round-robin order y, x, k, c until the footprint fits; then try both
    allowed dataflows (:func:`allowed_dataflows`) and all 24 orders for those tiles and keep the one
    with the fewest cycles (ties: less energy, then WS, then order index).  Raises
    ScheduleError when not even all-1 tiles fit."""
    if min_footprint_words(layer, target) > capacity_words(layer, target):
        raise infeasible_error(layer, target)
    tiles = {"x": layer.Q, "y": layer.P, "c": layer.Cg, "k": layer.Kg}
    seq = ["y", "x", "k", "c"]
    i = 0

    def fits(t):
        return evaluate(layer, target, Mapping("OS", t["x"], t["y"], t["c"], t["k"])).fits

    while not fits(tiles):
        for _ in range(4):
            d = seq[i % 4]
            i += 1
            if tiles[d] > 1:
                tiles[d] = -(-tiles[d] // 2)
                break
    best = None
    dfs = allowed_dataflows(layer, target)
    for dfi, df in enumerate(DATAFLOWS):
        if df not in dfs:
            continue
        for oi, order in enumerate(ORDERS):
            m = Mapping(df, tiles["x"], tiles["y"], tiles["c"], tiles["k"], order)
            r = evaluate(layer, target, m)
            key = (r.total_cycles, r.energy_total, dfi, oi)
            if best is None or key < best[0]:
                best = (key, m, r)
    return best[1], best[2]


def _heuristic_schedule(layer, target, objective, note) -> LayerSchedule:
    m, r = heuristic_mapping(layer, target)
    v = objective_value(r, objective)
    return LayerSchedule(layer, m, r, "heuristic", objective, v, 0, 1.0 if v else 0.0, "heuristic", False, note)


# ---------------------------------------------------------------------------------------
# CP-SAT
# ---------------------------------------------------------------------------------------
def _solver(time_left: float | None) -> cp_model.CpSolver:
    s = cp_model.CpSolver()
    s.parameters.num_workers = 1
    s.parameters.random_seed = SEED
    # one presolve round: these models are small and a second round rarely simplifies
    # them further; measured ~35% less CP-SAT time on 1.0-SqNxt-23, same answers
    # (benchmarks/bench_compile.py, docs/scheduler.md)
    s.parameters.max_presolve_iterations = 1
    # Ctrl-C is sqnxtc's (exit 130, outputs cleaned up): CP-SAT would install its own
    # SIGINT handler for the solve and leave the default one behind
    s.parameters.catch_sigint_signal = False
    if time_left is not None:
        s.parameters.max_time_in_seconds = max(0.001, time_left)
    return s


def _objective_var(lm, name: str):
    if name == "cycles":
        return lm.cycles
    if name == "energy":
        return lm.energy
    raise ValueError(name)


@dataclass(frozen=True)
class Incumbent:
    """A feasible mapping known before the solve, and its cost-model values."""

    mapping: Mapping
    values: dict              # "cycles", "energy", "edp" -> int


def incumbent(layer: Layer, target: Target, objective: str) -> Incumbent | None:
    """The enumerated best mapping of a layer whose reduced space is small enough
    (INCUMBENT_LIMIT), else None.  Only a starting point: whatever it is, it is a feasible
    mapping (checked), so its objective is a valid upper bound of the optimum."""
    if INCUMBENT_LIMIT <= 0 or get_space(layer, target).size_candidates() > INCUMBENT_LIMIT:
        return None
    try:
        m, r = exhaustive_best(layer, target, objective)
    except ScheduleError:
        return None
    if not r.fits:
        return None
    return Incumbent(m, {"cycles": r.total_cycles, "energy": r.energy_total,
                         "edp": r.total_cycles * r.energy_total})


def hinted_incumbent(layer: Layer, target: Target, hint: Mapping) -> Incumbent | None:
    """A caller's mapping as the starting point (the memory planner passes the layer's
    schedule alone when it solves the layer with other operand homes): its figures under
    this layer's homes, when it fits this layer's capacity, else None (the solver then
    falls back on the enumerated :func:`incumbent`: without a starting point the large
    fully connected layers take seconds, e.g. AlexNet's fc6 with its input resident 1.9 s
    against 0.3 s).  Only the speed of the proof depends on it: the answer is the unique tie-broken optimum."""
    r = evaluate(layer, target, hint)
    if not r.fits:
        return None
    return Incumbent(hint, {"cycles": r.total_cycles, "energy": r.energy_total,
                            "edp": r.total_cycles * r.energy_total})


def _assignment(lm, m: Mapping) -> list | None:
    """Values of the model's decision variables for mapping ``m`` (a hint), or None when
    ``m`` is outside the model's reduced space."""
    tiles = {"x": m.tx, "y": m.ty, "c": m.tc, "k": m.tk}
    oi = ORDERS.index(m.order)
    if oi not in lm.orders or any(tiles[d] not in lm.cand[d] for d in tiles):
        return None
    if isinstance(lm.os, int) and lm.os != (m.dataflow == "OS"):
        return None
    out = [(b, int(t == tiles[d])) for d in tiles for t, b in zip(lm.cand[d], lm.onehot[d])]
    out += [(p, int(o == oi)) for o, p in zip(lm.orders, lm.perm)]
    if not isinstance(lm.os, int):
        out.append((lm.os, int(m.dataflow == "OS")))
    return out


def _full_hint(lm, m: Mapping) -> list[int] | None:
    """Every variable's value for mapping ``m`` (a complete hint: :func:`.cpsat.set_hint`),
    or None when ``m`` is outside the model's reduced space."""
    a = _assignment(lm, m)
    return None if a is None else lm.complete({v.index: val for v, val in a})


def _solve_cpsat(layer: Layer, target: Target, objective: str, time_limit: float | None,
                 fallback: str | None, hint: Mapping | None = None) -> LayerSchedule:
    """The layer's CP-SAT schedule (module doc).  The solver boundary: whatever CP-SAT
    raises in any of the layer's solves is the layer's failure like any other, a
    ScheduleError naming the layer (exit 6) or, with ``fallback``, the heuristic mapping."""
    if min_footprint_words(layer, target) > capacity_words(layer, target):
        raise infeasible_error(layer, target)

    def fail(msg: str) -> LayerSchedule:
        if fallback == "heuristic":
            return _heuristic_schedule(layer, target, objective, msg)
        raise ScheduleError(f"layer '{layer.name}' ({layer.describe()}): {msg}")

    try:
        return _cpsat_stages(layer, target, objective, time_limit, hint, fail)
    except SolveFailed as exc:
        return fail(str(exc))


def _cpsat_stages(layer: Layer, target: Target, objective: str, time_limit: float | None,
                  hint: Mapping | None, fail) -> LayerSchedule:
    """The lexicographic stages (module doc); ``fail(message)`` ends a solve that gives no
    mapping."""
    t0 = time.perf_counter()

    def left():
        return None if time_limit is None else time_limit - (time.perf_counter() - t0)

    inc = None if hint is None else hinted_incumbent(layer, target, hint)
    if inc is None:
        inc = incumbent(layer, target, objective)
    try:
        if objective == "edp":
            lm, obj, pre_status, start = _edp_model(layer, target, left, inc)
            if lm is None:
                return fail(pre_status)
        else:
            lm = build_model(layer, target)
            obj = _objective_var(lm, objective).expr
            start = inc                  # the mapping the first stage starts from, if any
    except OverflowError as exc:
        return fail(f"CP-SAT model too large: {exc}")
    model = lm.model
    if inc is not None:
        # a cutoff, not an answer: the optimum is <= any feasible mapping's objective
        model.add(obj <= inc.values[objective])
    # complete hints only (cpsat.set_hint), and solutions of the model
    hint = start_hint = None if start is None else _full_hint(lm, start.mapping)
    sec = _objective_var(lm, SECONDARY[objective])
    stages = [("primary", obj)]          # the later stages are added once stage 1 is done
    values = {}
    status_out, bound, tie_done = "optimal", None, True
    sol = None
    si = 0
    while si < len(stages):
        stage, expr = stages[si]
        model.minimize(expr)
        set_hint(model, hint)
        solver = _solver(left())
        st = run(solver, model)
        if st == cp_model.INFEASIBLE:
            raise infeasible_error(layer, target)
        if st == cp_model.MODEL_INVALID:
            return fail(f"CP-SAT rejected the model: {model.validate()}")
        if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            if si == 0 and inc is not None and time_limit is not None:
                return _incumbent_schedule(layer, target, objective, inc, solver, t0)
            if si == 0:
                return fail("no mapping found within the time limit" if time_limit is not None
                            else f"CP-SAT status {solver.status_name(st)}")
            tie_done = False
            break
        sol = decode(lm, solver)
        found = solution(solver)
        if si == 0:
            values["primary"] = solver.value(expr)     # exact (objective_value is a float)
            bound = _int_bound(solver.best_objective_bound)
            if st != cp_model.OPTIMAL:
                status_out, tie_done = "feasible", False
                break
        if st != cp_model.OPTIMAL:
            tie_done = False
            break
        model.add(expr == solver.value(expr))
        if si == 0:
            sec_found = solver.value(sec.expr)
            sec_inc = (inc.values[SECONDARY[objective]]
                       if inc is not None and inc.values[objective] == values["primary"] else None)
            stages += _tie_stages(lm, sec, sec_found, sec_inc)
            if sec_inc is not None and sec_inc < sec_found:
                # stage 1's mapping breaks stage 2's bound on the secondary; the incumbent
                # (optimal, so it is the start) does not
                found = start_hint if start is inc else None
        # the next stage starts from this answer, every variable given (the new ones by definition)
        hint = None if found is None else lm.complete(dict(enumerate(found)))
        si += 1
    df, order, tiles = sol
    m = Mapping(df, tiles["x"], tiles["y"], tiles["c"], tiles["k"], order)
    r = evaluate(layer, target, m)
    v = objective_value(r, objective)
    if v != values["primary"]:
        raise AssertionError(f"layer '{layer.name}': CP-SAT objective {values['primary']} != cost model {v}")
    if status_out == "optimal":
        bound = v
    return LayerSchedule(layer, m, r, status_out, objective, v, bound, _gap(v, bound), "cp-sat", tie_done,
                         solve_time=time.perf_counter() - t0)


def _incumbent_schedule(layer, target, objective, inc: Incumbent, solver, t0) -> LayerSchedule:
    """The time limit ran out before CP-SAT's first solution, but the enumerated incumbent
    is a feasible mapping in hand: return it as "feasible", with the lower bound CP-SAT
    proved (0, the trivial bound, if it proved none) and the gap.  Better than a heuristic,
    and as honest: the status says optimality was not proven."""
    r = evaluate(layer, target, inc.mapping)
    v = objective_value(r, objective)
    try:
        b = float(solver.best_objective_bound)
    except Exception:  # noqa: BLE001 - no bound available from a solve that never ran
        b = float("nan")
    bound = min(v, max(0, _int_bound(b))) if math.isfinite(b) else 0
    return LayerSchedule(layer, inc.mapping, r, "feasible", objective, v, bound, _gap(v, bound),
                         "cp-sat", False, "time limit before CP-SAT's first solution: the "
                         "enumerated incumbent, optimality not proven",
                         solve_time=time.perf_counter() - t0)


def _tie_stages(lm, sec, sec_hint: int, sec_inc: int | None) -> list:
    """The stages after stage 1: minimize the secondary objective, then the tie key.

    Stage 1's mapping (secondary value ``sec_hint``) and an optimal incumbent (``sec_inc``)
    are feasible for stage 2, so the secondary is bounded by their values.  When
    ``(secondary - its lower bound) * (tie_key_hi + 1) + tie key`` fits CP-SAT's integer
    range, both are minimized in one solve (the lexicographic minimum of (secondary, tie
    key) is the minimum of that sum: the tie key is below its weight), else in two."""
    hi = sec_hint if sec_inc is None else min(sec_hint, sec_inc)
    lm.model.add(sec.expr <= hi)
    w = lm.tie_key_hi + 1
    if (hi - sec.lo) * w + lm.tie_key_hi <= INT_MAX:
        d = lm.model.new_int_var(0, hi - sec.lo, "sec_minus_lo")
        lm.model.add(d == sec.expr - sec.lo)
        lm.define(d, lambda vals: value(sec, vals) - sec.lo)
        return [("secondary+tie", d * w + lm.tie_key)]
    return [("secondary", sec.expr), ("tie", lm.tie_key)]


def _edp_model(layer, target, left, inc: Incumbent | None = None):
    """EDP = cycles x energy: the product needs bounded factors.  Solve min cycles (C*)
    and min energy (E*) first; a mapping optimal for cycles has EDP H = C* x E(its energy),
    so the EDP optimum has cycles <= H / E* and energy <= H / C*.  With an incumbent
    (any feasible mapping) H = min(H, its EDP); each pre-solve gets its own incumbent
    (the enumerated best cycles, energy) as cutoff and hint.  Returns (model, the EDP
    variable, a note, the start): the start is a mapping of EDP H, a solution of the model
    (the incumbent, or the cycles-optimal mapping when that is better): the EDP solve's
    hint (an incumbent worse than H would break ``edp <= H``: an inconsistent hint)."""
    bounds = {}
    h_energy = None
    c_opt = None
    for name in ("cycles", "energy"):
        lm = build_model(layer, target)
        pre = incumbent(layer, target, name) if inc is not None else None
        if pre is not None:
            lm.model.add(_objective_var(lm, name).expr <= pre.values[name])
            set_hint(lm.model, _full_hint(lm, pre.mapping))
        lm.model.minimize(_objective_var(lm, name).expr)
        s = _solver(left())
        st = run(s, lm.model)
        if st != cp_model.OPTIMAL:
            return None, None, f"EDP pre-solve ({name}) ended with status {s.status_name(st)}", None
        bounds[name] = s.value(_objective_var(lm, name).expr)
        if name == "cycles":
            h_energy = int(s.value(lm.energy.expr))
            df, order, tiles = decode(lm, s)
            c_opt = Incumbent(Mapping(df, tiles["x"], tiles["y"], tiles["c"], tiles["k"], order),
                              {"cycles": bounds["cycles"], "energy": h_energy, "edp": bounds["cycles"] * h_energy})
    H = c_opt.values["edp"]
    start = c_opt
    if inc is not None and inc.values["edp"] <= H:
        H, start = inc.values["edp"], inc
    c_hi, e_hi = H // bounds["energy"], H // bounds["cycles"]
    lm = build_model(layer, target, cycles_hi=c_hi, energy_hi=e_hi)
    b = _Prod(lm)
    edp = b.product(lm.cycles, lm.energy)
    lm.model.add(edp <= H)
    return lm, edp, "ok", start


class _Prod:
    """Adds cycles x energy to a built model."""

    def __init__(self, lm):
        self.lm = lm

    def product(self, a, b):
        hi = a.hi * b.hi
        if hi > 2 ** 62:
            raise OverflowError(f"edp upper bound {hi}")
        v = self.lm.model.new_int_var(a.lo * b.lo, hi, "edp")
        self.lm.model.add_multiplication_equality(v, [a.expr, b.expr])
        self.lm.define(v, lambda vals: value(a, vals) * value(b, vals))
        return v


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
    return _solve_cpsat(layer, target, objective, time_limit, fallback, hint)


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



