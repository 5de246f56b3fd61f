"""The network-level memory planner (docs/memory-planning.md): which activations stay in
the global buffer, each layer's mapping given what is resident, and where everything lies.

**Candidates.**  For every step and every home combination (how many of its input tensors
are resident, whether its fused residual is, whether its output stays) the per-layer solver gives the best mapping with
the capacity that combination leaves (``capacity = buffer - resident operand words``), and
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
cycles, cycles otherwise), then the fewest resident words; one worker, fixed seed.

**Allocation.**  Every resident tensor gets an address range for its whole live range and
every step's tiles an address range for the step: rectangles in (step, address) that must
not overlap (``AddNoOverlap2D``).  The plan is first solved with the per-step capacity
only (a relaxation) and then allocated; when the relaxation's optimum cannot be allocated
(fragmentation), the model is solved again with the rectangles in it, which is exact.
:func:`verify_allocation` checks any plan independently.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import product
from typing import Callable

from ortools.sat.python import cp_model

from ..cost.model import capacity_words, objective_value
from ..diagnostics import ScheduleError
from .liveness import Network
from .oracle import SECONDARY, all_dram_totals
from .space import min_footprint_words

#: Pareto points per (step, home combination): 1 measured as good as 3 on 1.0-SqNxt-23
#: (same plan on both targets) at a third of the solves; see docs/memory-planning.md.
LEVELS = 1
SEED = 7


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

    @property
    def gap(self) -> float:
        return 0.0 if self.value == 0 else (self.value - self.bound) / self.value


def _input_combos(net: Network, i: int, buffer: int) -> dict[int, int]:
    """Resident-input count -> the fewest resident words giving it, over the subsets of
    the step's distinct plannable input tensors (an input read twice counts twice)."""
    step = net.steps[i]
    slots = [t for t in step.inputs if t is not None and net.tensors[t].plannable
             and net.tensors[t].words <= buffer]
    distinct = sorted(set(slots))
    best: dict[int, int] = {}
    for mask in range(1 << len(distinct)):
        chosen = [t for k, t in enumerate(distinct) if mask >> k & 1]
        r = sum(slots.count(t) for t in chosen)
        words = sum(net.tensors[t].words for t in chosen)
        best[r] = min(best.get(r, words), words)
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
        res_t = None if step.residual is None else net.tensors[step.residual]
        ress = [False] + ([True] if res_t is not None and res_t.plannable and res_t.words <= buffer
                          else [])
        mine = []
        for r, in_words in sorted(_input_combos(net, i, buffer).items()):
            for rr, o in product(ress, outs):
                # a residual that is also an input is counted twice: a safe (smaller) capacity
                words = in_words + (res_t.words if rr else 0) + (out_t.words if o else 0)
                if words >= buffer:      # nothing left for the tiles
                    continue
                L = replace(step.layer, resident_inputs=r, resident_output=o, resident_residual=rr,
                            capacity=None if words == 0 else buffer - words)
                if min_footprint_words(L, target) > capacity_words(L, target):
                    continue
                mine.append(_Combo(i, r, rr, o, L, capacity_words(L, target), floor, []))
        combos.append(mine)
    pending = [c for mine in combos for c in mine]
    for _ in range(LEVELS):
        if not pending:
            break
        layers = [replace(c.layer, capacity=None if c.cap == buffer else c.cap) for c in pending]
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


def _solver(time_limit: float | None) -> cp_model.CpSolver:
    s = cp_model.CpSolver()
    s.parameters.num_workers = 1
    s.parameters.random_seed = SEED
    s.parameters.linearization_level = 2   # the LP of the linking constraints: ~250x faster proofs
    s.parameters.catch_sigint_signal = False   # Ctrl-C is sqnxtc's (solver._solver)
    if time_limit:
        s.parameters.max_time_in_seconds = time_limit
    return s


def _solve_stages(net, cands, target, objective, joint, time_limit):
    """Minimize primary, then secondary, then resident words; returns (solver, parts,
    status, bound) of the last stage."""
    m, x, y, primary, secondary, words, alloc = _build(net, cands, target, objective, joint)
    bound = None
    status = "optimal"
    s = None          # the solver of the last stage that found a solution
    for stage, expr in enumerate((primary, secondary, words)):
        m.minimize(expr)
        trial = _solver(time_limit)
        st = trial.solve(m)
        if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            if stage == 0:
                return None, None, "infeasible", 0
            break      # a later stage ran out of time: keep the previous stage's solution
        s = trial
        if stage == 0:
            bound = int(s.best_objective_bound)
            if st != cp_model.OPTIMAL:
                status = "feasible"
        value = int(s.value(expr))
        m.clear_hints()
        for v in [*x.values(), *(b for row in y for b in row)]:
            m.add_hint(v, s.value(v))
        m.add(expr <= value)
        if st != cp_model.OPTIMAL:
            break
    return s, (x, y, primary, alloc), status, bound


def _allocate(net, cands, choice_idx, resident, target):
    """Offsets for a fixed plan (rectangles only), or None when they cannot be placed."""
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
    s = _solver(30.0)   # a feasibility problem: the first placement found (deterministic)
    if s.solve(m) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return ({t: int(s.value(o)) for t, o in toff.items()}, [int(s.value(o)) for o in soff])


def _read(s, x, y) -> tuple[dict[int, bool], list[int]]:
    """A solution's residency per tensor and chosen candidate index per step."""
    return ({t: bool(s.value(v)) for t, v in x.items()},
            [next(c for c, v in enumerate(row) if s.value(v)) for row in y])


def plan_network(net: Network, cands: list[list[Candidate]], target, objective: str,
                 time_limit: float | None = None) -> Plan:
    """The optimal plan over the candidates (module doc)."""
    if not net.steps:
        return Plan((), (), (), (), objective, 0, "optimal", 0, False)
    for i, cs in enumerate(cands):
        if not cs:
            raise ScheduleError(f"step {i} ('{net.steps[i].layer.name}') has no candidate mapping")
    joint = False
    s, parts, status, bound = _solve_stages(net, cands, target, objective, False, time_limit)
    if s is None:
        raise ScheduleError("no memory plan fits the buffer (the all-DRAM plan should): a bug")
    x, y, primary, _ = parts
    resident, choice_idx = _read(s, x, y)
    placed = _allocate(net, cands, choice_idx, resident, target)
    if placed is None:
        joint = True
        s, parts, status, bound = _solve_stages(net, cands, target, objective, True, time_limit)
        x, y, primary, (toff, soff) = parts
        resident, choice_idx = _read(s, x, y)
        placed = ({t: int(s.value(o)) for t, o in toff.items() if resident[t]},
                  [int(s.value(o)) for o in soff])
    toffs, soffs = placed
    choice = tuple(cands[i][c] for i, c in enumerate(choice_idx))
    value = plan_value(choice, objective)
    return Plan(tuple(resident.get(t.index, False) for t in net.tensors),
                tuple(toffs.get(t.index) for t in net.tensors), choice, tuple(soffs),
                objective, value, status, value if status == "optimal" else bound, joint)


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
