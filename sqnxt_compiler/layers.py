"""From IR ops to the cost model's layers (:class:`sqnxt_compiler.cost.layer.Layer`).

Which ops the accelerator runs, and as what:

===========================  ===========================================================
IR op                        cost-model layer
===========================  ===========================================================
``sqnxt.conv``               ``conv`` (grouped, depthwise and dilated included; the fused
                             activation is applied as results leave the array: its
                             operations are counted (:data:`EPILOGUE_ACTS`), no cycles;
                             a fused residual add (``residual = 1``) sets the layer's
                             ``residual``: its words, transfers and adds are counted;
                             a fused pool (``pool``) sets the layer's ``pool*`` fields:
                             P x Q is the pooled output)
``sqnxt.fc``                 ``fc``: C = product of the input's non-batch dims, a 1x1 conv
                             on a 1x1 image
``sqnxt.maxpool/avgpool``    ``maxpool``/``avgpool``; a ceil-mode window that overhangs
                             the input becomes extra bottom/right padding (Caffe's rule)
``sqnxt.global_avgpool``     ``gap`` (R = H, S = W)
``sqnxt.matmul``             by a constant matrix: a 1x1 ``conv`` over x's leading
                             positions (an ``fc`` for a 2-D x)
``sqnxt.add``                ``add`` with ``n_inputs`` operands, when all have the
                             output's shape (a broadcasting add is an ``eltwise``)
``sqnxt.reduce``             over H and W: ``gap``; over one of them: ``avgpool`` with a
                             window of the whole axis; over C (and any of H, W): ``conv``
                             with one output channel (constant weights); of a tensor that
                             is not NCHW: over leading axes only, an ``eltwise`` sum of the
                             n output-sized slices; else a ``gap`` over (outputs, n)
every op of                  ``eltwise``: the function's PE operations and nonlinear
:data:`ELEMENTWISE`          evaluations per element, over the output's grid (:func:`grid`)
every op of :data:`MOVES`    ``move``: a copy of the output's words (a gather of the words
                             each output reads), no operation
===========================  ===========================================================

Every op an accelerator run executes is a layer: what remains *not modelled* is an op the
machine has no mapping for (a matmul of two activations, a gemm whose weights are not
constant); reports list it with no cycles, never silently dropped.  Ops with the ``free``
trait (views, shape computations, graph structure) move no data and are not layers.
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
                     residual=bool(op.attrs["residual"]), dilation_h=dh, dilation_w=dw, **_act_fields(op),
                     **_pool_fields(op.attrs.get("pool"), conv_out(x[2], w[2], op.attrs["strides"][0], pt, pb, dh),
                                    conv_out(x[3], w[3], op.attrs["strides"][1], pl, pr, dw)))
    if op.name == "sqnxt.fc":
        x, w = op.operands[0].type.shape, op.operands[1].type.shape
        zf = None
        if measured_sparsity and op.operands[1].owner.const_value() is not None:
            zf = zero_fraction(op.operands[1].owner.const_value())
        return Layer(name, "fc", C=math.prod(x[1:]), K=w[0], H=1, W=1, R=1, S=1, P=1, Q=1,
                     weight_zero_fraction=zf, residual=bool(op.attrs["residual"]), **_act_fields(op))
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
    if op.name == "sqnxt.add" and _is_add_layer(op):
        y = op.result.type.shape
        return Layer(name, "add", C=y[1], K=y[1], H=y[2], W=y[3], R=1, S=1, P=y[2], Q=y[3],
                     n_inputs=len(op.operands))
    if op.name == "sqnxt.reduce":
        return _reduce_layer(op, name)
    if op.name == "sqnxt.matmul":
        return _matmul_layer(op, name)
    if op.name in ELEMENTWISE or op.name in MOVES or op.name == "sqnxt.resize":
        return _element_layer(op, name)
    return None


#: Element-wise ops: IR op -> (PE operations, nonlinear function evaluations) per output
#: element (docs/cost-model.md, "Element-wise and data-movement layers"; lrn adds its window).
ELEMENTWISE: dict[str, tuple[int, int]] = {
    "sqnxt.relu": (1, 0),           # max(x, 0)
    "sqnxt.leaky_relu": (2, 0),     # compare, multiply
    "sqnxt.prelu": (2, 0),          # compare, multiply by the slope
    "sqnxt.clip": (2, 0),           # max, min
    "sqnxt.batchnorm": (1, 0),      # x * scale + shift (folded per channel at compile time)
    "sqnxt.hard_sigmoid": (3, 0),   # multiply-add, max, min
    "sqnxt.hard_swish": (4, 0),     # hard_sigmoid, then multiply
    "sqnxt.sigmoid": (0, 1),
    "sqnxt.tanh": (0, 1),
    "sqnxt.add": (1, 0),            # per operand after the first
    "sqnxt.sub": (1, 0),
    "sqnxt.mul": (1, 0),
    "sqnxt.div": (1, 1),            # reciprocal, multiply (a constant divisor: multiply only)
    "sqnxt.softmax": (2, 1),        # exp, accumulate, multiply by the row's reciprocal
    "sqnxt.lrn": (2, 1),            # + size square-accumulates; multiply-add, power, multiply
    "sqnxt.erf": (0, 1), "sqnxt.sqrt": (0, 1), "sqnxt.exp": (0, 1), "sqnxt.reciprocal": (0, 1),
    "sqnxt.neg": (1, 0), "sqnxt.abs": (1, 0),
    "sqnxt.pow": (1, 1),            # exp(b log a): a constant exponent 2 is one multiply
    "sqnxt.layer_norm": (4, 0),     # accumulate, square-accumulate, normalize, scale-shift
}
#: Data-movement ops: each output word is a copy of one input word.
MOVES = ("sqnxt.concat", "sqnxt.transpose", "sqnxt.expand", "sqnxt.pad", "sqnxt.extract_slice", "sqnxt.take")


def grid(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The (channels, rows, columns) an element-wise layer runs over, batch dropped: NCHW
    (C, H, W); rank > 4: the leading axes are channels (prod(dims[:-2]), H, W); (N, C, L):
    (C, 1, L); (N, C): (C, 1, 1)."""
    dims = tuple(shape[1:]) if len(shape) >= 2 else tuple(shape)
    if not dims:
        return 1, 1, 1
    if len(dims) == 1:
        return dims[0], 1, 1
    if len(dims) == 2:
        return dims[0], 1, dims[1]
    return math.prod(dims[:-2]), dims[-2], dims[-1]


