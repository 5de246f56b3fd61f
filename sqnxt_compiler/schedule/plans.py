"""The memory planner's data and its CP-SAT-free parts (docs/memory-planning.md): the
candidates of every step, a plan, its value, its independent verification and its record.

**Candidates.**  For every step and every home combination (how many of its input tensors
are resident, whether its fused residual is, whether its output stays) the per-layer solver
gives the best mapping with the capacity that combination leaves (``capacity = buffer -
resident operand words``, each resident tensor counted once however many of the step's
operands it is), and then, while other live tensors could leave less, the best mapping
with less (the next point of the layer's Pareto front of footprint against objective:
capacity = previous footprint - 1), at most :data:`LEVELS` points per combination.  The
all-DRAM candidate (today's schedule) is always among them.

**Verification.**  :func:`verify_allocation` checks any plan, whoever made it (the network
model of :mod:`.planner`, the all-DRAM fallback, the on-disk cache), independently.

Nothing here imports CP-SAT: a compile whose plan comes from the on-disk cache
(:mod:`.cache`) never loads it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..cost.model import capacity_words, objective_value
from .liveness import Network
from .space import min_footprint_words

#: Pareto points per (step, home combination): 1 measured as good as 3 on 1.0-SqNxt-23
#: (same plan on both targets) at a third of the solves; see docs/memory-planning.md.
LEVELS = 1
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
    """One way to run a step: its operand homes and the best mapping for them; or, for a
    concat's copy step, ``skip`` (no schedule): the concat is written in place, the step
    does nothing; or its part in a fused stack (``stack``, a :class:`.stacks.Stack`; the
    step is member ``member`` of it; no schedule of its own): every operand through DRAM,
    the stack's footprint, the stack's figures on member 0 and none on the others."""

    resident_inputs: int
    resident_output: bool
    schedule: object            # LayerSchedule (its layer carries the homes and capacity); None: skip, stack
    resident_residual: bool = False
    skip: bool = False
    stack: object = None
    member: int = 0

    @property
    def footprint(self) -> int:
        if self.stack is not None:
            return self.stack.figures.footprint
        return 0 if self.skip else self.schedule.cost.footprint["total"]

    def value(self, objective: str) -> int:
        if self.stack is not None:
            return self.stack.value(objective) if self.member == 0 else 0
        return 0 if self.skip else objective_value(self.schedule.cost, objective)

    def capacity(self, target) -> int:
        """The buffer words its footprint was made to fit: the whole buffer for a skip or a
        stack part (a stack's footprint holds its windows, kept weights and tiles), else its
        schedule's capacity."""
        if self.skip or self.stack is not None:
            return target.buffer_words
        return capacity_words(self.schedule.layer, target)


def stack_parts(stack) -> list[Candidate]:
    """The candidates of ``stack``'s member steps, in order (every operand through DRAM)."""
    return [Candidate(0, False, None, stack=stack, member=k) for k in range(len(stack.steps))]


def with_stacks(cands: list[list[Candidate]], stacks) -> list[list[Candidate]]:
    """Every step's candidates followed by its parts of ``stacks`` (in the stacks' order)."""
    out = [list(cs) for cs in cands]
    for st in stacks:
        for i, part in zip(st.steps, stack_parts(st)):
            out[i].append(part)
    return out


def without_stacks(cands: list[list[Candidate]]) -> list[list[Candidate]]:
    """The candidates that are no stack's parts."""
    return [[c for c in cs if c.stack is None] for cs in cands]


def chosen_stacks(choice) -> list:
    """The stacks a choice of candidates runs, in program order."""
    return [c.stack for c in choice if c.stack is not None and c.member == 0]


def stack_problems(choice, tile_offsets=None) -> list[str]:
    """A choice's stacks taken whole: every member step of a chosen stack chooses that
    stack's part for it, with one tile offset for all of them (when given)."""
    problems = []
    for i, c in enumerate(choice):
        if c.stack is None:
            continue
        st = c.stack
        first = st.first
        if not (0 <= first < len(choice)) or choice[first].stack is not st:
            problems.append(f"step {i} runs a part of {st.describe()} whose first member does not")
            continue
        if choice[i].member != i - first:
            problems.append(f"step {i} runs member {c.member} of {st.describe()} at member {i - first}'s step")
        if tile_offsets is not None and tile_offsets[i] != tile_offsets[first]:
            problems.append(f"step {i}: the region of {st.describe()} moves between its members")
    for st in chosen_stacks(choice):
        for i in st.steps:
            if i >= len(choice) or choice[i].stack is not st:
                problems.append(f"{st.describe()}: step {i} does not run its part")
    return problems


#: The candidate of a copy step that does not copy: the concat is written in place.
SKIP = Candidate(0, False, None, False, True)


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
    without_stacks: dict | None = None   # with stack candidates: the plan without them (plan_figures)

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
    a step's candidates are listed combination by combination, levels in order; a
    concat's copy step (``Step.copy_of``) has :data:`SKIP` first (written in place)."""
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
        hints = [None if alone is None or alone[c.step] is None else alone[c.step].mapping for c in pending]
        scheds = solve(layers) if alone is None else solve(layers, hints)
        later = []
        for c, s in zip(pending, scheds):
            c.found.append(Candidate(c.resident_inputs, c.resident_output, s, c.resident_residual))
            c.cap = s.cost.footprint["total"] - 1
            if c.cap >= c.floor and min_footprint_words(c.layer, target) <= c.cap:
                later.append(c)
        pending = later
    return [([SKIP] if step.copy_of is not None else []) + [cand for c in mine for cand in c.found]
            for step, mine in zip(net.steps, combos)]


def _choice(cands, choice_idx) -> tuple:
    return tuple(cands[i][c] for i, c in enumerate(choice_idx))


def _all_dram_choice(cands) -> list[int] | None:
    """Each step's all-DRAM candidate (no operand resident, the whole buffer for its
    tiles: oracle.all_dram_totals' rule; a copy step's skip: every concat in place, as with
    activation home dram), by index, or None when a step has none."""
    alone = all_dram_candidate

    idx = [next((k for k, c in enumerate(cs) if alone(c)), None) for cs in cands]
    return None if any(k is None for k in idx) else idx


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


def all_dram_candidate(c: Candidate) -> bool:
    """``c`` keeps nothing resident and has the whole buffer for its tiles (a copy step:
    skips, the concat written in place in DRAM: the all-DRAM network is the one activation
    home ``dram`` compiles)."""
    if c.skip:
        return True
    if c.stack is not None:
        return False
    return (c.resident_inputs == 0 and not c.resident_output and not c.resident_residual
            and c.schedule.layer.homes.capacity is None)


def plan_figures(choice) -> dict:
    """The network's ``total_cycles``, ``energy`` and ``dram_words`` under a choice of
    candidates (a stack's on its first member's part)."""
    words = 0
    for c in choice:
        if c.stack is not None:
            words += c.stack.figures.dram_words if c.member == 0 else 0
        elif not c.skip:
            words += c.schedule.cost.dram["total"]
    return {"total_cycles": sum(c.value("cycles") for c in choice),
            "energy": sum(c.value("energy") for c in choice), "dram_words": words}


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
        cap = c.capacity(target)
        if f > cap or live + f > B:
            problems.append(f"step {i}: tiles {f} + resident {live} words exceed the buffer or "
                            f"the capacity {cap} the mapping was made for")
        res_in = net.resident_inputs(step, plan.resident)
        res_res = net.reads_resident(step.residual, plan.resident)
        if (c.resident_inputs != res_in or c.resident_output != plan.resident[step.output]
                or c.resident_residual != res_res):
            problems.append(f"step {i}: its schedule's operand homes disagree with the plan")
        if not net.copy_consistent(step, c.skip, plan.resident):
            problems.append(f"step {i}: the concat is resident as "
                            f"{'its copy' if c.skip else 'written in place'} but the plan "
                            f"{'writes it in place' if c.skip else 'copies it'}")
    problems += stack_problems(plan.choice, plan.tile_offsets)
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
    read_as = {r: g for _c, g, r in net.copies}   # a copy's tensor is read where the concat's is
    for t, res in zip(net.tensors, plan.resident):
        if not res:
            continue
        slot = read_as.get(t.index, t.index)
        for r in t.readers:
            step = net.steps[r]
            if not t.producer <= r <= t.last:
                problems.append(f"step {r} '{step.layer.name}' reads tensor '{t.name}' outside "
                                f"its live range [{t.producer}, {t.last}]")
            elif slot not in step.inputs and step.residual != slot:
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
    stacks: tuple[dict, ...] = ()   # the fused stacks the plan runs (stack_record)
    without_stacks: dict | None = None   # the plan without stacks (depth-first on), its figures

    def to_ir_attr(self) -> dict:
        resident = [t for t in self.tensors if t["home"] == "buffer"]
        band = [t for t in self.tensors if t["home"] == "band"]
        d = {"status": self.status, "objective": self.objective, "value": self.value,
             "resident": len(resident), "through_dram": len(self.tensors) - len(resident) - len(band),
             "allocation": self.allocation}
        if self.stacks:
            d.update(stacks=len(self.stacks), in_bands=len(band))
        return d

    def to_dict(self) -> dict:
        gap = 0.0 if self.value == 0 else round((self.value - self.bound) / self.value, 6)
        return {"status": self.status, "objective": self.objective, "value": self.value,
                "bound": self.bound, "gap": gap, "allocation": self.allocation,
                "buffer_words": self.buffer_words, "tensors": [dict(t) for t in self.tensors],
                "all_dram": dict(self.all_dram), "stacks": [dict(st) for st in self.stacks],
                "without_stacks": None if self.without_stacks is None else dict(self.without_stacks)}


def layer_positions(plan: Plan) -> list[int]:
    """Per planner step, its position among the layers the plan runs (the program order of
    the scheduled ops): a copy step the plan skips runs nothing, so the steps after it are
    one place earlier (a skipped step gets the next layer's place).  Live ranges recorded
    on the ops and in the network record are in these positions."""
    out, n = [], 0
    for c in plan.choice:
        out.append(n)
        n += 0 if c.skip else 1
    return out


def network_plan(net: Network, plan: Plan, alone: list, target) -> NetworkPlan:
    """The record of ``plan`` (``alone``: every step's schedule with all operands in DRAM);
    live ranges in layer positions (:func:`layer_positions`)."""
    pos = layer_positions(plan)
    stacks = chosen_stacks(plan.choice)
    band_of = {net.steps[i].output: n for n, st in enumerate(stacks) for i in list(st.steps)[:-1]}
    tensors = []
    # a concat in place or its copy: the record lists the one the plan chose
    unchosen = {(r if c.skip else g) for (i, g, r), c in
                ((cp, plan.choice[cp[0]]) for cp in net.copies)}
    for t, res, off in zip(net.tensors, plan.resident, plan.offsets):
        if t.index in unchosen:
            continue
        if t.index in band_of:      # a stack's intermediate: only band windows of it exist
            tensors.append({"name": t.name, "words": t.words, "first": pos[t.producer], "last": pos[t.last],
                            "home": "band", "offset": None,
                            "reason": f"band windows of fused stack {band_of[t.index]}"})
            continue
        tensors.append({"name": t.name, "words": t.words, "first": pos[t.producer], "last": pos[t.last],
                        "home": "buffer" if res else "dram", "offset": off if res else None,
                        "reason": "" if res else (t.reason or ("larger than the buffer"
                                                               if t.words > target.buffer_words
                                                               else "the plan's choice"))})
    all_dram = {"total_cycles": sum(s.cost.total_cycles for s in alone),
                "energy": sum(s.cost.energy_total for s in alone),
                "dram_words": sum(s.cost.dram["total"] for s in alone)}
    return NetworkPlan(plan.status, plan.objective, plan.value, plan.bound,
                       "joint" if plan.joint else "relaxation", target.buffer_words, tuple(tensors),
                       all_dram, tuple(stack_record(st, plan.tile_offsets[st.first], pos) for st in stacks),
                       plan.without_stacks)


def stack_record(st, tiles_at: int, pos: list[int]) -> dict:
    """What the plan's record says of a fused stack: its members (first and last layer
    positions, names), its configuration, its region and its figures."""
    cfg, f = st.config, st.figures
    return {"first": pos[st.first], "last": pos[st.last], "layers": [L.name for L in st.layers],
            "band_rows": cfg.h, "band_cols": cfg.w, "overlap": cfg.mode, "weights_kept": cfg.weights_kept,
            "links": [list(x) for x in st.links], "tiles_at": tiles_at, "footprint": f.footprint,
            "windows": f.windows, "kept_weights": f.weights, "total_cycles": f.cycles, "energy": f.energy,
            "dram_words": f.dram_words}
