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

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from ..diagnostics import InputError, Location, SqnxtError, UnsupportedError, one_line
from ..ir.core import VerifyError
from ..ir.graph import Graph
from ..ir.ops import first_out_of_range, index_range_message
from ..ir.types import TensorType, dtype_name
from ..ir.verifier import IRVerificationError, verify
from .weights import LazyTensor, read_model

#: Operand positions that hold a layer's parameters (weights, bias, statistics): a graph
#: input there is a weight given at run time, which the accelerator's compiler cannot see.
#: (Gemm and MatMul are not here: a product of two activations is a valid, if unmodelled, op.)
WEIGHT_SLOTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "PRelu": (1,),
                "BatchNormalization": (1, 2, 3, 4), "InstanceNormalization": (1, 2),
                "LayerNormalization": (1, 2)}

#: Largest tensor (elements) sqnxtc accepts: far beyond any CNN, below absurd sizes.
MAX_ELEMENTS = 2 ** 31 - 1

ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.DOUBLE: "f64", onnx.TensorProto.FLOAT16: "f16",
    onnx.TensorProto.INT64: "i64", onnx.TensorProto.INT32: "i32", onnx.TensorProto.INT8: "i8",
    onnx.TensorProto.UINT8: "u8", onnx.TensorProto.BOOL: "bool",
}


@dataclass
class ImportResult:
    """The imported graph, the notes of the import, and the model onnxruntime runs as the
    reference: the ModelProto, or None when it was read from a file whose large weights
    were not kept in it (:mod:`.weights`): onnxruntime then reads the file itself."""

    graph: Graph
    notes: list[str] = field(default_factory=list)
    model: onnx.ModelProto | None = None


# ---------------------------------------------------------------------------- loading
def load_onnx(spec: str) -> tuple[onnx.ModelProto, str]:
    """Load ``spec`` (a path, or ``zoo:NAME``) as an ONNX model; return (model, source name)."""
    model, source, _ = _read(spec, lazy=False)
    return model, source


def _read(spec: str, *, lazy: bool) -> tuple[onnx.ModelProto, str, dict[str, LazyTensor]]:
    """(model, source name, lazily read initializers): with ``lazy`` a file's large
    initializers are stand-ins whose data :mod:`.weights` reads on use."""
    if spec.startswith("zoo:"):
        from ..zoo import build  # lazy: the zoo is only needed for zoo: models
        return build(spec[4:]), spec, {}
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
        model, weights = read_model(str(path)) if lazy else (onnx.load(str(path)), {})
    except DecodeError as exc:
        raise InputError(f"not an ONNX model (protobuf parse failed: {exc}); truncated or "
                         "not ONNX", spec) from None
    except (OSError, ValueError, RuntimeError, onnx.checker.ValidationError) as exc:
        # ValidationError: external data missing, not a file, or outside the model's folder
        raise InputError(f"cannot load ONNX model: {' '.join(str(exc).split())}", spec) from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise InputError("not an ONNX model (no IR version or no graph: wrong file type?)", spec)
    bad = _bad_string(model)
    if bad:
        raise InputError(f"invalid UTF-8 in {bad} (ONNX strings are UTF-8)", spec)
    return model, spec, weights


def _bad_string(msg, path: str = "model") -> str | None:
    """The path (``model.graph.node[3].name``) of the first string field of ``msg`` or its
    sub-messages that is not valid UTF-8, or None.  Protobuf hands such a field back as
    bytes, or raises when it is read; every later use of it would fail."""
    from google.protobuf.descriptor import FieldDescriptor as F

    for fd in msg.DESCRIPTOR.fields:
        if fd.type not in (F.TYPE_STRING, F.TYPE_MESSAGE):
            continue
        repeated = fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == F.LABEL_REPEATED
        if not repeated and not msg.HasField(fd.name):
            continue
        try:
            value = getattr(msg, fd.name)
            items = list(value) if repeated else [value]
        except UnicodeDecodeError:
            return f"{path}.{fd.name}"
        for i, v in enumerate(items):
            where = f"{path}.{fd.name}" + (f"[{i}]" if repeated else "")
            if fd.type == F.TYPE_STRING:
                if not isinstance(v, str):
                    return where
            else:
                bad = _bad_string(v, where)
                if bad:
                    return bad
    return None


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
    weight_of = {name: n for n in model.graph.node for i, name in enumerate(n.input)
                 if i in WEIGHT_SLOTS.get(n.op_type, ())}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        loc = Location(file=source, node=f"input {inp.name}")
        if inp.name in weight_of:
            n = weight_of[inp.name]
            raise UnsupportedError(f"graph input '{inp.name}' is a parameter of {n.op_type} node "
                                   f"'{n.name}'; sqnxtc needs parameters as initializers (export "
                                   "with the weights in the model)", loc)
        if not inp.type.HasField("tensor_type"):
            raise UnsupportedError("graph input is not a tensor", loc)
        tt = inp.type.tensor_type
        if not tt.HasField("shape"):
            raise UnsupportedError("graph input has no shape (unranked); sqnxtc needs static shapes", loc)
        for axis, d in enumerate(tt.shape.dim):
            if d.WhichOneof("value") == "dim_value" and d.dim_value <= 0:
                raise UnsupportedError(f"dimension {d.dim_value} at axis {axis}: an empty tensor "
                                       "(every dimension must be >= 1)", loc)
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


