"""canonicalize: put the graph in the one form the later passes and the scheduler expect.

Rewrite patterns (:data:`PATTERNS`, tried on an op in this order), applied by the
pattern driver (:mod:`sqnxt_compiler.pipeline.rewrite`) until none applies, each counted
in the pass statistics; then the ops left without a user are erased (``dead-ops-erased``):

* **identity-removed / dropout-removed / whole-slice-removed**: ``y = identity(x)``,
  ``dropout(x)`` (inference) or a slice with steps 1 that keeps every element (GhostNet's
  ``[:, :out]`` when the concat already has ``out`` channels) -> uses of ``y`` become uses
  of ``x``.
* **constants-folded**: an op whose operands are all constants (or ``shape`` of any
  tensor: shapes are static) is evaluated with the executor's kernel and becomes a
  ``sqnxt.constant`` (ops with the ``structural`` trait never are: input, output,
  constant).  Exporters' ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` chains
  collapse to a reshape by a constant.
* **fc-from-gemm**: ``gemm(flatten(x), B, C)`` with constant B, C and ``trans_a = 0`` ->
  ``fc(x, W, b)`` with ``W = alpha * (B^T if trans_b = 0 else B)`` and
  ``b = beta * C`` (C of shape (K,), (1, K) or scalar, broadcast to (K,)).  A ``flatten``
  (axis 1) or 2-D ``reshape`` (N, -1) in front is absorbed, since fc flattens itself.
  An x whose first axis is above 1 (rows of their own, not a batch: a reshape to (L, C)
  before a Dense) becomes ``matmul(x, W^T, b)`` instead (**matmul-from-gemm**): a 1x1
  conv over its L rows, every row's MACs counted (an fc's first axis is the batch).
* **fc-from-matmul**: ``add(matmul(x, B), c)`` (either operand order) with constant B of
  shape (C, K) and c of shape (K,) or (1, K) -> ``fc(x, B^T, c)``; a bare ``matmul(x, B)``
  with constant B -> ``fc(x, B^T)``.  x must be 2-D (1, C) (an N-D x, or a 2-D (L, C)
  with L > 1: bias-into-matmul).
* **bias-into-matmul**: ``add(matmul(x, B), c)`` (either operand order) of an x of rank
  above 2, or of rank 2 with more than one row (channels-last: ConvNeXt's Linear on NHWC, a 1x1 conv layer over x's leading
  positions) with constant B of shape (C, K) and c one value per column ((K,) or (1, .., 1,
  K)) -> ``matmul(x, B, c)``: the bias of that layer, added as results leave the array
  (fuse-relu can then fold the activation after it, GELU's, into the same epilogue).
* **scale-into-matmul**: ``mul(matmul(x, B[, b]), c)`` of such an x with c one value per
  column -> ``matmul(x, B*c, b*c)`` (ConvNeXt's layer scale).
* **matmul-through-reshape**: ``reshape(matmul(reshape(x, (L, C)), B), lead + (K,))`` with
  x of rank above 2 and batch 1, the first reshape (or flatten) merging x's leading axes
  ``lead`` into L rows of x's last axis C, the second splitting them back -> ``matmul(x,
  B)``, then at once the bias ``Add`` after it as its operand (bias-into-matmul): Keras'
  Dense on a sequence or an NHWC map as tf2onnx writes it (Tensordot), which becomes the
  layer PyTorch's Linear exports (before: an fc of the (L, C) matrix, costed as one row,
  and an element-wise layer for the bias).  Exact: the same dot products.
* **gap-from-reduce-mean**: ``reduce(x) {kind = mean, axes = H and W}`` of a 4-D x ->
  ``global_avgpool(x)`` (keepdims = 0: followed by ``flatten``, axis 1): the same numbers,
  and an op the accelerator runs (dynamo exports global pooling this way).
* **pad-into-conv / pad-into-maxpool / pad-into-window**: ``conv(pad(x) {mode = constant,
  value = 0, pads on H and W only})`` with the pad used only by windows that can take it
  -> each window's ``pads`` grow by the pad's (exact: the window sees the same zeros);
  likewise an ``avgpool`` with ``ceil_mode = 0`` whose own pads are 0 or that counts its
  padding (``count_include_pad = 1``, then set).  TF-style "same" padding exports (Pad +
  VALID conv) become one conv.  A ``maxpool`` pads with -inf (its padding never wins the
  max), so it takes a zero pad only when x is known >= 0 (:func:`known_nonnegative`: a
  relu, relu6 / clip with ``min >= 0``, sigmoid, hard_sigmoid, a conv / fc / add whose fused
  activation is one of those, or a pool of such), then every window still holds a real
  element >= 0 and the maximum is the same; a pad of value -inf it takes whatever x.  The
  sums must stay below the kernel and the output size the same (ceil mode: a window that
  would start in the pad's end rows is dropped).  Keras' ZeroPadding2D + MaxPooling2D
  (ResNet's stem) becomes PyTorch's MaxPool with its own pads.  Declined (counted):
  ``skipped-maxpool-input-maybe-negative``, ``skipped-maxpool-pads``.
* **layer-norm-from-parts / layer-norm-from-moments**: LayerNormalization spelled out over
  x's trailing axes (:class:`LayerNormFromParts`: the statistics ``mean(x)``, ``d = x -
  mean``, ``mean(d^2)`` with ``d^2`` as ``pow(d, 2)`` or ``mul(d, d)``, ``+ eps``, each
  mean a ``reduce`` with keepdims or a ``global_avgpool``: tf2onnx writes a mean over the
  last two axes of a rank-4 tensor as GlobalAveragePool, and over the last axis of a
  rank-3 one too, which the frontend lowers to a ``reduce``) ->
  ``layer_norm(x, scale, shift)``, one layer instead of nine to thirteen:
  ``div(d, sqrt(.))`` or ``mul(d, rsqrt(.))`` (rsqrt as ``reciprocal(sqrt)``, ``1 / sqrt``
  or ``pow(., -0.5)``), then an optional constant scale and shift
  (``layer-norm-from-parts``: PyTorch before opset 17), or the moments form
  ``x * inv + (beta - mean * inv)`` with ``inv = rsqrt(.) * gamma`` (tf's
  ``batch_normalization``, Keras 3's ``-mean * inv + beta``: ``layer-norm-from-moments``).
  The numbers are the normalization's up to fp32 rounding (the moments form subtracts
  after scaling: when ``|mean|`` is far above the deviation the layer_norm, which
  subtracts first, is the more accurate of the two).
* **hard-sigmoid-from-relu6**: ``relu6(y + 3) / 6`` (Keras' hard_sigmoid through tf2onnx:
  relu6 is ``clip(0, 6)``, its bounds inputs at opset >= 11 and attributes before; ``/ 6``
  as a div or a mul by 1/6, the constant 3 any shape that does not enlarge y) ->
  ``hard_sigmoid(y) {alpha = 1/6, beta = 1/2}``: ``clip(y / 6 + 1/2, 0, 1)``, the same
  function (the squeeze-excitation gate of Keras' MobileNetV3, fused into its conv by
  fuse-relu as PyTorch's Hardsigmoid is).
* **hard-swish-from-mul / hard-swish-from-relu6**: ``mul(y, hard_sigmoid(y) {alpha = 1/6,
  beta = 1/2})`` in either operand order (HardSwish as exported before opset 14, and
  Keras' ``y * (relu6(y + 3) / 6)`` once hard-sigmoid-from-relu6 made its hard_sigmoid:
  ``hard-swish-from-mul``), and ``(y * relu6(y + 3)) / 6`` (the product in either order,
  ``/ 6`` as a div or a mul by 1/6: ``hard-swish-from-relu6``), each intermediate used
  only there -> ``hard_swish(y)``, one op (and one layer, or none once fused into the
  conv) instead of two to five, with the same numbers up to fp32 rounding.  Constants are
  matched to a few fp32 ulps (1/6 written 0.1666667); other constants are another
  function and stay.
* **gelu-from-parts**: GELU as exporters spell it, ``x * 0.5 * (1 + erf(x / sqrt(2)))``:
  the product of x, 1/2 and ``add(erf(z), 1)`` as two multiplies in any grouping and
  operand order (the half as a mul by 0.5 or a div by 2, applied first or last), ``z``
  as ``div(x, sqrt(2))`` or ``mul(x, 1 / sqrt(2))``, each intermediate used only there
  and of x's type -> ``gelu(x)``: one op (one eltwise layer, or none once fuse-relu folds
  it into the conv / fc before it) instead of five, the same function up to fp32
  rounding.  Constants to a few fp32 ulps; other constants are another function and stay.
* **transposes-cancelled / transposes-composed / identity-transpose-removed /
  transpose-hoisted**: ``transpose(transpose(x, p1), p2)`` -> x when ``p1[p2[i]] = i`` for
  every axis, else one ``transpose(x, p1 o p2)``; a transpose with the identity
  permutation -> x (tf2onnx's NHWC <-> NCHW pairs; a transpose of a constant is folded by
  constants-folded).  A transpose behind a chain of up to six ops that commute with it
  (element-wise mul / add / sub / div by constants, element-wise functions of one tensor
  such as relu or hard-swish, pads; each read only by the next) that starts at a graph
  input or at another transpose moves ahead of the chain, the constants and pads
  transposed with it (exact: such an op commutes with a permutation of the axes): Keras'
  Rescaling / Normalization of tf2onnx's NHWC input then runs in NCHW after the input's
  transpose, the layout of the rest of the network and of the PyTorch export, and an NHWC
  island tf2onnx leaves between convs when its transpose optimizer gives up (Keras'
  MobileNetV3Large: transpose, BN scale, activation, pad, transpose) closes.
* **transposes-through-binary**: ``op(transpose(a, p), transpose(b, p))`` of an element-wise
  mul / add / sub / div of two tensors of one rank, each transpose read only there ->
  ``transpose(op(a, b), p)`` (an NHWC residual add: the transpose left then meets the next).
* **transpose-sunk**: ``f(transpose(x, p))`` -> ``transpose(f(x), p)`` for the same ops the
  hoist moves through, the transpose read only by f and not of a graph input: a transpose
  moves down an NHWC island to its forks.
* **reduce-through-transpose**: ``reduce(transpose(x, p), axes)`` with keepdims ->
  ``transpose(reduce(x, p[axes]), p)`` when ``p[axes]`` are x's trailing axes (tf2onnx's
  squeeze-excitation pooling in NHWC: a global pool in NCHW).

Before::

    %f = sqnxt.flatten(%gap) {axis = 1}
    %y = sqnxt.gemm(%f, %W, %b) {alpha = 1.0, beta = 1.0, trans_a = 0, trans_b = 1}

After::

    %y = sqnxt.fc(%gap, %W', %b')
"""
from __future__ import annotations

