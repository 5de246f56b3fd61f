"""fold-bn: fold an inference BatchNormalization into the conv or fc that feeds it.

With ``s[k] = gamma[k] / sqrt(var[k] + eps)``:

    W'[k, ...] = s[k] * W[k, ...]
    b'[k]      = s[k] * (b[k] - mean[k]) + beta[k]        (b = 0 when the conv has no bias)

so that ``W' * x + b' = gamma * (W * x + b - mean) / sqrt(var + eps) + beta``.  Computed in
float64, stored as float32.

Before::

    %c = sqnxt.conv(%x, %W) {...}
    %y = sqnxt.batchnorm(%c, %gamma, %beta, %mean, %var) {epsilon = 1e-05}

After::

    %y' = sqnxt.conv(%x, %W', %b') {...}

Left alone (and counted): a conv/fc whose result has other users besides the BN (folding
would change what they see), one with a fused activation, and non-constant weights or BN
parameters.  A BN with no conv/fc in front stays a ``sqnxt.batchnorm``.

The rewrite is the pattern :class:`FoldIntoProducer`, run by the pattern driver
(:mod:`sqnxt_compiler.pipeline.rewrite`) until nothing more applies; an op left alone is
counted once, with the reason of its last try.
"""
from __future__ import annotations

import numpy as np

from ..diagnostics import Location
from ..ir.graph import Graph
from ..pipeline.pass_base import Pass, PassContext
from ..pipeline.rewrite import RewritePattern, Rewriter, apply_patterns
from .patterns import fusible_producer


def _const(v):
    return v.owner.const_value() if v.owner is not None else None


def fold_scale_shift(W: np.ndarray, b: np.ndarray | None, gamma, beta, mean, var, eps: float):
    """Return (W', b') of the folded layer (formula in the module docstring)."""
    s = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    shape = (-1,) + (1,) * (W.ndim - 1)
    W2 = (W.astype(np.float64) * s.reshape(shape)).astype(np.float32)
    b0 = np.zeros(W.shape[0]) if b is None else b.astype(np.float64)
    b2 = (s * (b0 - mean.astype(np.float64)) + beta.astype(np.float64)).astype(np.float32)
    return W2, b2


class FoldIntoProducer(RewritePattern):
    """batchnorm(conv(x)) -> conv(x) with the scaled weights and shifted bias."""

    ops = ("sqnxt.batchnorm",)

    def match_and_rewrite(self, bn, rw: Rewriter) -> None:
        src, why = fusible_producer(rw.graph, bn.operands[0], "has_weights")
        if src is None:
            return rw.decline("skipped-no-conv-or-fc" if why == "no-producer" else f"skipped-{why}")
        if src.attrs["act"] != "none":
            return rw.decline("skipped-activation-between")
        if src.attrs["residual"]:      # BN(conv + r) would scale r too
            return rw.decline("skipped-residual-add-between")
        if src.attrs.get("pool") is not None:   # BN(pool(conv)) is not pool(BN(conv))
            return rw.decline("skipped-pool-between")
        W = _const(src.operands[1])
        b = _const(src.operands[2]) if len(src.operands) > 2 else None
        params = [_const(v) for v in bn.operands[1:]]
        if W is None or (len(src.operands) > 2 and b is None) or any(p is None for p in params):
            return rw.decline("skipped-non-constant")
        W2, b2 = fold_scale_shift(W, b, *params, bn.attrs["epsilon"])
        base = src.result.name
        wv = rw.constant(W2, base + "_w_bn", Location(node=src.loc.node))
        bv = rw.constant(b2, base + "_b_bn", Location(node=src.loc.node))
        rw.set_operands(src, [src.operands[0], wv, bv])
        rw.replace_all_uses(bn.result, src.result)
        rw.erase(bn)
        rw.count(f"bn-folded-into-{src.name.split('.')[1]}")


PATTERNS = (FoldIntoProducer(),)


class FoldBatchNorm(Pass):
    name = "fold-bn"
    summary = "Fold BatchNormalization into the preceding conv / fc (weights and bias)."

    def run(self, graph: Graph, ctx: PassContext) -> None:
        apply_patterns(graph, PATTERNS, self.stats, name=self.name)
        graph.erase_dead()
