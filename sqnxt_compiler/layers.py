"""From IR ops to the cost model's layers (:class:`sqnxt_compiler.cost.layer.Layer`).

Which ops the accelerator runs, and as what: an op with the ``runs_on_array`` trait
declares ``RunsOnArray(rule)`` (``sqnxt_compiler/ir/ops.py``), naming one of the layer
rules registered here (:data:`RULES`); :func:`layer_of` builds its layer with that rule:

===========================  ==============  ============================================
IR op                        rule            cost-model layer
===========================  ==============  ============================================
``sqnxt.conv``               ``conv``        ``conv`` (grouped, depthwise and dilated
                                             included; the fused activation is applied as
                                             results leave the array: its operations are
                                             counted (the ``epilogue`` of its
                                             ``Activation``), no cycles; a fused residual
                                             add (``residual = 1``) sets its
                                             ``epilogue.residual``: its words, transfers
                                             and adds are counted; a fused pool (``pool``)
                                             is its ``epilogue.pool``: P x Q is the pooled
                                             output)
``sqnxt.fc``                 ``fc``          ``fc``: C = product of the input's non-batch
                                             dims, a 1x1 conv on a 1x1 image
``sqnxt.maxpool/avgpool``    ``pool``        ``maxpool``/``avgpool``; a ceil-mode window
                                             that overhangs the input becomes extra
                                             bottom/right padding (Caffe's rule)
``sqnxt.global_avgpool``     ``gap``         ``gap`` (R = H, S = W)
``sqnxt.matmul``             ``matmul``      by a constant matrix: a 1x1 ``conv`` over x's
                                             leading positions (an ``fc`` for a 2-D x);
                                             its bias and ``act``: the epilogue's
``sqnxt.add``                ``add``         ``add`` with ``n_inputs`` operands, when all
                                             have the output's shape; a broadcasting add is
                                             an ``eltwise``, its operations once per
                                             operand after the first
``sqnxt.reduce``             ``reduce``      over H and W: ``gap``; over one of them:
                                             ``avgpool`` with a window of the whole axis;
                                             over C (and any of H, W): ``conv`` with one
                                             output channel (constant weights); of a tensor
                                             that is not NCHW: over leading axes only, an
                                             ``eltwise`` sum of the n output-sized slices;
                                             else a ``gap`` over (outputs, n)
``sqnxt.resize``             ``resize``      nearest: a ``move``; linear: an ``eltwise`` of
                                             3 operations (lerps of the 4 gathered taps)
an op with the               ``eltwise``     ``eltwise``: the PE operations and nonlinear
``elementwise`` trait                        evaluations per element of its
                                             ``Elementwise(ops, funcs)``, over the output's
                                             grid (:func:`grid`), as declared; the rules
                                             below adjust what depends on the instance:
``sqnxt.div``                ``div``         a constant divisor: no function (a multiply by
                                             its reciprocal)
``sqnxt.pow``                ``pow``         a constant exponent 2: no function (a multiply)
``sqnxt.lrn``                ``lrn``         + ``size`` square-accumulates (its window)
``sqnxt.batchnorm``          ``batchnorm``   operand 0 is the data; scale and shift are 2
                                             per-channel parameters (folded from its 4
                                             vectors)
``sqnxt.layer_norm``         ``layer_norm``  operand 0 is the data; scale (and bias) are
                                             per-channel parameters
an op with the ``move``      ``move``        ``move``: a copy of the output's words (a
trait                                        gather of the words each output reads), no
                                             operation
===========================  ==============  ============================================

Every op an accelerator run executes is a layer: what remains *not modelled* is an op the
machine has no mapping for (a matmul of two activations, a gemm whose weights are not
constant); reports list it with no cycles, never silently dropped.  Ops with the ``free``
trait (views, shape computations, graph structure) move no data and are not layers.

A rule is registered with :func:`layer_rule`: its builder, the operands a layer reads as
whole input tensors (:func:`data_operands`), and whether the layer *is* the op (conv, fc,
pools, gap, add: the tiled executor computes its tiles) or stands for its cost (the
others: their tiles store the op's reference result).  The op names the rule rather than
the builder because ir/ does not import the cost model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np

from .cost.layer import ElementFn, Epilogue, Layer, Pool
from .ir.core import Elementwise, Move, Op, RunsOnArray, view_origin
from .ir.graph import Graph
from .ir.ops import ACTIVATIONS, conv_dilations, conv_out, layer_operands, pool_end_pad


def zero_fraction(w: np.ndarray) -> Fraction:
    """Exact fraction of zero entries in ``w``."""
    return Fraction(int(np.count_nonzero(w == 0)), int(w.size))


def layer_name(op: Op) -> str:
    """The layer's name: its source node, or the op id when the node had no name."""
    return op.loc.node or f"{op.name.split('.')[1]}#{op.id}"


