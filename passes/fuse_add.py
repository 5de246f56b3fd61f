"""fuse-add: make an element-wise add the epilogue of the conv or fc that produces one of
its operands (a residual connection).

``add(act(conv(x)), r) {act = post}`` -> ``conv(x, ..., r) {act, residual = 1, post_act = post}``:
the conv reads ``r``'s tile as each output tile leaves the array, adds it after its own
fused activation and applies the add's activation to the sum, so the activation order is
kept exactly.  The add's separate pass over DRAM (two tensors read, one written) is gone;
the cost model counts the residual's words and transfers on the conv (docs/cost-model.md,
"Fused residual add").

Before::

    %e = sqnxt.conv(%x, %w, %b) {act = "relu", ...}
    %s = sqnxt.add(%e, %r) {act = "relu"}

After::

    %s' = sqnxt.conv(%x, %w, %b, %r) {act = "relu", post_act = "relu", residual = 1, ...}

Which operand: one produced by a conv or fc (the ``has_weights`` trait) whose result has
no other user and no fused add yet; when both are, the producer that comes later in the
program order (``Graph.ops()``) takes the add, so the other operand is already computed
when it runs.  Left alone (and counted): an add of more than two operands, one whose
operands do not all have the result's shape (broadcasting), one with no such producer
(``no-producer``) or whose producers have other users (``multi-use``) or already carry a
fused add or pool (``already-fused``).

The rewrite is the pattern :class:`FuseIntoProducer`, run by the pattern driver
(:mod:`sqnxt_compiler.pipeline.rewrite`) until nothing more applies; an op left alone is
counted once, with the reason of its last try.
"""
from __future__ import annotations

from ..ir.graph import Graph
from ..pipeline.pass_base import Pass, PassContext
from ..pipeline.rewrite import RewritePattern, Rewriter, apply_patterns
from .patterns import fusible_producer


class FuseIntoProducer(RewritePattern):
    """add(conv(x), r) -> conv(x, ..., r) {residual = 1, post_act = the add's act}."""

    ops = ("sqnxt.add",)

    def match_and_rewrite(self, add, rw: Rewriter) -> None:
        if len(add.operands) != 2:
            return rw.decline("skipped-not-two-operands")
        shape = add.result.type.shape
        if any(v.type.shape != shape or v.type.dtype != add.result.type.dtype for v in add.operands):
            return rw.decline("skipped-broadcast")
        found, reasons = [], []
        for i, v in enumerate(add.operands):
            src, why = fusible_producer(rw.graph, v, "has_weights")
            if src is not None and (src.attrs["residual"] or src.attrs.get("pool") is not None):
                src, why = None, "already-fused"
            if src is None:
                reasons.append(why)
            else:
                found.append((rw.position(src), i, src))
        if not found:
            return rw.decline(f"skipped-{min(reasons)}")
        _, i, src = max(found)        # the producer later in the program order
        other = add.operands[1 - i]
        rw.set_operands(src, [*src.operands, other])
        rw.update_attrs(src, {"residual": 1, "post_act": add.attrs["act"]})
        rw.replace_all_uses(add.result, src.result)
        rw.erase(add)
        rw.count(f"add-fused-into-{src.name.split('.')[1]}")


PATTERNS = (FuseIntoProducer(),)


class FuseAdd(Pass):
    name = "fuse-add"
    summary = "Fuse an element-wise add into the conv / fc producing one operand (residual epilogue)."

    def run(self, graph: Graph, ctx: PassContext) -> None:
        apply_patterns(graph, PATTERNS, self.stats, name=self.name)
