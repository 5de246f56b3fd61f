"""The network-level memory planner (docs/memory-planning.md): which activations stay in
the global buffer, each layer's mapping given what is resident, and where everything lies.

**Candidates.**  For every step and every home combination (how many of its input tensors
are resident, whether its fused residual is, whether its output stays) the per-layer solver gives the best mapping with
the capacity that combination leaves (``capacity = buffer - resident operand words``, each
resident tensor counted once however many of the step's operands it is), and
then, while other live tensors could leave less, the best mapping with less (the next
point of the layer's Pareto front of footprint against objective: capacity = previous
footprint - 1), at most :data:`LEVELS` points per combination.  The all-DRAM candidate
(today's schedule) is always among them.

**Network model (CP-SAT).**  One boolean per plannable tensor (resident or not), one per
candidate (exactly one per step), linked: a step's candidate has as many resident inputs
as its input tensors that are resident, a resident residual iff its residual tensor is, and
a resident output iff its output tensor is.
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
from dataclasses import dataclass
from typing import Callable

from ortools.sat.python import cp_model

from ..cost.model import capacity_words, objective_value
from ..diagnostics import ScheduleError
from .cpsat import INT_MAX, SolveFailed, complete_by_search, run
from .liveness import Network
from .oracle import SECONDARY, all_dram_totals
from .space import min_footprint_words
from .staged import SolverParams, solve_stages

#: Pareto points per (step, home combination): 1 measured as good as 3 on 1.0-SqNxt-23
#: (same plan on both targets) at a third of the solves; see docs/memory-planning.md.
LEVELS = 1
SEED = 7
#: The planner's CP-SAT configuration (:class:`.staged.SolverParams`: one worker, the seed):
#: the LP of the linking constraints (linearization level 2): ~250x faster proofs.
PARAMS = SolverParams(SEED, (("linearization_level", 2),))
#: Seconds for the whole network solve (relaxation, allocation, joint model) when the run
#: has a per-layer time limit (``--time-limit``): that limit is one layer's, while the
#: network model is one solve over every candidate (1.0-SqNxt-23: about 0.2 s; a larger
#: per-layer limit is used when given).  Without a per-layer limit the network solve has
#: none (proven optimal).  docs/memory-planning.md, "Time limit and failures".
NETWORK_TIME_LIMIT = 10.0


def network_time_limit(layer_limit: float | None) -> float | None:
    """The network solve's time limit for a run whose per-layer limit is ``layer_limit``:
    none without one, else ``max(layer_limit, NETWORK_TIME_LIMIT)``."""
    return None if layer_limit is None else max(layer_limit, NETWORK_TIME_LIMIT)


@dataclass(frozen=True)
class Candidate:
    """One way to run a step: its operand homes and the best mapping for them."""

    resident_inputs: int
    resident_output: bool
    schedule: object            # LayerSchedule (its layer carries the homes and capacity)
    resident_residual: bool = False

    @property
    def footprint(self) -> int:
        return self.schedule.cost.footprint["total"]

    def value(self, objective: str) -> int:
        return objective_value(self.schedule.cost, objective)


@dataclass(frozen=True)
class Plan:
    """A network plan: per tensor resident or not and its word offset; per step the chosen
    candidate and the offset of its tile region; the objective as planned."""

    resident: tuple[bool, ...]
    offsets: tuple[int | None, ...]
    choice: tuple[Candidate, ...]
    tile_offsets: tuple[int, ...]
    objective: str
    value: int
    status: str                 # "optimal" | "feasible"
    bound: int
    joint: bool                 # the allocation was solved jointly (the relaxation fragmented)
    note: str = ""              # why the plan is not the solver's (a fallback), if it is not

    @property
    def gap(self) -> float:
        return 0.0 if self.value == 0 else (self.value - self.bound) / self.value


def _operand_combos(net: Network, i: int, buffer: int) -> dict[tuple[int, bool], int]:
    """(resident-input count, resident residual) -> the fewest resident words giving it,
    over the subsets of the step's distinct plannable operand tensors (its inputs and its
    fused residual).  Rule: a resident tensor holds its words once, however many operands
    read it (an add of a tensor with itself, a conv whose input is also its residual); the
    input count counts operands (an input read twice counts twice)."""
    step = net.steps[i]

    def ok(t):
        return t is not None and net.tensors[t].plannable and net.tensors[t].words <= buffer

    slots = [t for t in step.inputs if ok(t)]
    res = step.residual if ok(step.residual) else None
    distinct = sorted(set(slots) | ({res} if res is not None else set()))
    best: dict[tuple[int, bool], int] = {}
    for mask in range(1 << len(distinct)):
        chosen = [t for k, t in enumerate(distinct) if mask >> k & 1]
        key = (sum(slots.count(t) for t in chosen), res in chosen)
        words = sum(net.tensors[t].words for t in chosen)
        best[key] = min(best.get(key, words), words)
    return best


@dataclass
class _Combo:
    """One home combination of one step while its candidates are being solved."""

    step: int
    resident_inputs: int
    resident_residual: bool
    resident_output: bool
    layer: object               # the step's Layer with these homes
    cap: int                    # the capacity of the next solve
    floor: int                  # the least capacity the step can ever see
    found: list


def candidates(net: Network, target, solve: Callable[..., list], objective: str,
               alone: list | None = None) -> list[list[Candidate]]:
    """Every step's candidates (module doc).  ``solve(layers, hints)`` schedules a list of
    layers (the schedule pass's solver with its options, which solves them in threads);
    ``alone``: each step's schedule with every operand in DRAM, whose mapping starts the
    solver for the step's other home combinations (a hint: it speeds the proof, the
    answers are the same).  All combinations of one Pareto level are solved in one call;
    a step's candidates are listed combination by combination, levels in order."""
    buffer = target.buffer_words
    combos: list[list[_Combo]] = []
    for i, step in enumerate(net.steps):
        out_t = net.tensors[step.output]
        outs = [False] + ([True] if out_t.plannable and out_t.words <= buffer else [])
        # the least capacity the step can ever see: every plannable tensor live there resident
        floor = buffer - sum(t.words for t in net.live(i) if t.words <= buffer)
        mine = []
        for (r, rr), in_words in sorted(_operand_combos(net, i, buffer).items()):
            for o in outs:
                words = in_words + (out_t.words if o else 0)
                if words >= buffer:      # nothing left for the tiles
                    continue
                L = step.layer.with_homes(resident_inputs=r, resident_output=o, resident_residual=rr,
                                          capacity=None if words == 0 else buffer - words)
                if min_footprint_words(L, target) > capacity_words(L, target):
                    continue
                mine.append(_Combo(i, r, rr, o, L, capacity_words(L, target), floor, []))
        combos.append(mine)
    pending = [c for mine in combos for c in mine]
    for _ in range(LEVELS):
        if not pending:
            break
        layers = [c.layer.with_homes(capacity=None if c.cap == buffer else c.cap) for c in pending]
        hints = [None if alone is None else alone[c.step].mapping for c in pending]
        scheds = solve(layers) if alone is None else solve(layers, hints)
        later = []
        for c, s in zip(pending, scheds):
            c.found.append(Candidate(c.resident_inputs, c.resident_output, s, c.resident_residual))
            c.cap = s.cost.footprint["total"] - 1
            if c.cap >= c.floor and min_footprint_words(c.layer, target) <= c.cap:
                later.append(c)
        pending = later
    return [[cand for c in mine for cand in c.found] for mine in combos]