@dataclass(frozen=True)
class LayerRule:
    """How the ops that declare ``RunsOnArray(name)`` become layers: ``build(op, name,
    measured_sparsity)`` gives the layer (None: this instance is not modelled), ``reads(op)``
    the operands the layer reads as whole input tensors (:func:`data_operands`), and
    ``native`` says the layer is the op itself (its operands are the layer kind's: x, w[,
    b][, r], every operand of an add), else it stands for the op's cost."""

    build: Callable[[Op, str, bool], Layer | None]
    reads: Callable[[Op], list]
    native: bool = False


#: The layer rules, by the name an op's ``RunsOnArray`` trait gives.
RULES: dict[str, LayerRule] = {}


def _operand_0(op: Op) -> list:
    """Operand 0 (conv / fc: the weights follow)."""
    return [op.operands[0]]


def layer_rule(name: str, *, reads: Callable[[Op], list] = _operand_0, native: bool = False):
    """Decorator: register the decorated builder as the layer rule ``name`` (:class:`LayerRule`)."""
    def wrap(build):
        if name in RULES:
            raise ValueError(f"layer rule {name} registered twice")
        RULES[name] = LayerRule(build, reads, native)
        return build
    return wrap


def rule_of(op: Op) -> LayerRule | None:
    """The layer rule ``op``'s ``RunsOnArray`` trait names, or None (the op does not run on
    the array)."""
    trait = op.get_trait(RunsOnArray)
    return None if trait is None else RULES[trait.layer]


def layer_of(op: Op, *, measured_sparsity: bool = False) -> Layer | None:
    """The cost-model layer of ``op`` by its layer rule, or None if the op is not modelled
    (see module doc)."""
    rule = rule_of(op)
    return None if rule is None else rule.build(op, layer_name(op), measured_sparsity)


def data_operands(op: Op) -> list:
    """The operands a layer reads as whole input tensors of the layer (its ``n_inputs``),
    which the memory planner may keep in the buffer, by the op's layer rule: every operand
    of an ``add`` layer; the output-shaped operands of an ``eltwise`` layer (of operand 0
    for a normalization); operand 0 of a ``move`` (a concat's operands are parts of its
    input: none); else operand 0 (conv/fc: weights follow)."""
    rule = rule_of(op)
    return _operand_0(op) if rule is None else rule.reads(op)


def resident_at(v) -> int | None:
    """The buffer word where the memory plan keeps the words of ``v`` (through views): its
    producer's ``plan`` offset when that says ``buffer``; for a concat in place (the
    ``in_place_parts`` trait) its first part's offset when every part is resident (the
    planner keeps the parts together, one after the other: schedule.liveness); else None
    (in DRAM, or no plan)."""
    o = view_origin(v)
    src = o.owner
    if src is None:
        return None
    if src.has_trait("in_place_parts"):
        ats = [resident_at(p) for p in src.operands]
        return ats[0] if ats and None not in ats else None
    p = src.attrs.get("plan")
    return p.offset if p is not None and p.output == "buffer" else None


def stands_in(op: Op) -> bool:
    """True when ``op``'s layer stands for its cost rather than being the op itself (an
    element-wise, data-movement or reduction layer, a matmul by constants): the tiled
    executor stores such an op's reference result tile by tile."""
    return not rule_of(op).native


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


#: Element-wise ops whose value at an element reads others along an axis: their layer runs
#: over the output's grid as it is (:func:`grid`), never a flat one (:func:`flat_grid`).
REDUCING_ELEMENTWISE = ("sqnxt.softmax", "sqnxt.lrn")

#: The largest rows and columns :func:`flat_grid` gives a flat tensor.
FLAT_SIDE = 64