import math

import numpy as np

from ..diagnostics import Location
from ..ir.core import OPS, Elementwise
from ..ir.graph import Graph
from ..ir.ops import pool_out
from ..pipeline.pass_base import Pass, PassContext
from ..pipeline.rewrite import RewritePattern, Rewriter, apply_patterns
from ..reference.executor import KERNELS, eval_op


def _const(v):
    return v.owner.const_value() if v.owner is not None else None


def _single(graph: Graph, v, name: str):
    """The producer of ``v`` if it is a ``name`` op whose result only ``v``'s one user reads."""
    o = v.owner
    return o if o is not None and o.name == name and len(graph.uses(o.result)) == 1 else None


class WholeSlice(RewritePattern):
    """A slice with steps 1 that keeps every element -> its operand."""

    ops = ("sqnxt.slice", "sqnxt.extract_slice")

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        if all(s == 1 for s in op.attrs["steps"]) and op.result.type == op.operands[0].type:
            rw.replace_all_uses(op.result, op.operands[0])
            rw.erase(op)
            rw.count("whole-slice-removed")


class DropNoop(RewritePattern):
    """identity(x), dropout(x) (inference) -> x."""

    ops = ("sqnxt.identity", "sqnxt.dropout")

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        rw.replace_all_uses(op.result, op.operands[0])
        rw.erase(op)
        rw.count(f"{op.name.split('.')[1]}-removed")


class IdentityArithmetic(RewritePattern):
    """add(x, 0), add(0, x), sub(x, 0), mul(x, 1), mul(1, x), div(x, 1) with a constant of
    all zeros / ones that does not enlarge x -> x: the same words, exactly (an unadapted
    Keras Normalization exports ``x - 0`` and ``x / 1``; tf2onnx writes ``x + 0``, ``x * 1``;
    a simplifier removes them, so this makes raw and simplified exports cost the same)
    (``identity-arithmetic-removed``)."""

    ops = ("sqnxt.add", "sqnxt.sub", "sqnxt.mul", "sqnxt.div")
    #: per op: (the constant's value, the operand positions it may take)
    NEUTRAL = {"sqnxt.add": (0.0, (0, 1)), "sqnxt.sub": (0.0, (1,)), "sqnxt.mul": (1.0, (0, 1)),
               "sqnxt.div": (1.0, (1,))}

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        if len(op.operands) != 2 or op.attrs.get("act", "none") != "none":
            return
        value, places = self.NEUTRAL[op.name]
        for i in places:
            c, x = _const(op.operands[i]), op.operands[1 - i]
            if c is not None and x.type == op.result.type and c.size and np.all(c == value):
                rw.replace_all_uses(op.result, x)
                rw.erase(op)
                rw.count("identity-arithmetic-removed")
                return


class FoldConstant(RewritePattern):
    """An op with a kernel whose operands are all constants (or ``shape`` of anything)
    -> a ``sqnxt.constant`` of its value."""

    ops = tuple(sorted(n for n in KERNELS if n in OPS and "structural" not in OPS[n].traits))

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        if len(op.results) != 1:
            return
        if op.name == "sqnxt.shape":
            args = [np.zeros(0)]  # the kernel reads only the rank; the shape is static
            value = np.array(op.operands[0].type.shape, dtype=np.int64)[
                op.attrs.get("start", 0):op.attrs.get("end", op.operands[0].type.rank)]
        else:
            args = [_const(v) for v in op.operands]
            if not op.operands or any(a is None for a in args):
                return
            value = eval_op(op, args).astype(op.result.type.np_dtype, copy=False)
        new = rw.constant(value, op.result.name + "_folded", Location(node=op.loc.node, op="sqnxt.constant"))
        rw.replace_all_uses(op.result, new)
        rw.erase(op)
        rw.count("constants-folded")


def _flat_source(graph: Graph, v):
    """If ``v`` is flatten(x, axis=1) or reshape(x, (N, -1)) used once, return x."""
    src = v.owner
    if len(graph.uses(v)) != 1 or src is None:
        return None
    x = src.operands[0] if src.operands else None
    if src.name == "sqnxt.flatten" and src.attrs["axis"] == 1 and x.type.rank >= 2:
        return x
    if (src.name == "sqnxt.reshape" and x.type.rank >= 2
            and v.type.shape == (x.type.shape[0], math.prod(x.type.shape[1:]))):
        return x
    return None


def _rows(x) -> bool:
    """``x`` (a matmul's left operand) has several rows, each a product with B of its own:
    rank > 2, or rank 2 with a first axis above 1 (a (L, C) sequence a reshape made).  Such
    a matmul by a constant is a 1x1 conv over its rows (layers.py), never an fc, whose
    first axis is the batch (one row)."""
    return x.type.rank > 2 or (x.type.rank == 2 and x.type.shape[0] > 1)


def _make_fc(rw: Rewriter, old, x, w: np.ndarray, b: np.ndarray | None) -> None:
    """Replace ``old`` (gemm, matmul) by fc(x, w, b); erase its old weights if now unused."""
    wv = rw.constant(np.ascontiguousarray(w, dtype=np.float32), old.result.name + "_w",
                     Location(node=old.loc.node))
    operands = [x, wv]
    if b is not None:
        operands.append(rw.constant(np.ascontiguousarray(b, dtype=np.float32),
                                    old.result.name + "_b", Location(node=old.loc.node)))
    fc = rw.add_op("sqnxt.fc", operands, loc=old.loc, result_names=[old.result.name + "_fc"])
    rw.replace_all_uses(old.result, fc.result)
    weights = old.operands[1].owner
    rw.erase(old)
    if weights is not None and weights.name == "sqnxt.constant" and not rw.graph.uses(weights.result):
        rw.erase(weights)   # the old layout of the weights: freed now, not at the end
        rw.count("dead-ops-erased")


