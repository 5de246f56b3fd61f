"""The op set of the ``sqnxt`` dialect: declarations, type inference and verification.

Layout is NCHW, batch 1 (the frontend binds a symbolic batch to 1).  Semantics follow the
ONNX operator of the same name unless stated; the numpy executor
(:mod:`sqnxt_compiler.reference.executor`) is the executable definition of each op.

Pads are ``(top, left, bottom, right)`` (ONNX order ``x1_begin, x2_begin, x1_end, x2_end``).
The ``act`` attribute of conv / fc / add is the fused activation: ``none``, ``relu``
(max(x, 0)) or ``relu6`` (min(max(x, 0), 6)); a conv / fc also takes leaky_relu,
hard_sigmoid, hard_swish, sigmoid, tanh, gelu, gelu_tanh and swish (x * sigmoid(x)), with ``act_alpha`` /
``act_beta`` their parameters (:data:`LAYER_ACTS`).  Each kind but ``none`` and ``swish``
is declared by the activation op it stands for (its ``Activation`` trait):
:data:`ACTIVATIONS` collects them.

A conv or fc with ``residual = 1`` has a fused element-wise add (the ``fuse-add`` pass):
its last operand, of the result's shape, is added after ``act``, and ``post_act`` is
applied to the sum: ``y = post_act(act(conv(x, w) + b) + r)``.  Operands are therefore
``x, w[, b][, r]``: :func:`layer_operands` names them.

A conv with a ``pool`` attribute has a fused pooling (the ``fuse-pool`` pass): ``{kind =
"max" | "avg", kernel, strides, pads, ceil_mode, count_include_pad}``, the attributes of
``sqnxt.maxpool`` / ``sqnxt.avgpool``, applied to the conv's output after ``act``; the
result is the pooled tensor.

Each declaration lists its traits (:data:`sqnxt_compiler.ir.core.TRAITS`): what the passes,
the cost model, the reports and the frontend may assume about the op, with the data some
of them carry (an element-wise function's operations, an activation's kind, the rule that
makes the op a cost-model layer).
"""
from __future__ import annotations

import math

import numpy as np

from .core import OPS, Activation, Elementwise, Move, Op, RunsOnArray, VerifyError, declare
from .core import AttrSpec as A
from .types import TensorType

#: Traits of the graph-structure ops, and of the shape computations.
STRUCTURE_TRAITS = ("structural", "free")
SHAPE_TRAITS = ("shape_op", "free")
#: Traits of the ops that pass operand 0's words on unchanged (no data moved).
VIEW_TRAITS = ("free", "view")
#: Traits of conv and fc: weights in operands 1.., a fusible activation.
WEIGHTED_LAYER_TRAITS = ("has_weights", "act_fusible")
#: The mapping and costs the schedule pass attaches to the ops the accelerator runs.
SCHEDULE = A("any")
#: Where the memory planner put the op's output and tiles (with ``activation_home = planned``).
PLAN = A("any")
#: The fused stack a conv is a member of (with ``dram.depth_first``; docs/memory-planning.md).
STACK = A("any")
#: The attributes every op with the ``runs_on_array`` trait declares (its verify checks).
LAYER_ATTRS = {"schedule": SCHEDULE, "plan": PLAN, "stack": STACK}


def _t(op: Op, i: int) -> TensorType:
    return op.operands[i].type


def _const(op: Op, i: int) -> np.ndarray | None:
    """The constant array behind operand ``i``, if its producer is a constant."""
    owner = op.operands[i].owner
    return owner.const_value() if owner is not None else None


def conv_out(size: int, k: int, stride: int, pad_begin: int, pad_end: int, dilation: int = 1) -> int:
    """Output size of a convolution window: floor((size + pads - k_eff) / stride) + 1 with
    the dilated kernel's extent k_eff = (k - 1) * dilation + 1."""
    return (size + pad_begin + pad_end - ((k - 1) * dilation + 1)) // stride + 1


def conv_dilations(op: Op) -> tuple[int, int]:
    """A conv's (dilation_h, dilation_w): its ``dilations`` attribute, (1, 1) without one."""
    d = op.attrs.get("dilations")
    return (1, 1) if d is None else (int(d[0]), int(d[1]))


def pool_out(size: int, k: int, stride: int, pad_begin: int, pad_end: int, ceil_mode: int) -> int:
    """Output size of a pooling window (ONNX / Caffe rule).

    floor mode: floor((size + pads - k) / stride) + 1; ceil mode: ceil(...) + 1, minus one
    if the last window would start in the end padding (it must start inside the input or
    the begin padding).
    """
    span = size + pad_begin + pad_end - k
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def pool_end_pad(size: int, k: int, stride: int, pad_begin: int, pad_end: int, ceil_mode: int) -> int:
    """The end padding under which the floor rule gives :func:`pool_out`'s size:
    ``pad_end + max(0, (out - 1) * stride + k - (size + pad_begin + pad_end))`` with
    ``out = pool_out(...)`` (a ceil-mode window that overhangs the input is padded to a full
    window: Caffe's rule; in floor mode it is ``pad_end``)."""
    out = pool_out(size, k, stride, pad_begin, pad_end, ceil_mode)
    return pad_end + max(0, (out - 1) * stride + k - (size + pad_begin + pad_end))


def layer_operands(op: Op) -> tuple:
    """``(x, w, bias or None, residual or None)`` of a conv or fc: operands ``x, w[, b][, r]``,
    the residual last when ``residual = 1``."""
    ops = list(op.operands)
    r = ops.pop() if op.attrs.get("residual") else None
    return ops[0], ops[1], (ops[2] if len(ops) > 2 else None), r


POOL_KEYS = ("kind", "kernel", "strides", "pads", "ceil_mode", "count_include_pad")


def fused_pool(op: Op) -> dict | None:
    """The ``pool`` attribute of a conv (a fused pooling), or None."""
    return op.attrs.get("pool")


def _verify_pool_attr(pool) -> None:
    """A fused pool's attribute: the keys of :data:`POOL_KEYS`, the pooling ops' rules."""
    if not isinstance(pool, dict) or sorted(pool) != sorted(POOL_KEYS):
        raise VerifyError(f"pool must be a dict with keys {', '.join(POOL_KEYS)}")
    if pool["kind"] not in ("max", "avg"):
        raise VerifyError(f"pool kind must be 'max' or 'avg', got {pool['kind']!r}")
    k, st, pads = pool["kernel"], pool["strides"], pool["pads"]
    if (len(k), len(st), len(pads)) != (2, 2, 4) or any(int(v) < 1 for v in (*k, *st)):
        raise VerifyError("pool kernel and strides must be 2 values >= 1, pads 4 values")
    if any(p < 0 for p in pads) or pads[0] >= k[0] or pads[2] >= k[0] or pads[1] >= k[1] or pads[3] >= k[1]:
        raise VerifyError(f"pool pads {tuple(pads)} must be >= 0 and smaller than the kernel {tuple(k)}")
    if pool["ceil_mode"] not in (0, 1) or pool["count_include_pad"] not in (0, 1):
        raise VerifyError("pool ceil_mode and count_include_pad must be 0 or 1")


