"""The network as the memory planner sees it: steps in program order, the activation
tensors between them, and each tensor's live range (docs/memory-planning.md).

* **Steps**: the ops the accelerator runs (those with a cost-model layer), in the graph's
  deterministic op order (``Graph.ops()``: a topological order keyed by creation id); the
  machine runs one step at a time.
* **Tensors**: the result of every step.  A view op (the ``view`` trait: flatten,
  reshape, squeeze, unsqueeze, identity, ...) moves no data, so a tensor read through
  views is the same words: its users are found through them.  Every other user reads the
  words, except one that reads only the static shape (the ``reads_shape_only`` trait:
  ``sqnxt.shape``).  A tensor is *plannable* (may stay resident in the global buffer)
  when every op that reads its data is a step reading it in place; one read by anything
  else (the graph output, an op the cost model does not model, a shape op such as a cast
  applied to it: all read DRAM) always goes through DRAM, as do the network input and
  the weights.  A tensor a host op reads (the ``host`` trait: the host CPU runs it) is
  never plannable, its reason naming the host op: the accelerator writes to DRAM what the
  host reads.  A host op's result is no step's, so a step reading it reads DRAM.
* **Concats in place** (``sqnxt.concat_view``, the ``in_place_parts`` trait): the parts,
  the concats in place nested in it and the outermost result are one tensor, the
  outermost result's words (:mod:`sqnxt_compiler.ir.storage`), produced by every step that
  writes a part (``Step.output_at``: the part's word offset in it) and read by every reader
  of any of them (a reader of a part or of a nested concat reads its slice); its live
  range runs from the first part's step.  When a part is not a step's
  result (the pass makes sure it is) the parts stay tensors of their own, in DRAM.
  A concat in place whose readers all read it in place also gets a **copy step** at its
  place in the program order (``Step.copy_of``: the ``move`` layer of the concat it was),
  producing a tensor of its own (``<name> (copy)``): the planner writes the concat in
  place or copies it (``Network.copies``, ``Network.reads_resident``;
  docs/memory-planning.md, "Concats in place").
* **Live range**: from its producer's step to its last reader's step, inclusive: a
  resident tensor holds its words in the buffer during every step of that range.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..cost.layer import Layer
from ..ir.core import Op, Value, view_origin
from ..ir.graph import Graph
from ..ir.storage import containing, word_readers
from ..layers import concat_copy_layer, data_operands as layer_data_operands


@dataclass(frozen=True)
class Tensor:
    """An activation produced by step ``producer`` and last read by step ``last``."""

    index: int
    name: str
    words: int
    producer: int
    last: int
    plannable: bool
    reason: str = ""          # why it must go through DRAM (when not plannable)
    readers: tuple[int, ...] = ()   # every step that reads its words (in place or from DRAM)

    def live_at(self, step: int) -> bool:
        """True for producer <= step <= last."""
        return self.producer <= step <= self.last


@dataclass(frozen=True)
class Step:
    """One op the accelerator runs: its layer, the tensor of each data input (None: read
    from DRAM, e.g. the network input), the tensor of its fused residual (None: none, or
    read from DRAM) and the tensor it produces."""

    index: int
    op: Op
    layer: Layer
    inputs: tuple[int | None, ...]
    output: int
    residual: int | None = None
    output_at: int = 0        # word offset of its result in the output tensor (a concat's part)
    copy_of: int | None = None  # a concat's copy: the in-place tensor it is the alternative to


@dataclass(frozen=True)
class Network:
    steps: tuple[Step, ...]
    tensors: tuple[Tensor, ...]
    copies: tuple[tuple[int, int, int], ...] = ()   # (copy step, in-place tensor, copy's tensor)

    def live(self, step: int) -> list[Tensor]:
        """The plannable tensors live at ``step``."""
        return [t for t in self.tensors if t.plannable and t.live_at(step)]

    def alternative(self, t: int | None) -> int | None:
        """The copy's tensor of the concat in place ``t`` (its readers read one or the
        other), or None."""
        return next((r for _c, g, r in self.copies if g == t), None) if t is not None else None

    def reads_resident(self, t: int | None, resident) -> bool:
        """A step reading tensor ``t`` reads it in place under the residency ``resident``
        (indexable by tensor): ``t`` resident, or its copy's tensor (module doc: a concat
        written in place or copied, the plan's choice)."""
        if t is None:
            return False
        alt = self.alternative(t)
        return bool(resident[t]) or (alt is not None and bool(resident[alt]))

    def copy_consistent(self, step: Step, skip: bool, resident) -> bool:
        """A copy step's choice agrees with the residency: it may skip (the concat written
        in place) only when its copy's tensor is not resident, and copy only when the
        in-place tensor is not (any other step: True)."""
        if step.copy_of is None:
            return True
        return not (resident[step.output] if skip else resident[step.copy_of])

    def resident_inputs(self, step: Step, resident) -> int:
        """How many of ``step``'s data inputs it reads in place (:meth:`reads_resident`)."""
        return sum(1 for t in step.inputs if self.reads_resident(t, resident))