def _for_checker(model: onnx.ModelProto, lazy) -> onnx.ModelProto:
    """``model`` as the ONNX checker sees it: each stand-in of a lazily read weight (no
    data, which the checker rejects) as an empty tensor (dims [0]).  The weight's byte
    count against its dims and type, the one thing the checker would have checked on it,
    was checked by the scan (:func:`.weights.read_model`)."""
    if not lazy:
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for t in m.graph.initializer:
        if t.name in lazy:
            del t.dims[:]
            t.dims.append(0)
    return m


def _check_and_infer(model: onnx.ModelProto, source: str,
                     notes: list[str] | None = None, lazy=None) -> onnx.ModelProto:
    """The ONNX checker and strict shape inference; ``lazy``: the weights ``model`` holds
    as stand-ins (:func:`_for_checker`)."""
    try:
        onnx.checker.check_model(_for_checker(model, lazy))
    except onnx.checker.ValidationError as exc:
        # the checker puts the node's name on later lines ("==> Context: ... Name: n1"):
        # keep them, on one line
        text = " ".join(str(exc).split()) or "validation failed"
        raise InputError(f"invalid ONNX model: {text}", source) from None
    errors = (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError,
              ValueError)  # ValueError: e.g. an unknown tensor data type
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

    def __init__(self, model: onnx.ModelProto, source: str, notes: list[str],
                 lazy: dict[str, LazyTensor] | None = None):
        self.model = model
        self.lazy = lazy or {}
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
        if name in self.lazy:       # a large weight: read from the file now, checked first
            self._check_size(name, math.prod(self.lazy[name].dims))
            arr = self.lazy[name].load()
        elif name in self.inits:
            t = self.inits[name]
            self._check_size(name, math.prod(t.dims))
            try:
                arr = numpy_helper.to_array(t)
            except (ValueError, TypeError, KeyError, OSError) as exc:  # data that disagrees with dims/type
                raise InputError(f"initializer '{name}' (dims {list(t.dims)}): its data cannot be read: "
                                 f"{exc}", Location(file=self.source, node=name)) from None
        if name in self.inits:
            v = self.graph.constant(arr, name, Location(file=self.source, node=name))
            self.values[name] = v
            return v
        raise InputError(f"tensor '{name}' is used before it is defined", self.loc())

    def const(self, name: str, what: str) -> np.ndarray:
        """The array of input ``name``: a constant, or computed at compile time from
        constants and static shapes (:func:`static_value`, as exporters compute Slice
        bounds and Reshape targets); unsupported if it depends on the data."""
        v = self.value(name)
        arr = v.owner.const_value() if v.owner is not None else None
        if arr is None:
            arr = static_value(v)
        if arr is None:
            raise self.unsupported(f"{what} must be known at compile time (tensor '{name}' "
                                   "depends on the model's input data)")
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
        if t.numel == 0 and t.dtype.startswith("f"):
            raise UnsupportedError(f"tensor '{onnx_name}' is empty ({t}): every dimension of the "
                                   "data must be >= 1", self.loc(opname))
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
        unknown = unsupported_ops(self.model.graph.node)
        if unknown:
            raise UnsupportedError(unsupported_message(unknown),
                                   Location(file=self.source, node=unknown[0][2], op=unknown[0][0]))
        for i, node in enumerate(self.model.graph.node):
            self.node = node
            self.node_name = node_label(node, i)
            LOWERINGS[node.op_type](self)
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
#: The IR op(s) each supported ONNX op type becomes (``sqnxtc ops``, docs/ir.md).
LOWERS_INTO: dict[str, str] = {}