def _verify_epilogue(op: Op) -> None:
    """Bias of shape (K,), and the residual (when ``residual = 1``) of the result's shape."""
    _, w, b, r = layer_operands(op)
    if len(op.operands) < 2 + (1 if r is not None else 0):
        raise VerifyError("a residual add needs x, w and the residual operand")
    if b is not None and b.type.shape != (w.type.shape[0],):
        raise VerifyError(f"bias must be ({w.type.shape[0]},), got {b.type}")
    if r is None and op.attrs.get("post_act", "none") != "none":
        raise VerifyError("post_act needs a residual add (residual = 1)")
    if r is not None and op.results and r.type.shape != op.results[0].type.shape:
        raise VerifyError(f"residual {r.type} must have the result's shape {op.results[0].type}")
    if op.attrs.get("pool") is not None:
        _verify_pool_attr(op.attrs["pool"])
        if r is not None:
            raise VerifyError("a conv takes a fused residual add or a fused pool, not both")


def _need_rank(op: Op, i: int, rank: int, what: str = "input") -> None:
    if _t(op, i).rank != rank:
        raise VerifyError(f"{what} must be rank {rank}, got {_t(op, i)}")


# ---------------------------------------------------------------- graph structure
@declare("sqnxt.input", "A graph input (a function argument).", operands=(0, 0),
         attrs={"name": A("str", True), "type": A("any", True)}, traits=STRUCTURE_TRAITS)
def _input(op):
    return [op.attrs["type"]]


@declare("sqnxt.output", "The graph's outputs, in order (the terminator).", operands=(1, None),
         results=0, attrs={"names": A("strs", True)}, traits=STRUCTURE_TRAITS)
def _output(op):
    if len(op.attrs["names"]) != len(op.operands):
        raise VerifyError("one name per output is required")
    return []


@declare("sqnxt.constant", "A constant tensor (weights, biases, shapes).", operands=(0, 0),
         attrs={"value": A("array", True)}, traits=STRUCTURE_TRAITS)
def _constant(op):
    return [TensorType.of(op.attrs["value"])]


# ---------------------------------------------------------------- activations
# Declared before conv, fc and add: their ``act`` choices are these ops' kinds.
def _same_type(op):
    return [_t(op, 0)]


# (name, summary, attributes, Elementwise, Activation) of each activation op, in the order
# of LAYER_ACTS.
for _name, _what, _attrs, _elementwise, _activation in (
    ("sqnxt.relu", "max(x, 0).", {}, Elementwise(1, 0), Activation("relu", by_adder=True)),
    ("sqnxt.clip", "min(max(x, min), max).",
     {"min": A("float", default=float("-inf")), "max": A("float", default=float("inf"))},
     Elementwise(2, 0),                                         # max, min
     Activation("relu6", when=(("min", 0.0), ("max", 6.0)), by_adder=True)),
    ("sqnxt.leaky_relu", "x if x >= 0 else alpha * x.", {"alpha": A("float", default=0.01)},
     Elementwise(2, 0),                                         # compare, multiply
     Activation("leaky_relu", alpha="alpha", epilogue=(1, 0))),  # multiply (the sign selects)
    ("sqnxt.hard_sigmoid", "max(0, min(1, alpha * x + beta)) (ONNX HardSigmoid).",
     {"alpha": A("float", default=0.2), "beta": A("float", default=0.5)},
     Elementwise(3, 0),                                         # multiply-add, max, min
     Activation("hard_sigmoid", alpha="alpha", beta="beta", epilogue=(1, 0))),  # the clamps are free
    ("sqnxt.hard_swish", "x * max(0, min(1, x / 6 + 1 / 2)) (ONNX HardSwish).", {},
     Elementwise(4, 0),                                         # hard_sigmoid, then multiply
     Activation("hard_swish", epilogue=(2, 0))),                # multiply-add, multiply
    ("sqnxt.sigmoid", "1 / (1 + exp(-x)).", {}, Elementwise(0, 1), Activation("sigmoid", epilogue=(0, 1))),
    ("sqnxt.tanh", "tanh(x).", {}, Elementwise(0, 1), Activation("tanh", epilogue=(0, 1))),
    ("sqnxt.gelu", "x / 2 * (1 + erf(x / sqrt(2))) (ONNX Gelu, approximate = \"none\"; GELU "
     "as exporters spell it: canonicalize's gelu-from-parts).", {},
     Elementwise(3, 1),                                         # x / sqrt2, erf, h = x / 2, h * e + h
     Activation("gelu", epilogue=(3, 1))),
    ("sqnxt.gelu_tanh", "x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))) (ONNX Gelu, "
     "approximate = \"tanh\").", {},
     Elementwise(5, 1),                                         # x^2, (b x^2 + a) * x, tanh, h = x / 2, h * t + h
     Activation("gelu_tanh", epilogue=(5, 1))),
):
    declare(_name, _what, attrs={**_attrs, **LAYER_ATTRS},
            traits=(_elementwise, _activation, RunsOnArray("eltwise")))(_same_type)

#: ``act = "none"``: no activation (the adder's too).
NO_ACT = Activation("none", by_adder=True)
#: ``act = "swish"``: x * sigmoid(x), the one kind with no op of its own (fuse-relu folds the
#: pattern ``mul(y, sigmoid(y))``): the sigmoid and a multiply.
SWISH = Activation("swish", epilogue=(1, 1))
#: The activations an epilogue applies, by kind: none, each activation op's (declared just
#: above, in declaration order), swish.
ACTIVATIONS: dict[str, Activation] = {a.kind: a for a in (
    NO_ACT, *(d.get_trait(Activation) for d in OPS.values() if "activation" in d.traits), SWISH)}
#: The activations a conv / fc can apply in its epilogue (``act``, with ``act_alpha`` and
#: ``act_beta`` for leaky_relu's slope and hard_sigmoid's alpha, beta).
LAYER_ACTS = tuple(ACTIVATIONS)
#: The activations the adder applies: an add's ``act``, a fused residual's ``post_act``.
ACTS = tuple(kind for kind, a in ACTIVATIONS.items() if a.by_adder)


