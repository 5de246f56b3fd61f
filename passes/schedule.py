"""schedule: choose, per layer, the mapping that is best under the cost model (CP-SAT).

For every op the accelerator runs (conv, fc, pooling, global average pool, element-wise
add; see :mod:`sqnxt_compiler.layers`), the pass builds the cost model's ``Layer``, asks
:func:`sqnxt_compiler.schedule.solver.schedule_layers` for the best mapping (dataflow WS /
OS, tile sizes, tile-loop order) under ``objective`` (ties: the documented lexicographic
rule), and attaches the answer as the op's ``schedule`` attribute: each layer alone, every
operand in DRAM.  Layers with the same shape are solved once.  The network's memory plan
is the next pass's (``plan-memory``, :mod:`.plan_memory`), which replaces these schedules
with planned ones; the driver appends it when the target's ``activation_home`` is
``planned``.  A plan is made for one set of schedules: this pass drops any plan the graph
carries.

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
how fast, never what (``jobs``: :func:`..schedule.solver.schedule_layers`).  Every
``schedule`` attribute records the options it was made with (``ScheduleAttr.options``, not
printed): ``plan-memory`` solves its candidates with exactly these.
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
    """The ``schedule`` attribute: a LayerSchedule, printed compactly in the IR, and the
    :class:`ScheduleOptions` it was made with (``options``; None: not made by the schedule
    pass), which are not printed: they are what ``plan-memory`` solves its candidates with."""

    __slots__ = ("schedule", "options")

    def __init__(self, schedule, options: ScheduleOptions | None = None):
        self.schedule = schedule
        self.options = options

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
    cache: bool = option(True, recorded=False,
                         help="Read and write the on-disk schedule cache (keyed by layer, target, options, "
                              "versions and code): --cache-dir, else the user's cache directory "
                              "(docs/scheduler.md, 'The on-disk cache')")
    cache_dir: str = option("", recorded=False, directory=True,
                            help="Directory of the on-disk schedule cache (default: $SQNXTC_CACHE_DIR, else "
                                 "$XDG_CACHE_HOME/sqnxtc/schedules or ~/.cache/sqnxtc/schedules)")
    jobs: int = option(0, min=0, note="0: one per CPU", recorded=False, short="-j",
                       help="Layers solved at once, in threads (0: one per CPU; the answers are the same "
                            "for any value)")

    def __post_init__(self):
        super().__post_init__()
        if not self.cache and self.cache_dir:
            raise UsageError(f"{self.pass_name}: cache=false (--no-cache) contradicts cache-dir "
                             f"'{self.cache_dir}' (--cache-dir): give one of them")

    def solver_kwargs(self) -> dict:
        """The keyword arguments of ``schedule_layers`` these options stand for
        (time limit 0 and fallback "none" mean no limit and no fallback)."""
        from ..schedule.cache import resolve_dir

        return dict(objective=self.objective, time_limit=self.time_limit or None,
                    fallback=None if self.fallback == "none" else self.fallback,
                    cache_dir=resolve_dir(self.cache, self.cache_dir), jobs=self.jobs or None)


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
        distinct = set()
        for op, s in zip(ops, scheds):
            op.attrs["schedule"] = ScheduleAttr(s, o)
            distinct.add(s.layer.key())
            self.stats[f"scheduled-{s.layer.kind}"] += 1
            self.stats[f"status-{s.status}"] += 1
        self.stats["distinct-layer-shapes"] = len(distinct)
