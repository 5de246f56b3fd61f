"""Numpy forward kernels used while building a model, to calibrate its weights.

The zoo propagates a small batch of calibration images through each network as it is built, so that it
can set every BatchNormalization's mean and variance to the statistics of the tensor the
BatchNorm actually sees (and rescale the weights of layers without BatchNorm so their
outputs have unit standard deviation).  These kernels implement exactly the ONNX operator
semantics the builder emits (opset 13), float32 throughout, on activations in **CNHW**
layout (channels first, then the batch: per-channel statistics are one reshape away) or
``[features, N]`` once flattened.
They are not a general executor: only the attribute combinations the zoo uses.
"""
from __future__ import annotations

import math

import numpy as np


def conv2d(x: np.ndarray, w: np.ndarray, *, stride: tuple[int, int],
           pads: tuple[int, int, int, int], group: int) -> np.ndarray:
    """ONNX ``Conv`` without bias on a CNHW batch.

    ``w`` is ``[Co, Ci/group, kh, kw]``; ``pads`` is ONNX order ``(top, left, bottom, right)``.
    The sum runs over kernel offsets: for each ``(i, j)`` the strided, shifted input slice is
    multiplied by ``w[:, :, i, j]`` (a batched matmul over groups), so no full im2col copy
    is ever held.  Depthwise convolutions (one input and one output channel per group) use a
    broadcast multiply instead of tiny matmuls.
    """
    ci, n, h, wd = x.shape
    co, cig, kh, kw = w.shape
    sh, sw = stride
    pt, pl, pb, pr = pads
    if any(pads):
        xp = np.zeros((ci, n, h + pt + pb, wd + pl + pr), dtype=np.float32)
        xp[:, :, pt:pt + h, pl:pl + wd] = x
    else:
        xp = x
    ho = (h + pt + pb - kh) // sh + 1
    wo = (wd + pl + pr - kw) // sw + 1
    cog = co // group
    depthwise = cig == 1 and cog == 1
    cols = n * ho * wo
    if kh == kw == 1 and group == 1:  # the common case: one matmul, no accumulator
        xs = np.ascontiguousarray(xp[:, :, ::sh, ::sw][:, :, :ho, :wo]).reshape(ci, cols)
        return (w.reshape(co, ci) @ xs).reshape(co, n, ho, wo)
    y = np.zeros((group, cog, cols), dtype=np.float32)
    wg = w.reshape(group, cog, cig, kh, kw)
    for i in range(kh):
        for j in range(kw):
            xs = xp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            xs = np.ascontiguousarray(xs).reshape(group, cig, cols)
            if depthwise:
                y += wg[:, :, 0, i, j][:, :, None] * xs
            elif group == 1:
                y[0] += wg[0, :, :, i, j] @ xs[0]
            else:
                y += np.matmul(wg[:, :, :, i, j], xs)
    return y.reshape(co, n, ho, wo)


def pool_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                     ceil_mode: bool) -> int:
    """Output length of a pooling window: floor or ceil of ``(in + pads - k) / s``, plus one.

    In ceil mode a last window that would start beyond the input and its begin padding is
    dropped (the rule of Caffe, PyTorch and onnxruntime).
    """
    span = size + pad_begin + pad_end - kernel
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def max_pool(x: np.ndarray, *, kernel: int, stride: int, pads: tuple[int, int, int, int],
             ceil_mode: bool) -> np.ndarray:
    """ONNX ``MaxPool`` (square kernel and stride) on a CNHW batch; padding counts as -inf."""
    c, n, h, w = x.shape
    pt, pl, pb, pr = pads
    ho = pool_output_size(h, kernel, stride, pt, pb, ceil_mode)
    wo = pool_output_size(w, kernel, stride, pl, pr, ceil_mode)
    need_h = (ho - 1) * stride + kernel
    need_w = (wo - 1) * stride + kernel
    xp = np.full((c, n, need_h, need_w), -np.inf, dtype=np.float32)
    hh = min(h, need_h - pt)
    ww = min(w, need_w - pl)
    xp[:, :, pt:pt + hh, pl:pl + ww] = x[:, :, :hh, :ww]
    out = None
    for i in range(kernel):
        for j in range(kernel):
            s = xp[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            out = s.copy() if out is None else np.maximum(out, s, out=out)
    return out


def global_avg_pool(x: np.ndarray) -> np.ndarray:
    """ONNX ``GlobalAveragePool`` on a CNHW batch, keeping the 1x1 spatial dims."""
    return x.mean(axis=(2, 3), dtype=np.float64, keepdims=True).astype(np.float32)


def flatten(x: np.ndarray) -> np.ndarray:
    """ONNX ``Flatten(axis=1)`` of a CNHW batch, returned as ``[C*H*W, N]``."""
    c, n, h, w = x.shape
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3).reshape(n, c * h * w).T)


def lrn(x: np.ndarray, *, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """ONNX ``LRN``: ``x / (bias + alpha/size * sum of x^2 over a channel window)^beta``.

    The window of channel ``c`` is ``[c - floor((size-1)/2), c + ceil((size-1)/2)]``.
    """
    c = x.shape[0]
    lo = (size - 1) // 2
    hi = size - 1 - lo
    sq = np.zeros((c + size,) + x.shape[1:], dtype=np.float64)
    np.cumsum(x.astype(np.float64) ** 2, axis=0, out=sq[1:c + 1])
    sq[c + 1:] = sq[c]
    idx = np.arange(c)
    win = sq[np.minimum(idx + hi, c - 1) + 1] - sq[np.maximum(idx - lo, 0)]
    return (x / (bias + alpha / size * win) ** beta).astype(np.float32)


def channel_stats(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (biased) variance over batch and space, accumulated in float64."""
    flat = y.reshape(y.shape[0], -1)
    mean = flat.mean(axis=1, dtype=np.float64)
    var = flat.var(axis=1, dtype=np.float64)
    return mean, var