def _allowed(net: Network) -> list[int]:
    return [t.index for t in net.tensors if t.plannable]


def _build(net: Network, cands, target, objective: str, joint: bool):
    """The CP-SAT model (module doc); returns (model, x, y, primary, secondary, words, alloc)."""
    m = cp_model.CpModel()
    B = target.buffer_words
    x = {t: m.new_bool_var(f"x{t}") for t in _allowed(net) if net.tensors[t].words <= B}
    y = [[m.new_bool_var(f"y{i}_{c}") for c in range(len(cs))] for i, cs in enumerate(cands)]
    for i, step in enumerate(net.steps):
        m.add_exactly_one(y[i])
        slots = [x[t] for t in step.inputs if t is not None and t in x]
        m.add(sum(c.resident_inputs * v for c, v in zip(cands[i], y[i])) == sum(slots))
        out = x.get(step.output)
        m.add(sum(int(c.resident_output) * v for c, v in zip(cands[i], y[i])) == (out if out is not None else 0))
        res = x.get(step.residual) if step.residual is not None else None
        m.add(sum(int(c.resident_residual) * v for c, v in zip(cands[i], y[i])) == (res if res is not None else 0))
        live = [x[t.index] * t.words for t in net.live(i) if t.index in x]
        m.add(sum(c.footprint * v for c, v in zip(cands[i], y[i])) + sum(live) <= B)

    def total(metric: str):
        return sum(c.value(metric) * v for i, cs in enumerate(cands) for c, v in zip(cs, y[i]))

    # never worse than every activation through DRAM on cycles nor on energy, whatever the
    # objective (the all-DRAM plan meets both bounds: always feasible)
    base = all_dram_totals(cands)
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
    m.add_no_overlap_2d(xs, ys)
    return toff, soff


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


