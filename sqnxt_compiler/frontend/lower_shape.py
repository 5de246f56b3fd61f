"""Lowerings of shape computations, constants and data movement: flatten, reshape, concat,
constants, shape, gather, (un)squeeze, slice, split, transpose, expand, pad.  A gather,
slice or split of an activation moves data (``sqnxt.take``, ``sqnxt.extract_slice``); of
anything else it is a shape computation (``sqnxt.gather``, ``sqnxt.slice``)."""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

from ..diagnostics import InputError
from ..ir.core import VerifyError
from ..ir.ops import first_out_of_range, index_range_message
from ..ir.types import TensorType, dtype_name
from .lowering import MAX_ELEMENTS, _is_data, lowers, static_value


@lowers("Flatten", into="sqnxt.flatten")
def _flatten(L):
    L.emit("sqnxt.flatten", [L.value(L.node.input[0])], {"axis": int(L.attr("axis", 1))})


@lowers("Reshape", into="sqnxt.reshape")
def _reshape(L):
    x, shape = L.value(L.node.input[0]), L.value(L.node.input[1])
    spec = shape.owner.const_value()
    if L.attr("allowzero", 0) and spec is not None and (spec == 0).any():
        raise L.unsupported("Reshape with allowzero=1 and a 0 in the shape")
    declared = L.types.get(L.node.output[0])
    computed = static_value(shape) if spec is None else None
    if spec is None and (declared is None or computed is not None):
        # a shape computable now wins over the declared type, which may be stale (a wrong
        # output shape in the file, or downstream of a pool ONNX inference mis-sizes);
        # emit() still reports a disagreement with a trustworthy declared type
        if computed is None:
            raise L.unsupported("Reshape to a shape computed at run time from data")
        from ..ir.ops import reshape_target
        try:
            declared = TensorType(reshape_target(x.type.shape, computed.reshape(-1)), x.type.dtype)
        except VerifyError as exc:
            raise L.unsupported(str(exc)) from None
    L.emit("sqnxt.reshape", [x, shape], result_type=declared if spec is None else None)


@lowers("Concat", into="sqnxt.concat")
def _concat(L):
    L.emit("sqnxt.concat", [L.value(n) for n in L.node.input], {"axis": int(L.attr("axis"))})


@lowers("Constant", into="sqnxt.constant")
def _constant(L):
    a = L.node.attribute[0] if L.node.attribute else None
    if a is None:
        raise L.unsupported("Constant without a value")
    if a.name == "value":
        arr = numpy_helper.to_array(a.t)
    elif a.name in ("value_float", "value_int", "value_floats", "value_ints"):
        val = onnx.helper.get_attribute_value(a)
        arr = np.array(val, dtype=np.float32 if "float" in a.name else np.int64)
    else:
        raise L.unsupported(f"Constant with '{a.name}'")
    _bind_constant(L, arr)


def _bind_constant(L, arr: np.ndarray) -> None:
    """The node's output becomes the constant ``arr`` (an element type the IR has, else
    unsupported, naming the node's op type)."""
    try:
        dtype_name(arr.dtype)
    except ValueError:
        raise L.unsupported(f"{L.node.op_type} of element type {arr.dtype}") from None
    L.values[L.node.output[0]] = L.graph.constant(arr, L.node.output[0], L.loc("sqnxt.constant"))


@lowers("Shape", into="sqnxt.shape")
def _shape(L):
    attrs = {"start": int(L.attr("start", 0))}
    if L.attr("end") is not None:
        attrs["end"] = int(L.attr("end"))
    L.emit("sqnxt.shape", [L.value(L.node.input[0])], attrs)


def _check_gather_indices(L, x, idx, axis: int) -> None:
    """Indices known at compile time (constants, or computed from constants and static
    shapes) must lie in ``[-n, n)`` of the gathered axis (ONNX Gather; negative ones count
    from the end): any other is a bad model (exit 3), named here at import rather than by
    onnxruntime at ``check``.  Indices that depend on the data are left to run time."""
    if not -x.type.rank <= axis < x.type.rank:
        return  # the op's own type rule names a bad axis
    known = idx.owner.const_value() if idx.owner is not None else None
    if known is None:
        known = static_value(idx)
    if known is None:
        return
    a = axis % x.type.rank
    bad = first_out_of_range(known, x.type.shape[a])
    if bad is not None:
        raise InputError(index_range_message(bad, a, x.type.shape[a]), L.loc(L.node.op_type))


@lowers("Gather", into="sqnxt.gather (sqnxt.take on activations)")
def _gather(L):
    x, idx = (L.value(n) for n in L.node.input[:2])
    axis = int(L.attr("axis", 0))
    _check_gather_indices(L, x, idx, axis)
    L.emit("sqnxt.take" if _is_data(x) else "sqnxt.gather", [x, idx], {"axis": axis})


def _axes(L, what: str):
    if L.opset < 13:
        a = L.attr("axes")
        return tuple(int(x) for x in a) if a is not None else None
    return (tuple(int(x) for x in L.const(L.opt_input(1), f"{what} axes").reshape(-1))
            if L.opt_input(1) else None)


@lowers("Unsqueeze", into="sqnxt.unsqueeze")
def _unsqueeze(L):
    L.emit("sqnxt.unsqueeze", [L.value(L.node.input[0])], {"axes": _axes(L, "Unsqueeze")})


@lowers("Squeeze", into="sqnxt.squeeze")
def _squeeze(L):
    axes = _axes(L, "Squeeze")
    L.emit("sqnxt.squeeze", [L.value(L.node.input[0])], {"axes": axes} if axes else {})


