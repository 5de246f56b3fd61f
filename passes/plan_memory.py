"""plan-memory: plan the network's memory; the layer-alone schedules become planned ones.

Runs after ``schedule`` (needs its schedules and a target).  The memory planner
(docs/memory-planning.md, :mod:`sqnxt_compiler.schedule.planner`) decides which
activations stay in the global buffer between the layers that produce and read them,
each layer's mapping given what is resident while it runs (its candidates: the schedule
pass's solver with the schedule pass's options, for every home combination), and the
allocation (an address for every resident tensor and every layer's tiles), verified
independently.  The chosen schedules replace the layer-alone ones in the ops' ``schedule``
attributes, each op gets a ``plan`` attribute (where its output, inputs, fused residual
and tiles live) and the graph the network record (``attributes {plan = ...}``).

Before (after ``schedule``: every layer alone, every operand in DRAM)::

    %c = sqnxt.conv(%x, %w, %b) {act = "relu", ..., schedule = {cycles = 1234, dataflow = "OS", ...}}

After::

    sqnxt.graph @main(...) attributes {plan = {allocation = "relaxation", objective = "cycles",
        resident = 84, status = "optimal", through_dram = 29, value = ...}} {
    %c = sqnxt.conv(%x, %w, %b) {act = "relu", ..., plan = {inputs = "dram", live = [3, 4],
         output = "buffer", output_at = 0, tiles_at = 2048}, schedule = {cycles = 1100, ...}}

In the default pipeline: the driver appends ``schedule`` when a target is given, and
``plan-memory`` after it when the target's ``dram.activation_home`` (or
``--activation-home``) is ``planned`` (:func:`sqnxt_compiler.driver.build_pipeline`).

**The schedule options.**  The candidates are solved with exactly the options the layer
schedules were made with (objective, time limit, fallback, cache, jobs): the schedule
pass records its :class:`~.schedule.ScheduleOptions` on every ``schedule`` attribute it
attaches (``ScheduleAttr.options``; not printed), and this pass reads them from there.
So the options travel with the schedules they made (a copy of the graph, a pass manager
of its own) and cannot disagree with them; this pass has no copy of them to contradict.

Options: :class:`PlanMemoryOptions`.  ``network-time-limit``: the network solve's seconds
when the schedule pass has a per-layer time limit (the larger of the two is used; without
a per-layer limit the network solve has none and its plan is proven optimal).

Statistics: ``tensors-resident``, ``tensors-through-dram``, ``plan-<status>`` and the
solver status of each chosen schedule (``status-<status>``).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..diagnostics import ScheduleError, UsageError
from ..ir.graph import Graph
from ..layers import layer_of
from ..pipeline.options import PassOptions, option
from ..pipeline.pass_base import Pass, PassContext
from .concat_in_place import as_copy
from .schedule import ScheduleAttr


@dataclass(frozen=True)
class PlanMemoryOptions(PassOptions):
    """The plan-memory pass's options, each declared once (:mod:`sqnxt_compiler.pipeline.options`).
    The default of ``network_time_limit`` is ``planner.NETWORK_TIME_LIMIT`` (a test holds
    them equal; the planner is not imported here, it imports the solver)."""

    network_time_limit: float = option(10.0, min=0, unit="seconds",
                                       help="Seconds for the network solve when the schedule pass has a "
                                            "per-layer time limit (the larger of the two is used; without "
                                            "one, the network solve has no limit)")

    def time_limit(self, layer_limit: float | None) -> float | None:
        """The network solve's limit for a run whose per-layer limit is ``layer_limit``
        (None: none): none without one, else the larger of the two
        (``planner.network_time_limit`` with this option for its constant)."""
        return None if layer_limit is None else max(layer_limit, self.network_time_limit)


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


class StackAttr:
    """The ``stack`` attribute of a fused stack's member: which stack (its number in the
    plan, program order), which member, and the stack itself (its configuration, links and
    work's schedules: what the tiled executor runs, :mod:`sqnxt_compiler.reference.stack_run`)."""

    __slots__ = ("index", "member", "stack")

    def __init__(self, index: int, member: int, stack):
        self.index, self.member, self.stack = index, member, stack

    def to_ir_attr(self) -> dict:
        cfg = self.stack.config
        return {"index": self.index, "member": self.member, "members": len(self.stack.layers),
                "band": f"{cfg.h}x{'full' if cfg.w is None else cfg.w}", "overlap": cfg.mode,
                "weights": "kept" if cfg.weights_kept else "per band"}

    def bands(self) -> list:
        """This member's band layers' schedules, in run order (no halo move)."""
        st = self.stack
        return [s for s, m in zip(st.schedules, st.owners) if m == self.member and s.layer.kind != "move"]

    def largest_band(self):
        """The schedule of this member's largest band (the mapping its record shows)."""
        return max(self.bands(), key=lambda s: (s.cost.macs, s.cost.total_cycles))

    def to_json(self) -> dict:
        """``layers[].stack`` of schedule.json (docs/schedule-format.md)."""
        cfg = self.stack.config
        return {"index": self.index, "member": self.member, "members": len(self.stack.layers),
                "band_rows": cfg.h, "band_cols": cfg.w, "overlap": cfg.mode, "weights_kept": cfg.weights_kept,
                "bands": len(self.bands()), "largest_band": self.largest_band().layer.name}

    def __eq__(self, other):
        return isinstance(other, StackAttr) and other.to_ir_attr() == self.to_ir_attr()

    def __hash__(self):
        return hash((self.index, self.member))


class PlanMemory(Pass):
    name = "plan-memory"
    summary = "Plan which activations stay in the global buffer; each layer's mapping given that."
    Options = PlanMemoryOptions
    needs_target = True
    requires = ("schedule",)

    def run(self, graph: Graph, ctx: PassContext) -> None:
        if ctx.target is None:
            raise UsageError("the plan-memory pass needs a target (--target NAME or PATH)")
        ops, layers, alone, sched_opts = self._scheduled(graph)
        if not ops:
            return
        for op, s in self._plan(graph, ops, layers, alone, sched_opts, ctx):
            op.attrs["schedule"] = ScheduleAttr(s, sched_opts)
            self.stats[f"status-{s.status}"] += 1

    @staticmethod
    def _scheduled(graph: Graph):
        """The ops the schedule pass scheduled (every op with a cost-model layer, in order),
        their layers, their layer-alone schedules and the options they were made with (the
        schedule pass's, recorded on each ``schedule`` attribute); a UsageError when
        the schedule pass has not run since the graph last changed, or the schedules are
        planned already."""
        need = "pass 'plan-memory' needs the schedule pass to run before it"
        if "plan" in graph.attrs or any("plan" in op.attrs for op in graph.ops()):
            raise UsageError(f"{need}: these schedules are planned already")
        ops, layers, alone, opts = [], [], [], None
        for op in graph.ops():
            attr = op.attrs.get("schedule")
            if attr is None:
                if layer_of(op) is not None:
                    raise UsageError(f"{need} (op '{op.loc.node or op.name}' has no schedule)")
                continue
            if not isinstance(attr, ScheduleAttr) or attr.options is None:
                raise UsageError(f"{need} (the schedule of op '{op.loc.node or op.name}' was not made by it)")
            if opts is None:
                opts = attr.options
            layer = layer_of(op, measured_sparsity=opts.measured_sparsity)
            if attr.options != opts or layer != attr.schedule.layer:
                raise UsageError(f"{need} (the schedule of op '{op.loc.node or op.name}' is stale: "
                                 f"the graph changed after it)")
            ops.append(op)
            layers.append(layer)
            alone.append(attr.schedule)
        return ops, layers, alone, opts

    def _plan(self, graph: Graph, ops, layers, alone, sched_opts, ctx: PassContext) -> list:
        """The network plan (docs/memory-planning.md): candidates per step from the same
        solver and options, the CP-SAT network model (its own time limit:
        :meth:`PlanMemoryOptions.time_limit`; the fallback, if any, gives the all-DRAM
        plan), the allocation, its verification.  Returns (op, chosen schedule) per step
        the plan runs (their layers carry the homes: every layer, and the copy of each
        concat in place the plan copies, which becomes a ``sqnxt.concat`` again) and
        attaches ``plan`` to each such op and the network record to the graph
        (``graph.attrs["plan"]``)."""
        from pathlib import Path

        from ..schedule.cache import evict, plan_get, plan_key, plan_put
        from ..schedule.liveness import network_of
        from ..schedule.plans import candidates, chosen_stacks, layer_positions, network_plan, verify_allocation, \
            with_stacks
        from ..schedule.solver import schedule_layers
        from ..schedule.stacks import stack_candidates

        target = ctx.target
        kw = sched_opts.solver_kwargs()
        limit = self.options.time_limit(kw["time_limit"])
        cache = None if kw["cache_dir"] is None else Path(kw["cache_dir"])
        net = network_of(graph, list(zip(ops, layers)))
        by_op = {op.id: s for op, s in zip(ops, alone)}
        try:
            cands = candidates(net, target,
                               lambda Ls, hints=None: schedule_layers(Ls, target, hints=hints, notes=ctx.notes,
                                                                      **kw),
                               sched_opts.objective, [by_op.get(step.op.id) for step in net.steps])
            stacks = []
            if target.depth_first:     # fused stacks among the candidates (docs/memory-planning.md)
                stacks = stack_candidates(net, target, lambda Ls: schedule_layers(Ls, target, notes=ctx.notes, **kw))
                cands = with_stacks(cands, stacks)
            # a proven plan of this very network and candidates from the on-disk cache, else
            # the network model (CP-SAT, imported only then); the cache keeps no stacks
            key = None if cache is None or stacks else plan_key(net, cands, target, sched_opts.objective, limit)
            plan = None if key is None else plan_get(cache, key, net, cands, target, sched_opts.objective,
                                                     ctx.notes)
            if plan is None:
                from ..schedule.planner import plan_network

                plan = plan_network(net, cands, target, sched_opts.objective, limit, fallback=kw["fallback"])
                if key is not None:
                    plan_put(cache, key, plan, cands)
                    evict(cache)
        except ScheduleError as exc:
            if exc.location is None:
                exc.location = graph.source
            raise
        if plan.note:
            ctx.notes.append(plan.note)
        problems = verify_allocation(net, plan, target)
        if problems:   # a bug in the planner, never the user's input
            raise RuntimeError(f"memory plan failed its verification: {problems[0]}")
        chosen = []
        pos = layer_positions(plan)        # live ranges as the layers' program order counts them
        number = {id(st): i for i, st in enumerate(chosen_stacks(plan.choice))}
        for step, c, toff in zip(net.steps, plan.choice, plan.tile_offsets):
            if c.skip:           # the concat stays written in place: no step
                self.stats["concats-in-place"] += 1
                continue
            if c.stack is not None:     # a member of a fused stack
                chosen.append((step.op, self._stack_member(step, c, toff, net, pos, number, target)))
                continue
            if step.copy_of is not None:    # the plan copies this concat: a move layer again
                as_copy(step.op)
                self.stats["concats-copied"] += 1
            chosen.append((step.op, c.schedule))
            t = net.tensors[step.output]
            res = plan.resident[t.index]
            home = lambda i: "buffer" if net.reads_resident(i, plan.resident) else "dram"  # noqa: E731
            ins = tuple(home(i) for i in step.inputs)
            ins += ("dram",) * (step.layer.n_inputs - len(ins))   # inputs no tensor stands for
            rh = home(step.residual) if step.op.attrs.get("residual") else None
            at = plan.offsets[t.index]
            at = at + step.output_at if at is not None else None    # a concat's part: its slice
            step.op.attrs["plan"] = PlanAttr("buffer" if res else "dram", at,
                                             (pos[t.producer], pos[t.last]), toff, ins, rh)
        if number:
            self.stats["stacks"] = len(number)
        record = graph.attrs["plan"] = network_plan(net, plan, alone, target)
        stay = sum(1 for t in record.tensors if t["home"] == "buffer")    # a concat: as planned
        self.stats["tensors-resident"] = stay
        self.stats["tensors-through-dram"] = len(record.tensors) - stay
        self.stats[f"plan-{plan.status}"] += 1
        return chosen

    def _stack_member(self, step, c, toff, net, pos, number, target):
        """A fused stack's member step: its share of the stack as its schedule
        (:func:`~sqnxt_compiler.schedule.stacks.member_schedule`), its ``stack`` attribute
        and its ``plan``: its output a band window (``band``) but for the last member's
        (DRAM), an input or residual read from another member's window ``band``, the
        others from DRAM, the stack's one region at ``tiles_at``."""
        from ..schedule.stacks import member_schedule

        st, k = c.stack, c.member
        src, res = st.links[k]
        n = len(st.layers)
        ins = ("band" if src is not None else "dram",)
        ins += ("dram",) * (step.layer.n_inputs - len(ins))
        rh = ("band" if res is not None else "dram") if step.op.attrs.get("residual") else None
        t = net.tensors[step.output]
        step.op.attrs["plan"] = PlanAttr("dram" if k == n - 1 else "band", None, (pos[t.producer], pos[t.last]),
                                         toff, ins, rh)
        step.op.attrs["stack"] = StackAttr(number[id(st)], k, st)
        self.stats["layers-in-stacks"] += 1
        return member_schedule(st, k, target)