def node_label(node: onnx.NodeProto, index: int) -> str:
    """How diagnostics name a node: its name, or ``<op type>_<index>`` when it has none."""
    return node.name or f"{node.op_type}_{index}"


def unsupported_ops(nodes) -> list[tuple[str, int, str]]:
    """Every op kind of ``nodes`` sqnxtc cannot import, in order of first appearance:
    (kind, number of nodes, the first node's label).  A kind is the op type, prefixed by
    its domain outside the default ONNX domain (a custom op)."""
    found: dict[str, list] = {}
    for i, node in enumerate(nodes):
        custom = node.domain not in ("", "ai.onnx")
        if custom or node.op_type not in LOWERINGS:
            kind = f"{node.domain}.{node.op_type}" if custom else node.op_type
            found.setdefault(kind, [kind, 0, node_label(node, i)])[1] += 1
    return [tuple(v) for v in found.values()]


def unsupported_message(unknown: list[tuple[str, int, str]], limit: int = 8) -> str:
    """One line naming every unsupported op kind with its node count and first node (at
    most ``limit`` kinds spelled out, then how many more), and where the supported ops
    are listed."""
    def one(kind, n, first):
        kind, first = one_line(kind, 60), one_line(first, 60)
        return f"'{kind}' ({n} nodes, first '{first}')" if n > 1 else f"'{kind}' (node '{first}')"

    parts = [one(*u) for u in unknown[:limit]]
    if len(unknown) > limit:
        parts.append(f"and {len(unknown) - limit} more kinds")
    head = "unsupported op " if len(unknown) == 1 else f"{len(unknown)} unsupported op kinds: "
    return head + ", ".join(parts) + "; the supported ops: `sqnxtc ops`"


def lowers(*op_types: str, into: str | dict[str, str]):
    """Register ``fn`` as the lowering of ONNX ``op_types``, which become the IR op(s)
    ``into`` (a description naming them; a dict: one per op type)."""
    def wrap(fn):
        for t in op_types:
            LOWERINGS[t] = fn
            LOWERS_INTO[t] = into[t] if isinstance(into, dict) else into
        return fn
    return wrap


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


@lowers("Relu", into="sqnxt.relu")
def _relu(L):
    L.emit("sqnxt.relu", [L.value(L.node.input[0])])


@lowers("LeakyRelu", into="sqnxt.leaky_relu")
def _leaky_relu(L):
    L.emit("sqnxt.leaky_relu", [L.value(L.node.input[0])], {"alpha": float(L.attr("alpha", 0.01))})


@lowers("Clip", into="sqnxt.clip")
def _clip(L):
    if L.opset < 11:
        lo, hi = L.attr("min", float("-inf")), L.attr("max", float("inf"))
    else:
        lo = float(L.const(L.opt_input(1), "Clip min")) if L.opt_input(1) else float("-inf")
        hi = float(L.const(L.opt_input(2), "Clip max")) if L.opt_input(2) else float("inf")
    L.emit("sqnxt.clip", [L.value(L.node.input[0])], {"min": float(lo), "max": float(hi)})


@lowers("Add", "Sum", into="sqnxt.add")
def _add(L):
    L.emit("sqnxt.add", [L.value(n) for n in L.node.input])


@lowers("Sub", "Mul", "Div", into={"Sub": "sqnxt.sub", "Mul": "sqnxt.mul", "Div": "sqnxt.div"})
def _binary(L):
    L.emit(f"sqnxt.{L.node.op_type.lower()}", [L.value(n) for n in L.node.input])


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


@lowers("Concat", into="sqnxt.concat")
def _concat(L):
    L.emit("sqnxt.concat", [L.value(n) for n in L.node.input], {"axis": int(L.attr("axis"))})


@lowers("Dropout", into="sqnxt.dropout")
def _dropout(L):
    if L.opset >= 12 and L.opt_input(2) and bool(L.const(L.opt_input(2), "training_mode")):
        raise L.unsupported("Dropout in training mode")
    L.only_first_output()
    ratio = float(L.attr("ratio", 0.5)) if L.opset < 12 else (
        float(L.const(L.opt_input(1), "Dropout ratio")) if L.opt_input(1) else 0.5)
    L.emit("sqnxt.dropout", [L.value(L.node.input[0])], {"ratio": ratio})


