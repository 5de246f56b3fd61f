"""A numpy interpreter of the IR: runs a graph op by op (the torch.fx Interpreter idea).

Each op's kernel here is the executable definition of its semantics (the op set's
docstrings state them).  :class:`Interpreter` owns the graph loop; :func:`run` is
``Interpreter(graph).run(inputs)``, and the tiled executor (``tiled.py``) is a subclass
that overrides how one op runs.  Intermediate values are dropped after their last use, so
whole networks run in bounded memory.  A kernel failure names the op and its source node.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..diagnostics import InputError, Location, SqnxtError, UnsupportedError
from ..ir.core import Op
from ..ir.graph import Graph
from ..ir.ops import SHAPE_KERNELS, conv_dilations, pool_end_pad, pool_out

Kernel = Callable[[Op, list], np.ndarray]
KERNELS: dict[str, Kernel] = {}


def kernel(*names: str):
    def wrap(fn):
        for n in names:
            KERNELS[n] = fn
        return fn
    return wrap


def activate(y: np.ndarray, act: str, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray:
    """The fused activation (``LAYER_ACTS`` of ir/ops.py), computed as the unfused op's
    kernel computes it: none; relu = max(y, 0); relu6 = min(max(y, 0), 6); leaky_relu
    (slope ``alpha``); hard_sigmoid = clip(alpha * y + beta, 0, 1); hard_swish; sigmoid;
    tanh; gelu, gelu_tanh (:func:`gelu`); swish = y * sigmoid(y)."""
    if act == "relu":
        return np.maximum(y, 0, out=y if y.flags.writeable else None)
    if act == "relu6":
        return np.clip(y, 0, 6)
    if act == "leaky_relu":
        return leaky_relu(y, alpha)
    if act == "hard_sigmoid":
        return hard_sigmoid(y, alpha, beta)
    if act == "hard_swish":
        return hard_swish(y)
    if act == "sigmoid":
        return sigmoid(y)
    if act == "tanh":
        return np.tanh(y)
    if act == "swish":
        return (y * sigmoid(y)).astype(y.dtype)
    if act == "gelu":
        return gelu(y)
    if act == "gelu_tanh":
        return gelu(y, approximate="tanh")
    return y


def leaky_relu(x: np.ndarray, alpha: float) -> np.ndarray:
    """x if x >= 0 else alpha * x."""
    return np.where(x >= 0, x, x * np.asarray(alpha, dtype=x.dtype)).astype(x.dtype)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), evaluated as exp(-|x|) so that no exponential overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def hard_sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """clip(alpha * x + beta, 0, 1) in x's dtype."""
    return np.clip(_f(x, alpha) * x + _f(x, beta), 0, 1).astype(x.dtype)


def hard_swish(x: np.ndarray) -> np.ndarray:
    """x * clip(x / 6 + 1 / 2, 0, 1) in x's dtype."""
    return (x * np.clip(x * _f(x, 1 / 6) + _f(x, 0.5), 0, 1)).astype(x.dtype)


#: erf of each element of a float64 array, in double precision (the C library's ``erf``)
_ERF64 = np.frompyfunc(math.erf, 1, 1)


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """GELU in float64 inside, returned in x's dtype: ``x / 2 * (1 + erf(x / sqrt(2)))``
    (erf in double precision), or with ``approximate = "tanh"`` ``x / 2 * (1 + tanh(sqrt(2 /
    pi) * (x + 0.044715 * x^3)))`` (ONNX Gelu, opset 20)."""
    x64 = np.asarray(x, dtype=np.float64)
    if approximate == "tanh":
        inner = np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3))
    else:
        inner = np.asarray(_ERF64(x64 * (1 / math.sqrt(2))), dtype=np.float64)
    y = 0.5 * x64 * (1.0 + inner)
    return y.astype(np.asarray(x).dtype) if np.asarray(x).dtype.kind == "f" else y


def _f(x: np.ndarray, v: float) -> np.ndarray:
    """``v`` as a scalar of ``x``'s dtype (float32 arithmetic stays float32)."""
    return np.asarray(v, dtype=x.dtype)