class GemmToFc(RewritePattern):
    """gemm(flatten(x), B, C) with constant B, C -> fc(x, W, b); a gemm whose A has rows of
    its own (a first axis above 1) -> matmul(A, W^T, b) (``matmul-from-gemm``), costed over
    its rows."""

    ops = ("sqnxt.gemm",)
    reach = 2       # the type of the flatten's operand

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        if op.attrs["trans_a"]:
            return
        B = _const(op.operands[1])
        C = _const(op.operands[2]) if len(op.operands) > 2 else None
        if B is None or (len(op.operands) > 2 and C is None) or B.dtype != np.float32:
            return
        W = B if op.attrs["trans_b"] else B.T
        if op.attrs["alpha"] != 1:         # (no copy of the weights when alpha is 1)
            W = op.attrs["alpha"] * W
        K = W.shape[0]
        b = None
        if C is not None:
            if C.size not in (1, K) or (C.ndim == 2 and C.shape[0] != 1):
                return  # a per-row bias is not an fc bias
            b = np.broadcast_to(op.attrs["beta"] * C.reshape(-1), (K,))
        x = op.operands[0]
        if x.type.shape[0] > 1:       # rows of their own: a matmul by W^T, as a Linear's
            operands = [x, rw.constant(np.ascontiguousarray(W.T, dtype=np.float32), op.result.name + "_w",
                                       Location(node=op.loc.node))]
            if b is not None:
                operands.append(rw.constant(np.ascontiguousarray(b, dtype=np.float32), op.result.name + "_b",
                                            Location(node=op.loc.node)))
            mm = rw.add_op("sqnxt.matmul", operands, loc=op.loc, result_names=[op.result.name + "_mm"])
            rw.replace_all_uses(op.result, mm.result)
            rw.erase(op)
            rw.count("matmul-from-gemm")
            return
        flat = _flat_source(rw.graph, x)
        _make_fc(rw, op, flat if flat is not None else x, W, b)
        if flat is not None:
            rw.erase(x.owner)
        rw.count("fc-from-gemm")


class MatmulToFc(RewritePattern):
    """add(matmul(x, B), c) with constant B, c -> fc(x, B^T, c); a bare matmul(x, B) ->
    fc(x, B^T)."""

    ops = ("sqnxt.matmul",)

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        B = _const(op.operands[1])
        if _rows(op.operands[0]) and B is not None and B.ndim == 2 and B.dtype == np.float32:
            if self._scale_into_matmul(op, B, rw):
                return
        if len(op.operands) != 2:
            return
        x, Bv = op.operands
        if B is None or B.ndim != 2 or B.dtype != np.float32:
            return
        if _rows(x):
            self._bias_into_matmul(op, B, rw)
            return
        if x.type.rank != 2:
            return
        K = B.shape[1]
        users = rw.graph.uses(op.result)
        bias, add = None, None
        if len(users) == 1 and users[0][0].name == "sqnxt.add" and len(users[0][0].operands) == 2 \
                and users[0][0].attrs["act"] == "none":
            add = users[0][0]
            other = add.operands[1 - users[0][1]]
            c = _const(other)
            if c is not None and c.size == K and (c.ndim == 1 or (c.ndim == 2 and c.shape[0] == 1)):
                bias = c.reshape(-1)
            else:
                add = None
        if add is not None:
            rw.replace_all_uses(add.result, op.result)
            rw.erase(add)
        _make_fc(rw, op, x, B.T, bias)
        rw.count("fc-from-matmul" + ("-add" if bias is not None else ""))


    @staticmethod
    def _scale_into_matmul(op, B, rw: Rewriter) -> bool:
        """mul(matmul(x, B[, b]), c) of an N-D x with c one value per column ((K,) or (1, ..,
        1, K): ConvNeXt's layer scale) -> matmul(x, B*c, b*c): the columns of B and the bias
        scaled (``scale-into-matmul``; exact up to fp32 rounding, the product taken before the
        sum).  True when it rewrote."""
        if op.attrs["act"] != "none":
            return False
        users = rw.graph.uses(op.result)
        if len(users) != 1:
            return False
        mul, port = users[0]
        if mul.name != "sqnxt.mul" or len(mul.operands) != 2 or mul.result.type != op.result.type:
            return False
        c = _const(mul.operands[1 - port])
        K = B.shape[1]
        if (c is None or c.dtype != np.float32 or c.size != K or c.shape[-1] != K
                or c.ndim > op.result.type.rank or not np.all(np.isfinite(c))):
            return False
        c = c.reshape(-1).astype(np.float64)
        loc = Location(node=mul.loc.node)
        operands = [op.operands[0],
                    rw.constant((B.astype(np.float64) * c).astype(np.float32), op.result.name + "_w_scaled", loc)]
        if len(op.operands) > 2:
            b = _const(op.operands[2])
            if b is None:
                return False
            operands.append(rw.constant((b.astype(np.float64) * c).astype(np.float32),
                                        op.result.name + "_b_scaled", loc))
        mm = rw.add_op("sqnxt.matmul", operands, {"act": "none"}, loc=op.loc,
                       result_names=[op.result.name + "_scaled"])
        rw.replace_all_uses(mul.result, mm.result)
        rw.erase(mul)
        rw.erase(op)
        rw.count("scale-into-matmul")
        return True

    @staticmethod
    def _bias_into_matmul(op, B, rw: Rewriter) -> None:
        """add(matmul(x, B), c) of an N-D x (channels-last: ConvNeXt's Linear on NHWC) with
        c one value per column of B ((K,) or (1, .., 1, K)) -> matmul(x, B, c): the bias
        of the 1x1 conv the layer is."""
        if op.attrs["act"] != "none":
            return
        users = rw.graph.uses(op.result)
        if len(users) != 1:
            return
        add, port = users[0]
        if add.name != "sqnxt.add" or len(add.operands) != 2 or add.attrs["act"] != "none":
            return
        c = _const(add.operands[1 - port])
        K = B.shape[1]
        if (c is None or c.dtype != np.float32 or c.size != K or c.shape[-1] != K
                or c.ndim > op.result.type.rank or add.result.type != op.result.type):
            return
        mm = rw.add_op("sqnxt.matmul", [op.operands[0], op.operands[1],
                                         rw.constant(np.ascontiguousarray(c.reshape(-1)), op.result.name + "_b",
                                                     Location(node=add.loc.node))],
                       loc=op.loc, result_names=[op.result.name + "_bias"])
        rw.replace_all_uses(add.result, mm.result)
        rw.erase(add)
        rw.erase(op)
        rw.count("bias-into-matmul")


class MatmulThroughReshape(RewritePattern):
    """reshape(matmul(reshape(x, (L, C)), B), (1, .., K)) with x of rank above 2, batch 1,
    the first reshape merging x's leading axes (L = their product, C = x's last axis; a
    ``flatten`` at the last axis too) and the second splitting them back -> matmul(x, B):
    a Keras Dense on a sequence (N, L, C) or an NHWC map as tf2onnx writes it (Tensordot:
    Reshape, MatMul, Reshape, then the bias ``Add``) becomes the channels-last matmul
    PyTorch's Linear exports, a 1x1 conv over x's positions; the bias ``Add`` after the
    second reshape becomes its bias operand at once (as ``bias-into-matmul``), and
    fuse-relu folds the activation after it.  The same numbers exactly (the same dot
    products); without it the layer was an ``fc`` of an (L, C) input, costed as one row,
    with its bias and activation an element-wise layer after it
    (``matmul-through-reshape``)."""

    ops = ("sqnxt.matmul",)
    reach = 2       # the first reshape's operand (its type); the bias add after the second reshape

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        graph = rw.graph
        if len(op.operands) != 2 or op.attrs["act"] != "none":
            return
        x2, _ = op.operands
        B = _const(op.operands[1])
        if B is None or B.ndim != 2 or B.dtype != np.float32 or x2.type.rank != 2:
            return
        first = x2.owner
        if first is None or first.name not in ("sqnxt.reshape", "sqnxt.flatten"):
            return
        x = first.operands[0]
        lead, (C, K) = x.type.shape[:-1], B.shape
        if (x.type.rank < 3 or lead[0] != 1 or x.type.shape[-1] != C
                or x2.type.shape != (math.prod(lead), C)):
            return
        users = graph.uses(op.result)
        if len(users) != 1 or users[0][0].name != "sqnxt.reshape" or users[0][1] != 0:
            return
        second = users[0][0]
        if second.result.type.shape != tuple(lead) + (K,):
            return
        mm = rw.add_op("sqnxt.matmul", [x, op.operands[1]], loc=op.loc,
                       result_names=[second.result.name + "_mm"])
        rw.replace_all_uses(second.result, mm.result)
        rw.erase(second)
        rw.erase(op)
        if not graph.uses(first.result):
            rw.erase(first)
        rw.count("matmul-through-reshape")
        MatmulToFc._bias_into_matmul(mm, B, rw)


