"""Lowerings of network layers: convolution (transposed convolution in the sub-pixel form),
batch and layer normalization, pooling (with ONNX's ``pads`` / ``auto_pad`` rules), matrix
products, LRN, softmax, reductions and resize."""
from __future__ import annotations

import math

import numpy as np

from ..diagnostics import Location, UnsupportedError
from ..ir.core import VerifyError
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


@lowers("GlobalAveragePool", into="sqnxt.global_avgpool; sqnxt.reduce (mean) of rank 3, 5, ...")
def _gap(L):
    """The mean over every axis after N and C, kept as size 1: ``sqnxt.global_avgpool`` of
    an NCHW tensor; of another rank (ONNX allows (N, C, D1, ..., Dn)), the same mean as a
    ``sqnxt.reduce`` over axes 2.. with keepdims.  tf2onnx writes a mean over the last axis
    of a rank-3 tensor this way: Keras' LayerNormalization of an (N, L, C) sequence has
    ``GlobalAveragePool`` for both of its moments, which canonicalize's
    ``layer-norm-from-moments`` then reads as a mean over the trailing axis."""
    x = L.value(L.node.input[0])
    if x.type.rank == 4:
        L.emit("sqnxt.global_avgpool", [x])
        return
    if x.type.rank < 3:
        raise L.unsupported(f"GlobalAveragePool of a rank-{x.type.rank} tensor (ONNX asks for (N, C, D1, ...))")
    L.emit("sqnxt.reduce", [x], {"kind": "mean", "axes": tuple(range(2, x.type.rank)), "keepdims": 1})


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


def _normalize_per_channel(L, x, groups: int, scale, bias, eps: float, what: str) -> None:
    """y = (x - mean) / sqrt(var + eps) over each of ``groups`` groups of channels and every
    spatial axis of x (N, C, D1, ...), then ``scale[c] * y + bias[c]`` per channel: a
    ``sqnxt.layer_norm`` over the trailing axis of x viewed as (N, groups, C/groups * D1 *
    ...) with a scale of ones, and the per-channel scale and bias as a ``sqnxt.mul`` and a
    ``sqnxt.add`` of (C, 1, ...) constants; a scale of ones or a bias of zeros is no op (an
    exporter's GroupNorm writes its InstanceNormalization with those)."""
    node = L.node_name
    N, C = x.type.shape[0], x.type.shape[1]
    rest = math.prod(x.type.shape[2:])
    if C % groups:
        raise L.unsupported(f"{what}: {C} channels in {groups} groups")
    n = C // groups * rest
    loc = Location(file=L.source, node=node)

    def add(opname, operands, attrs, hint):
        try:
            return L.graph.add_op(opname, operands, attrs, loc=loc, result_names=[hint]).result
        except VerifyError as exc:
            raise UnsupportedError(str(exc), L.loc(opname)) from None

    out = L.node.output[0]
    v = x
    if (groups, n) != tuple(x.type.shape[1:]) or x.type.rank != 3:
        v = add("sqnxt.reshape", [x, L.graph.constant(np.array([N, groups, n], np.int64), f"{out}.groups_shape",
                                                      loc)], {}, f"{out}.grouped")
    ones = L.graph.constant(np.ones(n, np.float32), f"{out}.ones", loc)
    v = add("sqnxt.layer_norm", [v, ones], {"axis": 2, "epsilon": float(eps)}, f"{out}.normalized")
    if v.type.shape != x.type.shape:
        v = add("sqnxt.reshape", [v, L.graph.constant(np.array(x.type.shape, np.int64), f"{out}.shape", loc)], {},
                f"{out}.ungrouped")
    per_channel = (C,) + (1,) * (x.type.rank - 2)
    if scale is not None and not np.all(scale == 1):
        v = add("sqnxt.mul", [v, L.graph.constant(scale.astype(np.float32).reshape(per_channel), f"{out}.scale",
                                                  loc)], {}, f"{out}.scaled")
    if bias is not None and np.any(bias != 0):
        v = add("sqnxt.add", [v, L.graph.constant(bias.astype(np.float32).reshape(per_channel), f"{out}.bias",
                                                  loc)], {}, f"{out}.shifted")
    L.values[out] = v


