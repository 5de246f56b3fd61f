"""The host tail: a model cut before its ops of data-dependent output shape (docs/ir.md,
"The host tail").

A detection model ends with NonMaxSuppression (or a NonZero): its output's length depends
on the data, so no static-shape compiler can schedule it, and no accelerator runs it: the
host CPU does, after the accelerator has written the tensors it reads.  The rule:

* the **tail** is every node of a dynamic-shape op kind (:data:`DYNAMIC_SHAPE`), every node
  that reads a value the tail computes (transitively), and every node that depends on no
  graph input (a constant computation) whose values only the tail reads;
* the **cut** is every value a tail node reads that the head computes: the accelerator
  writes each to DRAM (a graph output of the head), the host reads it from there;
* the **head** (every other node) is what sqnxtc imports, compiles and costs; its outputs
  are the model's outputs it computes and the cut, in the model's order of nodes;
* the tail is kept as an ONNX model of its own (the cut and the graph inputs it reads as
  its inputs, the model's outputs it computes as its outputs): ``check`` runs it in
  onnxruntime on sqnxtc's values at the cut and compares its outputs with onnxruntime's
  run of the whole model.

:func:`split_model` is pure: it reads the shape-inferred model and returns the two
models and a :class:`HostTail` (plain data, what the reports print), or None when the
model has no dynamic-shape op.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import helper, numpy_helper

from ..diagnostics import Location, UnsupportedError

#: ONNX ops whose output shape depends on the data: they start the host tail.
DYNAMIC_SHAPE = ("NonMaxSuppression", "NonZero")

#: ONNX ops that are array work: in a host tail they run on the host, uncosted (a note says so).
ARRAY_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class CutTensor:
    """A value the host tail reads: its name, static shape, element type and DRAM words
    (one per element, as every activation)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    words: int