class GapFromReduceMean(RewritePattern):
    """reduce(x) {kind = mean, axes = H, W} of a 4-D x -> global_avgpool(x) (+ flatten)."""

    ops = ("sqnxt.reduce",)

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        if op.attrs["kind"] != "mean":
            return
        x = op.operands[0]
        if x.type.rank != 4 or sorted(a % 4 for a in op.attrs["axes"]) != [2, 3]:
            return
        gap = rw.add_op("sqnxt.global_avgpool", [x], loc=op.loc, result_names=[op.result.name + "_gap"])
        out = gap.result
        if not op.attrs["keepdims"]:
            out = rw.add_op("sqnxt.flatten", [out], {"axis": 1}, loc=op.loc,
                            result_names=[op.result.name + "_flat"]).result
        rw.replace_all_uses(op.result, out)
        rw.erase(op)
        rw.count("gap-from-reduce-mean")


def _window_takes(user, pads_hw) -> bool:
    """Whether ``user`` (a consumer of a zero pad) can take the pad as its own padding."""
    if user.name == "sqnxt.conv":
        return True
    if user.name == "sqnxt.avgpool" and not user.attrs["ceil_mode"]:
        (kh, kw), (t, l, b, r) = user.attrs["kernel"], user.attrs["pads"]
        pt, pl, pb, pr = pads_hw
        fits = t + pt < kh and b + pb < kh and l + pl < kw and r + pr < kw  # pads < kernel
        return fits and (user.attrs.get("count_include_pad", 0) == 1 or not any(user.attrs["pads"]))
    return False


#: The fused activations whose result is never negative (``act`` of a conv / fc / add, or
#: ``post_act`` after a fused residual add).
NONNEGATIVE_ACTS = ("relu", "relu6", "sigmoid", "hard_sigmoid")


def known_nonnegative(v, depth: int = 2) -> bool:
    """Whether every element of ``v`` is >= 0 whatever the inputs (NaN aside): the result
    of a relu, sigmoid, hard_sigmoid or clip with ``min >= 0``, of a conv / fc / add whose
    fused activation is one of :data:`NONNEGATIVE_ACTS` (``post_act`` with a residual add),
    a constant >= 0, or a max / average pool of such a value (``depth``: how many producers
    back it looks, the pattern's reach)."""
    o = v.owner
    if o is None or depth < 1:
        return False
    if o.name in ("sqnxt.relu", "sqnxt.sigmoid", "sqnxt.hard_sigmoid"):
        return True
    if o.name == "sqnxt.clip":
        return o.attrs["min"] >= 0
    if o.name in ("sqnxt.conv", "sqnxt.fc", "sqnxt.add"):
        return o.attrs["post_act" if o.attrs.get("residual") else "act"] in NONNEGATIVE_ACTS
    if o.name in ("sqnxt.maxpool", "sqnxt.avgpool", "sqnxt.global_avgpool"):
        return known_nonnegative(o.operands[0], depth - 1)
    c = o.const_value()
    return c is not None and c.dtype.kind == "f" and bool(np.all(c >= 0))


def _maxpool_takes(user, x, pads_hw) -> bool:
    """Whether the maxpool ``user`` reading ``pad(x)`` gives the same result with the pad
    added to its own ``pads``: the sums stay below the kernel and the output size is the
    same (ceil mode may drop a window that started in the pad's end rows)."""
    (kh, kw), (sh, sw), (t, l, b, r) = user.attrs["kernel"], user.attrs["strides"], user.attrs["pads"]
    pt, pl, pb, pr = pads_hw
    t, l, b, r = t + pt, l + pl, b + pb, r + pr
    if not (t < kh and b < kh and l < kw and r < kw):
        return False
    c = user.attrs["ceil_mode"]
    _, _, h, w = x.type.shape
    return (pool_out(h, kh, sh, t, b, c), pool_out(w, kw, sw, l, r, c)) == user.result.type.shape[2:]


class PadIntoWindow(RewritePattern):
    """conv(pad(x)) with a zero pad on H and W read only by windows that can take it ->
    conv(x) with the pad added to its ``pads`` (likewise an avgpool, and a maxpool when x
    is known >= 0 or the pad's value is -inf)."""

    ops = ("sqnxt.pad",)
    reach = 2       # known_nonnegative: the pad's operand's producer, a pool's operand's producer

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        value = op.attrs["value"]
        if op.attrs["mode"] != "constant" or value not in (0.0, float("-inf")):
            return
        x, pads = op.operands[0], op.attrs["pads"]
        if x.type.rank != 4 or any(pads[i] for i in (0, 1, 4, 5)):
            return            # pads on N or C
        pads_hw = pt, pl, pb, pr = pads[2], pads[3], pads[6], pads[7]
        uses = rw.graph.uses(op.result)
        if not uses or any(i != 0 for _, i in uses):
            return
        if any(u.name != "sqnxt.maxpool" and (value != 0 or not _window_takes(u, pads_hw)) for u, _ in uses):
            return
        if any(u.name == "sqnxt.maxpool" for u, _ in uses):
            # the pool's own padding never wins the max: a zero pad is the same only when
            # nothing it pads is negative (then every window holds a real element >= 0)
            if value == 0 and not known_nonnegative(x):
                return rw.decline("skipped-maxpool-input-maybe-negative")
            if not all(_maxpool_takes(u, x, pads_hw) for u, _ in uses if u.name == "sqnxt.maxpool"):
                return rw.decline("skipped-maxpool-pads")
        for u, _ in uses:
            t, l, b, r = u.attrs["pads"]
            rw.set_attr(u, "pads", (t + pt, l + pl, b + pb, r + pr))
            if u.name == "sqnxt.avgpool":
                rw.set_attr(u, "count_include_pad", 1)
            rw.set_operand(u, 0, x)
        rw.erase(op)
        kinds = {u.name for u, _ in uses}
        rw.count("pad-into-" + ("conv" if kinds == {"sqnxt.conv"} else
                                "maxpool" if kinds == {"sqnxt.maxpool"} else "window"))


def _near(c, target: float) -> bool:
    """``c`` (a constant array, or None) is ``target`` in every element, up to a few fp32
    ulps (an exporter's ``1/6`` rounded to float32, or written as 0.1666667)."""
    return (c is not None and c.size >= 1 and c.dtype.kind == "f"
            and bool(np.all(np.abs(c.astype(np.float64) - target) <= 1e-6 * abs(target))))


def _const_operand(op, target: float):
    """The operand of the two-operand ``op`` that is not a constant equal to ``target``
    (:func:`_near`), or None."""
    for i in (0, 1):
        if _near(_const(op.operands[i]), target) and _const(op.operands[1 - i]) is None:
            return op.operands[1 - i]
    return None


def _relu6_of_plus3(graph: Graph, v):
    """(x, [clip, add]) when ``v`` is ``clip(add(x, 3)) {min = 0, max = 6}`` (relu6, either
    operand order), the clip and the add used only there and of x's type; else None."""
    clip = _single(graph, v, "sqnxt.clip")
    if clip is None or clip.attrs["min"] != 0.0 or clip.attrs["max"] != 6.0:
        return None
    add = _single(graph, clip.operands[0], "sqnxt.add")
    if add is None or len(add.operands) != 2 or add.attrs["act"] != "none":
        return None
    x = _const_operand(add, 3.0)
    if x is None or add.result.type != x.type or clip.result.type != x.type:
        return None
    return x, [clip, add]