# ---------------------------------------------------------------- compute layers
def _verify_conv(op: Op) -> None:
    x, w = _t(op, 0), _t(op, 1)
    _need_rank(op, 0, 4)
    _need_rank(op, 1, 4, "weight")
    g = op.attrs["groups"]
    if g < 1 or x.shape[1] % g or w.shape[0] % g:
        raise VerifyError(f"groups={g} must divide input channels {x.shape[1]} "
                          f"and output channels {w.shape[0]}")
    if w.shape[1] * g != x.shape[1]:
        raise VerifyError(f"weight {w} expects {w.shape[1] * g} input channels, input has {x.shape[1]}")
    _verify_epilogue(op)
    if any(s < 1 for s in op.attrs["strides"]) or any(p < 0 for p in op.attrs["pads"]):
        raise VerifyError("strides must be >= 1 and pads >= 0")
    d = op.attrs.get("dilations")
    if d is not None and (len(d) != 2 or any(int(v) < 1 for v in d)):
        raise VerifyError(f"dilations {tuple(d)} must be 2 values >= 1")


#: The epilogue attributes of conv and fc: fused activation, fused residual add, activation
#: after the add.
EPILOGUE = {"act": A("str", default="none", choices=LAYER_ACTS),
            "act_alpha": A("float"), "act_beta": A("float"),
            "residual": A("int", default=0, choices=(0, 1)),
            "post_act": A("str", default="none", choices=ACTS)}


@declare("sqnxt.conv", "2-D convolution, NCHW, OIHW weights, optional bias, fused activation, "
         "optional fused residual add (operands x, w[, b][, r]); ``dilations`` (absent: 1, 1) "
         "spaces the kernel taps.",
         operands=(2, 4),
         attrs={"strides": A("ints", default=(1, 1)), "pads": A("ints", default=(0, 0, 0, 0)),
                "dilations": A("ints"),
                "groups": A("int", default=1), **EPILOGUE, "pool": A("any"), **LAYER_ATTRS},
         verify=_verify_conv, traits=WEIGHTED_LAYER_TRAITS + (RunsOnArray("conv"),))
def _conv(op):
    x, w = _t(op, 0), _t(op, 1)
    sh, sw = op.attrs["strides"]
    pt, pl, pb, pr = op.attrs["pads"]
    dh, dw = (1, 1) if op.attrs.get("dilations") is None else op.attrs["dilations"]
    h = conv_out(x.shape[2], w.shape[2], sh, pt, pb, dh)
    wd = conv_out(x.shape[3], w.shape[3], sw, pl, pr, dw)
    if h < 1 or wd < 1:
        raise VerifyError(f"kernel {w.shape[2]}x{w.shape[3]} (dilations {dh}x{dw}) larger than "
                          f"padded input {x}")
    pool = op.attrs.get("pool")
    if pool is not None:
        _verify_pool_attr(pool)
        (kh, kw), (ph, pw_), (qt, ql, qb, qr) = pool["kernel"], pool["strides"], pool["pads"]
        c = pool["ceil_mode"]
        h, wd = pool_out(h, kh, ph, qt, qb, c), pool_out(wd, kw, pw_, ql, qr, c)
        if h < 1 or wd < 1:
            raise VerifyError(f"pool window {kh}x{kw} larger than the padded conv output")
    return [TensorType((x.shape[0], w.shape[0], h, wd), x.dtype)]


def _verify_fc(op: Op) -> None:
    x, w = _t(op, 0), _t(op, 1)
    if x.rank < 2:
        raise VerifyError(f"input must have rank >= 2, got {x}")
    _need_rank(op, 1, 2, "weight")
    if w.shape[1] != math.prod(x.shape[1:]):
        raise VerifyError(f"weight {w} does not match input {x} (flattened: {math.prod(x.shape[1:])})")
    _verify_epilogue(op)


@declare("sqnxt.fc", "Fully connected: y = flatten(x) @ W^T + b; x (N, ...) flattened from "
         "axis 1 to (N, C), W (K, C), b (K,). A 1x1 convolution on a 1x1 image. Fused "
         "activation and residual add as conv (operands x, w[, b][, r]).",
         operands=(2, 4), attrs={**EPILOGUE, **LAYER_ATTRS},
         verify=_verify_fc, traits=WEIGHTED_LAYER_TRAITS + (RunsOnArray("fc"),))
def _fc(op):
    return [TensorType((_t(op, 0).shape[0], _t(op, 1).shape[0]), _t(op, 0).dtype)]


def _verify_bn(op: Op) -> None:
    c = _t(op, 0).shape[1] if _t(op, 0).rank >= 2 else -1
    for i in range(1, 5):
        if _t(op, i).shape != (c,):
            raise VerifyError(f"parameter {i} must be ({c},), got {_t(op, i)}")


@declare("sqnxt.batchnorm", "Inference batch normalization over axis 1: "
         "y = scale * (x - mean) / sqrt(var + epsilon) + bias.",
         operands=(5, 5), attrs={"epsilon": A("float", default=1e-5), **LAYER_ATTRS}, verify=_verify_bn,
         traits=(Elementwise(1, 0),   # x * scale + shift (folded per channel at compile time)
                 RunsOnArray("batchnorm")))
def _bn(op):
    return [_t(op, 0)]


def _broadcast(op: Op) -> list[TensorType]:
    try:
        shape = np.broadcast_shapes(*[v.type.shape for v in op.operands])
    except ValueError:
        raise VerifyError("operand shapes do not broadcast: "
                          + ", ".join(str(v.type) for v in op.operands)) from None
    return [TensorType(tuple(shape), _t(op, 0).dtype)]


# ---------------------------------------------------------------- element-wise functions
for _name, _what, _elementwise in (
    ("sqnxt.erf", "The error function erf(x) (GELU's: x / 2 * (1 + erf(x / sqrt(2)))).", Elementwise(0, 1)),
    ("sqnxt.sqrt", "sqrt(x).", Elementwise(0, 1)),
    ("sqnxt.exp", "exp(x).", Elementwise(0, 1)),
    ("sqnxt.neg", "-x.", Elementwise(1, 0)),
    ("sqnxt.abs", "|x|.", Elementwise(1, 0)),
    ("sqnxt.reciprocal", "1 / x.", Elementwise(0, 1)),
):
    declare(_name, _what, attrs=dict(LAYER_ATTRS), traits=(_elementwise, RunsOnArray("eltwise")))(_same_type)