def _all_dram_choice(cands) -> list[int] | None:
    """Each step's all-DRAM candidate (no operand resident, the whole buffer for its
    tiles: oracle.all_dram_totals' rule), by index, or None when a step has none."""
    def alone(c) -> bool:
        return (c.resident_inputs == 0 and not c.resident_output and not c.resident_residual
                and c.schedule.layer.homes.capacity is None)

    idx = [next((k for k, c in enumerate(cs) if alone(c)), None) for cs in cands]
    return None if any(k is None for k in idx) else idx


def _all_dram_hint(m, x, y, cands, deadline) -> list[int] | None:
    """The complete hint of the all-DRAM plan (no tensor resident, every step's all-DRAM
    candidate: always feasible), its other variables (the EDP product, the rectangles'
    offsets) found by a search with those fixed; None when there is no such plan."""
    idx = _all_dram_choice(cands)
    if idx is None:
        return None
    known = {v.index: 0 for v in x.values()}
    known.update({b.index: int(c == idx[i]) for i, row in enumerate(y) for c, b in enumerate(row)})
    return complete_by_search(m, known, _left(deadline))


def _solve_stages(net, cands, target, objective, joint, deadline):
    """Minimize primary, then secondary, then resident words (:func:`.staged.solve_stages`,
    each optimum fixed as an upper bound), each stage started from the last one's solution
    (the first from the all-DRAM plan), all before ``deadline``.
    Returns (solver, parts, status, bound): the solver of the last stage that found a
    plan, or None when the first found none, with status "infeasible" (proven), "invalid"
    (the model) or "unknown" (the time limit came first) and CP-SAT's bound."""
    m, x, y, primary, secondary, words, alloc = _build(net, cands, target, objective, joint)
    hint = _all_dram_hint(m, x, y, cands, deadline)
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
        return _plan(net, cands, target, objective, deadline)
    except (SolveFailed, OverflowError) as exc:
        why = str(exc) if isinstance(exc, SolveFailed) else f"CP-SAT model too large: {exc}"
        what = f"the memory plan of the network ({len(net.steps)} steps): {why}"
        plan = all_dram_plan(net, cands, objective, 0, f"{what}; the all-DRAM plan")
        if fallback != "heuristic" or plan is None:
            hint = "" if plan is None else " (--fallback heuristic: the all-DRAM plan)"
            raise ScheduleError(what + hint) from None
        return plan


