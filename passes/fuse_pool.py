"""fuse-pool: run a max / average pool inside the tile loop of the conv that feeds it.

``maxpool(act(conv(x)))`` -> ``conv(x) {act, pool = {kind = "max", kernel, strides, pads,
ceil_mode, count_include_pad}}``: the conv's tile loops run over the *pooled* output; each
tile computes the conv outputs its pool windows cover (rows and columns shared with the
neighbouring tiles' windows are computed again), applies the activation, pools in the
buffer, and only the pooled tile leaves.  The pool's pass over DRAM (the conv's whole
output written, then read back) is gone; the cost model charges the recomputed outputs
(docs/cost-model.md, "Fused pooling").  SqueezeNext's conv1 + pool1 is the case.

Before::

    %c = sqnxt.conv(%x, %w, %b) {act = "relu", strides = [2, 2], ...}
    %p = sqnxt.maxpool(%c) {ceil_mode = 1, kernel = [3, 3], pads = [0, 0, 0, 0], strides = [2, 2]}

After::

    %p' = sqnxt.conv(%x, %w, %b) {act = "relu", pool = {ceil_mode = 1, count_include_pad = 0,
          kernel = [3, 3], kind = "max", pads = [0, 0, 0, 0], strides = [2, 2]}, ...}

Left alone (and counted): a pool whose input is not a conv's (``no-producer``; fc has no
spatial output), a conv whose result has other users (``multi-use``), one that already
carries a fused residual add or pool (``already-fused``).

The rewrite is the pattern :class:`FuseIntoConv`, run by the pattern driver
(:mod:`sqnxt_compiler.pipeline.rewrite`) until nothing more applies; an op left alone is
counted once, with the reason of its last try.
"""
from __future__ import annotations

from ..ir.graph import Graph
from ..pipeline.pass_base import Pass, PassContext
from ..pipeline.rewrite import RewritePattern, Rewriter, apply_patterns
from .patterns import fusible_producer


def pool_attr(pool) -> dict:
    """The conv's ``pool`` attribute of a max / average pool op."""
    a = pool.attrs
    return {"kind": "max" if pool.name == "sqnxt.maxpool" else "avg", "kernel": tuple(a["kernel"]),
            "strides": tuple(a["strides"]), "pads": tuple(a["pads"]), "ceil_mode": a["ceil_mode"],
            "count_include_pad": a.get("count_include_pad", 0)}


class FuseIntoConv(RewritePattern):
    """pool(conv(x)) -> conv(x) {pool = ...} with the pooled result type."""

    ops = ("sqnxt.maxpool", "sqnxt.avgpool")

    def match_and_rewrite(self, pool, rw: Rewriter) -> None:
        src, why = fusible_producer(rw.graph, pool.operands[0], "has_weights")
        if src is not None and src.name != "sqnxt.conv":
            src, why = None, "no-producer"
        if src is not None and (src.attrs["residual"] or src.attrs.get("pool") is not None):
            src, why = None, "already-fused"
        if src is None:
            return rw.decline(f"skipped-{why}")
        # the conv takes the pool: same op (its place in the program order), pooled type
        rw.set_attr(src, "pool", pool_attr(pool))
        rw.set_result_types(src, src.opdef.infer(src))
        rw.replace_all_uses(pool.result, src.result)
        rw.erase(pool)
        rw.count(f"{src.attrs['pool']['kind']}pool-fused-into-conv")


PATTERNS = (FuseIntoConv(),)


class FusePool(Pass):
    name = "fuse-pool"
    summary = "Fuse a max / avg pool into the conv that feeds it (pooled in the conv's tile loop)."

    def run(self, graph: Graph, ctx: PassContext) -> None:
        apply_patterns(graph, PATTERNS, self.stats, name=self.name)
