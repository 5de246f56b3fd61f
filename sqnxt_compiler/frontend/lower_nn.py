"""Lowerings of network layers: convolution, batch and layer normalization, pooling
(with ONNX's ``pads`` / ``auto_pad`` rules), matrix products, LRN, softmax, reductions and
resize."""
from __future__ import annotations

import math

from .lowering import _Lowering, lowers


def _same_pads(L: _Lowering, auto: str, size: int, k: int, s: int) -> tuple[int, int]:
    """(head, tail) padding of one axis under ``auto_pad`` SAME_UPPER / SAME_LOWER, as
    onnxruntime computes it: output ``o = ceil(size / s)``, ``need = (o - 1) * s + k - size``,
    head ``need / 2`` (SAME_UPPER) or ``(need + 1) / 2`` (SAME_LOWER), C division (towards
    0), tail ``need - head``.  With a stride larger than the kernel ``need`` can be
    negative: a negative tail only leaves input rows that no window reaches, so it is 0
    here with the same result; a negative head shifts every window, which sqnxtc does not
    model, and onnxruntime's pools reject any negative padding: both are unsupported (exit 4)."""
    o = -(-size // s)
    need = (o - 1) * s + k - size
    num = need + (1 if auto == "SAME_LOWER" else 0)
    head = abs(num) // 2 * (1 if num >= 0 else -1)
    tail = need - head
    if need >= 0:
        return head, tail
    if head < 0 or L.node.op_type != "Conv":
        raise L.unsupported(
            f"auto_pad {auto} with stride {s} > kernel {k} on an axis of {size}: onnxruntime's "
            f"padding is negative (head {head}, tail {tail}); "
            + ("it shifts the windows, which sqnxtc does not model" if L.node.op_type == "Conv"
               else "onnxruntime rejects it") + " (give explicit pads)")
    return head, 0


def _auto_pad(L: _Lowering) -> str:
    """The node's ``auto_pad`` as text (ONNX default NOTSET)."""
    auto = L.attr("auto_pad", b"NOTSET")
    return auto.decode() if isinstance(auto, bytes) else auto


def _pads2d(L: _Lowering, in_hw, kernel, strides) -> tuple[int, int, int, int]:
    """Explicit (top, left, bottom, right) pads from ``pads`` or ``auto_pad`` (ONNX rules)."""
    auto = _auto_pad(L)
    if auto in ("NOTSET", ""):
        pads = list(L.attr("pads", [0, 0, 0, 0]))
        if len(pads) != 4:
            raise L.unsupported(f"pads {pads}: only 2-D windows are supported")
        return tuple(int(p) for p in pads)
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = [_same_pads(L, auto, size, k, s) for size, k, s in zip(in_hw, kernel, strides)]
        (t, b), (l, r) = out
        return (t, l, b, r)
    raise L.unsupported(f"auto_pad '{auto}'")


def _no_dilation(L: _Lowering) -> None:
    d = L.attr("dilations")
    if d is not None and any(int(x) != 1 for x in d):
        raise L.unsupported(f"dilations {list(d)}: only dilation 1 is supported")


@lowers("Conv", into="sqnxt.conv")
def _conv(L):
    x, w = L.value(L.node.input[0]), L.value(L.node.input[1])
    if w.type.rank != 4 or x.type.rank != 4:
        raise L.unsupported(f"only 2-D convolutions are supported (weight {w.type})")
    strides = tuple(int(s) for s in L.attr("strides", [1, 1]))
    dil = tuple(int(d) for d in L.attr("dilations", [1, 1]))
    if len(dil) != 2 or any(d < 1 for d in dil):
        raise L.unsupported(f"dilations {list(dil)}: 2 values >= 1 are supported")
    kernel = tuple((k - 1) * d + 1 for k, d in zip(w.type.shape[2:], dil))   # the dilated extent
    auto = _auto_pad(L)
    if dil != (1, 1) and auto in ("SAME_UPPER", "SAME_LOWER"):
        raise L.unsupported(f"dilations {list(dil)} with auto_pad {auto}: "
                            "onnxruntime does not run it, so there is no reference (give explicit pads)")
    pads = _pads2d(L, x.type.shape[2:], kernel, strides)
    ops = [x, w] + ([L.value(L.opt_input(2))] if L.opt_input(2) else [])
    attrs = {"strides": strides, "pads": pads, "groups": int(L.attr("group", 1))}
    if dil != (1, 1):
        attrs["dilations"] = dil
    L.emit("sqnxt.conv", ops, attrs)


@lowers("BatchNormalization", into="sqnxt.batchnorm")
def _bn(L):
    if L.attr("training_mode", 0):
        raise L.unsupported("training-mode BatchNormalization")
    if L.opset < 9 and L.attr("spatial", 1) != 1:
        raise L.unsupported("BatchNormalization with spatial=0")
    L.only_first_output()
    L.emit("sqnxt.batchnorm", [L.value(n) for n in L.node.input[:5]],
           {"epsilon": float(L.attr("epsilon", 1e-5))})


@lowers("MaxPool", "AveragePool", into={"MaxPool": "sqnxt.maxpool", "AveragePool": "sqnxt.avgpool"})
def _pool(L):
    x = L.value(L.node.input[0])
    if x.type.rank != 4:
        raise L.unsupported("only 2-D pooling is supported")
    _no_dilation(L)
    L.only_first_output()
    kernel = tuple(int(k) for k in L.attr("kernel_shape"))
    strides = tuple(int(s) for s in L.attr("strides", [1, 1]))
    attrs = {"kernel": kernel, "strides": strides, "ceil_mode": int(L.attr("ceil_mode", 0)),
             "pads": _pads2d(L, x.type.shape[2:], kernel, strides)}
    if L.node.op_type == "AveragePool":
        attrs["count_include_pad"] = int(L.attr("count_include_pad", 0))
        L.emit("sqnxt.avgpool", [x], attrs)
    else:
        L.emit("sqnxt.maxpool", [x], attrs)


@lowers("GlobalAveragePool", into="sqnxt.global_avgpool")
def _gap(L):
    L.emit("sqnxt.global_avgpool", [L.value(L.node.input[0])])


@lowers("Gemm", into="sqnxt.gemm; sqnxt.fc when B is constant (canonicalize)")
def _gemm(L):
    ops = [L.value(L.node.input[0]), L.value(L.node.input[1])]
    if L.opt_input(2):
        ops.append(L.value(L.opt_input(2)))
    L.emit("sqnxt.gemm", ops, {"alpha": float(L.attr("alpha", 1.0)), "beta": float(L.attr("beta", 1.0)),
                               "trans_a": int(L.attr("transA", 0)), "trans_b": int(L.attr("transB", 0))})


@lowers("MatMul", into="sqnxt.matmul; sqnxt.fc when B is constant (canonicalize)")
def _matmul(L):
    L.emit("sqnxt.matmul", [L.value(n) for n in L.node.input])


@lowers("LRN", into="sqnxt.lrn")
def _lrn(L):
    L.emit("sqnxt.lrn", [L.value(L.node.input[0])],
           {"size": int(L.attr("size")), "alpha": float(L.attr("alpha", 1e-4)),
            "beta": float(L.attr("beta", 0.75)), "bias": float(L.attr("bias", 1.0))})


@lowers("Softmax", into="sqnxt.softmax")
def _softmax(L):
    if L.opset < 13:
        attrs = {"axis": int(L.attr("axis", 1)), "coerce_2d": 1}
    else:
        attrs = {"axis": int(L.attr("axis", -1)), "coerce_2d": 0}
    L.emit("sqnxt.softmax", [L.value(L.node.input[0])], attrs)


@lowers("LayerNormalization", into="sqnxt.layer_norm")
def _layer_norm(L):
    """y = (x - mean) / sqrt(var + epsilon) * scale + bias over the axes from ``axis`` on
    (opset 17); only the first output (the statistics outputs are training outputs)."""
    L.only_first_output()
    x = L.value(L.node.input[0])
    ins = [x, L.value(L.node.input[1])] + ([L.value(L.node.input[2])] if L.opt_input(2) else [])
    axis = int(L.attr("axis", -1))
    if not -x.type.rank <= axis < x.type.rank:
        raise L.unsupported(f"LayerNormalization axis {axis} outside the rank-{x.type.rank} input")
    L.emit("sqnxt.layer_norm", ins, {"axis": axis % x.type.rank, "epsilon": float(L.attr("epsilon", 1e-5))})


@lowers("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum",
        into={k: "sqnxt.reduce" for k in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum")})
def _reduce(L):
    """Axes as an attribute (before opset 18; ReduceSum before 13) or an input; no axes
    reduce every axis unless noop_with_empty_axes (then the op is the identity)."""
    x = L.value(L.node.input[0])
    kind = L.node.op_type[len("Reduce"):].lower()
    moved = 13 if kind == "sum" else 18
    if L.opset < moved:
        axes = L.attr("axes")
    else:
        axes = L.const(L.opt_input(1), f"{L.node.op_type} axes").reshape(-1).tolist() if L.opt_input(1) else None
    if not axes:
        if L.attr("noop_with_empty_axes", 0):
            L.alias(L.node.output[0], x)
            return
        axes = list(range(x.type.rank))
    L.emit("sqnxt.reduce", [x], {"kind": kind, "axes": tuple(int(a) for a in axes),
                                 "keepdims": int(L.attr("keepdims", 1))})


def _resize_attrs(L, x, scales, sizes) -> dict:
    """Output size and scales of a 4-D resize that keeps N and C (ONNX rules: from sizes,
    scale = output / input; from scales, output = floor(input * scale))."""
    shape = x.type.shape
    if sizes is not None:
        sizes = [int(v) for v in sizes]
        if len(sizes) != 4 or sizes[:2] != list(shape[:2]):
            raise L.unsupported(f"Resize to sizes {sizes}: only H and W of an NCHW tensor may change")
        out = sizes[2:]
        sc = [out[0] / shape[2], out[1] / shape[3]]
    else:
        sc_all = [float(v) for v in scales]
        if len(sc_all) != 4 or sc_all[:2] != [1.0, 1.0]:
            raise L.unsupported(f"Resize with scales {sc_all}: only H and W of an NCHW tensor may change")
        sc = sc_all[2:]
        out = [int(math.floor(shape[2] * sc[0])), int(math.floor(shape[3] * sc[1]))]
    return {"size": tuple(out), "scales": tuple(float(v) for v in sc)}


@lowers("Resize", "Upsample", into={"Resize": "sqnxt.resize", "Upsample": "sqnxt.resize"})
def _resize(L):
    x = L.value(L.node.input[0])
    if x.type.rank != 4:
        raise L.unsupported(f"Resize of a rank-{x.type.rank} tensor: only NCHW is supported")
    text = lambda name, default: (lambda v: v.decode() if isinstance(v, bytes) else v)(  # noqa: E731
        L.attr(name, default))
    mode = text("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise L.unsupported(f"Resize mode '{mode}' (nearest and linear are supported)")
    mode = "linear" if mode == "bilinear" else mode
    if L.node.op_type == "Upsample" or L.opset < 11:
        scales = (L.attr("scales") if L.opset < 9 else L.const(L.node.input[1], "Resize scales").reshape(-1))
        coord, nearest = "asymmetric", "floor"
        sizes = None
    else:
        coord = text("coordinate_transformation_mode", "half_pixel")
        nearest = text("nearest_mode", "round_prefer_floor")
        if L.attr("antialias", 0):
            raise L.unsupported("Resize with antialias")
        if text("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise L.unsupported("Resize with a keep_aspect_ratio_policy")
        if L.attr("axes") is not None:
            raise L.unsupported("Resize with axes")
        scales = L.opt_input(2) and L.const(L.opt_input(2), "Resize scales").reshape(-1)
        sizes = L.opt_input(3) and L.const(L.opt_input(3), "Resize sizes").reshape(-1)
        if sizes is not None and len(sizes) == 0:
            sizes = None
        if sizes is None and (scales is None or len(scales) == 0):
            raise L.unsupported("Resize without scales or sizes")
    if coord not in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"):
        raise L.unsupported(f"Resize coordinate_transformation_mode '{coord}'")
    if mode == "nearest" and nearest not in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
        raise L.unsupported(f"Resize nearest_mode '{nearest}'")
    attrs = _resize_attrs(L, x, scales, sizes)
    L.emit("sqnxt.resize", [x], {**attrs, "mode": mode, "coord": coord, "nearest_mode": nearest})
