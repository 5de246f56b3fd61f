"""The lowering context and the lowering registry.

:class:`_Lowering` is the state of one import, the ``L`` every lowering receives: the IR
graph, the ONNX-name -> IR value map, constants, the node being lowered, and
:meth:`~_Lowering.emit`, which adds an IR op and checks its type against ONNX shape
inference; :meth:`~_Lowering.run` walks the graph.  ``@lowers`` registers a lowering in
``LOWERINGS`` (and the IR op(s) it becomes in ``LOWERS_INTO``); the lowerings themselves
are in the ``lower_*`` modules, registered when :mod:`.onnx_import` imports them.  Also
here: the message naming every unsupported op, and the helpers lowerings share
(:func:`static_value`, :func:`_is_data`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from ..diagnostics import InputError, Location, UnsupportedError, one_line
from ..ir.core import VerifyError
from ..ir.graph import Graph
from ..ir.types import TensorType
from .load import _opset
from .shapes import _value_types
from .weights import LazyTensor

#: Largest tensor (elements) sqnxtc accepts: far beyond any CNN, below absurd sizes.
MAX_ELEMENTS = 2 ** 31 - 1


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
        arr = self.initializer_array(name)
        if arr is not None:
            v = self.graph.constant(arr, name, Location(file=self.source, node=name))
            self.values[name] = v
            return v
        raise InputError(f"tensor '{name}' is used before it is defined", self.loc())

    def initializer_array(self, name: str) -> np.ndarray | None:
        """The data of initializer ``name`` (a large one read from its file now), checked
        against the size limit, without making it a graph constant (a lowering that builds
        other constants from it: ConvTranspose's sub-pixel weights); None when ``name`` is
        no initializer."""
        if name in self.lazy:       # a large weight: read from the file now, checked first
            self._check_size(name, math.prod(self.lazy[name].dims))
            return self.lazy[name].load()
        if name not in self.inits:
            return None
        t = self.inits[name]
        self._check_size(name, math.prod(t.dims))
        try:
            return numpy_helper.to_array(t)
        except (ValueError, TypeError, KeyError, OSError) as exc:  # data that disagrees with dims/type
            raise InputError(f"initializer '{name}' (dims {list(t.dims)}): its data cannot be read: "
                             f"{exc}", Location(file=self.source, node=name)) from None

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
            if t in LOWERINGS:      # one lowering per ONNX op: a second would depend on import order
                raise ValueError(f"ONNX op {t} has a lowering already ({LOWERINGS[t].__module__})")
            LOWERINGS[t] = fn
            LOWERS_INTO[t] = into[t] if isinstance(into, dict) else into
        return fn
    return wrap


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


def _is_data(x) -> bool:
    """An activation (a floating-point value that is not a compile-time constant): slicing
    or gathering it copies words on the machine; anything else is a shape computation."""
    return x.type.dtype.startswith("f") and (x.owner is None or x.owner.const_value() is None)