def _verify_prelu(op: Op) -> None:
    x, slope = _t(op, 0).shape, _t(op, 1).shape
    try:
        ok = np.broadcast_shapes(x, slope) == x
    except ValueError:
        ok = False
    if not ok:
        raise VerifyError(f"slope {_t(op, 1)} does not broadcast to the input {_t(op, 0)}")


@declare("sqnxt.prelu", "x if x >= 0 else slope * x; the slope (per channel, or any shape "
         "that broadcasts to x) is operand 1 (ONNX PRelu).", operands=(2, 2), verify=_verify_prelu,
         attrs=dict(LAYER_ATTRS),
         traits=(Elementwise(2, 0), RunsOnArray("eltwise")))     # compare, multiply by the slope
def _prelu(op):
    return [_t(op, 0)]


@declare("sqnxt.add", "Element-wise sum of 2 or more tensors (numpy broadcasting), fused activation.",
         operands=(1, None), attrs={"act": A("str", default="none", choices=ACTS), **LAYER_ATTRS},
         traits=("act_fusible", Elementwise(1, 0),    # per operand after the first
                 RunsOnArray("add")))
def _add(op):
    return _broadcast(op)


def _verify_layer_norm(op: Op) -> None:
    x = _t(op, 0)
    if not 0 <= op.attrs["axis"] < x.rank:
        raise VerifyError(f"axis {op.attrs['axis']} outside the rank-{x.rank} input")
    norm = x.shape[op.attrs["axis"]:]
    for i in range(1, len(op.operands)):
        try:
            ok = np.broadcast_shapes(_t(op, i).shape, norm) == norm
        except ValueError:
            ok = False
        if not ok:
            raise VerifyError(f"operand {i} {_t(op, i)} does not broadcast to the normalized axes {norm}")


@declare("sqnxt.layer_norm", "Layer normalization over the axes from ``axis`` on: "
         "(x - mean) / sqrt(var + epsilon) * scale (+ bias) (ONNX LayerNormalization).",
         operands=(2, 3), attrs={"axis": A("int", True), "epsilon": A("float", default=1e-5), **LAYER_ATTRS},
         verify=_verify_layer_norm,
         traits=(Elementwise(4, 0),   # accumulate, square-accumulate, normalize, scale-shift
                 RunsOnArray("layer_norm")))
def _layer_norm(op):
    return [_t(op, 0)]


for _name, _what, _elementwise, _layer in (
    ("sub", "a - b", Elementwise(1, 0), "eltwise"),
    ("mul", "a * b", Elementwise(1, 0), "eltwise"),
    ("div", "a / b", Elementwise(1, 1), "div"),     # reciprocal, multiply
    ("pow", "a ** b", Elementwise(1, 1), "pow"),    # exp(b log a)
):
    declare(f"sqnxt.{_name}", f"Element-wise {_what} (numpy broadcasting).", operands=(2, 2),
            attrs=dict(LAYER_ATTRS), traits=(_elementwise, RunsOnArray(_layer)))(_broadcast)


def _verify_pool(op: Op) -> None:
    _need_rank(op, 0, 4)
    if any(k < 1 for k in op.attrs["kernel"]) or any(s < 1 for s in op.attrs["strides"]):
        raise VerifyError("kernel and strides must be >= 1")
    pads = op.attrs["pads"]
    k = op.attrs["kernel"]
    if pads[0] >= k[0] or pads[2] >= k[0] or pads[1] >= k[1] or pads[3] >= k[1]:
        raise VerifyError(f"pads {pads} must be smaller than the kernel {k}")


def _pool(op):
    x = _t(op, 0)
    kh, kw = op.attrs["kernel"]
    sh, sw = op.attrs["strides"]
    pt, pl, pb, pr = op.attrs["pads"]
    c = op.attrs["ceil_mode"]
    h, w = pool_out(x.shape[2], kh, sh, pt, pb, c), pool_out(x.shape[3], kw, sw, pl, pr, c)
    if h < 1 or w < 1:
        raise VerifyError(f"window {kh}x{kw} larger than padded input {x}")
    return [TensorType((x.shape[0], x.shape[1], h, w), x.dtype)]


_POOL = {"kernel": A("ints", True), "strides": A("ints", default=(1, 1)),
         "pads": A("ints", default=(0, 0, 0, 0)), "ceil_mode": A("int", default=0, choices=(0, 1)),
         **LAYER_ATTRS}
declare("sqnxt.maxpool", "2-D max pooling (padding never wins the max).",
        attrs=dict(_POOL), verify=_verify_pool, traits=(RunsOnArray("pool"),))(_pool)
declare("sqnxt.avgpool", "2-D average pooling; count_include_pad=1 divides by the full window.",
        attrs={**_POOL, "count_include_pad": A("int", default=0, choices=(0, 1))},
        verify=_verify_pool, traits=(RunsOnArray("pool"),))(_pool)


@declare("sqnxt.global_avgpool", "Mean over H and W: (N, C, H, W) -> (N, C, 1, 1).",
         attrs=dict(LAYER_ATTRS), verify=lambda op: _need_rank(op, 0, 4),
         traits=(RunsOnArray("gap"),))
def _gap(op):
    x = _t(op, 0)
    return [TensorType((x.shape[0], x.shape[1], 1, 1), x.dtype)]


def _verify_gemm(op: Op) -> None:
    _need_rank(op, 0, 2)
    _need_rank(op, 1, 2, "B")


@declare("sqnxt.gemm", "alpha * op(A) @ op(B) + beta * C (ONNX Gemm; C broadcasts).",
         operands=(2, 3), verify=_verify_gemm,
         attrs={"alpha": A("float", default=1.0), "beta": A("float", default=1.0),
                "trans_a": A("int", default=0, choices=(0, 1)),
                "trans_b": A("int", default=0, choices=(0, 1))})
def _gemm(op):
    a, b = _t(op, 0).shape, _t(op, 1).shape
    m, ka = (a[1], a[0]) if op.attrs["trans_a"] else a
    kb, n = (b[1], b[0]) if op.attrs["trans_b"] else b
    if ka != kb:
        raise VerifyError(f"inner dimensions differ: {_t(op, 0)} vs {_t(op, 1)}")
    if len(op.operands) == 3:
        try:
            np.broadcast_shapes(_t(op, 2).shape, (m, n))
        except ValueError:
            raise VerifyError(f"C {_t(op, 2)} does not broadcast to ({m}, {n})") from None
    return [TensorType((m, n), _t(op, 0).dtype)]