def act_of(op) -> tuple[str, float, float]:
    """(act, act_alpha, act_beta) of an op with a fused activation."""
    return op.attrs.get("act", "none"), op.attrs.get("act_alpha", 0.0), op.attrs.get("act_beta", 0.0)


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, strides, pads, groups: int,
           dilations=(1, 1)) -> np.ndarray:
    """y[n,k,p,q] = b[k] + sum_{c in group(k), r, s} w[k,c,r,s] * xpad[n, c, p*sh + r*dh, q*sw + s*dw]."""
    n, c, _, _ = x.shape
    k, cg, kh, kw = w.shape
    sh, sw = strides
    dh, dw = dilations
    pt, pl, pb, pr = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr))) if any(pads) else x
    span = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    win = sliding_window_view(xp, span, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]  # n,c,P,Q,kh,kw
    p, q = win.shape[2], win.shape[3]
    if groups == 1:
        y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # n,P,Q,k
        y = y.transpose(0, 3, 1, 2)
    else:
        kg = k // groups
        wg = w.reshape(groups, kg, cg, kh, kw)
        xg = win.reshape(n, groups, cg, p, q, kh, kw)
        y = np.einsum("ngcpqrs,gkcrs->ngkpq", xg, wg, optimize=True).reshape(n, k, p, q)
    y = np.ascontiguousarray(y, dtype=x.dtype)
    if b is not None:
        y += b.reshape(1, -1, 1, 1).astype(y.dtype)
    return y


def epilogue(op, y: np.ndarray, args: list) -> np.ndarray:
    """The epilogue of a conv or fc: ``post_act(act(y) + r)`` with a fused residual ``r``
    (the last operand when ``residual = 1``), else ``act(y)``."""
    y = activate(y, *act_of(op))
    if op.attrs.get("residual"):
        y = activate(np.asarray(y + args[-1], dtype=y.dtype), op.attrs["post_act"])
    return y


def _split(op, a: list) -> tuple:
    """(x, w, bias or None) of a conv / fc's operand arrays (the residual excluded)."""
    n = len(a) - (1 if op.attrs.get("residual") else 0)
    return a[0], a[1], (a[2] if n > 2 else None)


class PoolView:
    """A conv's fused pool as the pooling kernels read an op: ``attrs`` of
    ``sqnxt.maxpool`` / ``sqnxt.avgpool``."""

    def __init__(self, pool: dict):
        self.kind = pool["kind"]
        self.attrs = {k: pool[k] for k in ("kernel", "strides", "pads", "ceil_mode", "count_include_pad")}


def apply_pool(pool: dict, y: np.ndarray) -> np.ndarray:
    """The fused pool of a conv (its ``pool`` attribute) on the conv's output ``y``."""
    view = PoolView(pool)
    return (_maxpool if view.kind == "max" else _avgpool)(view, [y])


@kernel("sqnxt.conv")
def _conv(op, a):
    x, w, b = _split(op, a)
    y = conv2d(x, w, b, op.attrs["strides"], op.attrs["pads"], op.attrs["groups"], conv_dilations(op))
    y = epilogue(op, y, a)
    pool = op.attrs.get("pool")
    return y if pool is None else apply_pool(pool, y)


@kernel("sqnxt.fc")
def _fc(op, a):
    x, w, b = _split(op, a)
    y = x.reshape(x.shape[0], -1) @ w.T
    if b is not None:
        y = y + b
    return epilogue(op, np.asarray(y, dtype=x.dtype), a)


@kernel("sqnxt.batchnorm")
def _bn(op, a):
    x, scale, bias, mean, var = a
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = (scale / np.sqrt(var.astype(np.float64) + op.attrs["epsilon"])).astype(x.dtype)
    return ((x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)).astype(x.dtype)


@kernel("sqnxt.relu")
def _relu(op, a):
    return np.maximum(a[0], 0)


KERNELS["sqnxt.leaky_relu"] = lambda op, a: leaky_relu(a[0], op.attrs["alpha"])


@kernel("sqnxt.clip")
def _clip(op, a):
    return np.clip(a[0], op.attrs["min"], op.attrs["max"]).astype(a[0].dtype)


KERNELS["sqnxt.sigmoid"] = lambda op, a: sigmoid(a[0])
KERNELS["sqnxt.tanh"] = lambda op, a: np.tanh(a[0])
KERNELS["sqnxt.hard_sigmoid"] = lambda op, a: hard_sigmoid(a[0], op.attrs["alpha"], op.attrs["beta"])
KERNELS["sqnxt.hard_swish"] = lambda op, a: hard_swish(a[0])
KERNELS["sqnxt.gelu"] = lambda op, a: gelu(a[0])
KERNELS["sqnxt.gelu_tanh"] = lambda op, a: gelu(a[0], approximate="tanh")


