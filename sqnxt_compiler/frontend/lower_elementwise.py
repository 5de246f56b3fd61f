"""Lowerings of element-wise ops: activations (ReLU, leaky ReLU, clip, hard sigmoid,
PReLU, and the functions of one tensor in ``UNARY``), arithmetic (add and sum, sub, mul,
div, pow), and the ops that pass their input on or convert it (dropout, identity, cast)."""
from __future__ import annotations

import onnx

from ..ir.core import view_origin
from .lowering import lowers
from .shapes import ONNX_DTYPES


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


#: Element-wise functions of one tensor: ONNX op -> IR op.
UNARY = {"Sigmoid": "sqnxt.sigmoid", "Tanh": "sqnxt.tanh", "HardSwish": "sqnxt.hard_swish",
         "Erf": "sqnxt.erf", "Sqrt": "sqnxt.sqrt", "Exp": "sqnxt.exp", "Neg": "sqnxt.neg",
         "Abs": "sqnxt.abs", "Reciprocal": "sqnxt.reciprocal"}


@lowers(*UNARY, into=UNARY)
def _unary(L):
    L.emit(UNARY[L.node.op_type], [L.value(L.node.input[0])])


@lowers("Gelu", into="sqnxt.gelu, sqnxt.gelu_tanh (approximate)")
def _gelu(L):
    """ONNX Gelu (opset 20): the exact form (``approximate = "none"``) or the tanh
    approximation, two functions: two ops."""
    approximate = L.attr("approximate", b"none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else str(approximate)
    if approximate not in ("none", "tanh"):
        raise L.unsupported(f"Gelu approximate = {approximate!r} (ONNX defines 'none' and 'tanh')")
    L.emit("sqnxt.gelu" if approximate == "none" else "sqnxt.gelu_tanh", [L.value(L.node.input[0])])


@lowers("Pow", into="sqnxt.pow")
def _pow(L):
    L.emit("sqnxt.pow", [L.value(n) for n in L.node.input[:2]])


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


@lowers("Cast", into="sqnxt.cast (sqnxt.convert of a host result)")
def _cast(L):
    """A Cast of a host result (TopK or ArgMax indices, a comparison's bools: the ``host``
    trait, through views) runs on the host too, ``sqnxt.convert`` (docs/ir.md, "The host
    partition"); any other is the shape op ``sqnxt.cast``."""
    to = int(L.attr("to"))
    if to not in ONNX_DTYPES:
        raise L.unsupported(f"Cast to element type {onnx.TensorProto.DataType.Name(to)}")
    x = L.value(L.node.input[0])
    origin = view_origin(x).owner
    host = origin is not None and origin.has_trait("host")
    L.emit("sqnxt.convert" if host else "sqnxt.cast", [x], {"to": ONNX_DTYPES[to]})
