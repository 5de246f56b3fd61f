"""schedule: choose, per layer, the mapping that is best under the cost model (CP-SAT).

For every op the accelerator runs (conv, fc, pooling, global average pool, element-wise
add; see :mod:`sqnxt_compiler.layers`), the pass builds the cost model's ``Layer``, asks
:func:`sqnxt_compiler.schedule.solver.schedule_layers` for the best mapping (dataflow WS /
OS, tile sizes, tile-loop order) under ``objective`` (ties: the documented lexicographic
rule), and attaches the answer as the op's ``schedule`` attribute.  Layers with the same
shape are solved once.  With a target whose ``activation_home`` is ``planned``, the pass
then plans the network (docs/memory-planning.md): which activations stay in the global
buffer, each layer's mapping given what is resident, the allocation; the chosen
schedules replace the layer-alone ones and each op gets a ``plan`` attribute.

Before::

    %c = sqnxt.conv(%x, %w, %b) {act = "relu", groups = 1, pads = [0, 0, 0, 0], strides = [2, 2]}

After::

    %c = sqnxt.conv(%x, %w, %b) {act = "relu", ..., schedule = {cycles = 1234, dataflow = "OS",
         energy = 5678, order = "kcyx", status = "optimal", tiles = [16, 16, 3, 1]}}

Options: :class:`ScheduleOptions`, where each is declared once (type, default, choices,
bounds, help; the objectives are the cost model's ``OBJECTIVES``).  A pass is its options:
the command line's flags of the same names (``--objective``, ``--time-limit``, ...) set
these same fields, and a flag that contradicts an option spelled out in the pipeline string
is a usage error.  ``cache-dir`` and ``jobs`` are not recorded in the pipeline: they change
how fast, never what (``jobs``: :func:`..schedule.solver.schedule_layers`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..cost.model import OBJECTIVES
from ..diagnostics import ScheduleError, UsageError
from ..ir.graph import Graph
from ..layers import layer_of
from ..pipeline.options import PassOptions, option
from ..pipeline.pass_base import Pass, PassContext


class ScheduleAttr:
    """The ``schedule`` attribute: a LayerSchedule, printed compactly in the IR."""

    __slots__ = ("schedule",)

    def __init__(self, schedule):
        self.schedule = schedule

    def to_ir_attr(self) -> dict:
        s = self.schedule
        m = s.mapping
        return {"dataflow": m.dataflow, "tiles": (m.tx, m.ty, m.tc, m.tk), "order": "".join(m.order),
                "cycles": s.cost.total_cycles, "energy": s.cost.energy_total, "status": s.status}

    def __eq__(self, other):
        return isinstance(other, ScheduleAttr) and other.schedule == self.schedule

    def __hash__(self):
        return hash(self.schedule.mapping)


@dataclass(frozen=True)
class ScheduleOptions(PassOptions):
    """The schedule pass's options, each declared once (:mod:`sqnxt_compiler.pipeline.options`):
    the pipeline text (``schedule{objective=edp}``), the command line's flags
    (``--objective``), the sweep spec's ``[sweep]`` table and the checks made when the
    options are built are all derived from these fields."""

    objective: str = option("cycles", choices=OBJECTIVES, axis="objectives",
                            help="What the scheduler minimizes (ties: energy, then cycles)")
    time_limit: float = option(0.0, min=0, unit="seconds",
                               help="Solver time limit per layer in seconds (0: none; on expiry the bound "
                                    "and gap are recorded)")
    fallback: str = option("none", choices=("none", "heuristic"),
                           help="On a solver failure use the documented heuristic mapping (marked as such)")
    measured_sparsity: bool = option(False, help="Use the zeros in each layer's weights instead of the "
                                                 "target's assumed sparsity")
    cache_dir: str = option("", recorded=False, directory=True,
                            help="On-disk schedule cache (keyed by layer, target, options and versions)")
    jobs: int = option(0, min=0, note="0: one per CPU", recorded=False, short="-j",
                       help="Layers solved at once, in threads (0: one per CPU; the answers are the same "
                            "for any value)")

    def solver_kwargs(self) -> dict:
        """The keyword arguments of ``schedule_layers`` these options stand for
        (time limit 0 and fallback "none" mean no limit and no fallback)."""
        return dict(objective=self.objective, time_limit=self.time_limit or None,
                    fallback=None if self.fallback == "none" else self.fallback,
                    cache_dir=self.cache_dir or None, jobs=self.jobs or None)


class PlanAttr:
    """The ``plan`` attribute: where the memory planner put the op's output (the buffer at
    a word offset for its live range of steps, or DRAM) and its tiles."""

    __slots__ = ("output", "offset", "live", "tiles", "inputs", "residual")

    def __init__(self, output: str, offset, live: tuple[int, int], tiles: int, inputs: tuple[str, ...],
                 residual: str | None = None):
        self.output, self.offset, self.live, self.tiles, self.inputs = output, offset, live, tiles, inputs
        self.residual = residual      # home of a fused residual ("dram" / "buffer"), None: none

    def to_ir_attr(self) -> dict:
        d = {"output": self.output, "inputs": ",".join(self.inputs), "tiles_at": self.tiles,
             "live": list(self.live)}
        if self.residual is not None:
            d["residual"] = self.residual
        if self.offset is not None:
            d["output_at"] = self.offset
        return d

    def __eq__(self, other):
        return isinstance(other, PlanAttr) and other.to_ir_attr() == self.to_ir_attr()

    def __hash__(self):
        return hash(self.output)


class Schedule(Pass):
    name = "schedule"
    summary = "Pick dataflow, tile sizes and loop order per layer with CP-SAT; attach to ops."
    Options = ScheduleOptions
    needs_target = True

    def run(self, graph: Graph, ctx: PassContext) -> None:
        from ..schedule.solver import schedule_layers

        if ctx.target is None:
            raise UsageError("the schedule pass needs a target (--target NAME or PATH)")
        o = self.options
        graph.attrs.pop("plan", None)   # a plan is made for these schedules only
        for op in graph.ops():
            op.attrs.pop("plan", None)
        ops, layers = [], []
        for op in graph.ops():
            layer = layer_of(op, measured_sparsity=o.measured_sparsity)
            if layer is not None:
                ops.append(op)
                layers.append(layer)
        try:
            scheds = schedule_layers(layers, ctx.target, progress=ctx.progress, notes=ctx.notes,
                                     **o.solver_kwargs())
        except ScheduleError as exc:
            if exc.location is None:
                exc.location = graph.source
            raise
        if ctx.target.activation_home == "planned" and ops:
            scheds = self._plan(graph, ops, layers, scheds, ctx)
        distinct = set()
        for op, s in zip(ops, scheds):
            op.attrs["schedule"] = ScheduleAttr(s)
            distinct.add(s.layer.key())
            self.stats[f"scheduled-{s.layer.kind}"] += 1
            self.stats[f"status-{s.status}"] += 1
        self.stats["distinct-layer-shapes"] = len(distinct)

    def _plan(self, graph: Graph, ops, layers, alone, ctx: PassContext) -> list:
        """The network plan (docs/memory-planning.md): candidates per step from the same
        solver and options, the CP-SAT network model (its own time limit:
        ``planner.network_time_limit``; the fallback, if any, gives the all-DRAM plan), the
        allocation, its verification.  Returns the chosen schedules (their layers carry the
        homes) and attaches ``plan`` to each op and the network record to the graph
        (``graph.attrs["plan"]``)."""
        from ..schedule.liveness import network_of
        from ..schedule.planner import (candidates, network_plan, network_time_limit, plan_network,
                                        verify_allocation)
        from ..schedule.solver import schedule_layers

        o, target = self.options, ctx.target
        kw = o.solver_kwargs()
        net = network_of(graph, list(zip(ops, layers)))
        try:
            cands = candidates(net, target,
                               lambda Ls, hints=None: schedule_layers(Ls, target, hints=hints, notes=ctx.notes,
                                                                      **kw),
                               o.objective, alone)
            plan = plan_network(net, cands, target, o.objective, network_time_limit(kw["time_limit"]),
                                fallback=kw["fallback"])
        except ScheduleError as exc:
            if exc.location is None:
                exc.location = graph.source
            raise
        if plan.note:
            ctx.notes.append(plan.note)
        problems = verify_allocation(net, plan, target)
        if problems:   # a bug in the planner, never the user's input
            raise RuntimeError(f"memory plan failed its verification: {problems[0]}")
        for step, c, toff in zip(net.steps, plan.choice, plan.tile_offsets):
            t = net.tensors[step.output]
            res = plan.resident[t.index]
            home = lambda i: "dram" if i is None or not plan.resident[i] else "buffer"  # noqa: E731
            ins = tuple(home(i) for i in step.inputs)
            ins += ("dram",) * (step.layer.n_inputs - len(ins))   # inputs no tensor stands for
            rh = home(step.residual) if step.op.attrs.get("residual") else None
            step.op.attrs["plan"] = PlanAttr("buffer" if res else "dram", plan.offsets[t.index],
                                             (t.producer, t.last), toff, ins, rh)
        graph.attrs["plan"] = network_plan(net, plan, alone, target)
        self.stats["tensors-resident"] = sum(plan.resident)
        self.stats["tensors-through-dram"] = len(plan.resident) - sum(plan.resident)
        self.stats[f"plan-{plan.status}"] += 1
        return [c.schedule for c in plan.choice]