def _plan(net, cands, target, objective: str, deadline) -> Plan:
    """plan_network's solves: the relaxation, its allocation, the joint model if needed."""
    s, parts, status, bound = _solve_stages(net, cands, target, objective, False, deadline)
    if s is None:
        return _no_solution(net, cands, objective, status, bound)
    x, y, primary, _ = parts
    resident, choice_idx = _read(s, x, y)
    placed = _allocate(net, cands, choice_idx, resident, target, deadline)
    joint = placed is None
    if joint:
        # a lower bound of the relaxation is one of the exact problem too
        relaxed = plan_value(_choice(cands, choice_idx), objective) if status == "optimal" else bound
        s, parts, status, bound = _solve_stages(net, cands, target, objective, True, deadline)
        bound = max(bound or 0, relaxed)
        if s is None:
            return _no_solution(net, cands, objective, status, bound)
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


def _choice(cands, choice_idx) -> tuple:
    return tuple(cands[i][c] for i, c in enumerate(choice_idx))


def _no_solution(net, cands, objective: str, status: str, bound: int) -> Plan:
    """The plan when the network model's first stage found none: out of time, the all-DRAM
    plan (status "feasible", CP-SAT's bound); proven infeasible or an invalid model (the
    all-DRAM plan is a solution of every model built): a bug, a ScheduleError."""
    plan = all_dram_plan(net, cands, objective, bound,
                         "time limit before the network solve's first plan: the all-DRAM plan")
    if status != "unknown":
        raise ScheduleError(f"no memory plan fits the buffer (the all-DRAM plan should; CP-SAT: "
                            f"{status}): a bug")
    if plan is None:       # candidates without an all-DRAM one (made by hand)
        raise ScheduleError("no memory plan found within the time limit")
    return plan


def all_dram_plan(net: Network, cands, objective: str, bound: int = 0, note: str = "") -> Plan | None:
    """The plan that keeps nothing resident: every step's all-DRAM candidate, its tiles at
    word 0 (sound whatever the rest: a step's tiles are alone in the buffer), status
    "feasible" with ``bound`` (clipped to [0, value]); None when a step has no all-DRAM
    candidate."""
    idx = _all_dram_choice(cands)
    if idx is None:
        return None
    choice = _choice(cands, idx)
    value = plan_value(choice, objective)
    return Plan(tuple(False for _ in net.tensors), tuple(None for _ in net.tensors), choice,
                tuple(0 for _ in choice), objective, value, "feasible", max(0, min(bound, value)), False, note)


def plan_value(choice, objective: str) -> int:
    """The network objective of a choice of candidates: the sum over steps (edp: the
    product of the network's cycles and energy)."""
    if objective == "edp":
        return sum(c.value("cycles") for c in choice) * sum(c.value("energy") for c in choice)
    return sum(c.value(objective) for c in choice)


def verify_allocation(net: Network, plan: Plan, target) -> list[str]:
    """Every problem of a plan's allocation (empty: sound): each region inside the buffer,
    no two regions that are live at the same step overlapping, each step's tiles fitting
    the capacity its schedule was made for, homes consistent with the schedules, and every
    DRAM read of a word its producer wrote (:func:`unwritten_reads`)."""
    B = target.buffer_words
    problems = []
    regions = []   # (first step, last step, lo, hi, what)
    for t, res, off in zip(net.tensors, plan.resident, plan.offsets):
        if not res:
            continue
        if off is None or off < 0 or off + t.words > B:
            problems.append(f"tensor '{t.name}' at {off} (+{t.words}) outside the buffer of {B} words")
            continue
        regions.append((t.producer, t.last, off, off + t.words, f"tensor '{t.name}'"))
    for i, (c, off) in enumerate(zip(plan.choice, plan.tile_offsets)):
        step = net.steps[i]
        f = c.footprint
        if off < 0 or off + f > B:
            problems.append(f"step {i} tiles at {off} (+{f}) outside the buffer")
        regions.append((i, i, off, off + f, f"tiles of step {i} '{step.layer.name}'"))
        live = sum(t.words for t, r in zip(net.tensors, plan.resident) if r and t.live_at(i))
        cap = capacity_words(c.schedule.layer, target)
        if f > cap or live + f > B:
            problems.append(f"step {i}: tiles {f} + resident {live} words exceed the buffer or "
                            f"the capacity {cap} the mapping was made for")
        res_in = sum(1 for t in step.inputs if t is not None and plan.resident[t])
        res_res = step.residual is not None and plan.resident[step.residual]
        if (c.resident_inputs != res_in or c.resident_output != plan.resident[step.output]
                or c.resident_residual != res_res):
            problems.append(f"step {i}: its schedule's operand homes disagree with the plan")
    problems += unwritten_reads(net, plan)
    for a in range(len(regions)):
        for b in range(a + 1, len(regions)):
            s1, e1, lo1, hi1, w1 = regions[a]
            s2, e2, lo2, hi2, w2 = regions[b]
            if s1 <= e2 and s2 <= e1 and lo1 < hi2 and lo2 < hi1:
                problems.append(f"{w1} and {w2} overlap")
    return problems


