"""schedule: choose, per layer, the mapping that is best under the cost model (CP-SAT).

For every op the accelerator runs (conv, fc, pooling, global average pool, element-wise
add; see :mod:`sqnxt_compiler.layers`), the pass builds the cost model's ``Layer``, asks
:func:`sqnxt_compiler.schedule.solver.schedule_layers` for the best mapping (dataflow WS /
OS, tile sizes, tile-loop order) under ``objective`` (ties: the documented lexicographic
rule), and attaches the answer as the op's ``schedule`` attribute.  Layers with the same
shape are solved once.

Before::

    %c = sqnxt.conv(%x, %w, %b) {act = "relu", groups = 1, pads = [0, 0, 0, 0], strides = [2, 2]}

After::

    %c = sqnxt.conv(%x, %w, %b) {act = "relu", ..., schedule = {cycles = 1234, dataflow = "OS",
         energy = 5678, order = "kcyx", status = "optimal", tiles = [16, 16, 3, 1]}}

Options (each also settable from the command line: ``--objective``, ``--time-limit``,
``--fallback``, ``--measured-sparsity``, ``--cache-dir``; an option given in the pipeline
string wins): ``objective`` cycles | energy | edp; ``time-limit`` seconds per layer (0: none);
``fallback`` none | heuristic; ``measured-sparsity`` use the zeros actually in each layer's
weights instead of the target's assumed fraction; ``cache-dir`` an on-disk schedule cache.
"""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace

from ..diagnostics import ScheduleError, UsageError
from ..ir.graph import Graph
from ..layers import layer_of
from ..pipeline.pass_base import Pass, PassContext


#: A callable ``progress(done, total, layer)`` told before each distinct layer shape is
#: solved and once at the end (``layer`` None): the CLI's progress display.  The
#: ``progress`` entry of ``ctx.options`` wins over this context variable.
PROGRESS: ContextVar = ContextVar("sqnxtc_schedule_progress", default=None)


def _with_progress(schedule_layers, layers, target, kwargs, progress):
    """The same schedules as ``schedule_layers(layers, ...)``, solved one distinct shape at
    a time so that ``progress`` can be told: each distinct ``layer.key()`` is scheduled once
    (as its first occurrence) and shared by the later layers of that shape, exactly as
    schedule_layers shares it within one call."""
    first: dict = {}
    for L in layers:
        first.setdefault(L.key(), L)
    distinct = list(first.values())
    solved = {}
    for i, L in enumerate(distinct):
        progress(i, len(distinct), L)
        solved[L.key()] = schedule_layers([L], target, **kwargs)[0]
    progress(len(distinct), len(distinct), None)
    out = []
    for L in layers:
        s = solved[L.key()]
        out.append(s if s.layer == L else replace(s, layer=L))
    return out


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
class ScheduleOptions:
    objective: str = field(default="cycles", metadata={"choices": ("cycles", "energy", "edp")})
    time_limit: float = 0.0
    fallback: str = field(default="none", metadata={"choices": ("none", "heuristic")})
    measured_sparsity: bool = False
    cache_dir: str = ""


def effective_options(opts: ScheduleOptions, ctx: PassContext) -> ScheduleOptions:
    """Pipeline-string options win; otherwise the command line's (``ctx.options``)."""
    defaults = ScheduleOptions()
    values = {}
    for f in fields(ScheduleOptions):
        mine = getattr(opts, f.name)
        values[f.name] = mine if mine != getattr(defaults, f.name) else ctx.options.get(f.name, mine)
    return ScheduleOptions(**values)


class Schedule(Pass):
    name = "schedule"
    summary = "Pick dataflow, tile sizes and loop order per layer with CP-SAT; attach to ops."
    Options = ScheduleOptions

    def run(self, graph: Graph, ctx: PassContext) -> None:
        from ..schedule.solver import schedule_layers

        if ctx.target is None:
            raise UsageError("the schedule pass needs a target (--target NAME or PATH)")
        o = effective_options(self.options, ctx)
        if o.time_limit < 0:
            raise UsageError(f"time limit must be >= 0 seconds, got {o.time_limit}")
        ops, layers = [], []
        for op in graph.ops():
            layer = layer_of(op, measured_sparsity=o.measured_sparsity)
            if layer is not None:
                ops.append(op)
                layers.append(layer)
        kwargs = dict(objective=o.objective, time_limit=o.time_limit or None,
                      fallback=None if o.fallback == "none" else o.fallback,
                      cache_dir=o.cache_dir or None)
        progress = ctx.options.get("progress") or PROGRESS.get()
        try:
            if progress is None:
                scheds = schedule_layers(layers, ctx.target, **kwargs)
            else:
                scheds = _with_progress(schedule_layers, layers, ctx.target, kwargs, progress)
        except ScheduleError as exc:
            if exc.location is None:
                exc.location = graph.source
            raise
        distinct = set()
        for op, s in zip(ops, scheds):
            op.attrs["schedule"] = ScheduleAttr(s)
            distinct.add(s.layer.key())
            self.stats[f"scheduled-{s.layer.kind}"] += 1
            self.stats[f"status-{s.status}"] += 1
        self.stats["distinct-layer-shapes"] = len(distinct)