def flat_grid(n: int) -> tuple[int, int, int]:
    """The (channels, rows, columns) of ``n`` contiguous elements that a position-independent
    element-wise layer runs over when its output's grid has one row (docs/cost-model.md,
    "Element-wise and data-movement layers", the flat grid): ``Q`` the largest divisor of
    ``n`` not above :data:`FLAT_SIDE`, ``P`` the largest divisor of ``n / Q`` not above
    it, ``K = n / (P Q)``.  1920 -> (1, 30, 64); 7 -> (1, 1, 7)."""
    q = max(d for d in range(1, min(n, FLAT_SIDE) + 1) if n % d == 0)
    rest = n // q
    p = max(d for d in range(1, min(rest, FLAT_SIDE) + 1) if rest % d == 0)
    return rest // p, p, q


def operand_role(shape: tuple[int, ...], out: tuple[int, ...]) -> str:
    """How an element-wise op reads an operand of ``shape`` broadcast to ``out``:
    ``full`` (the output's shape, or it without leading ones: the same words), ``scalar`` (one value: an immediate), ``param`` (one
    value per channel of the grid, constant over its rows and columns: a per-channel
    parameter vector, like the SE scale) or ``other`` (any other broadcast: read as a full
    tensor, the conservative side)."""
    if (1,) * (len(out) - len(shape)) + tuple(shape) == tuple(out):
        return "full"         # the output's shape, or it with leading ones dropped
    if math.prod(shape) == 1:
        return "scalar"
    s = (1,) * (len(out) - len(shape)) + tuple(shape)
    spatial = 2 if len(out) >= 4 else (1 if len(out) == 3 else 0)
    return "param" if all(d == 1 for d in s[len(s) - spatial:]) else "other"


def _const(v) -> np.ndarray | None:
    return v.owner.const_value() if v.owner is not None else None


def _weight_zero_fraction(op: Op, measured_sparsity: bool) -> Fraction | None:
    """The measured zero fraction of a conv / fc's constant weight (operand 1), or None
    (not measured, or the weight is not a constant)."""
    if measured_sparsity and op.operands[1].owner.const_value() is not None:
        return zero_fraction(op.operands[1].owner.const_value())
    return None


def _epilogue(op: Op, pool: Pool | None = None) -> Epilogue:
    """A conv / fc's epilogue: its fused activation's operations and nonlinear functions
    per output element (the ``epilogue`` of its ``Activation``), its fused residual add,
    ``pool``, and its bias (operand 2, the ``has_weights`` trait's optional bias, when it is
    not the fused residual: ``layer_operands``)."""
    ops, funcs = ACTIVATIONS[op.attrs.get("act", "none")].epilogue
    return Epilogue(act_ops=ops, act_funcs=funcs, residual=bool(op.attrs["residual"]), pool=pool,
                    bias=layer_operands(op)[2] is not None)


def _pool(pool: dict | None, conv_h: int, conv_w: int) -> Pool | None:
    """A conv's fused pool over its (conv_h x conv_w) output: a ceil-mode window that
    overhangs becomes extra end padding, as for a pool layer."""
    if pool is None:
        return None
    (kh, kw), (sh, sw), (pt, pl, pb, pr), c = pool["kernel"], pool["strides"], pool["pads"], pool["ceil_mode"]
    return Pool(pool["kind"], kh, kw, sh, sw, pt, pl, pool_end_pad(conv_h, kh, sh, pt, pb, c),
                pool_end_pad(conv_w, kw, sw, pl, pr, c))


# ---------------------------------------------------------------- the layers that are their op
@layer_rule("conv", native=True)
def _conv_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """A conv: its geometry, fused activation, residual and pool (module doc)."""
    x, w, y = op.operands[0].type.shape, op.operands[1].type.shape, op.result.type.shape
    pt, pl, pb, pr = op.attrs["pads"]
    zf = _weight_zero_fraction(op, measured_sparsity)
    dh, dw = conv_dilations(op)
    sh, sw = op.attrs["strides"]
    pool = _pool(op.attrs.get("pool"), conv_out(x[2], w[2], sh, pt, pb, dh), conv_out(x[3], w[3], sw, pl, pr, dw))
    return Layer(name, "conv", C=x[1], K=w[0], H=x[2], W=x[3], R=w[2], S=w[3], P=y[2], Q=y[3],
                 stride_h=sh, stride_w=sw, pad_top=pt, pad_left=pl, pad_bottom=pb, pad_right=pr,
                 groups=op.attrs["groups"], weight_zero_fraction=zf, dilation_h=dh, dilation_w=dw,
                 epilogue=_epilogue(op, pool))


