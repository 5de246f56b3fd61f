"""Fused stacks as the memory planner's candidates (docs/memory-planning.md, "Fused stacks";
their geometry and figures: :mod:`sqnxt_compiler.cost.stack`, docs/cost-model.md).

**Runs.**  A run is a maximal sequence of consecutive steps ``s, s+1, .., s+m`` (program
order) in which every step is a conv whose data input is the previous step's result, that
result read by nothing else (one reader, no concat part, no copy step) and of the shape
the next member reads (:func:`sqnxt_compiler.cost.stack.chainable`).  Every sub-sequence
of two or more consecutive members of a run (at most :data:`MAX_MEMBERS`) may run as a
stack.

**Candidates.**  For every such sub-chain and every configuration of :data:`CONFIGS` (band
height and width, overlap mode, weights kept or not) whose windows and kept weights leave
room, the stack's work (:func:`~sqnxt_compiler.cost.stack.stack_work`: its (band, member)
layers and halo moves) is scheduled by the per-layer solver (the schedule pass's, with its
options) and summed (:func:`~sqnxt_compiler.cost.stack.stack_figures`); a configuration
one of whose layers has no mapping that fits is no candidate.  Per sub-chain only the
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

from dataclasses import dataclass
from typing import Callable

from ..cost.stack import MODES, StackConfig, StackFigures, chainable, stack_figures, stack_work
from .liveness import Network
from .space import min_footprint_words

#: Longest stack (members).
MAX_MEMBERS = 6
#: The configurations tried for every sub-chain: band heights x widths (None: full) x
#: overlap modes x weights kept or not.
HEIGHTS = (2, 4, 8, 16)
WIDTHS = (None, 8, 16)
CONFIGS = tuple(StackConfig(h, w, mode, kept) for h in HEIGHTS for w in WIDTHS for mode in MODES
                for kept in (False, True))


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


def stack_runs(net: Network) -> list[tuple[int, ...]]:
    """The maximal runs of consecutive steps that may run as stacks (module doc), each of
    two or more steps."""
    def links(i: int) -> bool:
        a, b = net.steps[i], net.steps[i + 1]
        if a.layer.kind != "conv" or b.layer.kind != "conv" or a.copy_of is not None or b.copy_of is not None:
            return False
        t = net.tensors[a.output]
        if a.output_at or not t.plannable or t.readers != (b.index,) or t.words != a.layer.K * a.layer.P * a.layer.Q:
            return False
        if b.inputs != (a.output,) or b.residual == a.output:
            return False
        return not chainable([_alone(a.layer), _alone(b.layer)])

    runs, cur = [], [0] if net.steps else []
    for i in range(len(net.steps) - 1):
        if links(i):
            cur.append(i + 1)
        else:
            if len(cur) >= 2:
                runs.append(tuple(cur))
            cur = [i + 1]
    if len(cur) >= 2:
        runs.append(tuple(cur))
    return runs


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
    """Every stack candidate of the network (module doc), sub-chains in program order (by
    first step, then length), each sub-chain's Pareto set in :data:`CONFIGS` order.
    ``solve(layers)`` schedules a list of layers (the schedule pass's solver and options).
    Sub-chains of equal layers (keys) share their work."""
    out: list[Stack] = []
    memo: dict[tuple, list] = {}
    for run in stack_runs(net):
        for a in range(len(run)):
            for b in range(a + 2, min(len(run), a + max_members) + 1):
                steps = run[a:b]
                layers = [_alone(net.steps[i].layer) for i in steps]
                key = tuple(L.key() for L in layers)
                if key not in memo:
                    memo[key] = _configs_of(layers, target, solve, configs)
                found = [Stack(steps[0], steps[-1], tuple(layers), cfg, tuple(scheds), figs)
                         for cfg, scheds, figs in memo[key]]
                out.extend(_pareto(found))
    return out


def _configs_of(layers, target, solve, configs) -> list[tuple]:
    """(config, schedules, figures) of every configuration of ``layers`` that fits."""
    found = []
    P, Q = layers[-1].P, layers[-1].Q
    for cfg in configs:
        if cfg.h > P or (cfg.w is not None and cfg.w >= Q):
            continue        # one band, or full width written as a width: another config
        work = stack_work(layers, cfg, target)
        if work is None or any(min_footprint_words(L, target) > L.homes.capacity for L in work):
            continue
        scheds = solve(work)
        found.append((cfg, scheds, stack_figures(layers, cfg, [s.cost for s in scheds], target)))
    return found
