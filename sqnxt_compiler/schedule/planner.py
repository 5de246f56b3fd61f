"""The network-level memory planner (docs/memory-planning.md): which activations stay in
the global buffer, each layer's mapping given what is resident, and where everything lies.

**Candidates** (:func:`.plans.candidates`): per step and home combination, the per-layer
solver's best mapping for the capacity it leaves; the all-DRAM candidate always among them.

**Network model (CP-SAT).**  One boolean per plannable tensor (resident or not), one per
candidate (exactly one per step), linked: a step's candidate has as many resident inputs
as its input tensors that are resident, a resident residual iff its residual tensor is, and
a resident output iff its output tensor is.  A concat in place that may stay resident has
a copy step beside it (``Step.copy_of``): skipping it writes the concat in place, taking it
copies the parts into the copy's tensor; the readers read one or the other in place
(``Network.reads_resident``), and each tensor may stay only under its own choice.
At every step the chosen candidate's footprint plus the words of every resident tensor
live at that step fit the buffer; the network's cycles and energy are each at most the
all-DRAM plan's (every step's schedule alone).  Objective: the run's objective summed over the steps
(edp: network cycles x network energy); ties: the secondary objective (energy for
cycles, cycles otherwise), then the fewest resident words (the staged solve of
:mod:`.staged`, shared with the layer solver; the planner's own :data:`PARAMS`).

**Allocation.**  Every resident tensor gets an address range for its whole live range and
every step's tiles an address range for the step: rectangles in (step, address) that must
not overlap (``AddNoOverlap2D``).  The plan is first solved with the per-step capacity
only (a relaxation) and then allocated; when the relaxation's optimum cannot be allocated
(fragmentation), the model is solved again with the rectangles in it, which is exact.
:func:`verify_allocation` checks any plan independently.

**Time limit and failures.**  Every solve starts from a complete hint: the first from the
all-DRAM plan (always feasible), each later stage from the previous stage's solution.
The network's solves share one time limit (:func:`network_time_limit`, not the per-layer
one).  A stage that ends without a solution because of the limit is not an infeasible
model: the plan is the best one found, status ``feasible`` with CP-SAT's bound, and when
none was found, the all-DRAM plan itself (status ``feasible``).  Whatever CP-SAT raises is
a ScheduleError naming the network plan, or with the heuristic fallback the all-DRAM plan.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace

from ortools.sat.python import cp_model

from ..diagnostics import ScheduleError
from .cpsat import INT_MAX, SolveFailed, complete_by_search, run
from .liveness import Network
from .oracle import SECONDARY, all_dram_totals
# the planner's data and its CP-SAT-free parts live in .plans (a compile whose plan the
# on-disk cache gives never imports this module); re-exported here
from .plans import (LEVELS, NETWORK_TIME_LIMIT, Candidate, NetworkPlan, Plan, _all_dram_choice,  # noqa: F401
                    _choice, all_dram_plan, candidates, network_plan, network_time_limit, plan_value,
                    plan_figures, unwritten_reads, verify_allocation, without_stacks)
from .staged import SolverParams, solve_stages

SEED = 7
#: The planner's CP-SAT configuration (:class:`.staged.SolverParams`: one worker, the seed):
#: the LP of the linking constraints (linearization level 2): ~250x faster proofs.
PARAMS = SolverParams(SEED, (("linearization_level", 2),))


def _allowed(net: Network) -> list[int]:
    return [t.index for t in net.tensors if t.plannable]


def _build(net: Network, cands, target, objective: str, joint: bool, bounds: dict | None = None):
    """The CP-SAT model (module doc); returns (model, x, y, primary, secondary, words, alloc).
    ``bounds``: the cycles and energy no plan may exceed (default: the all-DRAM plan's)."""
    m = cp_model.CpModel()
    B = target.buffer_words
    x = {t: m.new_bool_var(f"x{t}") for t in _allowed(net) if net.tensors[t].words <= B}
    y = [[m.new_bool_var(f"y{i}_{c}") for c in range(len(cs))] for i, cs in enumerate(cands)]
    for i, step in enumerate(net.steps):
        m.add_exactly_one(y[i])
        # an input read in place: the tensor, or the copy standing for it (exclusive, below)
        slots = [x[a] for t in step.inputs for a in (t, net.alternative(t)) if a is not None and a in x]
        m.add(sum(c.resident_inputs * v for c, v in zip(cands[i], y[i])) == sum(slots))
        out = x.get(step.output)
        m.add(sum(int(c.resident_output) * v for c, v in zip(cands[i], y[i])) == (out if out is not None else 0))
        res = [x[a] for a in (step.residual, net.alternative(step.residual)) if a is not None and a in x]
        m.add(sum(int(c.resident_residual) * v for c, v in zip(cands[i], y[i])) == sum(res))
        if step.copy_of is not None:      # skip: written in place (its tensor may stay), else copied
            skip = sum(v for c, v in zip(cands[i], y[i]) if c.skip)
            if step.copy_of in x:
                m.add(x[step.copy_of] <= skip)
            if step.output in x:
                m.add(x[step.output] <= 1 - skip)
        live = [x[t.index] * t.words for t in net.live(i) if t.index in x]
        m.add(sum(c.footprint * v for c, v in zip(cands[i], y[i])) + sum(live) <= B)

    # a stack's parts all together or none (docs/memory-planning.md, "Fused stacks")
    for parts in _stack_parts(cands).values():
        (i0, c0), rest = parts[0], parts[1:]
        for i, c in rest:
            m.add(y[i][c] == y[i0][c0])

    def total(metric: str):
        return sum(c.value(metric) * v for i, cs in enumerate(cands) for c, v in zip(cs, y[i]))

    # never worse than every activation through DRAM on cycles nor on energy, whatever the
    # objective (the all-DRAM plan meets both bounds: always feasible)
    base = bounds or all_dram_totals(cands)
    if base is not None:
        m.add(total("cycles") <= base["cycles"])
        m.add(total("energy") <= base["energy"])

    def product():
        cyc_hi = sum(max(c.value("cycles") for c in cs) for cs in cands)
        en_hi = sum(max(c.value("energy") for c in cs) for cs in cands)
        if base is not None:      # the bounds above
            cyc_hi, en_hi = min(cyc_hi, base["cycles"]), min(en_hi, base["energy"])
        if cyc_hi * en_hi > INT_MAX:
            raise OverflowError(f"the network's EDP can reach {cyc_hi * en_hi:.3g}, beyond CP-SAT's "
                                f"integers (2^62)")
        cyc, en = m.new_int_var(0, cyc_hi, "cycles"), m.new_int_var(0, en_hi, "energy")
        m.add(cyc == total("cycles"))
        m.add(en == total("energy"))
        p = m.new_int_var(0, cyc_hi * en_hi, "edp")
        m.add_multiplication_equality(p, [cyc, en])
        return p

    primary = product() if objective == "edp" else total(objective)
    secondary = total(SECONDARY[objective])
    words = sum(net.tensors[t].words * v for t, v in x.items())
    alloc = None
    if joint:
        alloc = _rectangles(m, net, cands, y, x, B)
    return m, x, y, primary, secondary, words, alloc


def _rectangles(m, net: Network, cands, y, x, B: int):
    """(step, address) rectangles of the resident tensors and of every step's tiles,
    pairwise disjoint; returns (tensor offset vars, tile offset vars)."""
    xs, ys = [], []
    toff, soff = {}, []
    for t, lit in x.items():
        T = net.tensors[t]
        o = m.new_int_var(0, B - T.words, f"off{t}")
        toff[t] = o
        xs.append(m.new_optional_fixed_size_interval_var(T.producer, T.last - T.producer + 1, lit, f"tx{t}"))
        ys.append(m.new_optional_fixed_size_interval_var(o, T.words, lit, f"ty{t}"))
    for i, cs in enumerate(cands):
        size = m.new_int_var(min(c.footprint for c in cs), max(c.footprint for c in cs), f"s{i}")
        m.add(size == sum(c.footprint * v for c, v in zip(cs, y[i])))
        o = m.new_int_var(0, B, f"soff{i}")
        end = m.new_int_var(0, B, f"send{i}")
        soff.append(o)
        xs.append(m.new_fixed_size_interval_var(i, 1, f"sx{i}"))
        ys.append(m.new_interval_var(o, size, end, f"sy{i}"))
    for parts in _stack_parts(cands).values():      # one region for a stack's every member
        (i0, c0) = parts[0]
        for i, _c in parts[1:]:
            m.add(soff[i] == soff[i0]).only_enforce_if(y[i0][c0])
    m.add_no_overlap_2d(xs, ys)
    return toff, soff


def _stack_parts(cands) -> dict[int, list[tuple[int, int]]]:
    """Per stack (by identity, in the order of first appearance): its parts' (step,
    candidate index), member order."""
    out: dict[int, list[tuple[int, int]]] = {}
    for i, cs in enumerate(cands):
        for k, c in enumerate(cs):
            if c.stack is not None:
                out.setdefault(id(c.stack), []).append((i, k))
    return out


def _left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (a ``time.monotonic()`` value; None: no limit)."""
    return None if deadline is None else deadline - time.monotonic()


def _lower_bound(s: cp_model.CpSolver, value: int | None = None) -> int:
    """CP-SAT's proven lower bound of the objective as an integer in [0, value] (0 when it
    proved none)."""
    try:
        b = float(s.best_objective_bound)
    except Exception:  # noqa: BLE001 - no bound from a solve that never ran
        return 0
    if not math.isfinite(b):
        return 0
    b = max(0, math.ceil(b - 1e-6 * max(1.0, abs(b))))
    return b if value is None else min(b, value)


def _plan_hint(m, x, y, cands, deadline, reference: Plan | None = None) -> list[int] | None:
    """The complete hint of ``reference`` (default: the all-DRAM plan: no tensor resident,
    every step's all-DRAM candidate), a solution of the model, its other variables (the EDP
    product, the rectangles' offsets) found by a search with those fixed; None when there
    is no such plan."""
    if reference is None:
        idx, resident = _all_dram_choice(cands), {}
    else:
        idx = [next(k for k, c in enumerate(cs) if c is ch) for ch, cs in zip(reference.choice, cands)]
        resident = dict(enumerate(reference.resident))
    if idx is None:
        return None
    known = {v.index: int(bool(resident.get(t))) for t, v in x.items()}
    known.update({b.index: int(c == idx[i]) for i, row in enumerate(y) for c, b in enumerate(row)})
    return complete_by_search(m, known, _left(deadline))


def _solve_stages(net, cands, target, objective, joint, deadline, reference: Plan | None = None):
    """Minimize primary, then secondary, then resident words (:func:`.staged.solve_stages`,
    each optimum fixed as an upper bound), each stage started from the last one's solution
    (the first from the all-DRAM plan, or from ``reference``, whose cycles and energy are
    then the bounds instead of the all-DRAM plan's), all before ``deadline``.
    Returns (solver, parts, status, bound): the solver of the last stage that found a
    plan, or None when the first found none, with status "infeasible" (proven), "invalid"
    (the model) or "unknown" (the time limit came first) and CP-SAT's bound."""
    bounds = None if reference is None else totals(reference.choice)
    m, x, y, primary, secondary, words, alloc = _build(net, cands, target, objective, joint, bounds)
    hint = _plan_hint(m, x, y, cands, deadline, reference)
    # a later stage without a solution (out of time) keeps the previous stage's
    res = solve_stages(m, [primary, secondary, words], params=PARAMS, time_left=lambda: _left(deadline),
                       hint=hint, fix="<=")
    if res.solver is None:
        why = {cp_model.INFEASIBLE: "infeasible", cp_model.MODEL_INVALID: "invalid"}
        return None, None, why.get(res.stopped, "unknown"), _lower_bound(res.first)
    bound = _lower_bound(res.first, int(res.values[0]))
    status = "optimal" if res.stage1_optimal else "feasible"
    return res.solver, (x, y, primary, alloc), status, bound


def _allocate(net, cands, choice_idx, resident, target, deadline=None):
    """Offsets for a fixed plan (rectangles only), or None when they cannot be placed
    (or are not placed before ``deadline``)."""
    m = cp_model.CpModel()
    B = target.buffer_words
    xs, ys, toff, soff = [], [], {}, []
    for t in net.tensors:
        if resident.get(t.index):
            o = m.new_int_var(0, B - t.words, f"off{t.index}")
            toff[t.index] = o
            xs.append(m.new_fixed_size_interval_var(t.producer, t.last - t.producer + 1, f"tx{t.index}"))
            ys.append(m.new_fixed_size_interval_var(o, t.words, f"ty{t.index}"))
    for i, c in enumerate(choice_idx):
        f = cands[i][c].footprint
        o = m.new_int_var(0, B - f, f"soff{i}")
        soff.append(o)
        xs.append(m.new_fixed_size_interval_var(i, 1, f"sx{i}"))
        ys.append(m.new_fixed_size_interval_var(o, f, f"sy{i}"))
    for i, c in enumerate(choice_idx):          # one region for a stack's every member
        part = cands[i][c]
        if part.stack is not None and part.member > 0:
            m.add(soff[i] == soff[part.stack.first])
    m.add_no_overlap_2d(xs, ys)
    left = _left(deadline)
    # a feasibility problem: the first placement found (deterministic)
    s = PARAMS.solver(30.0 if left is None else min(30.0, left))
    if run(s, m) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return ({t: int(s.value(o)) for t, o in toff.items()}, [int(s.value(o)) for o in soff])


def _read(s, x, y) -> tuple[dict[int, bool], list[int]]:
    """A solution's residency per tensor and chosen candidate index per step."""
    return ({t: bool(s.value(v)) for t, v in x.items()},
            [next(c for c, v in enumerate(row) if s.value(v)) for row in y])


def plan_network(net: Network, cands: list[list[Candidate]], target, objective: str,
                 time_limit: float | None = None, fallback: str | None = None) -> Plan:
    """The optimal plan over the candidates (module doc), within ``time_limit`` seconds for
    all the network's solves (None: none; :func:`network_time_limit`).  Out of time: the
    best plan found, else the all-DRAM plan, status "feasible".  ``fallback``
    ("heuristic"): whatever CP-SAT raises, or a model too large for it (an EDP beyond its
    integers), gives the all-DRAM plan instead of a ScheduleError."""
    if not net.steps:
        return Plan((), (), (), (), objective, 0, "optimal", 0, False)
    for i, cs in enumerate(cands):
        if not cs:
            raise ScheduleError(f"step {i} ('{net.steps[i].layer.name}') has no candidate mapping")
    deadline = None if time_limit is None else time.monotonic() + time_limit
    try:
        plain = without_stacks(cands)
        ref = _copies_plan(net, plain, target, objective, deadline)
        if not any(c.stack is not None for cs in cands for c in cs):
            return _plan(net, cands, target, objective, deadline, ref)
        # with stacks: never worse than the plan without them, on either figure
        flat = _plan(net, plain, target, objective, deadline, ref)
        return replace(_plan(net, cands, target, objective, deadline, flat), without_stacks=plan_figures(flat.choice))
    except (SolveFailed, OverflowError) as exc:
        why = str(exc) if isinstance(exc, SolveFailed) else f"CP-SAT model too large: {exc}"
        what = f"the memory plan of the network ({len(net.steps)} steps): {why}"
        plan = all_dram_plan(net, cands, objective, 0, f"{what}; the all-DRAM plan")
        if fallback != "heuristic" or plan is None:
            hint = "" if plan is None else " (--fallback heuristic: the all-DRAM plan)"
            raise ScheduleError(what + hint) from None
        return plan


def totals(choice) -> dict:
    """The network's cycles and energy under a choice of candidates."""
    return {"cycles": sum(c.value("cycles") for c in choice), "energy": sum(c.value("energy") for c in choice)}


def _copies_plan(net, cands, target, objective: str, deadline) -> Plan | None:
    """When the network has concats in place that may stay resident (``net.copies``): the
    plan with every one of them copied (each copy step's skip removed: the network as
    planned before concat-in-place), if it is no worse than the all-DRAM plan on cycles and
    on energy; else None.  The joint plan is then bounded by it instead, so that writing
    concats in place is never worse than copying them, on either figure
    (docs/memory-planning.md, "Concats in place")."""
    if not net.copies:
        return None
    copied = [[c for c in cs if not c.skip] for cs in cands]
    ref = _plan(net, copied, target, objective, deadline)
    base, mine = all_dram_totals(cands), totals(ref.choice)
    if base is not None and (mine["cycles"] > base["cycles"] or mine["energy"] > base["energy"]):
        return None
    return ref


def _plan(net, cands, target, objective: str, deadline, reference: Plan | None = None) -> Plan:
    """plan_network's solves: the relaxation, its allocation, the joint model if needed;
    ``reference``: a plan over a subset of ``cands`` bounding this one (:func:`_copies_plan`)."""
    s, parts, status, bound = _solve_stages(net, cands, target, objective, False, deadline, reference)
    if s is None:
        return _no_solution(net, cands, objective, status, bound, reference)
    x, y, primary, _ = parts
    resident, choice_idx = _read(s, x, y)
    placed = _allocate(net, cands, choice_idx, resident, target, deadline)
    joint = placed is None
    if joint:
        # a lower bound of the relaxation is one of the exact problem too
        relaxed = plan_value(_choice(cands, choice_idx), objective) if status == "optimal" else bound
        s, parts, status, bound = _solve_stages(net, cands, target, objective, True, deadline, reference)
        bound = max(bound or 0, relaxed)
        if s is None:
            return _no_solution(net, cands, objective, status, bound, reference)
        x, y, primary, (toff, soff) = parts
        resident, choice_idx = _read(s, x, y)
        placed = ({t: int(s.value(o)) for t, o in toff.items() if resident[t]},
                  [int(s.value(o)) for o in soff])
    toffs, soffs = placed
    choice = _choice(cands, choice_idx)
    value = plan_value(choice, objective)
    return Plan(tuple(resident.get(t.index, False) for t in net.tensors),
                tuple(toffs.get(t.index) for t in net.tensors), choice, tuple(soffs),
                objective, value, status, value if status == "optimal" else min(bound, value), joint)


def _no_solution(net, cands, objective: str, status: str, bound: int, reference: Plan | None = None) -> Plan:
    """The plan when the network model's first stage found none: out of time, the all-DRAM
    plan, or ``reference`` when the model was bounded by it (status "feasible", CP-SAT's
    bound); proven infeasible or an invalid model (the all-DRAM plan, or the reference, is
    a solution of every model built): a bug, a ScheduleError."""
    if reference is not None and status == "unknown":
        return replace(reference, status="feasible", bound=max(0, min(bound, reference.value)),
                       note="time limit before the network solve's first plan: every concat copied")
    plan = all_dram_plan(net, cands, objective, bound,
                         "time limit before the network solve's first plan: the all-DRAM plan")
    if status != "unknown":
        raise ScheduleError(f"no memory plan fits the buffer (the all-DRAM plan should; CP-SAT: "
                            f"{status}): a bug")
    if plan is None:       # candidates without an all-DRAM one (made by hand)
        raise ScheduleError("no memory plan found within the time limit")
    return plan


