"""lower-program: lower the scheduled (and planned) graph to the accelerator's program.

Runs after ``schedule`` (and after ``plan-memory`` when the pipeline has it: the plan's
homes and offsets are then the program's).  :func:`sqnxt_compiler.program.lower.lower`
builds the program (docs/isa.md, "Programs"), :func:`sqnxt_compiler.program.verify.verify_lowered`
checks it (boxes, buffer regions, tokens, and per layer the counts and words of every
transfer against the cost model: a failure is a bug, exit 70), and the program is
attached to the graph as ``graph.attrs["program"]`` (:class:`ProgramAttr`), printed in
the IR as a one-line summary (instructions per kind, bytes), never the program itself.

In the default pipeline with a target when the driver's switch is on
(``sqnxt_compiler.driver.LOWER_BY_DEFAULT``: after ``schedule`` and ``plan-memory``);
otherwise ``--passes default,schedule,lower-program`` (with a planned target the driver
puts ``plan-memory`` before it), and ``sqnxtc compile --emit program``, ``sqnxtc sim`` and
``sqnxtc check --program`` add it.  A compile whose pipeline lowered simulates the program
once (``CompileResult.timing``) for schedule.json, the summary and the goldens.  Statistics: ``instructions-<KIND>``,
``layers-lowered``, ``program-bytes``, ``bias-loads``.
"""
from __future__ import annotations

from collections import Counter

from ..diagnostics import UnsupportedError, UsageError
from ..ir.graph import Graph
from ..pipeline.pass_base import Pass, PassContext


class ProgramAttr:
    """The ``program`` attribute of the graph: the :class:`~sqnxt_compiler.program.lower.Lowered`
    network (program, DRAM layout, per-layer decisions); printed as a summary."""

    __slots__ = ("lowered", "bytes")

    def __init__(self, lowered, nbytes: int):
        self.lowered = lowered
        self.bytes = nbytes

    @property
    def program(self):
        return self.lowered.program

    def to_ir_attr(self) -> dict:
        c = Counter(i.mnemonic for i in self.program.insns)
        d = {"layers": len(self.program.layers)}
        d.update({k.lower(): c[k] for k in ("LOAD", "COMPUTE", "STORE", "SYNC")})
        d["bytes"] = self.bytes
        d["dram_words"] = self.lowered.layout.end
        return d

    def __eq__(self, other):
        return isinstance(other, ProgramAttr) and other.program == self.program

    def __hash__(self):
        return hash(self.bytes)


class LowerProgram(Pass):
    name = "lower-program"
    summary = "Lower the schedules (and memory plan) to the accelerator's instruction stream."
    needs_target = True
    requires = ("schedule",)

    def run(self, graph: Graph, ctx: PassContext) -> None:
        from ..program import encode
        from ..program.lower import lower
        from ..program.verify import verify_lowered

        if ctx.target is None:
            raise UsageError("the lower-program pass needs a target (--target NAME or PATH)")
        if not any("schedule" in op.attrs for op in graph.ops()):
            raise UsageError("pass 'lower-program' needs the schedule pass to run before it")
        stacked = next((op for op in graph.ops() if "stack" in op.attrs), None)
        if stacked is not None:
            raise UnsupportedError(
                f"the plan runs fused stacks (target field dram.depth_first = true; layer "
                f"'{stacked.loc.node or stacked.result.name}'), which are not lowered to programs yet: "
                f"compile with depth_first = false for a program", graph.source)
        low = lower(graph, ctx.target)
        checked = verify_lowered(low)
        data = encode(low.program)
        graph.attrs["program"] = ProgramAttr(low, len(data))
        for k, n in Counter(i.mnemonic for i in low.program.insns).items():
            self.stats[f"instructions-{k}"] += n
        self.stats["layers-lowered"] = checked["layers"]
        self.stats["bias-loads"] = checked["bias_loads"]
        self.stats["program-bytes"] = len(data)
