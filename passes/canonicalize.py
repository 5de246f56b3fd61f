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
* **fc-from-matmul**: ``add(matmul(x, B), c)`` (either operand order) with constant B of
  shape (C, K) and c of shape (K,) or (1, K) -> ``fc(x, B^T, c)``; a bare ``matmul(x, B)``
  with constant B -> ``fc(x, B^T)``.  x must be 2-D (N, C).
* **gap-from-reduce-mean**: ``reduce(x) {kind = mean, axes = H and W}`` of a 4-D x ->
  ``global_avgpool(x)`` (keepdims = 0: followed by ``flatten``, axis 1): the same numbers,
  and an op the accelerator runs (dynamo exports global pooling this way).
* **pad-into-conv**: ``conv(pad(x) {mode = constant, value = 0, pads on H and W only})``
  with the pad used only by convs -> each conv's ``pads`` grow by the pad's (exact: the
  window sees the same zeros); likewise an ``avgpool`` with ``ceil_mode = 0`` whose own
  pads are 0 or that counts its padding (``count_include_pad = 1``, then set).  TF-style
  "same" padding exports (Pad + VALID conv) become one conv.
* **layer-norm-from-parts**: ``div(x - mean(x), sqrt(mean((x - mean(x))^2) + eps))`` over
  x's trailing axes, then an optional constant scale and shift -> ``layer_norm(x, scale,
  shift)``: LayerNormalization as exported before opset 17, one layer instead of nine.
* **hard-swish-from-mul**: ``mul(y, hard_sigmoid(y) {alpha = 1/6, beta = 1/2})`` (the
  hard_sigmoid used only there) -> ``hard_swish(y)``: HardSwish as exported before opset
  14, one op (and one layer) instead of two, with the same numbers.

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
from ..ir.core import OPS
from ..ir.graph import Graph
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
    """gemm(flatten(x), B, C) with constant B, C -> fc(x, W, b)."""

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
        x, Bv = op.operands
        B = _const(Bv)
        if B is None or B.ndim != 2 or x.type.rank != 2 or B.dtype != np.float32:
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


class PadIntoWindow(RewritePattern):
    """conv(pad(x)) with a zero pad on H and W read only by windows that can take it ->
    conv(x) with the pad added to its ``pads`` (likewise an avgpool)."""

    ops = ("sqnxt.pad",)

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        if op.attrs["mode"] != "constant" or op.attrs["value"] != 0.0:
            return
        x, pads = op.operands[0], op.attrs["pads"]
        if x.type.rank != 4 or any(pads[i] for i in (0, 1, 4, 5)):
            return            # pads on N or C
        pt, pl, pb, pr = pads[2], pads[3], pads[6], pads[7]
        uses = rw.graph.uses(op.result)
        if not uses or any(i != 0 or not _window_takes(u, (pt, pl, pb, pr)) for u, i in uses):
            return
        for u, _ in uses:
            t, l, b, r = u.attrs["pads"]
            rw.set_attr(u, "pads", (t + pt, l + pl, b + pb, r + pr))
            if u.name == "sqnxt.avgpool":
                rw.set_attr(u, "count_include_pad", 1)
            rw.set_operand(u, 0, x)
        rw.erase(op)
        rw.count("pad-into-" + ("conv" if all(u.name == "sqnxt.conv" for u, _ in uses) else "window"))


class HardSwishFromMul(RewritePattern):
    """mul(y, hard_sigmoid(y) {alpha = 1/6, beta = 0.5}) -> hard_swish(y) (either operand
    order; the hard_sigmoid used only there): HardSwish as exporters write it before
    opset 14."""

    ops = ("sqnxt.mul",)

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        for i in (0, 1):
            h, y = op.operands[i].owner, op.operands[1 - i]
            if (h is not None and h.name == "sqnxt.hard_sigmoid" and h.operands[0] is y
                    and np.float32(h.attrs["alpha"]) == np.float32(1 / 6) and h.attrs["beta"] == 0.5
                    and len(rw.graph.uses(h.result)) == 1):
                hs = rw.add_op("sqnxt.hard_swish", [y], loc=op.loc, result_names=[op.result.name + "_hswish"])
                rw.replace_all_uses(op.result, hs.result)
                rw.erase(op)
                rw.erase(h)
                rw.count("hard-swish-from-mul")
                return


