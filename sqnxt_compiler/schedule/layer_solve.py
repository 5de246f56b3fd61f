"""One MAC layer's CP-SAT schedule: the lexicographic stages (docs/scheduler.md) run by
:func:`.staged.solve_stages` with this solver's configuration (:data:`PARAMS`), the
incumbent as cutoff and start, and what each way a solve can end becomes (a schedule,
the incumbent as "feasible", the heuristic fallback, or a ScheduleError)."""
from __future__ import annotations

import math
import time

from ortools.sat.python import cp_model

from sqnxt_compiler.cost.layer import Layer
from sqnxt_compiler.cost.mapping import Mapping
from sqnxt_compiler.cost.model import capacity_words, evaluate, objective_value
from sqnxt_compiler.diagnostics import ScheduleError
from sqnxt_compiler.targets import Target

from .cpsat import INT_MAX, SolveFailed, build_model, decode, value
from .edp import _edp_model
from .heuristic import Incumbent, _full_hint, _heuristic_schedule, _objective_var, hinted_incumbent, incumbent
from .oracle import SECONDARY, infeasible_error
from .records import LayerSchedule, _gap, _int_bound
from .space import min_footprint_words
from .staged import SolverParams, solve_stages

SEED = 20180315          # fixed CP-SAT random seed
#: The layer solver's CP-SAT configuration (:class:`.staged.SolverParams`: one worker, the
#: seed).  One presolve round: these models are small and a second round rarely simplifies
#: them further; measured ~35% less CP-SAT time on 1.0-SqNxt-23, same answers
#: (benchmarks/bench_compile.py, docs/scheduler.md).
PARAMS = SolverParams(SEED, (("max_presolve_iterations", 1),))


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
            lm, obj, pre_status, start = _edp_model(layer, target, left, inc, params=PARAMS)
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
    start_hint = None if start is None else _full_hint(lm, start.mapping)
    sec = _objective_var(lm, SECONDARY[objective])

    def after(i, solver, found):
        """Once stage 1 is proven: the stages of the secondary objective and the tie key."""
        if i != 0:
            return [], found
        sec_found = solver.value(sec.expr)
        primary = solver.value(obj)     # exact (objective_value is a float)
        sec_inc = (inc.values[SECONDARY[objective]]
                   if inc is not None and inc.values[objective] == primary else None)
        more = _tie_stages(lm, sec, sec_found, sec_inc)
        if sec_inc is not None and sec_inc < sec_found:
            # stage 1's mapping breaks stage 2's bound on the secondary; the incumbent
            # (optimal, so it is the start) does not
            found = start_hint if start is inc else None
        return more, found

    # the later stages are added once stage 1 is done; each stage starts from the last
    # one's answer, every variable given (the new ones by definition)
    res = solve_stages(model, [obj], params=PARAMS, time_left=left, hint=start_hint, fix="==",
                       complete=lambda found: lm.complete(dict(enumerate(found))), after=after)
    if res.stopped == cp_model.INFEASIBLE:
        raise infeasible_error(layer, target)
    if res.stopped == cp_model.MODEL_INVALID:
        return fail(f"CP-SAT rejected the model: {model.validate()}")
    if res.solver is None:
        if inc is not None and time_limit is not None:
            return _incumbent_schedule(layer, target, objective, inc, res.first, t0)
        return fail("no mapping found within the time limit" if time_limit is not None
                    else f"CP-SAT status {res.first.status_name(res.first_status)}")
    primary = res.values[0]            # stage 1's value: exact (objective_value is a float)
    status_out = "optimal" if res.stage1_optimal else "feasible"
    bound = _int_bound(res.first.best_objective_bound)
    tie_done = res.done
    df, order, tiles = decode(lm, res.solver)
    m = Mapping(df, tiles["x"], tiles["y"], tiles["c"], tiles["k"], order)
    r = evaluate(layer, target, m)
    v = objective_value(r, objective)
    if v != primary:
        raise AssertionError(f"layer '{layer.name}': CP-SAT objective {primary} != cost model {v}")
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
        return [d * w + lm.tie_key]            # secondary and tie key in one stage
    return [sec.expr, lm.tie_key]              # secondary, then the tie key