@layer_rule("fc", native=True)
def _fc_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """An fc: C = the product of the input's non-batch dims, a 1x1 conv on a 1x1 image."""
    x, w = op.operands[0].type.shape, op.operands[1].type.shape
    zf = _weight_zero_fraction(op, measured_sparsity)
    return Layer(name, "fc", C=math.prod(x[1:]), K=w[0], H=1, W=1, R=1, S=1, P=1, Q=1,
                 weight_zero_fraction=zf, epilogue=_epilogue(op))


@layer_rule("pool", native=True)
def _pool_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """A maxpool / avgpool; a ceil-mode window that overhangs the input becomes extra
    bottom / right padding (under which the floor rule gives P and Q)."""
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


@layer_rule("gap", native=True)
def _gap_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """A global average pool: a ``gap`` with R = H, S = W."""
    x = op.operands[0].type.shape
    return Layer(name, "gap", C=x[1], K=x[1], H=x[2], W=x[3], R=x[2], S=x[3], P=1, Q=1)


def _is_add_layer(op: Op) -> bool:
    y = op.result.type.shape
    return len(y) == 4 and len(op.operands) >= 2 and all(v.type.shape == y for v in op.operands)


def _add_reads(op: Op) -> list:
    """Every operand of an ``add`` layer; a broadcasting add's as any element-wise op's."""
    return list(op.operands) if _is_add_layer(op) else _full_operands(op)


@layer_rule("add", reads=_add_reads, native=True)
def _add_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """An ``add`` of ``n_inputs`` operands of the output's shape; a broadcasting add is an
    ``eltwise`` whose operations are once per operand after the first."""
    if not _is_add_layer(op):
        return _eltwise(op, name, ops=op.get_trait(Elementwise).ops * (len(op.operands) - 1))
    y = op.result.type.shape
    return Layer(name, "add", C=y[1], K=y[1], H=y[2], W=y[3], R=1, S=1, P=y[2], Q=y[3],
                 n_inputs=len(op.operands))


# ---------------------------------------------------------------- the layers that stand for their op
@layer_rule("matmul")
def _matmul_layer(op: Op, name: str, measured_sparsity: bool) -> Layer | None:
    """A matmul by a constant 2-D matrix B (C x K) of an x of rank >= 2: a 1x1 conv over x's
    leading positions (channels-last pointwise layers, ConvNeXt's MLP): rank 4 (N, H, W, C)
    on an H x W image, rank 3 (N, L, C) on 1 x L, rank 2 (L, C) on 1 x L too when L > 1,
    else an fc; None otherwise (two activations, a batched B: no mapping)."""
    x, b = op.operands[0].type.shape, op.operands[1].type.shape
    if _const(op.operands[1]) is None or len(b) != 2 or len(x) < 2:
        return None
    lead = x[1:-1]
    ops, funcs = ACTIVATIONS[op.attrs.get("act", "none")].epilogue
    ep = Epilogue(act_ops=ops, act_funcs=funcs, bias=len(op.operands) > 2)    # bias, act: the epilogue's
    if not lead:
        if x[0] == 1:
            return Layer(name, "fc", C=b[0], K=b[1], H=1, W=1, R=1, S=1, P=1, Q=1, epilogue=ep)
        lead = x[:1]          # rank 2 (L, C): L rows, each its own product (1 x L)
    H, W = math.prod(lead[:-1]), lead[-1]
    return Layer(name, "conv", C=b[0], K=b[1], H=H, W=W, R=1, S=1, P=H, Q=W, epilogue=ep)


def _kept(shape: tuple[int, ...], axes: set[int]) -> tuple[int, ...]:
    """``shape`` with the reduced ``axes`` as 1 (keepdims)."""
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _reduce_reads(op: Op) -> list:
    """Operand 0, or none for a sum of slices (its n slices are parts of one tensor, read
    from DRAM)."""
    return [] if _reduce_layer(op, "", False).kind == "eltwise" else [op.operands[0]]