@dataclass(frozen=True)
class HostTail:
    """What runs on the host after the accelerator (module doc), as plain data: the
    dynamic-shape nodes that start it (``(name, op type)``), every node of it in model
    order, the cut it reads (written by the accelerator to DRAM), the graph inputs it
    reads directly (the host holds them), and the model outputs it computes."""

    cut_at: tuple[tuple[str, str], ...]
    ops: tuple[tuple[str, str], ...]
    reads: tuple[CutTensor, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def words_in(self) -> int:
        """DRAM words the host reads at the cut: sum of the cut tensors' elements."""
        return sum(t.words for t in self.reads)

    def array_ops(self) -> list[tuple[str, str]]:
        """The tail's nodes of array work (:data:`ARRAY_OPS`): run on the host, not costed."""
        return [o for o in self.ops if o[1] in ARRAY_OPS]

    def to_ir_attr(self) -> dict:
        """The IR printer's form (``host_tail = {...}`` on the graph)."""
        return {"cut_at": [f"{n} ({t})" for n, t in self.cut_at], "ops": len(self.ops),
                "reads": [t.name for t in self.reads], "outputs": list(self.outputs)}

    def to_json(self) -> dict:
        """schedule.json's ``host_tail`` (docs/schedule-format.md)."""
        return {"cut_at": [{"node": n, "op": t} for n, t in self.cut_at],
                "ops": [{"node": n, "op": t} for n, t in self.ops],
                "reads": [{"tensor": t.name, "shape": list(t.shape), "dtype": t.dtype, "words": t.words}
                          for t in self.reads],
                "inputs": list(self.inputs), "outputs": list(self.outputs), "words_in": self.words_in}


@dataclass
class Split:
    """A model cut in two: ``head`` (what sqnxtc compiles: the cut among its outputs),
    ``tail_model`` (what the host runs) and ``tail`` (the reports' data)."""

    head: onnx.ModelProto
    tail_model: onnx.ModelProto
    tail: HostTail
    #: the whole model, for onnxruntime's reference of the tail's outputs (None: the file)
    full: onnx.ModelProto | None = None


def _node_name(n: onnx.NodeProto, i: int) -> str:
    return n.name or f"{n.op_type}_{i}"


def _reads(n: onnx.NodeProto) -> list[str]:
    """Every value ``n`` reads: its inputs and, in its subgraphs (If, Loop, Scan), the
    outer values they name."""
    out = [x for x in n.input if x]
    for a in n.attribute:
        for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            inner = {o for m in g.node for o in m.output} | {i.name for i in g.input} \
                | {t.name for t in g.initializer}
            out += [x for m in g.node for x in _reads(m) if x not in inner]
    return out


def tail_nodes(graph: onnx.GraphProto) -> set[int]:
    """Indices of the tail's nodes (module doc), ``graph``'s nodes being in topological
    order (as ONNX requires)."""
    nodes = list(graph.node)
    tail: set[int] = set()
    computed: set[str] = set()           # values the tail computes
    for i, n in enumerate(nodes):
        if n.op_type in DYNAMIC_SHAPE or any(x in computed for x in _reads(n)):
            tail.add(i)
            computed.update(o for o in n.output if o)
    if not tail:
        return tail
    # constant computations only the tail reads go with it (backwards, to a fixed point)
    inputs = {i.name for i in graph.input}
    data: set[str] = set(inputs)
    for n in nodes:
        if any(x in data for x in _reads(n)):
            data.update(o for o in n.output if o)
    outputs = {o.name for o in graph.output}
    changed = True
    while changed:
        changed = False
        readers: dict[str, set[int]] = {}
        for i, n in enumerate(nodes):
            for x in _reads(n):
                readers.setdefault(x, set()).add(i)
        for i in range(len(nodes) - 1, -1, -1):
            n = nodes[i]
            if i in tail or any(o in data for o in n.output):
                continue
            outs = [o for o in n.output if o]
            if outs and not any(o in outputs for o in outs) and \
                    all(readers.get(o, set()) <= tail for o in outs) and any(readers.get(o) for o in outs):
                tail.add(i)
                changed = True
    return tail


def _value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    g = model.graph
    return {v.name: v for v in list(g.input) + list(g.value_info) + list(g.output)}


def _static(vi: onnx.ValueInfoProto) -> tuple[tuple[int, ...], int] | None:
    """(shape, element type) of a fully typed tensor value, else None."""
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    dims = vi.type.tensor_type.shape.dim
    if not all(d.HasField("dim_value") for d in dims):
        return None
    return tuple(d.dim_value for d in dims), vi.type.tensor_type.elem_type


def split_model(model: onnx.ModelProto, source: str) -> Split | None:
    """Cut the shape-inferred ``model`` before its dynamic-shape ops (module doc); None
    when it has none.  Refused in one line (exit 4): a cut value whose shape ONNX shape
    inference could not make static, or a head with nothing for the accelerator."""
    g = model.graph
    tail_idx = tail_nodes(g)
    if not tail_idx:
        return None
    nodes = list(g.node)
    head_nodes = [n for i, n in enumerate(nodes) if i not in tail_idx]
    tail_list = [n for i, n in enumerate(nodes) if i in tail_idx]
    starts = [(_node_name(n, i), n.op_type) for i, n in enumerate(nodes) if i in tail_idx
              and n.op_type in DYNAMIC_SHAPE]
    head_made = {o for n in head_nodes for o in n.output if o}
    inits = {t.name: t for t in g.initializer}
    graph_inputs = [i.name for i in g.input if i.name not in inits]
    tail_made = {o for n in tail_list for o in n.output if o}
    tail_reads: list[str] = []
    for n in tail_list:
        for x in _reads(n):
            if x not in tail_made and x not in inits and x not in tail_reads:
                tail_reads.append(x)
    cut = [x for x in tail_reads if x in head_made]
    host_inputs = [x for x in tail_reads if x in graph_inputs]
    where = Location(file=source, node=f"{starts[0][0]} ({starts[0][1]})")
    if not head_nodes or not cut:
        raise UnsupportedError("the model's every node depends on a dynamic-shape op or reads only graph "
                               "inputs before it: nothing for the accelerator before the host tail", where)
    infos = _value_infos(model)
    reads = []
    for x in cut:
        st = _static(infos[x]) if x in infos else None
        if st is None:
            raise UnsupportedError(f"value '{x}' at the cut before the host tail has no static shape; "
                                   "sqnxtc needs the accelerator's results static", where)
        shape, et = st
        numel = 1
        for d in shape:
            numel *= d
        reads.append(CutTensor(x, shape, helper.tensor_dtype_to_np_dtype(et).name, numel))
    out_names = [o.name for o in g.output]
    head_outputs = [o for o in out_names if o in head_made or o in graph_inputs]
    head_outputs += [x for x in cut if x not in head_outputs]
    tail_outputs = [o for o in out_names if o in tail_made]

    def used(ns) -> list:
        names = {x for n in ns for x in _reads(n)}
        return [t for t in g.initializer if t.name in names]

    head = onnx.ModelProto()
    head.CopyFrom(model)
    hg = head.graph
    del hg.node[:]
    hg.node.extend(head_nodes)
    del hg.initializer[:]
    hg.initializer.extend(used(head_nodes))
    del hg.output[:]
    hg.output.extend(infos[o] for o in head_outputs)
    keep = {x for n in head_nodes for x in list(n.input) + list(n.output)}
    vis = [v for v in hg.value_info if v.name in keep and v.name not in head_outputs]
    del hg.value_info[:]
    hg.value_info.extend(vis)
    del hg.input[:]
    hg.input.extend(i for i in g.input if i.name not in inits)
    tail_graph = helper.make_graph(
        tail_list, f"{g.name}_host_tail",
        [infos[x] for x in cut + host_inputs],
        [infos[o] if o in infos else helper.make_empty_tensor_value_info(o) for o in tail_outputs],
        used(tail_list))
    tail_model = helper.make_model(tail_graph, opset_imports=list(model.opset_import),
                                   ir_version=model.ir_version)
    info = HostTail(tuple(starts), tuple((_node_name(n, i), n.op_type) for i, n in enumerate(nodes)
                                         if i in tail_idx),
                    tuple(reads), tuple(host_inputs), tuple(tail_outputs))
    return Split(head, tail_model, info)


def materialize(model: onnx.ModelProto, lazy: dict) -> onnx.ModelProto:
    """A copy of ``model`` whose stand-ins of lazily read weights (:mod:`.weights`) hold
    their data (for onnxruntime, which cannot read a stand-in)."""
    if not lazy:
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for k, t in enumerate(m.graph.initializer):
        if t.name in lazy:
            m.graph.initializer[k].CopyFrom(numpy_helper.from_array(lazy[t.name].load(), t.name))
    return m