@lowers("Identity", into="sqnxt.identity")
def _identity(L):
    L.emit("sqnxt.identity", [L.value(L.node.input[0])])


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


def _is_data(x) -> bool:
    """An activation (a floating-point value that is not a compile-time constant): slicing
    or gathering it copies words on the machine; anything else is a shape computation."""
    return x.type.dtype.startswith("f") and (x.owner is None or x.owner.const_value() is None)


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


@lowers("Cast", into="sqnxt.cast")
def _cast(L):
    to = int(L.attr("to"))
    if to not in ONNX_DTYPES:
        raise L.unsupported(f"Cast to element type {onnx.TensorProto.DataType.Name(to)}")
    L.emit("sqnxt.cast", [L.value(L.node.input[0])], {"to": ONNX_DTYPES[to]})


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


#: Element-wise functions of one tensor: ONNX op -> IR op.
UNARY = {"Sigmoid": "sqnxt.sigmoid", "Tanh": "sqnxt.tanh", "HardSwish": "sqnxt.hard_swish",
         "Erf": "sqnxt.erf", "Sqrt": "sqnxt.sqrt", "Exp": "sqnxt.exp", "Neg": "sqnxt.neg",
         "Abs": "sqnxt.abs", "Reciprocal": "sqnxt.reciprocal"}


@lowers(*UNARY, into=UNARY)
def _unary(L):
    L.emit(UNARY[L.node.op_type], [L.value(L.node.input[0])])


@lowers("Pow", into="sqnxt.pow")
def _pow(L):
    L.emit("sqnxt.pow", [L.value(n) for n in L.node.input[:2]])


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


@lowers("HardSigmoid", into="sqnxt.hard_sigmoid")
def _hard_sigmoid(L):
    L.emit("sqnxt.hard_sigmoid", [L.value(L.node.input[0])],
           {"alpha": float(L.attr("alpha", 0.2)), "beta": float(L.attr("beta", 0.5))})


@lowers("PRelu", into="sqnxt.prelu")
def _prelu(L):
    x, slope = L.value(L.node.input[0]), L.value(L.node.input[1])
    # a per-channel slope of shape (C,) (opset < 9 style, and what Keras-style exports
    # emit) is ONNX's broadcast of the trailing axis: take it as it stands
    L.emit("sqnxt.prelu", [x, slope])


@lowers("Transpose", into="sqnxt.transpose")
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


# ---------------------------------------------------------------------------- entry points
def import_model(model: onnx.ModelProto, source: str = "<model>", *,
                 lazy: dict[str, LazyTensor] | None = None) -> ImportResult:
    """Check, shape-infer and lower ``model``; the IR is verified before it is returned.
    A model may have several outputs (multi-head networks, feature extractors, a network
    cut into parts): ``sqnxt.output`` lists them in the model's order.  ``lazy``: the
    initializers of the file ``source`` that ``model`` holds as stand-ins
    (:func:`.weights.read_model`), read when first used."""
    notes: list[str] = []
    g = model.graph
    if len(g.node) == 0:
        raise InputError("empty graph: the model has no nodes", source)
    if len(g.output) == 0:
        raise InputError("the graph has no outputs: nothing to compute", source)
    if _opset(model) == 0:
        raise InputError("model imports no default-domain opset", source)
    newest = onnx.defs.onnx_opset_version()
    if _opset(model) > newest:
        raise InputError(f"opset {_opset(model)} does not exist (the newest ONNX opset this onnx "
                         f"{onnx.__version__} knows is {newest})", source)
    _bind_batch(model, source, notes)
    inferred = _check_and_infer(model, source, notes, lazy)
    lowering = _Lowering(inferred, source, notes, lazy)
    del inferred
    graph = lowering.run()
    try:
        verify(graph)
    except IRVerificationError as exc:
        # straight after import, a broken op rule is the model's (weights that disagree with
        # the input channels, groups that divide nothing, pads as large as the window): a bad
        # input model, not a bug (after a pass the same error is one: exit 70)
        raise InputError(exc.message.replace("IR verification failed", "invalid model", 1),
                         exc.location) from None
    return ImportResult(graph, notes, None if lazy else lowering.model)


def load(spec: str) -> ImportResult:
    """Load ``spec`` (path or ``zoo:NAME``) and import it (see :func:`import_model`); a
    file's large weights are read lazily (:mod:`.weights`), so its peak memory stays near
    the size of the weights once."""
    model, source, lazy = _read(spec, lazy=True)
    return import_model(model, source, lazy=lazy)
