"""Static shapes for the import: a symbolic batch bound to 1 (any other dynamic dimension,
a batch other than 1, or a layer parameter given as a graph input is unsupported), the
ONNX checker and strict shape inference with data propagation, and the static type of
every value ONNX shape inference typed fully."""
from __future__ import annotations

import onnx

from ..diagnostics import InputError, Location, UnsupportedError
from ..ir.types import TensorType

#: Operand positions that hold a layer's parameters (weights, bias, statistics): a graph
#: input there is a weight given at run time, which the accelerator's compiler cannot see.
#: (Gemm and MatMul are not here: a product of two activations is a valid, if unmodelled, op.)
WEIGHT_SLOTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "PRelu": (1,),
                "BatchNormalization": (1, 2, 3, 4), "InstanceNormalization": (1, 2),
                "LayerNormalization": (1, 2)}

ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.DOUBLE: "f64", onnx.TensorProto.FLOAT16: "f16",
    onnx.TensorProto.INT64: "i64", onnx.TensorProto.INT32: "i32", onnx.TensorProto.INT8: "i8",
    onnx.TensorProto.UINT8: "u8", onnx.TensorProto.BOOL: "bool",
}


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