def _verify_matmul(op: Op) -> None:
    """A bias (operand 2) is one value per column of a 2-D B: ``(K,)``."""
    if len(op.operands) > 2:
        b = _t(op, 1).shape
        if len(b) != 2 or _t(op, 2).shape != (b[1],):
            raise VerifyError(f"bias {_t(op, 2)} must be ({b[-1]},), one value per column of a 2-D B {_t(op, 1)}")


@declare("sqnxt.matmul", "Matrix product (numpy matmul semantics), then an optional bias "
         "(operand 2, one value per column of a 2-D B, added along the last axis: "
         "canonicalize's bias-into-matmul) and a fused activation ``act`` (fuse-relu; a "
         "matmul by a constant B is a conv / fc layer with that epilogue).", operands=(2, 3),
         attrs={"act": A("str", default="none", choices=LAYER_ACTS), "act_alpha": A("float"),
                "act_beta": A("float"), **LAYER_ATTRS},
         verify=_verify_matmul, traits=("act_fusible", RunsOnArray("matmul")))
def _matmul(op):
    a, b = _t(op, 0).shape, _t(op, 1).shape
    if len(a) < 1 or len(b) < 1:
        raise VerifyError("matmul operands must have rank >= 1")
    a2 = a if len(a) > 1 else (1,) + a  # numpy: a vector operand gains, then loses, an axis
    b2 = b if len(b) > 1 else b + (1,)
    try:
        if a2[-1] != b2[-2]:
            raise ValueError
        batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    except ValueError:
        raise VerifyError(f"shapes do not multiply: {_t(op, 0)} @ {_t(op, 1)}") from None
    shape = batch + ((a2[-2],) if len(a) > 1 else ()) + ((b2[-1],) if len(b) > 1 else ())
    return [TensorType(shape, _t(op, 0).dtype)]


@declare("sqnxt.flatten", "Reshape to 2-D: (prod(dims[:axis]), prod(dims[axis:])).",
         attrs={"axis": A("int", default=1)}, traits=VIEW_TRAITS)
def _flatten(op):
    x = _t(op, 0)
    axis = op.attrs["axis"]
    if not -x.rank <= axis <= x.rank:
        raise VerifyError(f"axis {axis} out of range for {x}")
    if axis < 0:
        axis += x.rank
    return [TensorType((math.prod(x.shape[:axis]), math.prod(x.shape[axis:])), x.dtype)]


def reshape_target(in_shape: tuple[int, ...], spec) -> tuple[int, ...]:
    """ONNX Reshape (allowzero=0): 0 copies the input dimension, one -1 is inferred."""
    out = [in_shape[i] if int(d) == 0 else int(d) for i, d in enumerate(spec)]
    if out.count(-1) > 1:
        raise VerifyError("at most one -1 in a reshape")
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        total = math.prod(in_shape)
        if known == 0 or total % known:
            raise VerifyError(f"cannot reshape {in_shape} to {tuple(spec)}")
        out[out.index(-1)] = total // known
    if math.prod(out) != math.prod(in_shape):
        raise VerifyError(f"cannot reshape {in_shape} to {tuple(out)}")
    return tuple(out)


@declare("sqnxt.reshape", "Reshape (0 copies, -1 infers). With a computed target shape the "
         "result type is explicit (from import) and must keep the element count.",
         operands=(2, 2), traits=VIEW_TRAITS)
def _reshape(op):
    spec = _const(op, 1)
    if spec is None:
        if not op.results:
            raise VerifyError("a reshape with a computed target shape needs an explicit result type")
        t = op.results[0].type
        if t.numel != _t(op, 0).numel:
            raise VerifyError(f"cannot reshape {_t(op, 0)} to {t}")
        return [t]
    return [TensorType(reshape_target(_t(op, 0).shape, spec.reshape(-1)), _t(op, 0).dtype)]


@declare("sqnxt.concat", "Concatenation along an axis.", operands=(1, None),
         attrs={"axis": A("int", True), **LAYER_ATTRS}, traits=(Move(parts=True), RunsOnArray("move")))