def unwritten_reads(net: Network, plan: Plan) -> list[str]:
    """Every read of a word that nothing wrote: a resident tensor is never written to DRAM,
    so each of its readers must read it in place (as a data input or fused residual) at a
    step inside its live range; any other reader would read DRAM words nobody wrote."""
    problems = []
    for t, res in zip(net.tensors, plan.resident):
        if not res:
            continue
        for r in t.readers:
            step = net.steps[r]
            if not t.producer <= r <= t.last:
                problems.append(f"step {r} '{step.layer.name}' reads tensor '{t.name}' outside "
                                f"its live range [{t.producer}, {t.last}]")
            elif t.index not in step.inputs and step.residual != t.index:
                problems.append(f"step {r} '{step.layer.name}' reads tensor '{t.name}' from DRAM, "
                                f"but it is resident and never written there")
    return problems


@dataclass(frozen=True)
class NetworkPlan:
    """What a plan says about the whole network, as recorded (graph attribute ``plan``,
    ``schedule.json``'s ``plan``): the planner's status and objective, every tensor's home,
    and the all-DRAM figures the plan is measured against."""

    status: str
    objective: str
    value: int
    bound: int
    allocation: str             # "relaxation" (allocated after) or "joint"
    buffer_words: int
    tensors: tuple[dict, ...]   # name, words, first, last, home, offset, reason
    all_dram: dict              # total_cycles, energy, dram_words of every layer alone

    def to_ir_attr(self) -> dict:
        resident = [t for t in self.tensors if t["home"] == "buffer"]
        return {"status": self.status, "objective": self.objective, "value": self.value,
                "resident": len(resident), "through_dram": len(self.tensors) - len(resident),
                "allocation": self.allocation}

    def to_dict(self) -> dict:
        gap = 0.0 if self.value == 0 else round((self.value - self.bound) / self.value, 6)
        return {"status": self.status, "objective": self.objective, "value": self.value,
                "bound": self.bound, "gap": gap, "allocation": self.allocation,
                "buffer_words": self.buffer_words, "tensors": [dict(t) for t in self.tensors],
                "all_dram": dict(self.all_dram)}


def network_plan(net: Network, plan: Plan, alone: list, target) -> NetworkPlan:
    """The record of ``plan`` (``alone``: every step's schedule with all operands in DRAM)."""
    tensors = []
    for t, res, off in zip(net.tensors, plan.resident, plan.offsets):
        tensors.append({"name": t.name, "words": t.words, "first": t.producer, "last": t.last,
                        "home": "buffer" if res else "dram", "offset": off if res else None,
                        "reason": "" if res else (t.reason or ("larger than the buffer"
                                                               if t.words > target.buffer_words
                                                               else "the plan's choice"))})
    all_dram = {"total_cycles": sum(s.cost.total_cycles for s in alone),
                "energy": sum(s.cost.energy_total for s in alone),
                "dram_words": sum(s.cost.dram["total"] for s in alone)}
    return NetworkPlan(plan.status, plan.objective, plan.value, plan.bound,
                       "joint" if plan.joint else "relaxation", target.buffer_words, tuple(tensors),
                       all_dram)
