"""Lowerings of the ops a detection or classification tail runs on the host CPU (the IR
ops with the ``host`` trait, docs/ir.md "The host partition"): TopK, ArgMax / ArgMin, the
comparisons, the logical ops, Where, Mod, GatherElements, and a Cast of a host result.

An op whose operands are all known at compile time (constants, static shapes: the
``Equal -> Where`` an exporter puts in a reshape chain) is evaluated here and becomes a
constant: only ops on data reach the host.

NonMaxSuppression and NonZero (an output shape that depends on the data) never reach the
lowering: the import cuts the model before them and keeps them, and everything after
them, as the host tail (:mod:`.cut`).  They are registered so that ``sqnxtc ops`` lists
them, as ``host tail``.
"""
from __future__ import annotations

import numpy as np

from ..diagnostics import InputError
from ..ir.core import view_origin
from ..ir.ops import first_out_of_range, index_range_message
from .cut import DYNAMIC_SHAPE
from .lowering import LOWERINGS, LOWERS_INTO, lowers, static_value


def _emit_or_fold(L, opname: str, operands, attrs=None, *, out: int = 0):
    """Emit ``opname``; when every operand is known at compile time the result is
    computed now and the node's output becomes that constant instead."""
    v = L.emit(opname, operands, attrs, out=out)
    if all(static_value(x) is not None for x in operands):
        arr = static_value(v)
        if arr is not None:
            L.graph.erase(v.owner)
            name = L.node.output[out]
            L.values[name] = L.graph.constant(np.asarray(arr), name, L.loc("sqnxt.constant"))
            return L.values[name]
    return v


#: ONNX comparison and logical ops -> IR op.
ELEMENTWISE_HOST = {"Equal": "sqnxt.equal", "Less": "sqnxt.less", "Greater": "sqnxt.greater",
                    "LessOrEqual": "sqnxt.less_equal", "GreaterOrEqual": "sqnxt.greater_equal",
                    "And": "sqnxt.and", "Or": "sqnxt.or", "Xor": "sqnxt.xor", "Not": "sqnxt.not",
                    "Where": "sqnxt.where"}


@lowers(*ELEMENTWISE_HOST, into=ELEMENTWISE_HOST)
def _elementwise(L):
    _emit_or_fold(L, ELEMENTWISE_HOST[L.node.op_type], [L.value(n) for n in L.node.input])


@lowers("Mod", into="sqnxt.mod")
def _mod(L):
    _emit_or_fold(L, "sqnxt.mod", [L.value(n) for n in L.node.input[:2]], {"fmod": int(L.attr("fmod", 0))})


@lowers("GatherElements", into="sqnxt.gather_elements")
def _gather_elements(L):
    x, idx = (L.value(n) for n in L.node.input[:2])
    axis = int(L.attr("axis", 0))
    known = static_value(idx)
    if known is not None and -x.type.rank <= axis < x.type.rank:
        a = axis % x.type.rank
        bad = first_out_of_range(known, x.type.shape[a])
        if bad is not None:   # a bad model (exit 3), as Gather's constant indices
            raise InputError(index_range_message(bad, a, x.type.shape[a]), L.loc(L.node.op_type))
    _emit_or_fold(L, "sqnxt.gather_elements", [x, idx], {"axis": axis})


@lowers("ArgMax", "ArgMin", into={"ArgMax": "sqnxt.argmax", "ArgMin": "sqnxt.argmin"})
def _arg_reduce(L):
    attrs = {"axis": int(L.attr("axis", 0)), "keepdims": int(L.attr("keepdims", 1)),
             "select_last_index": int(L.attr("select_last_index", 0))}
    _emit_or_fold(L, f"sqnxt.{L.node.op_type.lower()}", [L.value(L.node.input[0])], attrs)


@lowers("TopK", into="sqnxt.topk (one per output: part = values, indices)")
def _topk(L):
    x = L.value(L.node.input[0])
    k = int(L.attr("k")) if L.opset < 10 else int(np.asarray(L.const(L.node.input[1], "TopK k")).reshape(-1)[0])
    if not int(L.attr("sorted", 1)):
        raise L.unsupported("TopK with sorted = 0 (an order ONNX leaves unspecified); export it sorted")
    attrs = {"k": k, "axis": int(L.attr("axis", -1)), "largest": int(L.attr("largest", 1))}
    for out, part in enumerate(("values", "indices")):
        if out < len(L.node.output) and L.node.output[out]:
            _emit_or_fold(L, "sqnxt.topk", [x], {**attrs, "part": part}, out=out)


def _from_host(v) -> bool:
    """``v``'s words are a host op's result (through views)."""
    o = view_origin(v).owner
    return o is not None and o.has_trait("host")


def _dynamic(L):
    """Never reached: the import cut the model before this node (:func:`.cut.split_model`)."""
    raise RuntimeError(f"{L.node.op_type} node '{L.node_name}' reached the lowering: the host-tail cut missed it")


#: Ops of a data-dependent output shape: the host tail starts at them (``sqnxtc ops``
#: lists them as ``host tail``).
for _t in DYNAMIC_SHAPE:
    LOWERINGS[_t] = _dynamic
    LOWERS_INTO[_t] = "- (dynamic output shape: the model is cut before it)"