def _concat(op):
    first = _t(op, 0)
    axis = op.attrs["axis"] % max(first.rank, 1)
    for v in op.operands[1:]:
        t = v.type
        if t.rank != first.rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape))
                                       if i != axis):
            raise VerifyError(f"cannot concatenate {t} with {first} on axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(v.type.shape[axis] for v in op.operands)
    return [TensorType(tuple(shape), first.dtype)]


def _verify_concat_view(op: Op) -> None:
    shape = op.result.type.shape
    axis = op.attrs["axis"] % max(len(shape), 1)
    if math.prod(shape[:axis]) != 1:
        raise VerifyError(f"a concat in place along axis {axis} of {list(shape)}: its parts are not "
                          "contiguous slices of the result (every axis before the concat axis must be 1)")


@declare("sqnxt.concat_view", "Concatenation in place: the producers of the operands write them into "
         "their slices of the result (every axis before the concat axis has size 1), so it moves no "
         "data (made by concat-in-place).", operands=(1, None), attrs={"axis": A("int", True)},
         verify=_verify_concat_view, traits=("free", "in_place_parts"))
def _concat_view(op):
    return _concat(op)


def _verify_transpose(op: Op) -> None:
    perm = list(op.attrs["perm"])
    if sorted(perm) != list(range(_t(op, 0).rank)):
        raise VerifyError(f"perm {perm} is not a permutation of the {_t(op, 0).rank} axes")


@declare("sqnxt.transpose", "Permute the axes: result axis i is input axis perm[i] (ONNX "
         "Transpose).", attrs={"perm": A("ints", True), **LAYER_ATTRS}, verify=_verify_transpose,
         traits=(Move(), RunsOnArray("move")))
def _transpose(op):
    x = _t(op, 0)
    return [TensorType(tuple(x.shape[p] for p in op.attrs["perm"]), x.dtype)]


@declare("sqnxt.expand", "Broadcast to ``shape`` (ONNX Expand: numpy broadcasting of the "
         "input and the shape).", attrs={"shape": A("ints", True), **LAYER_ATTRS},
         traits=(Move(), RunsOnArray("move")))
def _expand(op):
    x = _t(op, 0)
    try:
        shape = np.broadcast_shapes(x.shape, tuple(int(d) for d in op.attrs["shape"]))
    except ValueError:
        raise VerifyError(f"cannot expand {x} to {tuple(op.attrs['shape'])}") from None
    return [TensorType(tuple(shape), x.dtype)]


PAD_MODES = ("constant", "reflect", "edge")


def _verify_pad(op: Op) -> None:
    x, pads = _t(op, 0), list(op.attrs["pads"])
    if len(pads) != 2 * x.rank or any(p < 0 for p in pads):
        raise VerifyError(f"pads {pads} must be {2 * x.rank} values >= 0 (begins, then ends)")
    if op.attrs["mode"] == "reflect" and any(
            p >= d for d, p in zip(x.shape * 2, pads) if p > 0):
        raise VerifyError(f"reflect pads {pads} must be smaller than the padded axes {x.shape}")


@declare("sqnxt.pad", "Pad every axis: ``pads`` = begins then ends per axis (ONNX order), mode "
         "constant (with ``value``), reflect or edge.",
         attrs={"pads": A("ints", True), "mode": A("str", default="constant", choices=PAD_MODES),
                "value": A("float", default=0.0), **LAYER_ATTRS}, verify=_verify_pad,
         traits=(Move(), RunsOnArray("move")))
def _pad(op):
    x, pads = _t(op, 0), op.attrs["pads"]
    r = x.rank
    return [TensorType(tuple(d + pads[i] + pads[i + r] for i, d in enumerate(x.shape)), x.dtype)]


REDUCE_KINDS = ("mean", "max", "min", "sum")


def _verify_reduce(op: Op) -> None:
    r = _t(op, 0).rank
    axes = list(op.attrs["axes"])
    if not axes or any(not -r <= a < r for a in axes) or len({a % r for a in axes}) != len(axes):
        raise VerifyError(f"axes {axes} must be distinct axes of the rank-{r} input")


@declare("sqnxt.reduce", "Reduce over ``axes`` (ONNX ReduceMean / ReduceMax / ReduceMin / "
         "ReduceSum): kind mean | max | min | sum; keepdims keeps them as size 1.",
         attrs={"kind": A("str", True, choices=REDUCE_KINDS), "axes": A("ints", True),
                "keepdims": A("int", default=1, choices=(0, 1)), **LAYER_ATTRS}, verify=_verify_reduce,
         traits=(RunsOnArray("reduce"),))
def _reduce(op):
    x = _t(op, 0)
    axes = {a % x.rank for a in op.attrs["axes"]}
    if op.attrs["keepdims"]:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return [TensorType(shape, x.dtype)]


RESIZE_MODES = ("nearest", "linear")
RESIZE_COORDS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
RESIZE_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _verify_resize(op: Op) -> None:
    _need_rank(op, 0, 4)
    if len(op.attrs["size"]) != 2 or any(int(v) < 1 for v in op.attrs["size"]):
        raise VerifyError(f"size {tuple(op.attrs['size'])} must be 2 output sizes >= 1 (H, W)")
    if len(op.attrs["scales"]) != 2 or any(not float(v) > 0 for v in op.attrs["scales"]):
        raise VerifyError(f"scales {tuple(op.attrs['scales'])} must be 2 values > 0 (H, W)")


@declare("sqnxt.resize", "Resize H and W of an NCHW tensor to ``size`` (ONNX Resize / Upsample): "
         "mode nearest | linear (bilinear), the coordinate transformation with ``scales`` "
         "(given, or output / input), nearest_mode for nearest.",
         attrs={"size": A("ints", True), "scales": A("floats", True),
                "mode": A("str", default="nearest", choices=RESIZE_MODES),
                "coord": A("str", default="half_pixel", choices=RESIZE_COORDS),
                "nearest_mode": A("str", default="round_prefer_floor", choices=RESIZE_NEAREST),
                **LAYER_ATTRS},
         verify=_verify_resize, traits=(RunsOnArray("resize"),))
def _resize(op):
    x = _t(op, 0)
    h, w = (int(v) for v in op.attrs["size"])
    return [TensorType((x.shape[0], x.shape[1], h, w), x.dtype)]


@declare("sqnxt.identity", "y = x.", traits=VIEW_TRAITS)
def _identity(op):
    return [_t(op, 0)]


@declare("sqnxt.dropout", "Inference dropout: y = x.", attrs={"ratio": A("float", default=0.5)},
         traits=VIEW_TRAITS)
def _dropout(op):
    return [_t(op, 0)]


@declare("sqnxt.lrn", "Local response normalization across channels (ONNX LRN).",
         attrs={"size": A("int", True), "alpha": A("float", default=1e-4),
                "beta": A("float", default=0.75), "bias": A("float", default=1.0), **LAYER_ATTRS},
         verify=lambda op: _need_rank(op, 0, 4),
         traits=(Elementwise(2, 1),   # + size square-accumulates; multiply-add, power, multiply
                 RunsOnArray("lrn")))
def _lrn(op):
    return [_t(op, 0)]


@declare("sqnxt.softmax", "Softmax along axis; coerce_2d=1 is the opset<13 rule "
         "(flatten to 2-D at axis, normalise each row).",
         attrs={"axis": A("int", default=-1), "coerce_2d": A("int", default=0, choices=(0, 1)), **LAYER_ATTRS},
         traits=(Elementwise(2, 1),   # exp, accumulate, multiply by the row's reciprocal
                 RunsOnArray("eltwise")))
def _softmax(op):
    return [_t(op, 0)]


# ---------------------------------------------------------------- shape computation
# These appear in exporters' reshape chains (Shape -> Gather -> Unsqueeze -> Concat) and as
# views (Squeeze of a 1x1 map).  They do no arithmetic; on constants canonicalize folds them.
@declare("sqnxt.shape", "The shape of a tensor as an i64 vector (ONNX Shape, start/end).",
         attrs={"start": A("int", default=0), "end": A("int")}, traits=SHAPE_TRAITS + ("reads_shape_only",))
def _shape(op):
    r = _t(op, 0).rank
    dims = list(range(r))[op.attrs.get("start", 0):op.attrs.get("end", r)]
    return [TensorType((len(dims),), "i64")]


def _np_infer(op: Op, fn) -> list[TensorType]:
    """Infer a shape op's result by running its kernel on zeros of the operand types."""
    args = [np.zeros(v.type.shape, v.type.np_dtype) if _const(op, i) is None else _const(op, i)
            for i, v in enumerate(op.operands)]
    try:
        return [TensorType.of(np.asarray(fn(op, *args)))]
    except (ValueError, IndexError, TypeError) as exc:
        raise VerifyError(str(exc)) from None


def _gather(op, x, idx):
    return np.take(x, idx.astype(np.int64), axis=op.attrs["axis"])


def _unsqueeze(op, x):
    out = x
    rank = x.ndim + len(op.attrs["axes"])
    for a in sorted(a % rank for a in op.attrs["axes"]):
        out = np.expand_dims(out, a)
    return out


def _squeeze(op, x):
    axes = op.attrs.get("axes")
    if axes:
        return np.squeeze(x, axis=tuple(a % x.ndim for a in axes))
    return np.squeeze(x)


def _slice(op, x):
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(op.attrs["starts"], op.attrs["ends"], op.attrs["axes"], op.attrs["steps"]):
        sl[a % x.ndim] = slice(s, e, st)
    return x[tuple(sl)]


def _cast(op, x):
    from .types import DTYPES
    return x.astype(DTYPES[op.attrs["to"]])


#: numpy kernels of the shape ops, shared by inference, the executor and constant folding.
SHAPE_KERNELS = {
    "sqnxt.gather": _gather,
    "sqnxt.unsqueeze": _unsqueeze,
    "sqnxt.squeeze": _squeeze,
    "sqnxt.slice": _slice,
    "sqnxt.cast": _cast,
}

#: (un)squeeze on an activation is a view of its words; gather, slice and cast on one read
#: them (the frontend lowers data gathers and slices to take / extract_slice).
for _name, _attrs, _summary, _nops, _traits in (
    ("sqnxt.gather", {"axis": A("int", default=0)}, "np.take(x, indices, axis).", (2, 2), SHAPE_TRAITS),
    ("sqnxt.unsqueeze", {"axes": A("ints", True)}, "Insert size-1 axes.", (1, 1), SHAPE_TRAITS + ("view",)),
    ("sqnxt.squeeze", {"axes": A("ints")}, "Remove size-1 axes.", (1, 1), SHAPE_TRAITS + ("view",)),
    ("sqnxt.slice", {"starts": A("ints", True), "ends": A("ints", True), "axes": A("ints", True),
                     "steps": A("ints", True)}, "Strided slice with constant bounds.", (1, 1), SHAPE_TRAITS),
    ("sqnxt.cast", {"to": A("str", True)}, "Element type conversion.", (1, 1), SHAPE_TRAITS),
):
    declare(_name, _summary, operands=_nops, attrs=_attrs, traits=_traits)(
        (lambda k: (lambda op: _np_infer(op, SHAPE_KERNELS[k])))(_name))


# ---------------------------------------------------------------- data slices and gathers
def _broadcast_view(t: TensorType) -> np.ndarray:
    """A zero-size-in-memory array of ``t``'s shape (to take numpy's result shape)."""
    return np.broadcast_to(np.zeros((), t.np_dtype), t.shape)


@declare("sqnxt.extract_slice", "A strided slice of an activation (ONNX Slice / Split on "
         "data): the words are copied; bounds as sqnxt.slice.",
         attrs={"starts": A("ints", True), "ends": A("ints", True), "axes": A("ints", True),
                "steps": A("ints", True), **LAYER_ATTRS},
         traits=(Move(), RunsOnArray("move")))
def _extract_slice(op):
    try:
        return [TensorType(_slice(op, _broadcast_view(_t(op, 0))).shape, _t(op, 0).dtype)]
    except (ValueError, IndexError) as exc:
        raise VerifyError(str(exc)) from None


def first_out_of_range(indices, size: int) -> int | None:
    """The first of ``indices`` (any shape, row-major order) outside ``[-size, size)``, or
    None.  ONNX Gather's rule: index ``i`` in that range picks element ``i``, a negative one
    counting from the end (``-1`` is the last); any other index is an invalid model."""
    flat = np.asarray(indices).reshape(-1)
    bad = np.flatnonzero((flat < -size) | (flat >= size))
    return int(flat[bad[0]]) if bad.size else None


def index_range_message(index: int, axis: int, size: int) -> str:
    """How an out-of-range gather index is reported (:func:`first_out_of_range`)."""
    return (f"index {index} out of range for axis {axis} of size {size} "
            f"(valid indices: -{size} to {size - 1})")


def _verify_take(op: Op) -> None:
    """Constant indices lie in ``[-n, n)`` of the gathered axis (:func:`first_out_of_range`);
    indices computed at run time are the executor's to check."""
    x, idx = _t(op, 0), _const(op, 1)
    if idx is None or not -x.rank <= op.attrs["axis"] < x.rank:
        return
    a = op.attrs["axis"] % x.rank
    bad = first_out_of_range(idx, x.shape[a])
    if bad is not None:
        raise VerifyError(index_range_message(bad, a, x.shape[a]))


@declare("sqnxt.take", "np.take of an activation along ``axis`` with constant indices "
         "(ONNX Gather on data): the words are copied; every index in [-n, n) of the axis.",
         operands=(2, 2), attrs={"axis": A("int", default=0), **LAYER_ATTRS}, verify=_verify_take,
         traits=(Move(), RunsOnArray("move")))
def _take(op):
    x, idx = _t(op, 0), _t(op, 1)
    if not -x.rank <= op.attrs["axis"] < x.rank:
        raise VerifyError(f"axis {op.attrs['axis']} out of range for {x}")
    a = op.attrs["axis"] % x.rank
    return [TensorType(x.shape[:a] + idx.shape + x.shape[a + 1:], x.dtype)]


# ---------------------------------------------------------------- host ops
# A detection or classification tail (TopK, ArgMax, comparisons, Where, GatherElements,
# ...): the host CPU runs it, not the accelerator (the ``host`` trait: operands read from
# DRAM, result written to DRAM; docs/ir.md, "The host partition").  Their kernels are the
# reference executor's; the frontend lowers them in frontend/lower_host.py.
HOST_TRAITS = ("host",)
#: A host op's element types: what ONNX's comparisons and logical ops give.
BOOL = "bool"


def _broadcast_shape(op: Op) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*[v.type.shape for v in op.operands]))
    except ValueError:
        raise VerifyError("operand shapes do not broadcast: "
                          + ", ".join(str(v.type) for v in op.operands)) from None