@layer_rule("reduce", reads=_reduce_reads)
def _reduce_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
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
                         element=ElementFn("reduce", ops=n - 1))
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


# ---------------------------------------------------------------- element-wise and data movement
def _full_operands(op: Op, operands=None) -> list:
    """The output-shaped ones of ``operands`` (default: all of ``op``'s): what an
    ``eltwise`` layer reads as whole input tensors."""
    y = op.result.type.shape
    return [v for v in (op.operands if operands is None else operands)
            if operand_role(v.type.shape, y) == "full"]


def _data_operand_reads(op: Op) -> list:
    """A normalization's: operand 0 when output-shaped (the others are parameters)."""
    return _full_operands(op, op.operands[:1])


def _eltwise(op: Op, name: str, *, ops: int | None = None, funcs: int | None = None,
             operands=None, params: int = 0) -> Layer:
    """An ``eltwise`` layer over the output's grid (:func:`grid`; a flat grid,
    :func:`flat_grid`, when that grid has one row, every operand is of the output's shape
    or one value and the function reads no other element; a softmax over the last axis of
    an (N, C, L) tensor over ``(1, C, L)``, its C rows each reducing its columns): ``ops`` PE operations and
    ``funcs`` nonlinear functions per element (default: the op's ``Elementwise`` trait);
    of ``operands`` (default: all), the full-shape and other broadcasts are its
    ``n_inputs`` (at least 1) and each per-channel vector adds one to ``params``."""
    trait = op.get_trait(Elementwise)
    ops = trait.ops if ops is None else ops
    funcs = trait.funcs if funcs is None else funcs
    y = op.result.type.shape
    K, P, Q = grid(y)
    roles = [operand_role(v.type.shape, y) for v in (op.operands if operands is None else operands)]
    if operands is None and not params and op.name not in REDUCING_ELEMENTWISE and P == 1 \
            and all(r in ("full", "scalar") for r in roles):
        # position-independent over contiguous operands of the output's shape (or one
        # value): any grid of its elements computes it; a one-row grid uses one PE row
        fK, fP, fQ = flat_grid(K * P * Q)
        if fP * fQ > P * Q:
            K, P, Q = fK, fP, fQ
    elif op.name == "sqnxt.softmax" and len(y) == 3 and P == 1 and K > 1 and op.attrs["axis"] % 3 == 2:
        K, P = 1, K        # (N, C, L) over its last axis: each of the C rows reduces its columns
    n_in = max(1, sum(r in ("full", "other") for r in roles))
    params += sum(r == "param" for r in roles)
    return Layer(name, "eltwise", C=K, K=K, H=P, W=Q, R=1, S=1, P=P, Q=Q, n_inputs=n_in,
                 element=ElementFn(op.name.split(".")[1], ops=ops, funcs=funcs, params=params))


@layer_rule("eltwise", reads=_full_operands)
def _eltwise_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """An element-wise function: its ``Elementwise`` counts as declared."""
    return _eltwise(op, name)


@layer_rule("div", reads=_full_operands)
def _div_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """A division; by a constant divisor a multiply by its reciprocal: no function."""
    if _const(op.operands[1]) is not None:
        return _eltwise(op, name, funcs=0)
    return _eltwise(op, name)


@layer_rule("pow", reads=_full_operands)
def _pow_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """A power exp(b log a); a constant exponent 2 is a square: one multiply, no function."""
    b = _const(op.operands[1])
    if b is not None and np.all(b == 2):
        return _eltwise(op, name, funcs=0)
    return _eltwise(op, name)


@layer_rule("lrn", reads=_full_operands)
def _lrn_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """A local response normalization: its declared operations plus ``size``
    square-accumulates (its window across channels)."""
    return _eltwise(op, name, ops=op.get_trait(Elementwise).ops + op.attrs["size"])


@layer_rule("batchnorm", reads=_data_operand_reads)
def _batchnorm_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """A batchnorm: operand 0 is the data; scale and shift per channel are 2 parameters
    (folded from its 4 vectors at compile time)."""
    return _eltwise(op, name, operands=op.operands[:1], params=2)