def _div_or_mul_by_6(graph: Graph, op):
    """The operand ``op`` divides by 6 (``div(a, 6)``, ``mul(a, 1/6)``, ``mul(1/6, a)``), or None."""
    if op.name == "sqnxt.div":
        return op.operands[0] if _near(_const(op.operands[1]), 6.0) and _const(op.operands[0]) is None else None
    return _const_operand(op, 1 / 6)


class HardSigmoidFromRelu6(RewritePattern):
    """``relu6(y + 3) / 6`` (Keras' hard_sigmoid through tf2onnx: relu6 is ``clip(0, 6)``;
    ``/ 6`` as a div or a mul by 1/6, either order) -> ``hard_sigmoid(y) {alpha = 1/6,
    beta = 1/2}``, matched at the clip (the add and the clip used only there).  Keras'
    hard-swish ``y * (relu6(y + 3) / 6)`` then becomes ``mul(y, hard_sigmoid(y))``, which
    :class:`HardSwishFromMul` takes."""

    ops = ("sqnxt.clip",)
    reach = 2       # the add's operand (its type)

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        graph = rw.graph
        r6 = _relu6_of_plus3(graph, op.result)
        users = graph.uses(op.result)
        if r6 is None or len(users) != 1 or users[0][0].name not in ("sqnxt.mul", "sqnxt.div"):
            return
        scaled = users[0][0]
        if _div_or_mul_by_6(graph, scaled) is not op.result or scaled.result.type != r6[0].type:
            return
        y, (clip, add) = r6
        hs = rw.add_op("sqnxt.hard_sigmoid", [y], {"alpha": 1 / 6, "beta": 0.5}, loc=scaled.loc,
                       result_names=[scaled.result.name + "_hsig"])
        rw.replace_all_uses(scaled.result, hs.result)
        for dead in (scaled, clip, add):
            rw.erase(dead)
        rw.count("hard-sigmoid-from-relu6")


class HardSwishFromMul(RewritePattern):
    """HardSwish as exporters spell it -> ``hard_swish(y)`` (the intermediates used only
    there): ``mul(y, hard_sigmoid(y) {alpha = 1/6, beta = 0.5})`` in either order (PyTorch
    before opset 14, and Keras' ``y * (relu6(y + 3) / 6)`` once
    :class:`HardSigmoidFromRelu6` made its hard_sigmoid), and ``(y * relu6(y + 3)) / 6``
    (the product in either order, ``/ 6`` as a div or a mul by 1/6)."""

    ops = ("sqnxt.mul", "sqnxt.div")
    reach = 3       # (div or mul by 6) <- mul <- clip <- add (the constants are read with their users)

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        graph = rw.graph
        match = None
        if op.name == "sqnxt.mul":
            for i in (0, 1):
                h, y = op.operands[i].owner, op.operands[1 - i]
                if (h is not None and h.name == "sqnxt.hard_sigmoid" and h.operands[0] is y
                        and _near(np.float64(h.attrs["alpha"]), 1 / 6) and h.attrs["beta"] == 0.5
                        and len(graph.uses(h.result)) == 1):
                    match = y, [h], "hard-swish-from-mul"
                    break
        if match is None:           # (y * relu6(y + 3)) / 6
            p = _div_or_mul_by_6(graph, op)
            prod = _single(graph, p, "sqnxt.mul") if p is not None else None
            if prod is not None:
                for i in (0, 1):
                    r6 = _relu6_of_plus3(graph, prod.operands[i])
                    if r6 is not None and r6[0] is prod.operands[1 - i] and prod.result.type == r6[0].type:
                        match = r6[0], [prod, *r6[1]], "hard-swish-from-relu6"
                        break
        if match is None:
            return
        y, parts, key = match
        if op.result.type != y.type:
            return
        hs = rw.add_op("sqnxt.hard_swish", [y], loc=op.loc, result_names=[op.result.name + "_hswish"])
        rw.replace_all_uses(op.result, hs.result)
        rw.erase(op)
        for part in parts:          # each used only by the op erased just before it
            rw.erase(part)
        rw.count(key)


_SQRT2 = math.sqrt(2.0)


class GeluFromParts(RewritePattern):
    """GELU as exporters spell it -> ``gelu(x)``: the product of ``x``, ``1/2`` and ``1 +
    erf(x / sqrt(2))`` as two multiplies in any grouping and operand order (``x * 0.5 * (1
    + erf(.))``, ``(x * (1 + erf(.))) * 0.5``, ``x * (0.5 * (1 + erf(.)))``; the half as a
    mul by 0.5 or a div by 2), ``x / sqrt(2)`` as a div by sqrt(2) or a mul by 1/sqrt(2),
    ``1 + erf`` in either order; matched at the last multiply, every intermediate used
    only there and of x's type.  Constants to a few fp32 ulps (:func:`_near`); another
    constant is another function and stays."""

    ops = ("sqnxt.mul", "sqnxt.div")
    reach = 4       # last mul <- inner mul <- add <- erf <- x / sqrt2

    @staticmethod
    def _factors(graph: Graph, op):
        """The factors of the product ``op`` (a mul, or a div by 2: the half): a list of
        values and the marker ``"half"`` for a constant 1/2, or None (another constant)."""
        if op.name == "sqnxt.div":
            if not _near(_const(op.operands[1]), 2.0) or _const(op.operands[0]) is not None:
                return None
            return [op.operands[0], "half"]
        if len(op.operands) != 2:
            return None
        out = []
        for v in op.operands:
            c = _const(v)
            if c is None:
                out.append(v)
            elif _near(c, 0.5):
                out.append("half")
            else:
                return None
        return out

    @staticmethod
    def _scaled_x(graph: Graph, v):
        """x when ``v`` is ``div(x, sqrt(2))`` or ``mul(x, 1 / sqrt(2))`` (either order),
        used only there; else None."""
        o = v.owner
        if o is None or len(graph.uses(v)) != 1 or len(o.operands) != 2:
            return None
        if o.name == "sqnxt.div":
            ok = _near(_const(o.operands[1]), _SQRT2) and _const(o.operands[0]) is None
            return o.operands[0] if ok else None
        return _const_operand(o, 1 / _SQRT2) if o.name == "sqnxt.mul" else None

    def _one_plus_erf(self, graph: Graph, v):
        """(x, [add, erf, scale]) when ``v`` is ``add(erf(x / sqrt(2)), 1)`` (either order),
        each part used only by the next; else None."""
        add = _single(graph, v, "sqnxt.add")
        if add is None or len(add.operands) != 2 or add.attrs["act"] != "none":
            return None
        e = _const_operand(add, 1.0)
        erf = _single(graph, e, "sqnxt.erf") if e is not None else None
        if erf is None:
            return None
        x = self._scaled_x(graph, erf.operands[0])
        if x is None:
            return None
        return x, [add, erf, erf.operands[0].owner]

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        graph = rw.graph
        top = self._factors(graph, op)
        if top is None:
            return
        leaves, inner = [], []
        for f in top:               # an operand that is itself a product used only here: its factors
            o = None if isinstance(f, str) else f.owner
            sub = (self._factors(graph, o) if o is not None and o.name in ("sqnxt.mul", "sqnxt.div")
                   and len(graph.uses(f)) == 1 else None)
            if sub is not None:
                inner.append(o)
                leaves.extend(sub)
            else:
                leaves.append(f)
        if len(inner) != 1 or len(leaves) != 3 or sum(isinstance(f, str) for f in leaves) != 1:
            return
        u, v = [f for f in leaves if not isinstance(f, str)]
        for x, a in ((u, v), (v, u)):
            m = self._one_plus_erf(graph, a)
            if m is None or m[0] is not x:
                continue
            parts = [inner[0], *m[1]]
            if any(p.result.type != x.type for p in parts) or op.result.type != x.type:
                return
            g = rw.add_op("sqnxt.gelu", [x], loc=op.loc, result_names=[op.result.name + "_gelu"])
            rw.replace_all_uses(op.result, g.result)
            rw.erase(op)
            for part in parts:      # each used only by the op erased before it
                rw.erase(part)
            rw.count("gelu-from-parts")
            return