def _verify_same_dtype(op: Op) -> None:
    """The compared / combined operands have one element type (ONNX's type constraint T)."""
    dts = {v.type.dtype for v in op.operands}
    if len(dts) != 1:
        raise VerifyError(f"operands must have one element type, got {sorted(dts)}")


def _verify_bools(op: Op) -> None:
    if any(v.type.dtype != BOOL for v in op.operands):
        raise VerifyError("operands must be bool, got " + ", ".join(str(v.type) for v in op.operands))


for _name, _what, _onnx in (("equal", "a == b", "Equal"), ("less", "a < b", "Less"),
                            ("greater", "a > b", "Greater"), ("less_equal", "a <= b", "LessOrEqual"),
                            ("greater_equal", "a >= b", "GreaterOrEqual")):
    declare(f"sqnxt.{_name}", f"Element-wise comparison {_what}, a bool tensor (numpy broadcasting; "
            f"ONNX {_onnx}); on the host.", operands=(2, 2), verify=_verify_same_dtype, traits=HOST_TRAITS)(
        lambda op: [TensorType(_broadcast_shape(op), BOOL)])

for _name, _what, _n in (("and", "a and b", 2), ("or", "a or b", 2), ("xor", "a xor b", 2), ("not", "not a", 1)):
    declare(f"sqnxt.{_name}", f"Element-wise logical {_what} of bool tensors (numpy broadcasting); on the host.",
            operands=(_n, _n), verify=_verify_bools, traits=HOST_TRAITS)(
        lambda op: [TensorType(_broadcast_shape(op), BOOL)])


