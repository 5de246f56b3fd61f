"""From IR ops to the cost model's layers (:class:`sqnxt_compiler.cost.layer.Layer`).

Which ops the accelerator runs, and as what:

===========================  ===========================================================
IR op                        cost-model layer
===========================  ===========================================================
``sqnxt.conv``               ``conv`` (grouped, depthwise and dilated included; the fused
                             activation is applied as results leave the array: no cost;
                             a fused residual add (``residual = 1``) sets the layer's
                             ``residual``: its words, transfers and adds are counted;
                             a fused pool (``pool``) sets the layer's ``pool*`` fields:
                             P x Q is the pooled output)
``sqnxt.fc``                 ``fc``: C = product of the input's non-batch dims, a 1x1 conv
                             on a 1x1 image
``sqnxt.maxpool/avgpool``    ``maxpool``/``avgpool``; a ceil-mode window that overhangs
                             the input becomes extra bottom/right padding (Caffe's rule)
``sqnxt.global_avgpool``     ``gap`` (R = H, S = W)
``sqnxt.add``                ``add`` with ``n_inputs`` operands, when all have the
                             output's shape (a broadcasting add is not modelled)
===========================  ===========================================================

These are the ops declared with the ``runs_on_array`` trait (``sqnxt_compiler/ir/ops.py``).
Ops with the ``free`` trait (views, layout and shape ops, graph structure) are not layers.
Every other op (softmax, LRN, an unfused batchnorm or activation, concat, ...) is *not
modelled*: it is listed in reports with no cycles, never silently dropped.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .cost.layer import Layer
from .ir.core import Op
from .ir.graph import Graph
from .ir.ops import conv_dilations, conv_out, pool_end_pad


def zero_fraction(w: np.ndarray) -> Fraction:
    """Exact fraction of zero entries in ``w``."""
    return Fraction(int(np.count_nonzero(w == 0)), int(w.size))


def layer_name(op: Op) -> str:
    """The layer's name: its source node, or the op id when the node had no name."""
    return op.loc.node or f"{op.name.split('.')[1]}#{op.id}"


def layer_of(op: Op, *, measured_sparsity: bool = False) -> Layer | None:
    """The cost-model layer of ``op``, or None if the op is not modelled (see module doc)."""
    name = layer_name(op)
    if op.name == "sqnxt.conv":
        x, w, y = op.operands[0].type.shape, op.operands[1].type.shape, op.result.type.shape
        pt, pl, pb, pr = op.attrs["pads"]
        zf = None
        if measured_sparsity and op.operands[1].owner.const_value() is not None:
            zf = zero_fraction(op.operands[1].owner.const_value())
        dh, dw = conv_dilations(op)
        return Layer(name, "conv", C=x[1], K=w[0], H=x[2], W=x[3], R=w[2], S=w[3], P=y[2], Q=y[3],
                     stride_h=op.attrs["strides"][0], stride_w=op.attrs["strides"][1],
                     pad_top=pt, pad_left=pl, pad_bottom=pb, pad_right=pr,
                     groups=op.attrs["groups"], weight_zero_fraction=zf,
                     residual=bool(op.attrs["residual"]), dilation_h=dh, dilation_w=dw,
                     **_pool_fields(op.attrs.get("pool"), conv_out(x[2], w[2], op.attrs["strides"][0], pt, pb, dh),
                                    conv_out(x[3], w[3], op.attrs["strides"][1], pl, pr, dw)))
    if op.name == "sqnxt.fc":
        x, w = op.operands[0].type.shape, op.operands[1].type.shape
        zf = None
        if measured_sparsity and op.operands[1].owner.const_value() is not None:
            zf = zero_fraction(op.operands[1].owner.const_value())
        return Layer(name, "fc", C=math.prod(x[1:]), K=w[0], H=1, W=1, R=1, S=1, P=1, Q=1,
                     weight_zero_fraction=zf, residual=bool(op.attrs["residual"]))
    if op.name in ("sqnxt.maxpool", "sqnxt.avgpool"):
        x, y = op.operands[0].type.shape, op.result.type.shape
        kh, kw = op.attrs["kernel"]
        sh, sw = op.attrs["strides"]
        pt, pl, pb, pr = op.attrs["pads"]
        ceil = op.attrs["ceil_mode"]
        pb = pool_end_pad(x[2], kh, sh, pt, pb, ceil)   # the floor rule then gives P and Q
        pr = pool_end_pad(x[3], kw, sw, pl, pr, ceil)
        return Layer(name, op.name.split(".")[1], C=x[1], K=x[1], H=x[2], W=x[3], R=kh, S=kw,
                     P=y[2], Q=y[3], stride_h=sh, stride_w=sw, pad_top=pt, pad_left=pl,
                     pad_bottom=pb, pad_right=pr)
    if op.name == "sqnxt.global_avgpool":
        x = op.operands[0].type.shape
        return Layer(name, "gap", C=x[1], K=x[1], H=x[2], W=x[3], R=x[2], S=x[3], P=1, Q=1)
    if op.name == "sqnxt.add":
        y = op.result.type.shape
        if len(y) != 4 or any(v.type.shape != y for v in op.operands) or len(op.operands) < 2:
            return None
        return Layer(name, "add", C=y[1], K=y[1], H=y[2], W=y[3], R=1, S=1, P=y[2], Q=y[3],
                     n_inputs=len(op.operands))
    return None


def _pool_fields(pool: dict | None, conv_h: int, conv_w: int) -> dict:
    """The Layer fields of a conv's fused pool over its (conv_h x conv_w) output: a
    ceil-mode window that overhangs becomes extra end padding, as for a pool layer."""
    if pool is None:
        return {}
    (kh, kw), (sh, sw), (pt, pl, pb, pr), c = pool["kernel"], pool["strides"], pool["pads"], pool["ceil_mode"]
    return dict(pool=pool["kind"], pool_R=kh, pool_S=kw, pool_stride_h=sh, pool_stride_w=sw,
                pool_pad_top=pt, pool_pad_left=pl, pool_pad_bottom=pool_end_pad(conv_h, kh, sh, pt, pb, c),
                pool_pad_right=pool_end_pad(conv_w, kw, sw, pl, pr, c))


def network_layers(graph: Graph, *, measured_sparsity: bool = False) -> list[tuple[Op, Layer | None]]:
    """Every op without the ``free`` trait, in program order, with its layer (None: not
    modelled)."""
    return [(op, layer_of(op, measured_sparsity=measured_sparsity))
            for op in graph.ops() if not op.has_trait("free")]