def _users(graph: Graph, v) -> list:
    """The distinct ops reading ``v`` (an op reading it twice, ``mul(d, d)``, once)."""
    seen = {}
    for u, _ in graph.uses(v):
        seen.setdefault(u.id, u)
    return list(seen.values())


def _ids(ops) -> set[int]:
    return {o.id for o in ops}


def _other(op, v):
    """The other operand of the two-operand ``op`` one of whose operands is ``v``, or None."""
    if len(op.operands) != 2:
        return None
    a, b = op.operands
    return b if a is v else a if b is v else None


def _affine_const(c, norm: tuple[int, ...]) -> bool:
    """``c`` is a constant that broadcasts over the normalized axes ``norm`` (a scale or
    shift; leading axes of size 1 beyond them, as Keras' (1, 1, C) gamma, are allowed)."""
    if c is None or c.dtype.kind != "f" or any(d != 1 for d in c.shape[:max(0, c.ndim - len(norm))]):
        return False
    try:
        return tuple(np.broadcast_shapes(_trailing(c, norm).shape, norm)) == tuple(norm)
    except ValueError:
        return False


def _trailing(c: np.ndarray, norm: tuple[int, ...]) -> np.ndarray:
    """``c`` without its leading size-1 axes beyond the normalized axes ``norm``."""
    return c.reshape(c.shape[max(0, c.ndim - len(norm)):])


def _mean_axes(op) -> list[int] | None:
    """The axes (sorted, non-negative) ``op`` averages over keeping them as size 1: a
    ``reduce`` of kind mean with keepdims, or a ``global_avgpool`` (H and W of an NCHW
    tensor: tf2onnx writes the moments of a Keras LayerNormalization over the last two
    axes of a rank-4 tensor this way, and gap-from-reduce-mean makes one of PyTorch's
    ``ReduceMean`` over them); else None."""
    if op is None:
        return None
    if op.name == "sqnxt.global_avgpool":
        return [2, 3]
    if op.name != "sqnxt.reduce" or op.attrs["kind"] != "mean" or not op.attrs["keepdims"]:
        return None
    r = op.operands[0].type.rank
    return sorted(a % r for a in op.attrs["axes"]) or None


class LayerNormFromParts(RewritePattern):
    """LayerNormalization spelled out -> ``layer_norm(x, scale, shift)``, matched from the
    square root of ``var + eps`` (each intermediate used only there):

    * the statistics: ``mean = mean(x)``, ``d = sub(x, mean)``, ``var = mean(pow(d, 2))`` or
      ``mean(mul(d, d))`` (tf's ``squared_difference``), ``add(var, eps)`` (either order),
      the means over x's trailing axes (keepdims; a ``reduce`` or a ``global_avgpool``:
      :func:`_mean_axes`);
    * the normalization: ``div(d, sqrt(.))`` (PyTorch before opset 17), or ``mul(d, inv)``
      with ``inv = 1 / sqrt(.)`` written ``reciprocal(sqrt(.))`` (tf2onnx's Rsqrt),
      ``div(1, sqrt(.))`` or ``pow(., -0.5)``; then optionally a mul by a constant scale and an
      add of a constant shift (``layer-norm-from-parts``);
    * or the moments spelling (tf's ``batch_normalization(x, mean, var, beta, gamma)``,
      Keras 3's LayerNormalization): ``inv`` (times a constant gamma, optionally), then
      ``add(mul(x, inv), sub(beta, mul(mean, inv)))`` or, without beta,
      ``add(mul(x, inv), neg(mul(mean, inv)))`` / ``sub(mul(x, inv), mul(mean, inv))``; or
      with ``-mean``: ``add(mul(x, inv), add(mul(neg(mean), inv), beta))`` / without beta
      ``add(mul(x, inv), mul(neg(mean), inv))`` (``layer-norm-from-moments``)."""

    ops = ("sqnxt.sqrt", "sqnxt.pow")
    reach = 5       # sqrt <- add <- mean <- pow <- sub <- mean; sqrt -> ... -> the last add

    def _stats(self, graph: Graph, ve):
        """(x, mean_op, sub, sq, var, add, eps, axes) when ``ve`` is ``var(x) + eps`` as the
        class docstring says, else None."""
        add = _single(graph, ve, "sqnxt.add")
        if add is None or len(add.operands) != 2 or add.attrs["act"] != "none":
            return None
        for i in (0, 1):
            eps = _const(add.operands[1 - i])
            var = add.operands[i].owner
            if (eps is not None and eps.size == 1 and _mean_axes(var) is not None
                    and len(graph.uses(var.result)) == 1):
                break
        else:
            return None
        sq = var.operands[0].owner
        if sq is None or len(_users(graph, sq.result)) != 1:
            return None
        if sq.name == "sqnxt.pow" and _const(sq.operands[1]) is not None and np.all(_const(sq.operands[1]) == 2):
            d = sq.operands[0]
        elif sq.name == "sqnxt.mul" and sq.operands[0] is sq.operands[1]:
            d = sq.operands[0]
        else:
            return None
        sub = d.owner
        if sub is None or sub.name != "sqnxt.sub":
            return None
        x, mean = sub.operands
        mean_op = mean.owner
        axes = _mean_axes(mean_op)
        if axes is None or mean_op.operands[0] is not x:
            return None
        if axes != list(range(axes[0], x.type.rank)) or _mean_axes(var) != axes:
            return None
        return x, mean_op, sub, sq, var, add, eps, axes

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        graph = rw.graph
        if op.name == "sqnxt.pow":      # pow(var + eps, -0.5): inv itself
            e = _const(op.operands[1])
            if e is None or e.size != 1 or float(e.reshape(-1)[0]) != -0.5:
                return
        st = self._stats(graph, op.operands[0])
        if st is None:
            return
        x, mean_op, sub, sq, var, add, eps, axes = st
        d, mean = sub.result, mean_op.result
        norm = x.type.shape[axes[0]:]
        chain = [op]                    # the ops from the square root on
        end = inv = None
        if op.name == "sqnxt.sqrt":
            users = _users(graph, op.result)
            if len(users) != 1:
                return
            u = users[0]
            if u.name == "sqnxt.div" and u.operands == [d, op.result]:
                end = u                 # d / sqrt(.)
            elif u.name == "sqnxt.reciprocal" or (u.name == "sqnxt.div" and u.operands[1] is op.result
                                                  and _near(_const(u.operands[0]), 1.0)):
                inv = u
            else:
                return
            chain.append(u)
        else:
            inv = op
        if inv is not None:
            users = _users(graph, inv.result)
            if len(users) == 1 and _other(users[0], inv.result) is d and users[0].name == "sqnxt.mul":
                end = users[0]          # d * rsqrt(.)
                chain.append(end)
        if end is not None:             # then an affine tail of constants, if any
            if _ids(_users(graph, d)) != _ids([sq, end]) or _ids(_users(graph, mean)) != _ids([sub]):
                return
            scale = shift = None
            users = graph.uses(end.result)
            for kind in ("sqnxt.mul", "sqnxt.add"):
                if len(users) != 1 or users[0][0].name != kind or len(users[0][0].operands) != 2:
                    break
                u = users[0][0]
                c = _const(u.operands[1 - users[0][1]])
                if not _affine_const(c, norm) or (kind == "sqnxt.add" and u.attrs["act"] != "none"):
                    break
                if kind == "sqnxt.mul":
                    scale = c
                else:
                    shift = c
                end, users = u, graph.uses(u.result)
                chain.append(u)
            key = "layer-norm-from-parts"
        else:                           # tf.nn.batch_normalization, Keras 3's LayerNormalization
            if inv is None or _ids(_users(graph, d)) != _ids([sq]):
                return
            scale = shift = None
            users = _users(graph, inv.result)
            if len(users) == 1 and users[0].name == "sqnxt.mul":
                gamma = _const(_other(users[0], inv.result))
                if not _affine_const(gamma, norm):
                    return
                scale, inv = gamma, users[0]
                chain.append(inv)
                users = _users(graph, inv.result)
            if len(users) != 2 or any(u.name != "sqnxt.mul" for u in users):
                return
            xm = next((u for u in users if _other(u, inv.result) is x), None)
            mm = next((u for u in users if u is not xm), None)
            if xm is None or mm is None:
                return
            m_in = _other(mm, inv.result)           # mean, or neg(mean) (then mm is -mean * inv)
            neg = _single(graph, m_in, "sqnxt.neg")
            negated = neg is not None and neg.operands[0] is mean
            if not negated and m_in is not mean:
                return
            if _ids(_users(graph, mean)) != _ids([sub, neg if negated else mm]):
                return
            chain += [xm, *([neg] if negated else []), mm]
            xus, mus = _users(graph, xm.result), _users(graph, mm.result)
            if len(xus) != 1 or len(mus) != 1:
                return
            xu, mu = xus[0], mus[0]
            if mu is xu:                # x * inv - mean * inv, x * inv + (-mean) * inv
                if xu.operands != [xm.result, mm.result] or xu.name != ("sqnxt.add" if negated else "sqnxt.sub") \
                        or xu.attrs.get("act", "none") != "none":
                    return
            else:
                if not negated and mu.name == "sqnxt.sub" and mu.operands[1] is mm.result \
                        and _affine_const(_const(mu.operands[0]), norm):
                    shift = _const(mu.operands[0])      # x * inv + (beta - mean * inv)
                elif negated and mu.name == "sqnxt.add" and mu.attrs["act"] == "none" \
                        and _affine_const(_const(_other(mu, mm.result)), norm):
                    shift = _const(_other(mu, mm.result))   # x * inv + ((-mean) * inv + beta)
                elif negated or mu.name != "sqnxt.neg":     # x * inv + -(mean * inv)
                    return
                if (len(_users(graph, mu.result)) != 1 or xu.name != "sqnxt.add"
                        or _other(xu, mu.result) is not xm.result or xu.attrs["act"] != "none"):
                    return
                chain.append(mu)
            end = xu
            chain.append(end)
            key = "layer-norm-from-moments"
        if end.result.type != x.type:
            return
        if scale is None:
            scale = np.ones((), dtype=np.float32)
        operands = [x, rw.constant(np.broadcast_to(_trailing(scale, norm), norm).astype(np.float32),
                                   end.result.name + "_scale", Location(node=end.loc.node))]
        if shift is not None:
            operands.append(rw.constant(np.broadcast_to(_trailing(shift, norm), norm).astype(np.float32),
                                        end.result.name + "_shift", Location(node=end.loc.node)))
        ln = rw.add_op("sqnxt.layer_norm", operands, {"axis": axes[0], "epsilon": float(eps.reshape(-1)[0])},
                       loc=end.loc, result_names=[end.result.name + "_ln"])
        rw.replace_all_uses(end.result, ln.result)
        for dead in (*reversed(chain), add, var, sq, sub, mean_op):
            if dead in graph and not graph.uses(dead.result):
                rw.erase(dead)
        n = rw.erase_dead()
        rw.count(key)
        rw.count("dead-ops-erased", n)