@kernel("sqnxt.prelu")
def _prelu(op, a):
    x, slope = a
    return np.where(x >= 0, x, x * slope.astype(x.dtype)).astype(x.dtype)


@kernel("sqnxt.add")
def _add(op, a):
    y = a[0] if len(a) > 1 else a[0].copy()  # activate() may work in place: never on an operand
    for t in a[1:]:
        y = y + t
    return activate(np.asarray(y), op.attrs["act"])


def erf(x: np.ndarray) -> np.ndarray:
    """erf(x) by Abramowitz & Stegun 7.1.26 in float64 (|error| <= 1.5e-7, a few float32
    ulps), in x's dtype: erf(x) = sign(x) (1 - t (a1 + t (a2 + ... + t a5)) exp(-x^2)),
    t = 1 / (1 + p |x|)."""
    z = np.abs(np.asarray(x, dtype=np.float64))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (np.sign(x) * (1.0 - poly * np.exp(-z * z))).astype(x.dtype)


def layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None, axis: int, eps: float) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) * scale + bias over the axes axis.. (float64 inside)."""
    axes = tuple(range(axis, x.ndim))
    x64 = np.asarray(x, dtype=np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x64 - mean) / np.sqrt(var + eps) * scale
    return (y + bias if bias is not None else y).astype(x.dtype)


KERNELS["sqnxt.erf"] = lambda op, a: erf(a[0])
KERNELS["sqnxt.sqrt"] = lambda op, a: np.sqrt(a[0])
KERNELS["sqnxt.exp"] = lambda op, a: np.exp(a[0])
KERNELS["sqnxt.neg"] = lambda op, a: np.negative(a[0])
KERNELS["sqnxt.abs"] = lambda op, a: np.abs(a[0])
KERNELS["sqnxt.reciprocal"] = lambda op, a: np.reciprocal(a[0])
KERNELS["sqnxt.pow"] = lambda op, a: np.power(a[0], a[1]).astype(np.result_type(a[0], a[1]))
KERNELS["sqnxt.layer_norm"] = lambda op, a: layer_norm(a[0], a[1], a[2] if len(a) > 2 else None,
                                                        op.attrs["axis"], op.attrs["epsilon"])
KERNELS["sqnxt.sub"] = lambda op, a: np.subtract(a[0], a[1])
KERNELS["sqnxt.mul"] = lambda op, a: np.multiply(a[0], a[1])
KERNELS["sqnxt.div"] = lambda op, a: (np.floor_divide(a[0], a[1]) if a[0].dtype.kind in "iu"
                                      else np.divide(a[0], a[1]))


def _pool_geometry(op, x):
    """(kernel, strides, pads, output size, end slack) of a pooling op on input ``x``.

    The output size is :func:`sqnxt_compiler.ir.ops.pool_out` (floor or ceil mode).  A
    ceil-mode window may overhang the declared end padding: the slack is what
    :func:`sqnxt_compiler.ir.ops.pool_end_pad` adds to it (the cells are -inf for max,
    never counted by an average).
    """
    kh, kw = op.attrs["kernel"]
    sh, sw = op.attrs["strides"]
    pt, pl, pb, pr = op.attrs["pads"]
    ceil = op.attrs["ceil_mode"]
    h, w = x.shape[2], x.shape[3]
    oh, ow = pool_out(h, kh, sh, pt, pb, ceil), pool_out(w, kw, sw, pl, pr, ceil)
    slack = (pool_end_pad(h, kh, sh, pt, pb, ceil) - pb, pool_end_pad(w, kw, sw, pl, pr, ceil) - pr)
    return (kh, kw), (sh, sw), (pt, pl, pb, pr), (oh, ow), slack


def _windows(xp, k, s, out):
    """The first ``out`` (rows, columns) windows of size ``k`` at stride ``s`` of ``xp``."""
    win = sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]]
    return win[:, :, :out[0], :out[1]]


@kernel("sqnxt.maxpool")
def _maxpool(op, a):
    x = a[0]
    k, s, (pt, pl, pb, pr), out, (eh, ew) = _pool_geometry(op, x)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb + eh), (pl, pr + ew)), constant_values=-np.inf)
    return _windows(xp, k, s, out).max(axis=(4, 5)).astype(x.dtype)


@kernel("sqnxt.avgpool")
def _avgpool(op, a):
    """Sum of the window over the count of cells it covers: the declared padded area when
    count_include_pad=1, the real input otherwise; ceil-mode overhang never counts."""
    x = a[0]
    k, s, (pt, pl, pb, pr), out, (eh, ew) = _pool_geometry(op, x)
    pads = ((0, 0), (0, 0), (pt, pb + eh), (pl, pr + ew))
    xp = np.pad(x.astype(np.float64), pads)
    if op.attrs["count_include_pad"]:
        mask = np.pad(np.ones((1, 1, x.shape[2] + pt + pb, x.shape[3] + pl + pr)),
                      ((0, 0), (0, 0), (0, eh), (0, ew)))
    else:
        mask = np.pad(np.ones((1, 1) + x.shape[2:]), pads)
    total = _windows(xp, k, s, out).sum(axis=(4, 5))
    count = _windows(mask, k, s, out).sum(axis=(4, 5))
    return (total / count).astype(x.dtype)


@kernel("sqnxt.global_avgpool")
def _gap(op, a):
    return a[0].mean(axis=(2, 3), keepdims=True, dtype=np.float64).astype(a[0].dtype)


@kernel("sqnxt.gemm")
def _gemm(op, a):
    A = a[0].T if op.attrs["trans_a"] else a[0]
    B = a[1].T if op.attrs["trans_b"] else a[1]
    y = op.attrs["alpha"] * (A @ B)
    if len(a) > 2:
        y = y + op.attrs["beta"] * a[2]
    return np.asarray(y, dtype=a[0].dtype)


@kernel("sqnxt.matmul")
def _matmul(op, a):
    """a @ b, then the bias (operand 2, along the last axis) and the fused activation."""
    y = np.matmul(a[0], a[1])
    if len(a) > 2:
        y = y + a[2].astype(y.dtype)
    return activate(np.asarray(y), *act_of(op)) if op is not None else y


@kernel("sqnxt.flatten")
def _flatten(op, a):
    return a[0].reshape(op.results[0].type.shape)


@kernel("sqnxt.reshape")
def _reshape(op, a):
    return a[0].reshape(op.results[0].type.shape)


@kernel("sqnxt.concat", "sqnxt.concat_view")
def _concat(op, a):
    return np.concatenate(a, axis=op.attrs["axis"])


KERNELS["sqnxt.transpose"] = lambda op, a: np.ascontiguousarray(np.transpose(a[0], op.attrs["perm"]))
KERNELS["sqnxt.input_layout"] = KERNELS["sqnxt.transpose"]   # the host's copy of the input, permuted
KERNELS["sqnxt.expand"] = lambda op, a: np.array(np.broadcast_to(a[0], op.result.type.shape))


@kernel("sqnxt.pad")
def _pad(op, a):
    x, pads = a[0], op.attrs["pads"]
    r = x.ndim
    width = [(pads[i], pads[i + r]) for i in range(r)]
    if op.attrs["mode"] == "constant":
        return np.pad(x, width, mode="constant", constant_values=_f(x, op.attrs["value"]))
    return np.pad(x, width, mode=op.attrs["mode"])


@kernel("sqnxt.reduce")
def _reduce(op, a):
    x = a[0]
    fn = {"mean": np.mean, "max": np.max, "min": np.min, "sum": np.sum}[op.attrs["kind"]]
    axes = tuple(sorted(ax % x.ndim for ax in op.attrs["axes"]))
    return np.asarray(fn(x, axis=axes, keepdims=bool(op.attrs["keepdims"]))).astype(x.dtype)


def resize_source(out: int, size: int, scale: float, coord: str) -> np.ndarray:
    """The input coordinate of each output index along one axis (ONNX Resize):
    half_pixel (i + 0.5) / scale - 0.5; pytorch_half_pixel the same, 0 when out == 1;
    align_corners i (size - 1) / (out - 1) (0 when out == 1); asymmetric i / scale."""
    i = np.arange(out, dtype=np.float64)
    if coord == "asymmetric":
        return i / scale
    if coord == "align_corners":
        return i * (size - 1) / (out - 1) if out > 1 else np.zeros(out)
    src = (i + 0.5) / scale - 0.5
    if coord == "pytorch_half_pixel" and out == 1:
        return np.zeros(out)
    return src


def _nearest_index(src: np.ndarray, size: int, mode: str) -> np.ndarray:
    """The input index a nearest resize reads: src rounded by ``mode`` (ties for the
    round_prefer_* modes), clamped to the axis."""
    if mode == "floor":
        idx = np.floor(src)
    elif mode == "ceil":
        idx = np.ceil(src)
    elif mode == "round_prefer_ceil":
        idx = np.floor(src + 0.5)
    else:                                   # round_prefer_floor
        idx = np.ceil(src - 0.5)
    return np.clip(idx, 0, size - 1).astype(np.int64)


def _linear_weights(src: np.ndarray, size: int):
    """(lower index, upper index, weight of the upper) of a linear resize: the source
    coordinate clamped to [0, size - 1], its floor and the next index (clamped)."""
    src = np.clip(src, 0, size - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, size - 1)
    return lo, hi, src - lo


@kernel("sqnxt.resize")
def _resize(op, a):
    """Nearest: gather the rounded source indices; linear: separable bilinear interpolation
    of the clamped source coordinates (computed in float64, returned in x's dtype)."""
    x = a[0]
    (oh, ow), (sh, sw) = op.attrs["size"], op.attrs["scales"]
    H, W = x.shape[2], x.shape[3]
    ys = resize_source(oh, H, sh, op.attrs["coord"])
    xs = resize_source(ow, W, sw, op.attrs["coord"])
    if op.attrs["mode"] == "nearest":
        m = op.attrs["nearest_mode"]
        return x[:, :, _nearest_index(ys, H, m)][:, :, :, _nearest_index(xs, W, m)]
    y0, y1, wy = _linear_weights(ys, H)
    x0, x1, wx = _linear_weights(xs, W)
    xf = x.astype(np.float64)
    rows = xf[:, :, y0] * (1 - wy)[:, None] + xf[:, :, y1] * wy[:, None]
    out = rows[:, :, :, x0] * (1 - wx) + rows[:, :, :, x1] * wx
    return out.astype(x.dtype)


KERNELS["sqnxt.identity"] = lambda op, a: a[0]
KERNELS["sqnxt.dropout"] = lambda op, a: a[0]


@kernel("sqnxt.lrn")
def _lrn(op, a):
    """y = x / (bias + alpha / size * sum_{c' in [c - floor((size-1)/2), c + ceil((size-1)/2)]} x[c']^2)^beta."""
    x = a[0]
    size = op.attrs["size"]
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    sq = np.pad(x.astype(np.float64) ** 2, ((0, 0), (lo, hi), (0, 0), (0, 0)))
    csum = np.cumsum(np.pad(sq, ((0, 0), (1, 0), (0, 0), (0, 0))), axis=1)
    ssum = csum[:, size:] - csum[:, :-size]
    ssum = ssum[:, :x.shape[1]]
    denom = (op.attrs["bias"] + op.attrs["alpha"] / size * ssum) ** op.attrs["beta"]
    return (x / denom).astype(x.dtype)


@kernel("sqnxt.softmax")
def _softmax(op, a):
    x = a[0]
    axis = op.attrs["axis"]
    if op.attrs["coerce_2d"]:
        axis %= x.ndim
        flat = x.reshape(int(np.prod(x.shape[:axis])), -1)
        e = np.exp(flat - flat.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape).astype(x.dtype)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


@kernel("sqnxt.shape")
def _shape(op, a):
    r = a[0].ndim
    return np.array(a[0].shape[op.attrs.get("start", 0):op.attrs.get("end", r)], dtype=np.int64)


for _name, _fn in SHAPE_KERNELS.items():
    KERNELS[_name] = (lambda f: (lambda op, a: f(op, *a)))(_fn)
# the copies of activation data: the shape ops' kernels (a contiguous copy)
KERNELS["sqnxt.extract_slice"] = lambda op, a: np.ascontiguousarray(SHAPE_KERNELS["sqnxt.slice"](op, *a))
KERNELS["sqnxt.take"] = lambda op, a: SHAPE_KERNELS["sqnxt.gather"](op, *a)

KERNELS["sqnxt.constant"] = lambda op, a: op.attrs["value"]


# ---------------------------------------------------------------- host ops (the ``host`` trait)
# ONNX semantics exactly, as onnxruntime computes them: comparisons give bool; TopK sorts
# with ties broken by the lower index; ArgMax / ArgMin pick the first (or, with
# select_last_index, the last) of equal elements; Mod with fmod = 1 is C's fmod, else the
# integer modulus with the divisor's sign; GatherElements counts a negative index from the
# end (an index outside [-n, n) is an error naming the op).
for _name, _fn in (("equal", np.equal), ("less", np.less), ("greater", np.greater),
                   ("less_equal", np.less_equal), ("greater_equal", np.greater_equal),
                   ("and", np.logical_and), ("or", np.logical_or), ("xor", np.logical_xor)):
    KERNELS[f"sqnxt.{_name}"] = (lambda f: (lambda op, a: np.asarray(f(a[0], a[1]), dtype=np.bool_)))(_fn)
KERNELS["sqnxt.not"] = lambda op, a: np.logical_not(a[0])
KERNELS["sqnxt.where"] = lambda op, a: np.where(a[0], a[1], a[2]).astype(op.result.type.np_dtype, copy=False)
KERNELS["sqnxt.convert"] = lambda op, a: a[0].astype(op.result.type.np_dtype)


@kernel("sqnxt.mod")
def _mod(op, a):
    x, y = a
    if op.attrs["fmod"]:
        return np.fmod(x, y).astype(op.result.type.np_dtype, copy=False)
    if np.any(y == 0):
        raise SqnxtError("integer Mod by zero")
    return np.mod(x, y).astype(op.result.type.np_dtype, copy=False)


@kernel("sqnxt.gather_elements")
def _gather_elements(op, a):
    x, idx = a
    axis = op.attrs["axis"] % x.ndim
    n = x.shape[axis]
    idx = idx.astype(np.int64)
    bad = np.flatnonzero((idx < -n) | (idx >= n))
    if bad.size:
        raise SqnxtError(f"GatherElements index {int(idx.reshape(-1)[bad[0]])} out of range for axis "
                         f"{axis} of size {n}")
    idx = np.where(idx < 0, idx + n, idx)
    # indices may be smaller than the data on the other axes: take the leading block
    block = tuple(slice(0, d) if i != axis else slice(None) for i, d in enumerate(idx.shape))
    return np.take_along_axis(x[block], idx, axis=axis)


@kernel("sqnxt.argmax", "sqnxt.argmin")
def _arg_reduce(op, a):
    x = a[0]
    axis = op.attrs["axis"] % x.ndim
    fn = np.argmax if op.name == "sqnxt.argmax" else np.argmin
    if op.attrs["select_last_index"]:
        n = x.shape[axis]
        i = n - 1 - fn(np.flip(x, axis=axis), axis=axis)
    else:
        i = fn(x, axis=axis)
    i = i.astype(np.int64)
    return np.expand_dims(i, axis) if op.attrs["keepdims"] else i


@kernel("sqnxt.topk")
def _topk(op, a):
    x = a[0]
    axis = op.attrs["axis"] % x.ndim
    k = op.attrs["k"]
    # a stable sort keeps equal elements in index order: the lower index first (onnxruntime);
    # largest first: sort the negation (NaN: numpy sorts it last either way)
    key = -x if op.attrs["largest"] and x.dtype.kind != "b" else x
    if op.attrs["largest"] and x.dtype.kind in "u":
        key = -(x.astype(np.int64))
    order = np.argsort(key, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    if op.attrs["part"] == "indices":
        return idx.astype(np.int64)
    return np.take_along_axis(x, idx, axis=axis)


def eval_op(op: Op, args: list[np.ndarray]) -> np.ndarray:
    """Evaluate one (single-result) op on numpy arguments."""
    fn = KERNELS.get(op.name)
    if fn is None:
        raise SqnxtError(f"no numpy kernel for {op.name}", Location(node=op.loc.node, op=op.name))
    return np.asarray(fn(op, args))


def last_uses(order: list[Op]) -> dict[int, int]:
    """For each value (by ``id``), the position in ``order`` of its last user."""
    last: dict[int, int] = {}
    for i, op in enumerate(order):
        for v in op.operands:
            last[id(v)] = i
    return last


def bind_input(graph: Graph, op: Op, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The array given for input op ``op``, checked against its type and cast to its dtype."""
    name = op.attrs["name"]
    if name not in inputs:
        raise InputError(f"missing input '{name}'", Location(file=graph.source))
    arr = np.asarray(inputs[name])
    if arr.shape != op.result.type.shape:
        raise InputError(f"input '{name}' has shape {arr.shape}, expected "
                         f"{op.result.type.shape}", Location(file=graph.source))
    return arr.astype(op.result.type.np_dtype, copy=False)


class Interpreter:
    """Runs a graph op by op (the torch.fx ``Interpreter`` pattern).

    :meth:`run` owns the loop: it walks ``graph.ops()`` in program order, binds each input
    op's value (:meth:`bind`), calls :meth:`run_op` for every op that is neither an input
    nor the output and checks the result's shape against the IR type, drops a value after
    its last use (constants stay), and returns the output op's operands (:meth:`collect`);
    :meth:`begin` starts each run.  A subclass changes how ops execute by
    overriding :meth:`run_op` (``sqnxt_compiler.reference.tiled.TiledExecutor``), and how
    its values are bound and read back by overriding :meth:`bind` and :meth:`as_array`.

    ``observe(op, value)`` is called with every computed value, as :meth:`as_array` gives
    it (for debugging / bisection).
    """

    #: first words of the error raised when an op fails with a non-compiler exception
    failure = "executing failed"

    def __init__(self, graph: Graph, *, observe: Callable[[Op, np.ndarray], None] | None = None):
        self.graph = graph
        self.observe = observe

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph on ``inputs`` (keyed by input name); outputs keyed by output name."""
        order = self.graph.ops()
        last_use = last_uses(order)
        self.begin()
        env: dict[int, object] = {}
        for i, op in enumerate(order):
            if op.name == "sqnxt.input":
                env[id(op.result)] = self.bind(op, inputs)
                continue
            args = [env[id(v)] for v in op.operands]
            if op.name == "sqnxt.output":
                return self.collect(op, args)
            y = self._checked(op, args)
            env[id(op.result)] = y
            if self.observe is not None:
                self.observe(op, self.as_array(y))
            for v in op.operands:
                if last_use.get(id(v)) == i and v.owner.name != "sqnxt.constant":
                    env.pop(id(v), None)
        return {}

    def begin(self) -> None:
        """Called once at the start of every :meth:`run` (a subclass's per-run state)."""

    def bind(self, op: Op, inputs: dict[str, np.ndarray]):
        """The value of input op ``op``: :func:`bind_input`."""
        return bind_input(self.graph, op, inputs)

    def run_op(self, op: Op, args: list):
        """The value of ``op`` (neither input nor output) on its operands' values: the op's
        numpy kernel (:func:`eval_op`)."""
        return eval_op(op, args)

    def as_array(self, value) -> np.ndarray:
        """The numpy array a value stands for (what outputs and ``observe`` receive)."""
        return value

    def collect(self, op: Op, args: list) -> dict[str, np.ndarray]:
        """The graph's outputs: the output op's operands, by output name."""
        return {n: self.as_array(a) for n, a in zip(op.attrs["names"], args)}

    def _checked(self, op: Op, args: list):
        """:meth:`run_op`, with errors located at the op (its source node) and the result's
        shape checked against the op's IR type."""
        where = Location(file=self.graph.source, node=op.loc.node, op=op.name)
        try:
            y = self.run_op(op, args)
        except SqnxtError as exc:
            if exc.location is None:
                exc.location = where
            raise
        except MemoryError as exc:  # too large for this process: the model's size, not a bug
            raise UnsupportedError(f"out of memory executing it ({exc or 'MemoryError'}): the "
                                   "activations are too large for this process", where) from None
        except Exception as exc:  # name the failing node (torch.fx Interpreter style)
            raise SqnxtError(f"{self.failure}: {type(exc).__name__}: {exc}", where) from exc
        if y.shape != op.result.type.shape:
            raise SqnxtError(f"kernel produced shape {y.shape}, IR type says {op.result.type}",
                             where)
        return y


def run(graph: Graph, inputs: dict[str, np.ndarray], *,
        observe: Callable[[Op, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``inputs`` (keyed by input name); return outputs keyed by output name.

    ``observe(op, value)`` is called with every computed value (for debugging / bisection).
    """
    return Interpreter(graph, observe=observe).run(inputs)