@lowers("InstanceNormalization", into="sqnxt.layer_norm (per channel), sqnxt.mul, sqnxt.add")
def _instance_norm(L):
    """Each channel normalized over its spatial axes, then its scale and bias (one per
    channel): :func:`_normalize_per_channel` with one group per channel (PyTorch's
    GroupNorm and InstanceNorm exports write it)."""
    x = L.value(L.node.input[0])
    if x.type.rank < 3:
        raise L.unsupported(f"InstanceNormalization of a rank-{x.type.rank} tensor (ONNX asks for (N, C, D1, ...))")
    scale = L.const(L.node.input[1], "InstanceNormalization scale")
    bias = L.const(L.node.input[2], "InstanceNormalization B")
    _normalize_per_channel(L, x, x.type.shape[1], np.asarray(scale), np.asarray(bias),
                           L.attr("epsilon", 1e-5), "InstanceNormalization")


@lowers("GroupNormalization", into="sqnxt.layer_norm (per group), sqnxt.mul, sqnxt.add")
def _group_norm(L):
    """ONNX GroupNormalization (opset 18: scale and bias per group; 21: per channel):
    :func:`_normalize_per_channel` with ``num_groups`` groups."""
    x = L.value(L.node.input[0])
    if x.type.rank < 3:
        raise L.unsupported(f"GroupNormalization of a rank-{x.type.rank} tensor")
    G = int(L.attr("num_groups"))
    C = x.type.shape[1]
    if G < 1 or C % G:
        raise L.unsupported(f"GroupNormalization: {C} channels in {G} groups")
    scale = np.asarray(L.const(L.node.input[1], "GroupNormalization scale")).reshape(-1)
    bias = np.asarray(L.const(L.node.input[2], "GroupNormalization bias")).reshape(-1)
    if scale.size == G != C:          # opset 18: one per group, the same for its channels
        scale, bias = np.repeat(scale, C // G), np.repeat(bias, C // G)
    if scale.size != C or bias.size != C:
        raise L.unsupported(f"GroupNormalization: scale of {scale.size} and bias of {bias.size} values for "
                            f"{C} channels in {G} groups")
    _normalize_per_channel(L, x, G, scale, bias, L.attr("epsilon", 1e-5), "GroupNormalization")


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


# ---------------------------------------------------------------- ConvTranspose
# A transposed convolution becomes the sub-pixel form (docs/ir.md, after the op table;
# docs/cost-model.md, "Transposed convolution"): along an axis of stride s, output o = s*q +
# phi (phase phi) is a stride-1 correlation of the input around q with the taps k whose
# k*d = phi + p (mod s), so ONE stride-1 conv whose output channels are every (phase,
# channel) pair computes every phase at once; a depth-to-space (reshape, transpose,
# reshape) interleaves the phases and an extract_slice crops what the conv computed past
# the output.

#: The cost, in MACs, the frontend gives one output word of the crop (an extract_slice: a
#: move of the output) when it weighs a shifted phase grid that needs one against MACs of
#: zero taps it saves: a copied word is 2 DRAM words at 8 words per cycle, the time of 64
#: MACs on pe16x16 and of 16 on pe8x8.
CROP_WORD_MACS = 32


def _ct_attr_ints(L: _Lowering, name: str, n: int, default: int, low: int) -> tuple[int, ...]:
    """Integer list attribute ``name`` of a 2-D ConvTranspose: ``n`` values >= ``low``."""
    v = L.attr(name)
    vals = tuple(int(a) for a in v) if v is not None else (default,) * n
    if len(vals) != n:
        raise L.unsupported(f"{name} {list(vals)}: {n} values expected for a 2-D transposed convolution")
    if any(a < low for a in vals):
        raise L.unsupported(f"{name} {list(vals)}: every value must be >= {low}")
    return vals


def _ct_const(L: _Lowering, name: str, what: str):
    """The array of constant input ``name`` (weight, bias), without adding it to the graph
    as it stands (the lowering builds the sub-pixel constants from it)."""
    arr = L.initializer_array(name) if name not in L.values else None
    return np.asarray(arr if arr is not None else L.const(name, what))


def _ct_geometry(L: _Lowering, axis: str, size: int, k: int, s: int, d: int, adj: int,
                 pads: tuple[int, int], out: int | None, auto: str) -> tuple[int, int]:
    """(pad_begin, output size) of one axis, as onnxruntime computes them: with
    ``output_shape`` the total padding is ``max(0, full - out)`` (``full = s*(size-1) + adj
    + (k-1)*d + 1``), split ``total/2`` first under SAME_UPPER, ``total - total/2`` first
    otherwise (an output past ``full`` ends in zeros and the bias); SAME_UPPER / SAME_LOWER
    alone ask ``size*s`` (capped at ``full``); VALID pads nothing; NOTSET uses ``pads``."""
    if adj >= s:
        raise L.unsupported(f"output_padding {adj} on axis {axis} is not below the stride {s} "
                            "(onnxruntime rejects it)")
    full = s * (size - 1) + adj + (k - 1) * d + 1
    if out is not None:
        if out >= full - adj + s:
            raise L.unsupported(f"output_shape {out} on axis {axis} is more than {s - 1} past the "
                                f"{full - adj} positions an input of {size} reaches (onnxruntime rejects it)")
        total = max(0, full - out)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        out = min(full, size * s)
        total = full - out
    elif auto == "VALID":
        return 0, full
    elif auto in ("NOTSET", ""):
        out = full - pads[0] - pads[1]
        if out < 1:
            raise L.unsupported(f"pads {list(pads)} on axis {axis} leave an output of {out} (of {full})")
        return pads[0], out
    else:
        raise L.unsupported(f"auto_pad '{auto}'")
    if out < 1:
        raise L.unsupported(f"output_shape {out} on axis {axis}: every dimension must be >= 1")
    return (total // 2 if auto == "SAME_UPPER" else total - total // 2), out


def _ct_axis(size: int, k: int, s: int, d: int, pad: int, out: int, r: int) -> dict | None:
    """The sub-pixel form of one axis whose output positions are shifted by ``r`` (the conv
    computes ``o + r``), or None when the taps of a phase do not fill their stretch of one
    common window (a dilation that shares no lattice with the stride).

    Tap k lands on phase ``phi = (k*d - p) mod s`` (``p = pad - r``) and reads input
    ``q + e`` for output ``s*q + phi``, ``e = (phi + p - k*d) / s``; the window holds the
    offsets ``e_min + D*t``, t < T (D: the gcd of the offsets' differences).  The conv
    computes J positions per phase (``pad_b``, ``pad_e``: its input padding, both >= 0;
    offsets e_min > 0 are skipped as leading outputs instead), and the output is
    positions ``[start, start + out)`` of the ``J*s`` the depth-to-space gives."""
    p = pad - r
    taps = []
    for kk in range(k):
        phi = (kk * d - p) % s
        taps.append((phi, kk, (phi + p - kk * d) // s))
    offsets = [e for _, _, e in taps]
    e_min, e_max = min(offsets), max(offsets)
    dil = math.gcd(*[e - e_min for e in offsets]) or 1
    window = (e_max - e_min) // dil + 1
    taps = [(phi, kk, (e - e_min) // dil) for phi, kk, e in taps]
    for phase in range(s):
        ts = sorted(t for phi, _, t in taps if phi == phase)
        if ts and ts != list(range(ts[0], ts[0] + len(ts))):
            return None
    q = -(-(out + r) // s)
    pad_b, lead = max(0, -e_min), max(0, e_min)
    span = (window - 1) * dil
    j = q + lead
    pad_e = j - size - pad_b + span
    if pad_e < 0:
        pad_e, j = 0, size + pad_b - span
    start = lead * s + r
    return {"taps": taps, "T": window, "D": dil, "pad_b": pad_b, "pad_e": pad_e, "J": j,
            "start": start, "crop": start != 0 or j * s != out, "r": r}


@lowers("ConvTranspose", into="sqnxt.conv (sub-pixel) + sqnxt.transpose, sqnxt.extract_slice")
def _conv_transpose(L):
    """ONNX ConvTranspose (2-D: strides, pads, output_padding, output_shape, auto_pad,
    dilations, group, bias) in the sub-pixel form (see :func:`_ct_axis`): a stride-1
    ``sqnxt.conv`` with ``G*sh*sw*Cout/G`` output channels ordered (group, row phase,
    column phase, channel), a depth-to-space ``reshape -> transpose -> reshape`` (the
    transpose named ``<node>.depth_to_space``) when a stride is > 1, and an
    ``extract_slice`` (``<node>.crop``) when the phases computed more than the output.  Per
    axis the phase grid is shifted by the ``r < s`` that costs least: the conv's MACs, and
    :data:`CROP_WORD_MACS` per output word when the shift needs a crop."""
    node, out_name = L.node_name, L.node.output[0]
    x = L.value(L.node.input[0])
    w = _ct_const(L, L.node.input[1], "the ConvTranspose weight")
    if x.type.rank != 4 or w.ndim != 4:
        raise L.unsupported(f"only 2-D transposed convolutions are supported (input {x.type}, "
                            f"weight of shape {list(w.shape)})")
    groups = int(L.attr("group", 1))
    cin, cog, kh, kw = (int(v) for v in w.shape)
    if groups < 1 or cin % groups or x.type.shape[1] != cin:
        raise L.unsupported(f"group {groups} with weight {list(w.shape)} and input {x.type}: the weight's "
                            "first axis must be the input channels, a multiple of group")
    kernel = L.attr("kernel_shape")
    if kernel is not None and tuple(int(v) for v in kernel) != (kh, kw):
        raise L.unsupported(f"kernel_shape {list(kernel)} differs from the weight's {[kh, kw]}")
    strides = _ct_attr_ints(L, "strides", 2, 1, 1)
    dil = _ct_attr_ints(L, "dilations", 2, 1, 1)
    adj = _ct_attr_ints(L, "output_padding", 2, 0, 0)
    pads = _ct_attr_ints(L, "pads", 4, 0, 0)
    out_shape = tuple(int(v) for v in L.attr("output_shape", ())) or None   # empty: not given
    if out_shape is not None:
        if len(out_shape) != 2:
            raise L.unsupported(f"output_shape {list(out_shape)}: the 2 spatial sizes expected")
    auto = _auto_pad(L)
    in_h, in_w = x.type.shape[2:]
    geo = [_ct_geometry(L, a, size, k, s, d, o, (pads[i], pads[i + 2]),
                        out_shape[i] if out_shape else None, auto)
           for i, (a, size, k, s, d, o) in enumerate(zip("HW", (in_h, in_w), (kh, kw), strides, dil, adj))]
    (pt, oh), (pl, ow) = geo
    cout = cog * groups
    declared = L.types.get(out_name)
    if declared is not None and id(x) not in L.diverged and declared.shape != (1, cout, oh, ow):
        raise L.unsupported(f"onnxruntime computes an output of {[1, cout, oh, ow]} but ONNX shape "
                            f"inference says {list(declared.shape)}: no agreed reference")
    (sh, sw), cig = strides, cin // groups

    def candidates(i, size, k, s, d, pad, n):
        found = [a for r in range(s) if (a := _ct_axis(size, k, s, d, pad, n, r)) is not None]
        if not found:
            g = math.gcd(d, s)
            raise L.unsupported(
                f"dilation {d} with stride {s} on axis {'HW'[i]}: an output phase's taps are {d // g} "
                f"input positions apart and the phases' taps lie on different lattices (gcd {g}), so no "
                "one window holds them without zero taps inside a phase (dilation 1, stride 1, or one "
                "of dilation and stride dividing the other always lowers)")
        return found

    rows = candidates(0, in_h, kh, sh, dil[0], pt, oh)
    cols = candidates(1, in_w, kw, sw, dil[1], pl, ow)
    macs_per_position = cout * sh * sw * cig   # per window tap and conv position

    def score(a):
        ah, aw = a
        crop = ah["crop"] or aw["crop"]
        return (macs_per_position * ah["T"] * ah["J"] * aw["T"] * aw["J"]
                + (CROP_WORD_MACS * cout * oh * ow if crop else 0), ah["r"], aw["r"])

    ah, aw = min(((a, b) for a in rows for b in cols), key=score)

    # the sub-pixel weight [G, sh, sw, Cout/G, Cin/G, Th, Tw] and bias [G, sh, sw, Cout/G]
    wt = w.reshape(groups, cig, cog, kh, kw).transpose(0, 2, 1, 3, 4)
    sub = np.zeros((groups, sh, sw, cog, cig, ah["T"], aw["T"]), dtype=w.dtype)
    for phh, ky, th in ah["taps"]:
        for phw, kx, tw in aw["taps"]:
            sub[:, phh, phw, :, :, th, tw] = wt[:, :, :, ky, kx]
    channels = groups * sh * sw * cog

    def constant(arr, hint):
        return L.graph.constant(arr, hint, Location(file=L.source, node=node))

    def add(opname, operands, attrs, hint, where):
        try:
            op = L.graph.add_op(opname, operands, attrs, loc=Location(file=L.source, node=where),
                                result_names=[hint])
        except VerifyError as exc:
            raise UnsupportedError(str(exc), L.loc(opname)) from None
        L._check_size(hint, op.result.type.numel)
        if any(id(v) in L.diverged for v in operands):   # downstream of a type ONNX got wrong
            L.diverged.add(id(op.result))
        return op.result

    operands = [x, constant(sub.reshape(channels, cig, ah["T"], aw["T"]), f"{out_name}.subpixel_weight")]
    if L.opt_input(2):
        b = _ct_const(L, L.opt_input(2), "the ConvTranspose bias").reshape(-1)
        if b.shape != (cout,):
            raise L.unsupported(f"bias of shape {list(b.shape)} for {cout} output channels")
        bias = np.broadcast_to(b.reshape(groups, 1, 1, cog), (groups, sh, sw, cog))
        operands.append(constant(np.ascontiguousarray(bias).reshape(channels), f"{out_name}.subpixel_bias"))
    attrs = {"strides": (1, 1), "pads": (ah["pad_b"], aw["pad_b"], ah["pad_e"], aw["pad_e"]),
             "groups": groups}
    if (ah["D"], aw["D"]) != (1, 1):
        attrs["dilations"] = (ah["D"], aw["D"])
    jh, jw = ah["J"], aw["J"]
    steps = []                       # (IR op, operands-after-the-first, attrs, value hint, layer)
    if (sh, sw) != (1, 1):
        axes = [("n", 1), ("g", groups), ("ph", sh), ("pw", sw), ("c", cog), ("jh", jh), ("jw", jw)]
        kept = [a for a, size in axes if size != 1 or a in ("n", "jh", "jw")]
        size_of = dict(axes)
        perm = tuple(kept.index(a) for a in ("n", "g", "c", "jh", "ph", "jw", "pw") if a in kept)
        shape = lambda names: np.array([size_of[a] for a in names], dtype=np.int64)  # noqa: E731
        steps.append(("sqnxt.reshape", [constant(shape(kept), f"{out_name}.phases_shape")], {},
                      f"{out_name}.phases", node))
        steps.append(("sqnxt.transpose", [], {"perm": perm}, f"{out_name}.interleaved", f"{node}.depth_to_space"))
        steps.append(("sqnxt.reshape", [constant(np.array([1, cout, jh * sh, jw * sw], np.int64),
                                                 f"{out_name}.depth_to_space_shape")], {},
                      f"{out_name}.depth_to_space", node))
    crop = [(axis, a["start"], a["start"] + n) for axis, a, n, full in
            ((2, ah, oh, jh * sh), (3, aw, ow, jw * sw)) if a["start"] != 0 or full != n]
    if crop:
        steps.append(("sqnxt.extract_slice", [],
                      {"starts": tuple(c[1] for c in crop), "ends": tuple(c[2] for c in crop),
                       "axes": tuple(c[0] for c in crop), "steps": (1,) * len(crop)},
                      out_name, f"{node}.crop"))
    if not steps:
        L.emit("sqnxt.conv", operands, attrs)
        return
    v = add("sqnxt.conv", operands, attrs, f"{out_name}.subpixel", node)
    for opname, more, op_attrs, hint, where in steps[:-1]:
        v = add(opname, [v] + more, op_attrs, hint, where)
    opname, more, op_attrs, _, where = steps[-1]
    v = L.emit(opname, [v] + more, op_attrs)
    v.owner.loc = Location(file=L.source, node=where)
