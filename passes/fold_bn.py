"""fold-bn: fold a per-channel affine map into the conv or fc that feeds it: an inference
BatchNormalization, or the same map as an exporter writes it once it has folded the BN
itself, a constant ``mul`` / ``add`` / ``sub`` / ``div`` per output channel.

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

**The exporter's spelling** (tf2onnx writes a Keras BatchNormalization it could not fold as
``Add(Mul(conv, s), t)``, the constants of shape (C, 1, 1) or (1, C, 1, 1); some exports
keep a lone bias ``Add`` after a bias-free conv): an element-wise ``mul``, ``add``, ``sub``
or ``div`` of the conv / fc result and a constant ``c`` that is the same along every axis
but the channel (axis 1: (C, 1, 1), (1, C, 1, 1), a scalar, or any shape whose values do
not vary along the other axes; for an fc, (K,) or (1, K)), in either operand order, folds
the same way with ``c`` per channel ``k``:

    mul(y, c), mul(c, y):  W' = c W,   b' = c b
    div(y, c):             W' = W / c, b' = b / c         (1 / c in float64)
    add(y, c), add(c, y):  W' = W,     b' = b + c         (a bias appears: b = 0)
    sub(y, c):             W' = W,     b' = b - c
    sub(c, y):             W' = -W,    b' = c - b

The numbers are the unfolded layer's up to fp32 rounding (the product is taken before the
sum instead of after).  Statistics: ``mul-folded-into-conv``, ``add-folded-into-conv``,
``sub-folded-into-conv``, ``div-folded-into-conv`` (``-fc`` after an fc), beside
``bn-folded-into-conv`` / ``bn-folded-into-fc``.  ``Add(Mul(conv, s), t)`` is two rewrites:
the mul folds, then the add finds the conv in front of it.  A (C,) constant after a conv
is *not* per channel (NCHW broadcasting puts it on W): it folds only if its values are all
equal.

Left alone (and counted): a conv/fc whose result has other users besides the BN or the
element-wise op (``skipped-multi-use``: folding would change what they see), one with a
fused activation (``skipped-activation-between``), residual add or pool, non-constant
weights or BN parameters (``skipped-non-constant``), a constant that varies along another
axis than the channel or would broadcast the result to a larger shape
(``skipped-not-per-channel``), a constant that is not finite or a zero divisor
(``skipped-not-finite``: ``inf * 0`` in the weights would be NaN where the unfolded layer
gives 0 or inf), an ``add`` carrying a fused activation (``skipped-not-affine``).  A BN with no conv/fc in front stays a
``sqnxt.batchnorm`` (``skipped-no-conv-or-fc``); an element-wise op with no conv/fc in
front, or with no constant operand, is not an affine map after a layer and is not counted.

The rewrites are the patterns :class:`FoldIntoProducer` and :class:`FoldAffineIntoProducer`,
run by the pattern driver (:mod:`sqnxt_compiler.pipeline.rewrite`) until nothing more
applies; an op left alone is counted once, with the reason of its last try.
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


def per_channel(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``c`` as one value per channel (axis 1) of a tensor of ``shape``, when ``c``
    broadcasts to ``shape`` without enlarging it and its values do not vary along any other
    axis: a float64 vector of ``shape[1]`` values; else None."""
    if c.dtype != np.float32 or len(shape) < 2 or c.ndim > len(shape):
        return None
    try:
        if tuple(np.broadcast_shapes(c.shape, shape)) != tuple(shape):
            return None
    except ValueError:
        return None
    c = c.reshape((1,) * (len(shape) - c.ndim) + c.shape)
    for axis in range(len(shape)):
        if axis != 1 and c.shape[axis] > 1:
            first = np.take(c, [0], axis=axis)
            if not np.array_equal(c, np.broadcast_to(first, c.shape)):
                return None
            c = first
    return np.broadcast_to(c.reshape(-1).astype(np.float64), (shape[1],))


def _check_producer(src, rw: Rewriter) -> bool:
    """Whether the conv / fc ``src`` (its result read only by the op being folded) can take
    an affine map after it; declines with the reason when not."""
    if src.attrs["act"] != "none":
        rw.decline("skipped-activation-between")
        return False
    if src.attrs["residual"]:      # BN(conv + r) would scale r too
        rw.decline("skipped-residual-add-between")
        return False
    if src.attrs.get("pool") is not None:   # BN(pool(conv)) is not pool(BN(conv))
        rw.decline("skipped-pool-between")
        return False
    return True


def _layer_params(src, rw: Rewriter):
    """(W, b or None) of the conv / fc ``src`` when constant, else None (declined)."""
    W = _const(src.operands[1])
    b = _const(src.operands[2]) if len(src.operands) > 2 else None
    if W is None or (len(src.operands) > 2 and b is None):
        rw.decline("skipped-non-constant")
        return None
    return W, b