class LayerNormFromParts(RewritePattern):
    """div(d, sqrt(add(mean(pow(d, 2)), eps))) with d = sub(x, mean(x)), the means over
    x's trailing axes (keepdims), then optionally mul by a constant scale and add a
    constant shift over those axes -> layer_norm(x, scale, shift): LayerNormalization
    as exported before opset 17 (each intermediate used only there)."""

    ops = ("sqnxt.div",)
    reach = 4       # div <- sqrt <- add <- mean <- pow (the constants are read with their users)

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        graph = rw.graph
        d, sq = op.operands
        sqrt = _single(graph, sq, "sqnxt.sqrt")
        add = _single(graph, sqrt.operands[0], "sqnxt.add") if sqrt else None
        if add is None or len(add.operands) != 2 or add.attrs["act"] != "none":
            return
        eps = _const(add.operands[1])
        var = _single(graph, add.operands[0], "sqnxt.reduce")
        pw = _single(graph, var.operands[0], "sqnxt.pow") if var else None
        sub = d.owner
        if (eps is None or eps.size != 1 or pw is None or pw.operands[0] is not d
                or _const(pw.operands[1]) is None or not np.all(_const(pw.operands[1]) == 2)
                or sub is None or sub.name != "sqnxt.sub" or len(graph.uses(d)) != 2):
            return
        x, mean = sub.operands
        mean_op = mean.owner
        if mean_op is None or mean_op.name != "sqnxt.reduce" or mean_op.operands[0] is not x \
                or len(graph.uses(mean)) != 1:
            return
        r = x.type.rank
        axes = sorted(a % r for a in mean_op.attrs["axes"])
        if (axes != list(range(axes[0], r)) or sorted(a % r for a in var.attrs["axes"]) != axes
                or any(o.attrs["kind"] != "mean" or not o.attrs["keepdims"] for o in (mean_op, var))):
            return
        norm = x.type.shape[axes[0]:]
        end, scale, shift = op, None, None
        users = graph.uses(op.result)
        for kind in ("sqnxt.mul", "sqnxt.add"):       # an affine tail of constants, if any
            if len(users) != 1 or users[0][0].name != kind or len(users[0][0].operands) != 2:
                break
            u = users[0][0]
            c = _const(u.operands[1 - users[0][1]])
            if c is None or (kind == "sqnxt.add" and u.attrs["act"] != "none") \
                    or np.broadcast_shapes(c.shape, norm) != norm or c.ndim > len(norm):
                break
            if kind == "sqnxt.mul":
                scale = c
            else:
                shift = c
            end, users = u, graph.uses(u.result)
        if scale is None:
            scale = np.ones((), dtype=np.float32)
        operands = [x, rw.constant(np.broadcast_to(scale, norm).astype(np.float32), end.result.name + "_scale",
                                   Location(node=end.loc.node))]
        if shift is not None:
            operands.append(rw.constant(np.broadcast_to(shift, norm).astype(np.float32),
                                        end.result.name + "_shift", Location(node=end.loc.node)))
        ln = rw.add_op("sqnxt.layer_norm", operands, {"axis": axes[0], "epsilon": float(eps.reshape(-1)[0])},
                       loc=end.loc, result_names=[end.result.name + "_ln"])
        rw.replace_all_uses(end.result, ln.result)
        for dead in (end, *([op] if end is not op else []), sqrt, add, var, pw, sub, mean_op):
            if dead in graph and not graph.uses(dead.result):
                rw.erase(dead)
        n = rw.erase_dead()
        rw.count("layer-norm-from-parts")
        rw.count("dead-ops-erased", n)


#: The rewrites, in the order they are tried on an op they all apply to.
PATTERNS = (WholeSlice(), DropNoop(), FoldConstant(), GemmToFc(), MatmulToFc(), GapFromReduceMean(),
            PadIntoWindow(), HardSwishFromMul(), LayerNormFromParts())


class Canonicalize(Pass):
    name = "canonicalize"
    summary = "Drop Identity/Dropout, fold constants, turn Flatten+Gemm / MatMul+Add into fc."

    def run(self, graph: Graph, ctx: PassContext) -> None:
        apply_patterns(graph, PATTERNS, self.stats, name=self.name)
        n = graph.erase_dead()
        if n:
            self.stats["dead-ops-erased"] += n
