"""Fused stacks as the memory planner's candidates (docs/memory-planning.md, "Fused stacks";
their geometry and figures: :mod:`sqnxt_compiler.cost.stack`, docs/cost-model.md).

**Ranges.**  A stack runs a range of 2 to :data:`MAX_MEMBERS` consecutive steps (program
order) of convs (:func:`stack_ranges`) whose results, but the last step's, are read only by
later steps of the range, each reading one as its data input or as its fused residual: a
chain (squeeze1 .. expand of a SqueezeNext block, expand's residual from DRAM), or a graph
in which a result is read twice inside the stack (the block input read by squeeze1 and
by expand's residual: a stack spanning blocks), every such result living as a band window
holding what all its readers read (:func:`sqnxt_compiler.cost.stack.bands`).

**Candidates.**  For every such range and every configuration of :data:`CONFIGS` (band
height and width, overlap mode, weights kept or not) whose windows and kept weights leave
room, the stack's work (:func:`~sqnxt_compiler.cost.stack.stack_work`: its (band, member)
layers and halo moves) is scheduled by the per-layer solver (the schedule pass's, with its
options) and summed (:func:`~sqnxt_compiler.cost.stack.stack_figures`); a configuration
one of whose layers has no mapping that fits is no candidate.  Per range only the
configurations no other beats on cycles, energy and footprint at once are kept (ties: the
first in :data:`CONFIGS` order).

**In the network model** a stack is one candidate per member step (:class:`StackPart`,
the planner's :class:`~.plans.Candidate` with ``stack`` set): every operand through DRAM
(the stack's input, output and residuals; its intermediates live only as band windows, so
they are never resident tensors), the stack's footprint at every member step, its figures
on the first member's part and zero on the others.  The model takes a stack's parts all
together or none, with one tile region for all of them (the same offset at every member
step: :mod:`.planner`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from ..cost.mapping import Mapping
from ..cost.model import capacity_words, evaluate, objective_value
from ..cost.stack import MODES, StackConfig, StackFigures, chainable, member_report, stack_figures, stack_items
from .liveness import Network
from .space import min_footprint_words

#: Longest stack (members).
MAX_MEMBERS = 6
#: The configurations tried for every range: band heights x widths (None: full) x overlap
#: modes, the members' weights kept across the bands (re-reading them in every band never
#: won on 1.0-SqNxt-23: docs/cost-model.md, "Fused stacks"; the benchmark tries both).
HEIGHTS = (2, 4, 8, 16)
WIDTHS = (None, 8, 16)
CONFIGS = tuple(StackConfig(h, w, mode, True) for h in HEIGHTS for w in WIDTHS for mode in MODES)


@dataclass(frozen=True)
class Stack:
    """One way to run steps ``first .. last`` as a stack: its configuration, the schedules of
    its work in run order and its figures."""

    first: int
    last: int
    layers: tuple
    config: StackConfig
    schedules: tuple
    figures: StackFigures
    links: tuple = ()           # per member (src, res): cost.stack.chainable
    owners: tuple = ()          # per schedule, the member it belongs to (cost.stack.stack_items)

    @property
    def steps(self) -> range:
        return range(self.first, self.last + 1)

    def value(self, objective: str) -> int:
        """cycles, energy, or edp = cycles * energy (the stack's own; the network's EDP is
        the product of the network's sums)."""
        f = self.figures
        return {"cycles": f.cycles, "energy": f.energy, "edp": f.cycles * f.energy}[objective]

    def describe(self) -> str:
        names = f"{self.layers[0].name} .. {self.layers[-1].name}"
        return f"stack {names} ({len(self.layers)} layers, {self.config.describe()})"


def stack_ranges(net: Network, max_members: int = MAX_MEMBERS) -> list[tuple[tuple[int, ...], tuple]]:
    """Every range of 2 to ``max_members`` consecutive steps that may run as a stack (module
    doc), in program order (by first step, then length), with its links (per member the
    member whose output is its data input and the one whose output is its residual, None:
    DRAM; :func:`sqnxt_compiler.cost.stack.chainable`)."""
    n = len(net.steps)
    out = []
    for a in range(n):
        for b in range(a + 1, min(n, a + max_members)):
            links = _links(net, a, b)
            if links is not None:
                out.append((tuple(range(a, b + 1)), links))
    return out


def _links(net: Network, a: int, b: int):
    """The links of steps ``a .. b`` as a stack, or None when they cannot be one: every
    step a conv (no copy step); the result of every step but the last read only by later
    steps of the range, each reading it as its data input or as its fused residual (not
    both), a whole tensor of its own (no concat part); the shapes chain."""
    steps = net.steps[a:b + 1]
    pos = {s.output: k for k, s in enumerate(steps[:-1])}
    for k, s in enumerate(steps):
        if s.layer.kind != "conv" or s.copy_of is not None:
            return None
        if k < len(steps) - 1:
            t = net.tensors[s.output]
            if (s.output_at or not t.plannable or t.words != s.layer.K * s.layer.P * s.layer.Q
                    or not t.readers or not all(s.index < r <= b for r in t.readers)):
                return None
    links = []
    for s in steps:
        src = pos.get(s.inputs[0]) if len(s.inputs) == 1 else None
        res = pos.get(s.residual)
        if src is not None and src == res:
            return None
        if any(t in pos for t in s.inputs) and src is None:
            return None
        links.append((src, res))
    if chainable([_alone(s.layer) for s in steps], links):
        return None
    return tuple(links)


def _alone(L):
    """The layer with every operand through DRAM and the whole buffer (a stack sets the
    homes of its band layers itself)."""
    return L.with_homes(resident_inputs=0, resident_output=False, resident_residual=False, capacity=None,
                        resident_weights=False)


def _pareto(stacks: list[Stack]) -> list[Stack]:
    """The stacks no other beats on cycles, energy and footprint at once (the first of
    equals), in the given order."""
    out = []
    for s in stacks:
        f = s.figures
        if not any(o.figures.cycles <= f.cycles and o.figures.energy <= f.energy
                   and o.figures.footprint <= f.footprint for o in out):
            out = [o for o in out if not (f.cycles <= o.figures.cycles and f.energy <= o.figures.energy
                                          and f.footprint <= o.figures.footprint)]
            out.append(s)
    return out


def stack_candidates(net: Network, target, solve: Callable[[list], list],
                     configs: tuple[StackConfig, ...] = CONFIGS, max_members: int = MAX_MEMBERS) -> list[Stack]:
    """Every stack candidate of the network (module doc), ranges in program order (by
    first step, then length), each range's Pareto set in :data:`CONFIGS` order.
    ``solve(layers)`` schedules a list of layers (the schedule pass's solver and options).
    Ranges of equal layers and links share their work."""
    out: list[Stack] = []
    memo: dict[tuple, list] = {}
    for steps, links in stack_ranges(net, max_members):
        layers = [_alone(net.steps[i].layer) for i in steps]
        key = (tuple(L.key() for L in layers), links)
        if key not in memo:
            memo[key] = _configs_of(layers, links, target, solve, configs)
        found = [Stack(steps[0], steps[-1], tuple(layers), cfg, tuple(scheds), figs, links, owners)
                 for cfg, scheds, figs, owners in memo[key]]
        out.extend(_pareto(found))
    return out


def _configs_of(layers, links, target, solve, configs) -> list[tuple]:
    """(config, schedules, figures) of every configuration of ``layers`` that fits."""
    found = []
    P, Q = layers[-1].P, layers[-1].Q
    for cfg in configs:
        if cfg.h > P or (cfg.w is not None and cfg.w >= Q):
            continue        # one band, or full width written as a width: another config
        items = stack_items(layers, cfg, target, links)
        if items is None or any(min_footprint_words(L, target) > L.homes.capacity for _k, L in items):
            continue
        work, owners = [L for _k, L in items], tuple(k for k, _L in items)
        scheds = schedule_work(work, owners, target, solve)
        found.append((cfg, scheds, stack_figures(layers, cfg, [s.cost for s in scheds], target, links), owners))
    return found


def clipped(m: Mapping, L) -> Mapping:
    """Mapping ``m`` with every tile size clipped to ``L``'s loop bounds (a valid mapping of
    ``L`` when ``m`` is one of a layer with larger or equal bounds)."""
    return Mapping(m.dataflow, min(m.tx, L.Q), min(m.ty, L.P), min(m.tc, L.Cg), min(m.tk, L.Kg), m.order)


def schedule_work(work: list, owners: tuple, target, solve: Callable[[list], list]) -> list:
    """Schedules of a stack's work, in order (``owners``: the member of each item).  Per
    piece (a member's band layers; a member's halo moves) the solver schedules the
    **interior** one (the most output positions; the first of those), and every other band
    of that piece runs the interior's mapping clipped to its bounds (:func:`clipped`,
    evaluated by the cost model: status ``derived``) when it fits the band's capacity, else
    is solved too.  Edge bands (the first, the last, a ragged one) differ from the interior
    only by their pads and extents; solving each would multiply the solves by up to nine
    with two-dimensional bands for a few cycles."""
    pieces = [(k, L.kind == "move") for k, L in zip(owners, work)]
    rep: dict[tuple, int] = {}
    for i, (piece, L) in enumerate(zip(pieces, work)):
        j = rep.get(piece)
        if j is None or L.P * L.Q > work[j].P * work[j].Q:
            rep[piece] = i
    firsts = sorted(set(rep.values()))
    solved = dict(zip(firsts, solve([work[i] for i in firsts])))
    out: list = [None] * len(work)
    again = []
    for i, L in enumerate(work):
        if i in solved:
            out[i] = solved[i]
            continue
        r = solved[rep[pieces[i]]]
        m = clipped(r.mapping, L)
        cost = evaluate(L, target, m)
        if cost.footprint["total"] > capacity_words(L, target):
            again.append(i)
            continue
        v = objective_value(cost, r.objective)
        out[i] = replace(r, layer=L, mapping=m, cost=cost, status="derived", objective_value=v, bound=0,
                         gap=1.0 if v else 0.0, solver="derived", tie_break=False,
                         note=f"the mapping of '{work[rep[pieces[i]]].name}' clipped to this band")
    if again:
        for i, s in zip(again, solve([work[i] for i in again])):
            out[i] = s
    return out


def member_schedule(stack: Stack, k: int, target):
    """Member ``k``'s share of ``stack`` as one schedule (what a compiled plan records per
    layer): its layer with the homes of its band layers (input resident when it reads a
    member's window, output resident but for the last member, weights resident when kept),
    the mapping of its largest band, the combined report of its work
    (:func:`sqnxt_compiler.cost.stack.member_report`), status ``optimal`` when every one of
    its band layers was solved to optimality, else ``derived``."""
    mine = [s for s, m in zip(stack.schedules, stack.owners) if m == k]
    bands_ = [s for s in mine if s.layer.kind != "move"]
    big = max(bands_, key=lambda s: (s.cost.macs, s.cost.total_cycles))
    L = stack.layers[k]
    src, res = stack.links[k]
    layer = L.with_homes(resident_inputs=int(src is not None), resident_output=k < len(stack.layers) - 1,
                         resident_residual=res is not None, resident_weights=stack.config.weights_kept,
                         capacity=big.layer.homes.capacity)
    cost = member_report(L, stack.config, [s.cost for s in mine], stack.figures.footprint, target)
    optimal = all(s.status == "optimal" for s in mine)
    value = objective_value(cost, big.objective)
    return replace(big, layer=layer, cost=cost, status="optimal" if optimal else "derived", objective_value=value,
                   bound=value if optimal else 0, gap=0.0 if optimal or not value else 1.0,
                   note=f"member {k + 1} of {stack.describe()}")