def row_grid(q: int) -> tuple[int, int]:
    """The (rows, columns) one grid row of ``q`` elements that a normalization over it
    spans runs as: ``columns`` the largest divisor of ``q`` not above :data:`FLAT_SIDE`,
    ``rows = q / columns``, or one row when that divisor is 1 (docs/cost-model.md, "The
    flat grid").  8192 -> (128, 64); 67 -> (1, 67)."""
    c = max(d for d in range(1, min(q, FLAT_SIDE) + 1) if q % d == 0)
    return (q // c, c) if c > 1 else (1, q)


@layer_rule("layer_norm", reads=_data_operand_reads)
def _layer_norm_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """A layer normalization: operand 0 is the data; its scale (and bias) vectors are
    parameters (charged per channel).  Over the last axis of a one-row grid (K, 1, Q) (a
    GroupNorm's (N, G, C/G * H * W)), each channel's row runs as :func:`row_grid` of it:
    the same elements, normalized over all of them."""
    L = _eltwise(op, name, operands=op.operands[:1], params=len(op.operands) - 1)
    if op.attrs["axis"] == op.result.type.rank - 1 and L.P == 1:
        p, q = row_grid(L.Q)
        if p > 1:
            L = Layer(name, "eltwise", C=L.K, K=L.K, H=p, W=q, R=1, S=1, P=p, Q=q, n_inputs=L.n_inputs,
                      element=L.element)
    return L


def _move(op: Op, name: str, fn: str | None = None, *, rows: bool = False) -> Layer:
    """A ``move`` layer over the output's grid: a copy of the output's words (element
    function ``fn``, by default the op's own name).  ``rows``: a grid of one row
    ``(K, 1, Q)`` runs as ``(1, K, Q)``, its channels as rows (the same words in the same
    order; docs/cost-model.md, "The flat grid")."""
    K, P, Q = grid(op.result.type.shape)
    if rows and P == 1 and K > 1:
        K, P = 1, K
    return Layer(name, "move", C=K, K=K, H=P, W=Q, R=1, S=1, P=P, Q=Q,
                 element=ElementFn(fn or op.name.split(".")[1]))


def concat_copy_layer(op: Op) -> Layer:
    """The layer of a concat in place (``sqnxt.concat_view``) had it stayed a copy: the
    ``move`` layer ``layer_of`` gives the ``sqnxt.concat`` of the same operands (the memory
    planner's alternative to writing it in place)."""
    return _move(op, layer_name(op), "concat")


def _move_reads(op: Op) -> list:
    """Operand 0, or none when the operands are parts of one input (``Move(parts=True)``:
    concat)."""
    return [] if op.get_trait(Move).parts else [op.operands[0]]


@layer_rule("move", reads=_move_reads)
def _move_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """Data movement (the ``Move`` trait): a copy of the output's words, no operation; a
    move of one tensor (not a concat's parts) over a one-row grid, over its channels as rows."""
    return _move(op, name, rows=not op.get_trait(Move).parts)


def _resize_reads(op: Op) -> list:
    """A linear resize's output-shaped operands (as an ``eltwise``); a nearest one's
    operand 0 (as a ``move``)."""
    return _full_operands(op) if op.attrs["mode"] == "linear" else [op.operands[0]]


@layer_rule("resize", reads=_resize_reads)
def _resize_layer(op: Op, name: str, measured_sparsity: bool) -> Layer:
    """A resize: nearest is a ``move`` (a gather of the words each output reads); linear
    an ``eltwise`` of 3 operations per output (lerps of the 4 gathered taps)."""
    if op.attrs["mode"] == "nearest":
        return _move(op, name)
    K, P, Q = grid(op.result.type.shape)
    return Layer(name, "eltwise", C=K, K=K, H=P, W=Q, R=1, S=1, P=P, Q=Q, element=ElementFn("resize", ops=3))


def network_layers(graph: Graph, *, measured_sparsity: bool = False) -> list[tuple[Op, Layer | None]]:
    """Every op without the ``free`` trait, in program order, with its layer (None: not
    modelled)."""
    return [(op, layer_of(op, measured_sparsity=measured_sparsity))
            for op in graph.ops() if not op.has_trait("free")]