def _set_params(rw: Rewriter, src, W2: np.ndarray | None, b2: np.ndarray | None, tag: str) -> None:
    """Give ``src`` the new weights (None: keep them) and bias (None: keep it, or none)."""
    base = src.result.name
    loc = Location(node=src.loc.node)
    w = rw.constant(W2, base + "_w_" + tag, loc) if W2 is not None else src.operands[1]
    ops = [src.operands[0], w]
    if b2 is not None:
        ops.append(rw.constant(b2, base + "_b_" + tag, loc))
    elif len(src.operands) > 2:
        ops.append(src.operands[2])
    rw.set_operands(src, ops)


class FoldIntoProducer(RewritePattern):
    """batchnorm(conv(x)) -> conv(x) with the scaled weights and shifted bias."""

    ops = ("sqnxt.batchnorm",)

    def match_and_rewrite(self, bn, rw: Rewriter) -> None:
        src, why = fusible_producer(rw.graph, bn.operands[0], "has_weights")
        if src is None:
            return rw.decline("skipped-no-conv-or-fc" if why == "no-producer" else f"skipped-{why}")
        if not _check_producer(src, rw):
            return
        params = [_const(v) for v in bn.operands[1:]]
        wb = _layer_params(src, rw)
        if wb is None:
            return
        if any(p is None for p in params):
            return rw.decline("skipped-non-constant")
        W2, b2 = fold_scale_shift(*wb, *params, bn.attrs["epsilon"])
        _set_params(rw, src, W2, b2, "bn")
        rw.replace_all_uses(bn.result, src.result)
        rw.erase(bn)
        rw.count(f"bn-folded-into-{src.name.split('.')[1]}")


class FoldAffineIntoProducer(RewritePattern):
    """mul / add / sub / div of conv(x) (or fc(x)) and a per-channel constant -> conv(x)
    with the weights scaled (mul, div, sub from a constant) and the bias mapped (the module
    docstring's table)."""

    ops = ("sqnxt.mul", "sqnxt.add", "sqnxt.sub", "sqnxt.div")

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        if len(op.operands) != 2:
            return                  # a sum of three or more: not an affine map of one tensor
        kind = op.name.split(".")[1]
        consts = [_const(v) for v in op.operands]
        for i in (0, 1):            # i: the layer's operand, 1 - i: the constant
            y = op.operands[i]
            c = consts[1 - i]
            if c is None or consts[i] is not None or y.owner is None or not y.owner.has_trait("has_weights"):
                continue
            if kind == "div" and i == 1:
                return              # c / y: not affine in y
            break
        else:
            return                  # no layer and constant operands: not an affine map after a layer
        if kind == "add" and op.attrs["act"] != "none":
            return rw.decline("skipped-not-affine")
        src, why = fusible_producer(rw.graph, y, "has_weights")
        if src is None:
            return rw.decline(f"skipped-{why}")
        if not _check_producer(src, rw):
            return
        v = per_channel(c, src.result.type.shape)
        if v is None or op.result.type != src.result.type:
            return rw.decline("skipped-not-per-channel")
        if not np.all(np.isfinite(v)) or (kind == "div" and not np.all(v != 0)):
            return rw.decline("skipped-not-finite")     # inf * 0 in the weights would be NaN
        wb = _layer_params(src, rw)
        if wb is None:
            return
        W, b = wb
        shape = (-1,) + (1,) * (W.ndim - 1)
        W64 = W.astype(np.float64)
        b64 = None if b is None else b.astype(np.float64)
        W2 = b2 = None
        if kind in ("mul", "div"):
            s = v if kind == "mul" else 1.0 / v
            W2 = W64 * s.reshape(shape)
            b2 = None if b64 is None else b64 * s
        elif kind == "add" or (kind == "sub" and i == 0):
            b2 = (np.zeros(W.shape[0]) if b64 is None else b64) + (v if kind == "add" else -v)
        else:                       # sub(c, y) = -y + c
            W2 = -W64
            b2 = v - (0.0 if b64 is None else b64)
        _set_params(rw, src, None if W2 is None else W2.astype(np.float32),
                    None if b2 is None else b2.astype(np.float32), kind)
        rw.replace_all_uses(op.result, src.result)
        rw.erase(op)
        rw.count(f"{kind}-folded-into-{src.name.split('.')[1]}")


PATTERNS = (FoldIntoProducer(), FoldAffineIntoProducer())


class FoldBatchNorm(Pass):
    name = "fold-bn"
    summary = ("Fold BatchNormalization, or a per-channel constant Mul / Add / Sub / Div (a BN as "
               "exporters fold it), into the preceding conv / fc (weights and bias).")

    def run(self, graph: Graph, ctx: PassContext) -> None:
        apply_patterns(graph, PATTERNS, self.stats, name=self.name)
        graph.erase_dead()