def operand_role(shape: tuple[int, ...], out: tuple[int, ...]) -> str:
    """How an element-wise op reads an operand of ``shape`` broadcast to ``out``:
    ``full`` (the output's shape), ``scalar`` (one value: an immediate), ``param`` (one
    value per channel of the grid, constant over its rows and columns: a per-channel
    parameter vector, like the SE scale) or ``other`` (any other broadcast: read as a full
    tensor, the conservative side)."""
    if tuple(shape) == tuple(out):
        return "full"
    if math.prod(shape) == 1:
        return "scalar"
    s = (1,) * (len(out) - len(shape)) + tuple(shape)
    spatial = 2 if len(out) >= 4 else (1 if len(out) == 3 else 0)
    return "param" if all(d == 1 for d in s[len(s) - spatial:]) else "other"


def data_operands(op: Op) -> list:
    """The operands a layer reads as whole input tensors of the layer (its ``n_inputs``),
    which the memory planner may keep in the buffer: every operand of an ``add`` layer;
    the output-shaped operands of an ``eltwise`` layer; operand 0 of a ``move`` (a concat's
    operands are parts of its input: none); else operand 0 (conv/fc: weights follow)."""
    if op.name == "sqnxt.add" and _is_add_layer(op):
        return list(op.operands)
    if op.name in ELEMENTWISE or (op.name == "sqnxt.resize" and op.attrs["mode"] == "linear"):
        y = op.result.type.shape
        return [v for v in op.operands[:1 if op.name in ("sqnxt.batchnorm", "sqnxt.layer_norm") else None]
                if operand_role(v.type.shape, y) == "full"]
    if op.name == "sqnxt.concat":
        return []
    if op.name == "sqnxt.reduce" and _reduce_layer(op, "").kind == "eltwise":
        return []               # its n slices are parts of one tensor, read from DRAM
    return [op.operands[0]]


def _is_add_layer(op: Op) -> bool:
    y = op.result.type.shape
    return len(y) == 4 and len(op.operands) >= 2 and all(v.type.shape == y for v in op.operands)


def _element_layer(op: Op, name: str) -> Layer:
    """The eltwise or move layer of an element-wise / data-movement op (module doc)."""
    y = op.result.type.shape
    K, P, Q = grid(y)
    if op.name in MOVES or (op.name == "sqnxt.resize" and op.attrs["mode"] == "nearest"):
        return Layer(name, "move", C=K, K=K, H=P, W=Q, R=1, S=1, P=P, Q=Q, fn=op.name.split(".")[1])
    if op.name == "sqnxt.resize":       # linear: 3 lerps of the 4 gathered taps
        return Layer(name, "eltwise", C=K, K=K, H=P, W=Q, R=1, S=1, P=P, Q=Q, fn="resize", elem_ops=3)
    ops, funcs = ELEMENTWISE[op.name]
    operands = list(op.operands)
    params = 0
    if op.name == "sqnxt.batchnorm":         # scale and shift per channel, folded from 4 vectors
        operands, params = operands[:1], 2
    elif op.name == "sqnxt.layer_norm":      # scale and shift vectors (charged per channel)
        operands, params = operands[:1], len(operands) - 1
    roles = [operand_role(v.type.shape, y) for v in operands]
    n_in = max(1, sum(r in ("full", "other") for r in roles))
    params += sum(r == "param" for r in roles)
    if op.name in ("sqnxt.add", "sqnxt.sub", "sqnxt.mul"):
        ops *= len(operands) - 1
    elif op.name == "sqnxt.div" and _const(op.operands[1]) is not None:
        funcs = 0                             # a constant divisor: multiply by its reciprocal
    elif op.name == "sqnxt.pow" and _const(op.operands[1]) is not None \
            and np.all(_const(op.operands[1]) == 2):
        funcs = 0                             # a square: one multiply
    elif op.name == "sqnxt.lrn":
        ops += op.attrs["size"]
    return Layer(name, "eltwise", C=K, K=K, H=P, W=Q, R=1, S=1, P=P, Q=Q, n_inputs=n_in,
                 fn=op.name.split(".")[1], elem_ops=ops, elem_funcs=funcs, params=params)