@lowers("Slice", into="sqnxt.slice (sqnxt.extract_slice on activations)")
def _slice(L):
    x = L.value(L.node.input[0])
    if L.opset < 10:
        starts, ends = list(L.attr("starts")), list(L.attr("ends"))
        axes = list(L.attr("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = L.const(L.node.input[1], "Slice starts").reshape(-1).tolist()
        ends = L.const(L.node.input[2], "Slice ends").reshape(-1).tolist()
        axes = (L.const(L.opt_input(3), "Slice axes").reshape(-1).tolist() if L.opt_input(3)
                else list(range(len(starts))))
        steps = (L.const(L.opt_input(4), "Slice steps").reshape(-1).tolist() if L.opt_input(4)
                 else [1] * len(starts))
    big = 2 ** 62  # ONNX uses INT64_MAX for "to the end"; Python slices clamp any large bound
    clamp = lambda v: max(min(int(v), big), -big)  # noqa: E731
    L.emit("sqnxt.extract_slice" if _is_data(x) else "sqnxt.slice", [x],
           {"starts": tuple(map(clamp, starts)), "ends": tuple(map(clamp, ends)),
            "axes": tuple(int(a) for a in axes), "steps": tuple(int(s) for s in steps)})


@lowers("Transpose", into="sqnxt.transpose; sqnxt.input_layout of a graph input (canonicalize)")
def _transpose(L):
    x = L.value(L.node.input[0])
    perm = L.attr("perm")
    perm = tuple(int(p) for p in perm) if perm is not None else tuple(reversed(range(x.type.rank)))
    L.emit("sqnxt.transpose", [x], {"perm": perm})


@lowers("Split", into="sqnxt.extract_slice (one per output; sqnxt.slice on a constant)")
def _split(L):
    """Each output is a static slice of the input along ``axis``: sizes from ``split``
    (attribute before opset 13, input after), else ``num_outputs`` (opset 18: equal parts,
    the last smaller) or the number of outputs (equal parts)."""
    x = L.value(L.node.input[0])
    r = x.type.rank
    axis = int(L.attr("axis", 0))
    if not -r <= axis < r:
        raise L.unsupported(f"Split axis {axis} outside the rank-{r} input")
    axis %= r
    n = len(L.node.output)
    if L.opset < 13:
        sizes = L.attr("split")
        sizes = [int(v) for v in sizes] if sizes is not None else None
    else:
        sizes = (L.const(L.opt_input(1), "Split sizes").reshape(-1).tolist() if L.opt_input(1) else None)
    d = x.type.shape[axis]
    if sizes is None:
        parts = int(L.attr("num_outputs", n))
        step = -(-d // parts)
        sizes = [min(step, d - i * step) for i in range(parts)]
    sizes = [int(v) for v in sizes]
    if len(sizes) != n or sum(sizes) != d or any(v < 0 for v in sizes):
        raise L.unsupported(f"Split sizes {sizes} do not cut axis {axis} (size {d}) into {n} outputs")
    start = 0
    for k, size in enumerate(sizes):
        if L.node.output[k]:
            L.emit("sqnxt.extract_slice" if _is_data(x) else "sqnxt.slice", [x],
                   {"starts": (start,), "ends": (start + size,), "axes": (axis,), "steps": (1,)}, out=k)
        start += size


@lowers("Expand", into="sqnxt.expand")
def _expand(L):
    shape = tuple(int(v) for v in L.const(L.node.input[1], "Expand shape").reshape(-1))
    L.emit("sqnxt.expand", [L.value(L.node.input[0])], {"shape": shape})


@lowers("ConstantOfShape", into="sqnxt.constant")
def _constant_of_shape(L):
    shape = tuple(int(v) for v in L.const(L.node.input[0], "ConstantOfShape shape").reshape(-1))
    t = L.attr("value")
    fill = numpy_helper.to_array(t).reshape(-1) if t is not None else np.zeros(1, np.float32)
    if math.prod(shape) > MAX_ELEMENTS:
        raise L.unsupported(f"ConstantOfShape of {math.prod(shape)} elements, beyond the {MAX_ELEMENTS} "
                            "sqnxtc accepts")
    _bind_constant(L, np.full(shape, fill[0], dtype=fill.dtype))


@lowers("Pad", into="sqnxt.pad")
def _pad(L):
    x = L.value(L.node.input[0])
    r = x.type.rank
    mode = L.attr("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("constant", "reflect", "edge"):
        raise L.unsupported(f"Pad mode '{mode}'")
    if L.opset < 11:
        pads = [int(v) for v in L.attr("pads")]
        value = float(L.attr("value", 0.0))
    else:
        pads = [int(v) for v in L.const(L.node.input[1], "Pad pads").reshape(-1)]
        value = (float(L.const(L.opt_input(2), "Pad value").reshape(-1)[0]) if L.opt_input(2) else 0.0)
        if L.opt_input(3):              # opset 18: pads for the listed axes only
            axes = [int(a) % r for a in L.const(L.opt_input(3), "Pad axes").reshape(-1)]
            full = [0] * (2 * r)
            for k, a in enumerate(axes):
                full[a], full[a + r] = pads[k], pads[k + len(axes)]
            pads = full
    if any(p < 0 for p in pads):
        raise L.unsupported(f"Pad with negative pads {pads} (cropping)")
    L.emit("sqnxt.pad", [x], {"pads": tuple(pads), "mode": mode, "value": value})