def is_view(op: Op) -> bool:
    """A view passes operand 0's words on unchanged (the ``view`` trait)."""
    return op.has_trait("view")


def data_operands(op: Op) -> list[Value]:
    """The operands whose words a step reads as whole input tensors, in place when they
    are resident (:func:`sqnxt_compiler.layers.data_operands`: every operand of an add,
    the output-shaped operands of an eltwise layer, operand 0 otherwise; operands 1.. of
    conv/fc are weights, bias and, with a fused add, the residual: :func:`residual_operand`)."""
    return layer_data_operands(op)


def residual_operand(op: Op) -> Value | None:
    """The residual a conv / fc adds in its epilogue (its last operand when ``residual =
    1``), else None."""
    return op.operands[-1] if op.attrs.get("residual") else None


def _origin(graph: Graph, v: Value) -> Value:
    """The value ``v`` is a view of (:func:`sqnxt_compiler.ir.core.view_origin`)."""
    return view_origin(v)


def network_of(graph: Graph, layers: list[tuple[Op, Layer]]) -> Network:
    """Steps and tensors of a graph whose steps (ops with a layer) are ``layers``, in
    program order, with a copy step for every concat in place that may stay resident
    (module doc)."""
    layer_ids = {op.id for op, _ in layers}
    groups = _in_place_groups(graph, layer_ids)
    # the producers a step reads in place when resident (its data operands and residual)
    in_place = {op.id: {src.id for v in data_operands(op) + [residual_operand(op)] if v is not None
                        for src in (_origin(graph, v).owner,) if src is not None}
                for op, _ in layers}
    alt_ops = {g.root.id: g.root for g in groups
               if g.simple and _reads_in_place(graph, g.root, layer_ids, in_place)}
    by_id = dict((op.id, (op, L)) for op, L in layers)
    order = [by_id[op.id] if op.id in by_id else (op, concat_copy_layer(op))
             for op in graph.ops() if op.id in by_id or op.id in alt_ops]
    for cv in alt_ops.values():
        in_place[cv.id] = set()                # the copy reads its parts from DRAM
    step_of = {op.id: i for i, (op, _) in enumerate(order)}
    leaf_of = {src: (g, off) for g in groups for src, off in g.leaves}
    tensor_of: dict[int, int] = {}
    tensors: list[Tensor] = []
    copy_tensor: dict[int, int] = {}
    for i, (op, L) in enumerate(order):
        if op.id in alt_ops:                     # the copy's result: read by the concat's readers
            copy_tensor[op.id] = len(tensors)
            tensors.append(_tensor(graph, [op.result], {op.id}, len(tensors), i, i, step_of, in_place,
                                   name=_name(op) + " (copy)"))
            continue
        if op.id in leaf_of:
            g, _off = leaf_of[op.id]
            if g.root.id not in tensor_of:      # the root concat's words, from its first part's step
                index = len(tensors)
                for m in g.members:
                    tensor_of[m] = index
                last = max(step_of[src] for src, _o in g.leaves)
                tensors.append(_tensor(graph, g.values, g.members, index, i, last, step_of, in_place,
                                       name=_name(g.root)))
            continue
        tensor_of[op.id] = len(tensors)
        tensors.append(_tensor(graph, [op.result], {op.id}, len(tensors), i, i, step_of, in_place))

    def tensor(v: Value) -> int | None:
        src = _origin(graph, v).owner
        return tensor_of.get(src.id) if src is not None else None

    steps = []
    for i, (op, L) in enumerate(order):
        if op.id in alt_ops:
            steps.append(Step(i, op, L, (), copy_tensor[op.id], copy_of=tensor_of[op.id]))
            continue
        r = residual_operand(op)
        steps.append(Step(i, op, L, tuple(tensor(v) for v in data_operands(op)), tensor_of[op.id],
                          None if r is None else tensor(r), leaf_of[op.id][1] if op.id in leaf_of else 0))
    pairs = tuple((s.index, s.copy_of, s.output) for s in steps if s.copy_of is not None)
    return Network(tuple(steps), tuple(tensors), pairs)