def _const(v) -> np.ndarray | None:
    return v.owner.const_value() if v.owner is not None else None


def _kept(shape: tuple[int, ...], axes: set[int]) -> tuple[int, ...]:
    """``shape`` with the reduced ``axes`` as 1 (keepdims)."""
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _reduce_layer(op: Op, name: str) -> Layer:
    """A reduction (module doc).  Of a tensor that is not NCHW: a ``gap`` whose channels
    are the output's elements and whose window is the n = input / output elements each
    one reduces (K = outputs, H = n, W = 1): the same words read and operations."""
    x = op.operands[0].type.shape
    if len(x) != 4:
        n_out = max(1, op.result.type.numel)
        n = max(1, math.prod(x) // n_out)
        axes = {a % len(x) for a in op.attrs["axes"]}
        if len(x) >= 3 and not axes & {len(x) - 2, len(x) - 1}:
            # the last two axes stay: n output-sized slices added element by element
            K, P, Q = grid(_kept(x, axes))
            return Layer(name, "eltwise", C=K, K=K, H=P, W=Q, R=1, S=1, P=P, Q=Q, n_inputs=n,
                         fn="reduce", elem_ops=n - 1)
        return Layer(name, "gap", C=n_out, K=n_out, H=n, W=1, R=n, S=1, P=1, Q=1)
    axes = {a % 4 for a in op.attrs["axes"]} - {0}
    C, H, W = x[1:]
    R, S = (H if 2 in axes else 1), (W if 3 in axes else 1)
    P, Q = H // R, W // S
    if 1 in axes:                 # over channels: a conv with one output channel
        return Layer(name, "conv", C=C, K=1, H=H, W=W, R=R, S=S, P=P, Q=Q, stride_h=R, stride_w=S)
    if axes == {2, 3}:
        return Layer(name, "gap", C=C, K=C, H=H, W=W, R=H, S=W, P=1, Q=1)
    return Layer(name, "avgpool", C=C, K=C, H=H, W=W, R=R, S=S, P=P, Q=Q, stride_h=R, stride_w=S)


#: A fused activation's (operations, nonlinear functions) per output element: max/min in
#: the output path are free (relu, relu6, the clamps), multiplies and functions are not.
EPILOGUE_ACTS: dict[str, tuple[int, int]] = {
    "none": (0, 0), "relu": (0, 0), "relu6": (0, 0),
    "leaky_relu": (1, 0),        # multiply (the sign selects)
    "hard_sigmoid": (1, 0),      # multiply-add (the clamps are free)
    "hard_swish": (2, 0),        # multiply-add, multiply
    "sigmoid": (0, 1), "tanh": (0, 1),
    "swish": (1, 1),             # sigmoid, multiply
}


def _act_fields(op: Op) -> dict:
    """The Layer fields of a conv / fc's fused activation."""
    ops, funcs = EPILOGUE_ACTS[op.attrs.get("act", "none")]
    return {"act_ops": ops, "act_funcs": funcs}


def _matmul_layer(op: Op, name: str) -> Layer | None:
    """A matmul by a constant 2-D matrix B (C x K) of an x of rank >= 2: a 1x1 conv over x's
    leading positions (channels-last pointwise layers, ConvNeXt's MLP): rank 4 (N, H, W, C)
    on an H x W image, rank 3 (N, L, C) on 1 x L, rank 2 an fc; None otherwise (two
    activations, a batched B: no mapping)."""
    x, b = op.operands[0].type.shape, op.operands[1].type.shape
    if _const(op.operands[1]) is None or len(b) != 2 or len(x) < 2:
        return None
    lead = x[1:-1]
    if not lead:
        return Layer(name, "fc", C=b[0], K=b[1], H=1, W=1, R=1, S=1, P=1, Q=1)
    H, W = math.prod(lead[:-1]), lead[-1]
    return Layer(name, "conv", C=b[0], K=b[1], H=H, W=W, R=1, S=1, P=H, Q=W)


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
