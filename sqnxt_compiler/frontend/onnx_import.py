"""Read an ONNX model and lower it into the sqnxt IR.

Steps, each failing with a one-line located error:

1. load the file (or build ``zoo:NAME``): missing file, directory, empty file, not a
   protobuf, truncated protobuf, a protobuf that is not a model;
2. bind a symbolic batch dimension (axis 0 of a graph input) to 1, with a note; any other
   dynamic dimension, or a batch other than 1, is unsupported;
3. ``onnx.checker.check_model`` and strict ``onnx.shape_inference`` (with data
   propagation, so exporters' Shape -> Reshape chains get static shapes);
4. lower node by node; every result's type is inferred by the IR's op declarations and
   must agree with ONNX shape inference.

Opset differences (Clip/Dropout/Slice/Squeeze/Unsqueeze attributes that became inputs,
Softmax's coerce-to-2D rule before opset 13) are resolved here, so the IR has one form.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from ..diagnostics import InputError, Location, SqnxtError, UnsupportedError
from ..ir.core import VerifyError
from ..ir.graph import Graph
from ..ir.types import TensorType, dtype_name
from ..ir.verifier import verify

#: Largest tensor (elements) sqnxtc accepts: far beyond any CNN, below absurd sizes.
MAX_ELEMENTS = 2 ** 31 - 1

ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.DOUBLE: "f64", onnx.TensorProto.FLOAT16: "f16",
    onnx.TensorProto.INT64: "i64", onnx.TensorProto.INT32: "i32", onnx.TensorProto.INT8: "i8",
    onnx.TensorProto.UINT8: "u8", onnx.TensorProto.BOOL: "bool",
}


@dataclass
class ImportResult:
    graph: Graph
    notes: list[str] = field(default_factory=list)
    model: onnx.ModelProto | None = None


# ---------------------------------------------------------------------------- loading
def load_onnx(spec: str) -> tuple[onnx.ModelProto, str]:
    """Load ``spec`` (a path, or ``zoo:NAME``) as an ONNX model; return (model, source name)."""
    if spec.startswith("zoo:"):
        from ..zoo import build  # lazy: the zoo is only needed for zoo: models
        return build(spec[4:]), spec
    path = Path(spec)
    if not path.exists():
        raise InputError("no such file", spec)
    if path.is_dir():
        raise InputError("is a directory, not an ONNX file", spec)
    if not os.access(path, os.R_OK):
        raise InputError("file is not readable", spec)
    if path.stat().st_size == 0:
        raise InputError("empty file, not an ONNX model", spec)
    try:
        model = onnx.load(str(path))
    except DecodeError as exc:
        raise InputError(f"not an ONNX model (protobuf parse failed: {exc}); truncated or "
                         "not ONNX", spec) from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot load ONNX model: {exc}", spec) from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise InputError("not an ONNX model (no IR version or no graph: wrong file type?)", spec)
    return model, spec


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 0


# ---------------------------------------------------------------------------- shapes
def _bind_batch(model: onnx.ModelProto, source: str, notes: list[str]) -> None:
    """Bind a symbolic/unknown axis-0 of every graph input to 1; reject other dynamic dims."""
    inits = {i.name for i in model.graph.initializer}
    symbols: set[str] = set()
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        loc = Location(file=source, node=f"input {inp.name}")
        if not inp.type.HasField("tensor_type"):
            raise UnsupportedError("graph input is not a tensor", loc)
        tt = inp.type.tensor_type
        if not tt.HasField("shape"):
            raise UnsupportedError("graph input has no shape (unranked); sqnxtc needs static shapes", loc)
        for axis, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                if axis == 0 and d.dim_value != 1 and len(tt.shape.dim) > 1:
                    raise UnsupportedError(f"batch size {d.dim_value}; sqnxtc compiles batch 1 "
                                           "(inference, as the accelerator runs)", loc)
                continue
            what = f"'{d.dim_param}'" if d.dim_param else "unknown"
            if axis == 0 and len(tt.shape.dim) > 1:
                if d.dim_param:
                    symbols.add(d.dim_param)
                d.Clear()
                d.dim_value = 1
                notes.append(f"{loc}: symbolic batch dimension {what} bound to 1")
            else:
                raise UnsupportedError(f"dynamic dimension {what} at axis {axis}; sqnxtc needs "
                                       "static shapes (only the batch may be symbolic)", loc)
    # the same symbol elsewhere (outputs, value_info) is the batch too
    for vi in list(model.graph.output) + list(model.graph.value_info):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            for d in vi.type.tensor_type.shape.dim:
                if d.dim_param and d.dim_param in symbols:
                    d.Clear()
                    d.dim_value = 1


def _check_and_infer(model: onnx.ModelProto, source: str,
                     notes: list[str] | None = None) -> onnx.ModelProto:
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        # the checker puts the node's name on later lines ("==> Context: ... Name: n1"):
        # keep them, on one line
        text = " ".join(str(exc).split()) or "validation failed"
        raise InputError(f"invalid ONNX model: {text}", source) from None
    errors = (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError)
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                 data_prop=True)
    except errors as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "failed"
        if "existing shape differ" not in first:
            raise InputError(f"shape inference failed: {first}", source) from None
    # The file declares shapes that ONNX's inference disagrees with.  Exporters write the
    # runtime's shapes, and ONNX's own rules lag the runtimes in places (ceil-mode pooling
    # whose last window starts in the padding, before opset 22): drop the declared
    # intermediate and output shapes, infer afresh; the IR's own type inference then
    # decides and is checked op by op.
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.graph.value_info[:]
    for out in bare.graph.output:
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(bare, check_type=True, strict_mode=True,
                                                     data_prop=True)
    except errors as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "failed"
        raise InputError(f"shape inference failed: {first}", source) from None
    if notes is not None:
        notes.append(f"{source}: the file's declared shapes disagree with ONNX shape inference "
                     f"({first}); re-inferred without them")
    return inferred


def _value_types(model: onnx.ModelProto) -> dict[str, TensorType]:
    """Static tensor types of every value ONNX shape inference could type fully."""
    out = {}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if any(d < 0 for d in dims) or tt.elem_type not in ONNX_DTYPES:
            continue
        out[vi.name] = TensorType(tuple(dims), ONNX_DTYPES[tt.elem_type])
    return out


# ---------------------------------------------------------------------------- lowering
class _Lowering:
    """State of one import: the IR graph, the ONNX-name -> IR value map, known constants."""

    def __init__(self, model: onnx.ModelProto, source: str, notes: list[str]):
        self.model = model
        self.source = source
        self.notes = notes
        self.opset = _opset(model)
        name = Path(source).stem if not source.startswith("zoo:") else source[4:]
        self.graph = Graph(name=model.graph.name or name or "main", source=source)
        self.graph.name = self.graph.unique_name(self.graph.name)
        self.values: dict[str, object] = {}
        self.inits = {t.name: t for t in model.graph.initializer}
        self.types = _value_types(model)
        self.node: onnx.NodeProto | None = None
        self.node_name = ""
        # ids of IR values whose ONNX-inferred type is known to be off (see _onnx_ceil_pool)
        self.diverged: set[int] = set()

    # -- helpers
    def loc(self, op: str | None = None) -> Location:
        return Location(file=self.source, node=self.node_name, op=op)

    def unsupported(self, msg: str) -> UnsupportedError:
        return UnsupportedError(msg, Location(file=self.source, node=self.node_name,
                                              op=self.node.op_type if self.node else None))

    def value(self, name: str):
        """The IR value of ONNX tensor ``name`` (initializers become constants on first use)."""
        if name in self.values:
            return self.values[name]
        if name in self.inits:
            arr = numpy_helper.to_array(self.inits[name])
            self._check_size(name, arr.size)
            v = self.graph.constant(arr, name, Location(file=self.source, node=name))
            self.values[name] = v
            return v
        raise InputError(f"tensor '{name}' is used before it is defined", self.loc())

    def const(self, name: str, what: str) -> np.ndarray:
        """The constant array of input ``name``; unsupported if it is computed at run time."""
        v = self.value(name)
        arr = v.owner.const_value()
        if arr is None:
            raise self.unsupported(f"{what} must be a constant (got computed tensor '{name}')")
        return arr

    def opt_input(self, i: int) -> str | None:
        ins = self.node.input
        return ins[i] if i < len(ins) and ins[i] != "" else None

    def attr(self, name: str, default=None):
        for a in self.node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def _check_size(self, name: str, n: int) -> None:
        if n > MAX_ELEMENTS:
            raise UnsupportedError(f"tensor '{name}' has {n} elements, beyond the "
                                   f"{MAX_ELEMENTS} sqnxtc accepts", self.loc())

    def emit(self, opname: str, operands, attrs=None, *, out: int = 0, result_type=None):
        """Add an IR op for the current node, bind it to node output ``out``, check its type."""
        onnx_name = self.node.output[out]
        declared = self.types.get(onnx_name)
        try:
            op = self.graph.add_op(opname, operands, attrs or {}, loc=self.loc(),
                                   result_names=[onnx_name],
                                   result_types=[result_type] if result_type is not None else None)
        except VerifyError as exc:
            raise UnsupportedError(str(exc), self.loc(opname)) from None
        t = op.result.type
        self._check_size(onnx_name, t.numel)
        downstream = any(id(v) in self.diverged for v in op.operands)
        if declared is not None and declared.shape != t.shape:
            if not (downstream or _onnx_ceil_pool(op, declared)):
                raise UnsupportedError(f"sqnxtc infers {t} for '{onnx_name}' but ONNX shape "
                                       f"inference says {declared}", self.loc(opname))
            downstream = True
        if downstream:
            self.diverged.add(id(op.result))
        self.values[onnx_name] = op.result
        return op.result

    def alias(self, out_name: str, v) -> None:
        self.values[out_name] = v

    def only_first_output(self) -> None:
        for extra in self.node.output[1:]:
            if extra and any(extra in n.input for n in self.model.graph.node) \
                    or extra in {o.name for o in self.model.graph.output}:
                raise self.unsupported(f"output '{extra}' (training-only output) is used")

    # -- the walk
    def run(self) -> Graph:
        g = self.graph
        for inp in self.model.graph.input:
            if inp.name in self.inits:
                continue
            self.node_name = f"input {inp.name}"  # where _check_size errors point
            t = self.types.get(inp.name)
            if t is None:
                raise UnsupportedError("graph input has no static type",
                                       Location(file=self.source, node=f"input {inp.name}"))
            self._check_size(inp.name, t.numel)
            self.values[inp.name] = g.add_op("sqnxt.input", (), {"name": inp.name, "type": t},
                                             loc=Location(file=self.source, node=inp.name),
                                             result_names=[inp.name]).result
        for i, node in enumerate(self.model.graph.node):
            self.node = node
            self.node_name = node.name or f"{node.op_type}_{i}"
            if node.domain not in ("", "ai.onnx"):
                raise self.unsupported(f"unsupported op '{node.domain}.{node.op_type}' "
                                       "(custom domain)")
            fn = LOWERINGS.get(node.op_type)
            if fn is None:
                raise self.unsupported(f"unsupported op '{node.op_type}' (supported: "
                                       + ", ".join(sorted(LOWERINGS)) + ")")
            fn(self)
        self.node, self.node_name = None, "outputs"
        outs = [self.value(o.name) for o in self.model.graph.output]
        g.add_op("sqnxt.output", outs, {"names": tuple(o.name for o in self.model.graph.output)},
                 loc=Location(file=self.source, node="outputs"))
        return g


def _onnx_ceil_pool(op, declared: TensorType) -> bool:
    """True if ``declared`` is what ONNX shape inference (before opset 22) gives a ceil-mode
    pool whose last window would start in the end padding: it keeps that window, while
    onnxruntime, PyTorch and Caffe drop it (as the IR's ``pool_out`` does).  The values
    computed from such a pool then differ from ONNX's inferred types, not from the runtime."""
    if op.name not in ("sqnxt.maxpool", "sqnxt.avgpool") or not op.attrs["ceil_mode"]:
        return False
    x = op.operands[0].type
    pt, pl, pb, pr = op.attrs["pads"]
    naive = [-(-(size + a + b - k) // s) + 1 for size, k, s, a, b in
             zip(x.shape[2:], op.attrs["kernel"], op.attrs["strides"], (pt, pl), (pb, pr))]
    return declared.shape == x.shape[:2] + tuple(naive)


LOWERINGS: dict[str, Callable[[_Lowering], None]] = {}


def lowers(*op_types: str):
    def wrap(fn):
        for t in op_types:
            LOWERINGS[t] = fn
        return fn
    return wrap


def _pads2d(L: _Lowering, in_hw, kernel, strides) -> tuple[int, int, int, int]:
    """Explicit (top, left, bottom, right) pads from ``pads`` or ``auto_pad`` (ONNX rules)."""
    auto = L.attr("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        pads = list(L.attr("pads", [0, 0, 0, 0]))
        if len(pads) != 4:
            raise L.unsupported(f"pads {pads}: only 2-D windows are supported")
        return tuple(int(p) for p in pads)
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for size, k, s in zip(in_hw, kernel, strides):
            o = -(-size // s)
            total = max(0, (o - 1) * s + k - size)
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto == "SAME_UPPER" else (big, small))
        (t, b), (l, r) = out
        return (t, l, b, r)
    raise L.unsupported(f"auto_pad '{auto}'")


def _no_dilation(L: _Lowering) -> None:
    d = L.attr("dilations")
    if d is not None and any(int(x) != 1 for x in d):
        raise L.unsupported(f"dilations {list(d)}: only dilation 1 is supported")


@lowers("Conv")
def _conv(L):
    x, w = L.value(L.node.input[0]), L.value(L.node.input[1])
    if w.type.rank != 4 or x.type.rank != 4:
        raise L.unsupported(f"only 2-D convolutions are supported (weight {w.type})")
    _no_dilation(L)
    strides = tuple(int(s) for s in L.attr("strides", [1, 1]))
    kernel = w.type.shape[2:]
    pads = _pads2d(L, x.type.shape[2:], kernel, strides)
    ops = [x, w] + ([L.value(L.opt_input(2))] if L.opt_input(2) else [])
    L.emit("sqnxt.conv", ops, {"strides": strides, "pads": pads, "groups": int(L.attr("group", 1))})


@lowers("BatchNormalization")
def _bn(L):
    if L.attr("training_mode", 0):
        raise L.unsupported("training-mode BatchNormalization")
    if L.opset < 9 and L.attr("spatial", 1) != 1:
        raise L.unsupported("BatchNormalization with spatial=0")
    L.only_first_output()
    L.emit("sqnxt.batchnorm", [L.value(n) for n in L.node.input[:5]],
           {"epsilon": float(L.attr("epsilon", 1e-5))})


@lowers("Relu")
def _relu(L):
    L.emit("sqnxt.relu", [L.value(L.node.input[0])])


@lowers("LeakyRelu")
def _leaky_relu(L):
    L.emit("sqnxt.leaky_relu", [L.value(L.node.input[0])], {"alpha": float(L.attr("alpha", 0.01))})


@lowers("Clip")
def _clip(L):
    if L.opset < 11:
        lo, hi = L.attr("min", float("-inf")), L.attr("max", float("inf"))
    else:
        lo = float(L.const(L.opt_input(1), "Clip min")) if L.opt_input(1) else float("-inf")
        hi = float(L.const(L.opt_input(2), "Clip max")) if L.opt_input(2) else float("inf")
    L.emit("sqnxt.clip", [L.value(L.node.input[0])], {"min": float(lo), "max": float(hi)})


@lowers("Add", "Sum")
def _add(L):
    L.emit("sqnxt.add", [L.value(n) for n in L.node.input])


@lowers("Sub", "Mul", "Div")
def _binary(L):
    L.emit(f"sqnxt.{L.node.op_type.lower()}", [L.value(n) for n in L.node.input])


@lowers("MaxPool", "AveragePool")
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


@lowers("GlobalAveragePool")
def _gap(L):
    L.emit("sqnxt.global_avgpool", [L.value(L.node.input[0])])


@lowers("Gemm")
def _gemm(L):
    ops = [L.value(L.node.input[0]), L.value(L.node.input[1])]
    if L.opt_input(2):
        ops.append(L.value(L.opt_input(2)))
    L.emit("sqnxt.gemm", ops, {"alpha": float(L.attr("alpha", 1.0)), "beta": float(L.attr("beta", 1.0)),
                               "trans_a": int(L.attr("transA", 0)), "trans_b": int(L.attr("transB", 0))})


@lowers("MatMul")
def _matmul(L):
    L.emit("sqnxt.matmul", [L.value(n) for n in L.node.input])


@lowers("Flatten")
def _flatten(L):
    L.emit("sqnxt.flatten", [L.value(L.node.input[0])], {"axis": int(L.attr("axis", 1))})


@lowers("Reshape")
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


def static_value(v, _depth: int = 0):
    """The value of ``v`` if it is computable without data (constants, shapes of statically
    typed tensors, and ops with a kernel on those), else None.  Used to type a Reshape whose
    target shape an exporter computes (Shape -> Gather -> Unsqueeze -> Concat).  Graph
    structure (the ``structural`` op trait: inputs, outputs) is never evaluated; a
    constant's value is its own."""
    from ..reference.executor import KERNELS, eval_op

    op = v.owner
    if op is None or _depth > 64:
        return None
    if op.const_value() is not None:
        return op.const_value()
    if op.name == "sqnxt.shape":
        r = op.operands[0].type.rank
        return np.array(op.operands[0].type.shape, dtype=np.int64)[
            op.attrs.get("start", 0):op.attrs.get("end", r)]
    if op.has_trait("structural") or op.name not in KERNELS:
        return None
    args = [static_value(a, _depth + 1) for a in op.operands]
    if any(a is None for a in args):
        return None
    return eval_op(op, args)


@lowers("Concat")
def _concat(L):
    L.emit("sqnxt.concat", [L.value(n) for n in L.node.input], {"axis": int(L.attr("axis"))})


@lowers("Dropout")
def _dropout(L):
    if L.opset >= 12 and L.opt_input(2) and bool(L.const(L.opt_input(2), "training_mode")):
        raise L.unsupported("Dropout in training mode")
    L.only_first_output()
    ratio = float(L.attr("ratio", 0.5)) if L.opset < 12 else (
        float(L.const(L.opt_input(1), "Dropout ratio")) if L.opt_input(1) else 0.5)
    L.emit("sqnxt.dropout", [L.value(L.node.input[0])], {"ratio": ratio})


@lowers("Identity")
def _identity(L):
    L.emit("sqnxt.identity", [L.value(L.node.input[0])])


@lowers("LRN")
def _lrn(L):
    L.emit("sqnxt.lrn", [L.value(L.node.input[0])],
           {"size": int(L.attr("size")), "alpha": float(L.attr("alpha", 1e-4)),
            "beta": float(L.attr("beta", 0.75)), "bias": float(L.attr("bias", 1.0))})


@lowers("Softmax")
def _softmax(L):
    if L.opset < 13:
        attrs = {"axis": int(L.attr("axis", 1)), "coerce_2d": 1}
    else:
        attrs = {"axis": int(L.attr("axis", -1)), "coerce_2d": 0}
    L.emit("sqnxt.softmax", [L.value(L.node.input[0])], attrs)


@lowers("Constant")
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
    try:
        dtype_name(arr.dtype)
    except ValueError:
        raise L.unsupported(f"Constant of element type {arr.dtype}") from None
    L.values[L.node.output[0]] = L.graph.constant(arr, L.node.output[0], L.loc("sqnxt.constant"))


@lowers("Shape")
def _shape(L):
    attrs = {"start": int(L.attr("start", 0))}
    if L.attr("end") is not None:
        attrs["end"] = int(L.attr("end"))
    L.emit("sqnxt.shape", [L.value(L.node.input[0])], attrs)


@lowers("Gather")
def _gather(L):
    L.emit("sqnxt.gather", [L.value(n) for n in L.node.input[:2]], {"axis": int(L.attr("axis", 0))})


def _axes(L, what: str):
    if L.opset < 13:
        a = L.attr("axes")
        return tuple(int(x) for x in a) if a is not None else None
    return (tuple(int(x) for x in L.const(L.opt_input(1), f"{what} axes").reshape(-1))
            if L.opt_input(1) else None)


@lowers("Unsqueeze")
def _unsqueeze(L):
    L.emit("sqnxt.unsqueeze", [L.value(L.node.input[0])], {"axes": _axes(L, "Unsqueeze")})


@lowers("Squeeze")
def _squeeze(L):
    axes = _axes(L, "Squeeze")
    L.emit("sqnxt.squeeze", [L.value(L.node.input[0])], {"axes": axes} if axes else {})


@lowers("Cast")
def _cast(L):
    to = int(L.attr("to"))
    if to not in ONNX_DTYPES:
        raise L.unsupported(f"Cast to element type {onnx.TensorProto.DataType.Name(to)}")
    L.emit("sqnxt.cast", [L.value(L.node.input[0])], {"to": ONNX_DTYPES[to]})


@lowers("Slice")
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
    L.emit("sqnxt.slice", [x], {"starts": tuple(map(clamp, starts)), "ends": tuple(map(clamp, ends)),
                                "axes": tuple(int(a) for a in axes), "steps": tuple(int(s) for s in steps)})


# ---------------------------------------------------------------------------- entry points
def import_model(model: onnx.ModelProto, source: str = "<model>", *,
                 single_output: bool = True) -> ImportResult:
    """Check, shape-infer and lower ``model``; the IR is verified before it is returned."""
    notes: list[str] = []
    g = model.graph
    if len(g.node) == 0:
        raise InputError("empty graph: the model has no nodes", source)
    if single_output and len(g.output) != 1:
        names = ", ".join(f"'{o.name}'" for o in g.output) or "none"
        raise InputError(f"graph has {len(g.output)} outputs ({names}); sqnxtc compiles a network "
                         "with exactly one output", source)
    if _opset(model) == 0:
        raise InputError("model imports no default-domain opset", source)
    _bind_batch(model, source, notes)
    inferred = _check_and_infer(model, source, notes)
    lowering = _Lowering(inferred, source, notes)
    graph = lowering.run()
    verify(graph)
    return ImportResult(graph, notes, inferred)


def load(spec: str, *, single_output: bool = True) -> ImportResult:
    """Load ``spec`` (path or ``zoo:NAME``) and import it (see :func:`import_model`)."""
    model, source = load_onnx(spec)
    return import_model(model, source, single_output=single_output)