def _name(op: Op) -> str:
    return op.loc.node or f"%{op.result.name}"


def _reads_in_place(graph: Graph, cv: Op, steps: set[int], in_place: dict[int, set[int]]) -> bool:
    """Every reader of the concat in place ``cv``'s words is a step reading it in place (the
    rule that makes a tensor plannable): only then may its copy's result stay resident,
    and only then is the copy an alternative worth planning."""
    readers = word_readers(graph, cv.result)
    return bool(readers) and all(r.id in steps and cv.id in in_place[r.id] for r in readers)


@dataclass
class _Group:
    """A concat in place that no other holds (``root``) with every concat in place nested in
    it: the steps writing its words (``leaves``: producer id, word offset in the root), the
    ops whose results are its words or slices of them (``members``), the values whose
    readers read them (``values``), and whether it is one concat of parts nothing else reads
    (``simple``: its copy is an alternative the planner may take)."""

    root: Op
    leaves: list
    members: set
    values: list
    simple: bool


def _in_place_groups(graph: Graph, steps: set[int]) -> list[_Group]:
    """The groups (:class:`_Group`) of the concats in place whose every leaf part is a
    step's whole result (module doc), in program order of their roots."""
    from ..ir.core import part_offsets

    out = []
    for op in graph.ops():
        if not op.has_trait("in_place_parts") or containing(graph, op.result) is not None:
            continue
        g = _Group(op, [], {op.id}, [op.result], True)
        todo, ok = [(op, 0)], True
        while todo and ok:
            cv, base = todo.pop()
            for v, off in part_offsets(cv):
                o = _origin(graph, v)
                src = o.owner
                if src is not None and src.has_trait("in_place_parts"):
                    g.simple = False
                    g.members.add(src.id)
                    g.values.append(o)
                    todo.append((src, base + off))
                elif src is None or src.id not in steps or o.type.numel != v.type.numel:
                    ok = False
                    break
                else:
                    g.leaves.append((src.id, base + off))
                    g.members.add(src.id)
                    g.values.append(o)
                    g.simple = g.simple and word_readers(graph, o) == [cv]
        if ok:
            out.append(g)
    return out


def _tensor(graph: Graph, values: list[Value], members: set[int], index: int, first: int, last_write: int,
            step_of: dict[int, int], in_place: dict[int, set[int]], name: str | None = None) -> Tensor:
    """The tensor of ``values``' words (a step's result; a concat in place's group: its
    result, its nested concats' and its parts', ``members`` the ops producing them), written
    from step ``first`` to step ``last_write``: its readers, live range and whether it may
    stay resident (module doc)."""
    i = first
    readers = [r for v in values for r in word_readers(graph, v) if r.id not in members]
    others = [r for r in readers if r.id not in step_of]
    steps = [step_of[r.id] for r in readers if r.id in step_of]
    # a step that reads it otherwise (per-channel parameters, a part of a concat) reads DRAM
    copied = [r for r in readers if r.id in step_of and not (members & in_place[r.id])]
    reason = ""
    if others:
        o = others[0]
        host = next((r for r in others if r.has_trait("host")), None)
        inplace = next((r for r in others if r.has_trait("in_place_parts")), None)
        if host is not None:    # the accelerator writes what the host reads
            reason = f"read from DRAM by the host: {host.name} '{host.loc.node or host.id}'"
        elif inplace is not None:
            reason = f"a part of the concat in place '{inplace.loc.node or inplace.id}' (in DRAM)"
        else:
            reason = ("the graph output" if o.name == "sqnxt.output"
                      else f"read by {o.name} '{o.loc.node or o.id}' (not run on the array)")
    elif copied:
        o = copied[0]
        reason = f"read from DRAM by {o.name} '{o.loc.node or o.id}' (a parameter or a part of its input)"
    elif not steps:
        reason = "never read"
    return Tensor(index, name or _name(values[0].owner), values[0].type.numel,
                  i, max(steps + [last_write]), not reason, reason, tuple(sorted(set(steps))))