def _verify_where(op: Op) -> None:
    if _t(op, 0).dtype != BOOL:
        raise VerifyError(f"the condition must be bool, got {_t(op, 0)}")
    if _t(op, 1).dtype != _t(op, 2).dtype:
        raise VerifyError(f"the two branches must have one element type, got {_t(op, 1)} and {_t(op, 2)}")


@declare("sqnxt.where", "cond ? a : b, element-wise with numpy broadcasting of the three (ONNX Where); "
         "on the host.", operands=(3, 3), verify=_verify_where, traits=HOST_TRAITS)
def _where(op):
    return [TensorType(_broadcast_shape(op), _t(op, 1).dtype)]


def _verify_mod(op: Op) -> None:
    _verify_same_dtype(op)
    if _t(op, 0).dtype.startswith("f") and not op.attrs["fmod"]:
        raise VerifyError("Mod of floating-point operands needs fmod = 1 (ONNX)")


@declare("sqnxt.mod", "Element-wise remainder (ONNX Mod): fmod = 1 the C fmod (the dividend's sign), "
         "fmod = 0 the integer modulus with the divisor's sign (numpy broadcasting); on the host.",
         operands=(2, 2), attrs={"fmod": A("int", default=0, choices=(0, 1))}, verify=_verify_mod,
         traits=HOST_TRAITS)
def _mod(op):
    return [TensorType(_broadcast_shape(op), _t(op, 0).dtype)]


def _axis_of(op: Op, rank: int) -> int:
    a = op.attrs["axis"]
    if not -rank <= a < rank:
        raise VerifyError(f"axis {a} out of range for a rank-{rank} input")
    return a % rank


def _verify_gather_elements(op: Op) -> None:
    x, idx = _t(op, 0), _t(op, 1)
    if idx.dtype not in ("i64", "i32"):
        raise VerifyError(f"indices must be i64 or i32, got {idx}")
    if x.rank != idx.rank or x.rank < 1:
        raise VerifyError(f"data {x} and indices {idx} must have one rank >= 1")
    a = _axis_of(op, x.rank)
    if any(i > d for n, (i, d) in enumerate(zip(idx.shape, x.shape)) if n != a):
        raise VerifyError(f"indices {idx} exceed the data {x} on an axis other than {a}")
    c = _const(op, 1)
    if c is not None:
        bad = first_out_of_range(c, x.shape[a])
        if bad is not None:
            raise VerifyError(index_range_message(bad, a, x.shape[a]))


@declare("sqnxt.gather_elements", "out[i][j][k] = x[index[i][j][k]][j][k] along ``axis`` (ONNX "
         "GatherElements; a negative index counts from the end); on the host.", operands=(2, 2),
         attrs={"axis": A("int", default=0)}, verify=_verify_gather_elements, traits=HOST_TRAITS)
def _gather_elements(op):
    return [TensorType(_t(op, 1).shape, _t(op, 0).dtype)]


def _reduced_shape(op: Op) -> tuple[int, ...]:
    x = _t(op, 0)
    a = _axis_of(op, x.rank)
    if op.attrs.get("keepdims", 1):
        return tuple(1 if i == a else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i != a)


for _name, _what in (("argmax", "largest"), ("argmin", "smallest")):
    declare(f"sqnxt.{_name}", f"The index (i64) of the {_what} element along ``axis`` (ONNX "
            f"{'ArgMax' if _name == 'argmax' else 'ArgMin'}): the first one of equal elements, the last "
            f"with select_last_index = 1; keepdims keeps the axis as size 1; on the host.",
            attrs={"axis": A("int", default=0), "keepdims": A("int", default=1, choices=(0, 1)),
                   "select_last_index": A("int", default=0, choices=(0, 1))}, traits=HOST_TRAITS)(
        lambda op: [TensorType(_reduced_shape(op), "i64")])

TOPK_PARTS = ("values", "indices")


def _verify_topk(op: Op) -> None:
    x = _t(op, 0)
    a = _axis_of(op, x.rank)
    if not 1 <= op.attrs["k"] <= x.shape[a]:
        raise VerifyError(f"k = {op.attrs['k']} must be in [1, {x.shape[a]}] (axis {a} of {x})")


@declare("sqnxt.topk", "The k largest (largest = 1) or smallest elements along ``axis``, sorted, "
         "ties broken by the lower index (ONNX TopK, as onnxruntime): ``part`` values gives the "
         "elements, indices their i64 positions (an ONNX TopK becomes one op per output); on the host.",
         attrs={"k": A("int", True), "axis": A("int", default=-1),
                "largest": A("int", default=1, choices=(0, 1)), "part": A("str", True, choices=TOPK_PARTS)},
         verify=_verify_topk, traits=HOST_TRAITS)
def _topk(op):
    x = _t(op, 0)
    a = _axis_of(op, x.rank)
    shape = tuple(op.attrs["k"] if i == a else d for i, d in enumerate(x.shape))
    return [TensorType(shape, x.dtype if op.attrs["part"] == "values" else "i64")]


@declare("sqnxt.input_layout", "Permute the axes of a graph input as the host writes it to DRAM "
         "(result axis i is input axis perm[i]): an exporter's NHWC -> NCHW Transpose of the input, "
         "made by canonicalize; on the host.", attrs={"perm": A("ints", True)}, verify=_verify_transpose,
         traits=HOST_TRAITS)
def _input_layout(op):
    x = _t(op, 0)
    return [TensorType(tuple(x.shape[p] for p in op.attrs["perm"]), x.dtype)]


@declare("sqnxt.convert", "Element type conversion of a host result (ONNX Cast of TopK or ArgMax "
         "indices, of a comparison's bools); on the host.", attrs={"to": A("str", True)},
         traits=HOST_TRAITS)
def _convert(op):
    from .types import DTYPES
    if op.attrs["to"] not in DTYPES:
        raise VerifyError(f"unknown element type '{op.attrs['to']}'")
    return [TensorType(_t(op, 0).shape, op.attrs["to"])]