#: Element-wise ops a transpose moves ahead of (with one constant operand), and how many.
HOISTABLE = ("sqnxt.mul", "sqnxt.add", "sqnxt.sub", "sqnxt.div")
#: element-wise functions of one tensor that read no other element (a transpose commutes
#: with them); softmax and lrn read along an axis
_READS_ALONG_AXIS = ("sqnxt.softmax", "sqnxt.lrn")
MAX_HOIST = 6


def _commutes(e) -> int | None:
    """The port of ``e``'s data operand when ``e`` commutes with a transpose of it: an
    element-wise mul / add / sub / div of a tensor and a constant that does not enlarge it,
    an element-wise function of one tensor that reads no other element (relu, clip,
    hard-swish, sigmoid, ...), or a pad (its pads permuted with the axes); else None."""
    if len(e.operands) == 1 and (e.name == "sqnxt.pad" or (
            e.get_trait(Elementwise) is not None and e.name not in _READS_ALONG_AXIS
            and e.operands[0].type == e.result.type)):
        return 0
    if e.name not in HOISTABLE or len(e.operands) != 2 or e.attrs.get("act", "none") != "none":
        return None
    consts = [_const(o) for o in e.operands]
    for i in (0, 1):
        if consts[1 - i] is not None and consts[i] is None and e.operands[i].type == e.result.type \
                and consts[1 - i].ndim <= e.result.type.rank:
            return i
    return None


def _hoistable(graph: Graph, v, user):
    """(op, port of its data operand) when ``v``'s producer, read only by ``user``,
    commutes with a transpose (:func:`_commutes`); else None."""
    e = v.owner
    if e is None or _ids(_users(graph, v)) != {user.id} or len(graph.uses(v)) != 1:
        return None
    i = _commutes(e)
    return None if i is None else (e, i)


def _permuted(rw: Rewriter, e, i: int, data, q: tuple, suffix: str):
    """``e`` rebuilt on ``data`` as its operand ``i`` with its constant and pads permuted by
    ``q`` (new axis a is e's axis ``q[a]``): e moved across a transpose (:func:`_commutes`);
    the new result."""
    r = len(q)
    if len(e.operands) == 1:
        attrs = dict(e.attrs)
        if e.name == "sqnxt.pad":
            pads = e.attrs["pads"]
            attrs["pads"] = tuple(pads[a] for a in q) + tuple(pads[r + a] for a in q)
        return rw.add_op(e.name, [data], attrs, loc=e.loc, result_names=[e.result.name + suffix]).result
    c = _const(e.operands[1 - i])
    ct = np.ascontiguousarray(np.transpose(c.reshape((1,) * (r - c.ndim) + c.shape), q))
    cv = rw.constant(ct, e.result.name + "_c" + suffix, Location(node=e.loc.node))
    return rw.add_op(e.name, [data, cv] if i == 0 else [cv, data], dict(e.attrs), loc=e.loc,
                     result_names=[e.result.name + suffix]).result


def _transposed_below(rw: Rewriter, op, inner, perm: tuple, loc, key: str) -> None:
    """Replace ``op``'s result by ``transpose(inner, perm)`` (a transpose moved below
    ``op``, whose rewrite ``inner`` is), erase ``op`` and count ``key``."""
    out = rw.add_op("sqnxt.transpose", [inner], {"perm": perm}, loc=loc, result_names=[op.result.name + "_t"])
    if out.result.type != op.result.type:      # cannot happen: the op commutes with the permutation
        raise RuntimeError(f"{key}: {out.result.type} for {op.result.type}")
    rw.replace_all_uses(op.result, out.result)
    rw.erase(op)
    rw.count(key)


class TransposePair(RewritePattern):
    """transpose(transpose(x, p1), p2) -> x when the two cancel (``p1[p2[i]] = i``), else
    transpose(x, p1 o p2) (the first kept while it has other users); a transpose that keeps
    every axis in place -> x.  Exporters of NHWC graphs (tf2onnx) leave such pairs around
    the layers they convert to NCHW.

    And a transpose behind up to :data:`MAX_HOIST` ops that commute with it (each read
    only by the next: element-wise mul / add / sub / div with a constant, element-wise
    functions of one tensor such as relu or hard-swish, pads) whose first operand is a
    graph input or another transpose moves ahead of them, the constants and pads
    transposed with it: ``transpose(op(x, c), p) = op(transpose(x, p), transpose(c, p))``
    element for element.  tf2onnx's NHWC input with Keras' Rescaling / Normalization in
    front of the NCHW transpose then runs them in the layout of the rest of the network, as
    PyTorch does, and an NHWC island tf2onnx leaves between two convs (``transpose, mul by
    the BN scale, relu, pad, transpose``, when its transpose optimizer gives up, as on
    Keras' MobileNetV3Large) closes up, its transposes cancelled (``transpose-hoisted``)."""

    ops = ("sqnxt.transpose",)
    reach = MAX_HOIST + 1   # the chain of element-wise ops, then its first operand's producer

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        perm = tuple(op.attrs["perm"])
        x = op.operands[0]
        first = x.owner
        key = "identity-transpose-removed"
        if first is not None and first.name == "sqnxt.transpose":
            x = first.operands[0]
            perm = tuple(first.attrs["perm"][p] for p in perm)   # result axis i = x's axis p1[p2[i]]
            key = "transposes-cancelled"
        elif perm != tuple(range(len(perm))):
            return self._hoist(op, rw)
        if perm == tuple(range(len(perm))):
            rw.replace_all_uses(op.result, x)
            rw.erase(op)
        else:
            rw.set_operand(op, 0, x)
            rw.set_attr(op, "perm", perm)
            key = "transposes-composed"
        if first is not None and first.name == "sqnxt.transpose" and not rw.graph.uses(first.result):
            rw.erase(first)
        rw.count(key)

    def _hoist(self, op, rw: Rewriter) -> None:
        graph = rw.graph
        chain, v, user = [], op.operands[0], op
        while len(chain) < MAX_HOIST:
            h = _hoistable(graph, v, user)
            if h is None:
                break
            chain.append(h)
            user, v = h[0], h[0].operands[h[1]]
        base = v.owner
        if not chain or base is None or base.name not in ("sqnxt.input", "sqnxt.transpose"):
            return
        perm = tuple(op.attrs["perm"])
        cur = rw.add_op("sqnxt.transpose", [v], {"perm": perm}, loc=op.loc,
                        result_names=[op.result.name + "_hoisted"]).result
        for e, i in reversed(chain):       # transpose(f(v), p) = f(transpose(v, p))
            cur = _permuted(rw, e, i, cur, perm, "_t")
        rw.replace_all_uses(op.result, cur)
        rw.erase(op)
        for e, _ in chain:
            rw.erase(e)
        rw.count("transpose-hoisted")


class TransposesThroughBinary(RewritePattern):
    """op(transpose(a, p), transpose(b, p)) of an element-wise mul / add / sub / div whose
    two operands are transposes by the same permutation, each read only here, of one rank
    (broadcasting commutes with the permutation) -> transpose(op(a, b), p): the same
    numbers element for element, one
    transpose instead of two, and the one left meets the next transpose (tf2onnx's residual
    adds inside an NHWC island: :class:`TransposePair` then cancels the pair)
    (``transposes-through-binary``)."""

    ops = HOISTABLE

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        if len(op.operands) != 2 or op.attrs.get("act", "none") != "none":
            return
        ts = [v.owner for v in op.operands]
        if any(t is None or t.name != "sqnxt.transpose" or len(rw.graph.uses(t.result)) != 1 for t in ts):
            return
        if tuple(ts[0].attrs["perm"]) != tuple(ts[1].attrs["perm"]) or ts[0] is ts[1]:
            return
        a, b = ts[0].operands[0], ts[1].operands[0]
        if a.type.rank != b.type.rank or a.type.dtype != b.type.dtype:
            return
        inner = rw.add_op(op.name, [a, b], dict(op.attrs), loc=op.loc, result_names=[op.result.name + "_nchw"])
        _transposed_below(rw, op, inner.result, tuple(ts[0].attrs["perm"]), ts[0].loc, "transposes-through-binary")
        for x in ts:
            rw.erase(x)


class TransposeSunk(RewritePattern):
    """f(transpose(x, p)) -> transpose(f(x), p) for an op that commutes with a transpose (an
    element-wise function of one tensor that reads no other element, an element-wise
    mul / add / sub / div by a constant, a pad: :func:`_hoistable`'s kinds), the transpose
    read only by it and not of a graph input (:class:`InputLayoutOnHost` takes those): the
    transpose moves down one op, its constant and pads permuted back, until it meets the
    ops that take it (:class:`TransposePair`, :class:`TransposesThroughBinary`,
    :class:`ReduceThroughTranspose`) at the forks of an NHWC island, where the transposes
    back to NCHW cancel it (``transpose-sunk``).  :class:`TransposePair`'s hoist moves a
    transpose up through the same ops only to a graph input or another transpose, so the
    two never undo each other."""

    ops = ("sqnxt.pad",) + HOISTABLE + tuple(sorted(n for n, d in OPS.items() if "elementwise" in d.traits
                                                   and n not in _READS_ALONG_AXIS + HOISTABLE))

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        i = _commutes(op)
        if i is None:
            return
        t = op.operands[i].owner
        if t is None or t.name != "sqnxt.transpose" or len(rw.graph.uses(t.result)) != 1:
            return
        x = t.operands[0]
        if x.owner is None or x.owner.name == "sqnxt.input":
            return
        perm = tuple(t.attrs["perm"])
        inv = tuple(sorted(range(len(perm)), key=lambda a: perm[a]))
        _transposed_below(rw, op, _permuted(rw, op, i, x, inv, "_nchw"), perm, t.loc, "transpose-sunk")
        rw.erase(t)


class ReduceThroughTranspose(RewritePattern):
    """reduce(transpose(x, p), axes) with keepdims -> transpose(reduce(x, p[axes]), p) when
    ``p[axes]`` are x's trailing axes: the same values (a reduction over the permuted axes),
    in x's layout, a pool (a mean over other axes, a channels-last LayerNorm's, stays: its
    pattern reads the trailing axes of the tensor it normalizes); the transpose after it
    then meets the next one (tf2onnx's squeeze-excitation pooling of an NHWC island,
    ``ReduceMean(axes = [1, 2])``: as a mean over H and W of NCHW it becomes a global pool)
    (``reduce-through-transpose``)."""

    ops = ("sqnxt.reduce",)

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        t = op.operands[0].owner
        if t is None or t.name != "sqnxt.transpose" or not op.attrs["keepdims"]:
            return
        perm = tuple(t.attrs["perm"])
        r = len(perm)
        axes = tuple(sorted(perm[a % r] for a in op.attrs["axes"]))
        if axes != tuple(range(r - len(axes), r)):
            return      # only to x's trailing axes (a pool); over others the exporter's own layout stays
        inner = rw.add_op("sqnxt.reduce", [t.operands[0]], {**op.attrs, "axes": axes}, loc=op.loc,
                          result_names=[op.result.name + "_nchw"])
        _transposed_below(rw, op, inner.result, perm, t.loc, "reduce-through-transpose")
        if not rw.graph.uses(t.result):
            rw.erase(t)


class InputLayoutOnHost(RewritePattern):
    """transpose(x) of a graph input x -> input_layout(x) (the ``host`` trait): the host
    writes the network's input to DRAM, so it writes it in the layout the network reads
    (tf2onnx's NHWC input transposed to NCHW) and the accelerator never copies it; the
    words are reported as host work (docs/ir.md, "The host partition"), as a PyTorch
    export's NCHW input costs nothing.  Tried after :class:`TransposePair`, so a transpose
    hoisted above the input's rescaling is the one that moves (``input-transpose-to-host``)."""

    ops = ("sqnxt.transpose",)

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        x = op.operands[0]
        if x.owner is None or x.owner.name != "sqnxt.input":
            return
        new = rw.add_op("sqnxt.input_layout", [x], {"perm": tuple(op.attrs["perm"])}, loc=op.loc,
                        result_names=[op.result.name + "_layout"]).result
        rw.replace_all_uses(op.result, new)
        rw.erase(op)
        rw.count("input-transpose-to-host")


#: The rewrites, in the order they are tried on an op they all apply to.
PATTERNS = (WholeSlice(), DropNoop(), IdentityArithmetic(), FoldConstant(), GemmToFc(), MatmulThroughReshape(),
            MatmulToFc(), GapFromReduceMean(), PadIntoWindow(), HardSigmoidFromRelu6(), HardSwishFromMul(),
            GeluFromParts(), LayerNormFromParts(), TransposePair(), TransposesThroughBinary(),
            ReduceThroughTranspose(), TransposeSunk(), InputLayoutOnHost())


class Canonicalize(Pass):
    name = "canonicalize"
    summary = "Drop Identity/Dropout, fold constants, turn Flatten+Gemm / MatMul+Add into fc."

    def run(self, graph: Graph, ctx: PassContext) -> None:
        apply_patterns(graph, PATTERNS, self.stats, name=self.name)
        n = graph.erase_dead()
        if n:
            self.stats["dead-ops-erased"] += n
