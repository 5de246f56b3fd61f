"""concat-in-place: let the producers of a concat's parts write straight into their slices
of its result, so the concat moves nothing.

A concat whose every axis before the concat axis has size 1 (a channel concat of NCHW,
batch 1) lays its parts one after the other in its result's words: part ``i`` is the
slice at word ``sum(numel of parts 0..i-1)``.  When each part is the whole result of a
layer (an op the array runs) that nothing else reads, that layer can write its output
there (in DRAM or, when the memory plan keeps it, in the buffer) and the copy is gone:

    %a = sqnxt.conv(%s, %w1, %b1) {act = "relu", ...}
    %b = sqnxt.conv(%s, %w3, %b3) {act = "relu", ...}
    %y = sqnxt.concat(%a, %b) {axis = 1}          (a move layer: reads and writes every word)

becomes ``%y = sqnxt.concat_view(%a, %b) {axis = 1}`` (the ``free`` and ``in_place_parts``
traits: no layer, no schedule row).  The reference executors still concatenate the values;
the DRAM layout of a program makes each part a sub-region of the result
(:mod:`sqnxt_compiler.program.layout`), int16 writes every part at the result's scale, and
the memory planner plans the parts and the result as one tensor
(:mod:`sqnxt_compiler.schedule.liveness`).

A part may be read by other ops too (a DenseNet layer's output feeds its concat and the
next layer): they read its slice of the concat's words.  A part may itself be a concat in
place along the same axis (DenseNet's ``c1 = concat(c0, n1)`` with ``c0`` read by the next
layer as well): its words are then a slice of the outer one's, recursively, so every part
of the chain is written once into the outermost concat (:mod:`sqnxt_compiler.ir.storage`).
A concat nested in another along the same axis whose only reader is the outer one is
spliced into it instead (``concat(concat(a, b), c)`` -> ``concat(a, b, c)``: the same
words in the same order).

Left a copy (a ``move`` layer, costed; counted by reason):

* ``not-contiguous``: an axis before the concat axis is larger than 1 (a concat along H
  or W, or of batch > 1): the parts are strided boxes of the result, not slices;
* ``part-not-a-layer``: a part is not a layer's result (the network input, a constant, a
  host op's result, an op the cost model does not model, a view of a larger tensor, a
  concat in place along another axis);
* ``part-shared``: a part is read by a second concat (a copy or in place) or by this one
  twice: its words cannot be one slice of each.
"""
from __future__ import annotations

import math

from ..ir.core import Op, Value, view_origin
from ..ir.graph import Graph
from ..ir.storage import word_readers
from ..layers import layer_of
from ..pipeline.pass_base import Pass, PassContext
from ..pipeline.rewrite import RewritePattern, Rewriter, apply_patterns


def contiguous(shape: tuple[int, ...], axis: int) -> bool:
    """The parts of a concat of result ``shape`` along ``axis`` are slices of its words:
    ``prod(shape[:axis]) == 1``."""
    return math.prod(shape[:axis % max(len(shape), 1)]) == 1


def part_problem(graph: Graph, concat: Op, v: Value) -> str:
    """Why the part ``v`` of ``concat`` cannot be written in place ("" when it can): it must
    be the whole result of a modelled layer, or a concat in place along the same axis (its
    words then a slice of this one's), read by ``concat`` once and by no other concat
    (another reader reads its slice)."""
    o = view_origin(v)
    src = o.owner
    nested = (src is not None and src.has_trait("in_place_parts")
              and src.attrs["axis"] % src.result.type.rank == concat.attrs["axis"] % concat.result.type.rank)
    if src is None or o.type.numel != v.type.numel or src.has_trait("host") or \
            (not nested and (src.has_trait("free") or layer_of(src) is None)):
        return "part-not-a-layer"
    readers = word_readers(graph, o)
    mine = sum(1 for r in readers if r is concat)
    others = [r for r in readers if r is not concat and r.name in ("sqnxt.concat", "sqnxt.concat_view")]
    if mine != 1 or others:
        return "part-shared"
    return ""


def spliceable(graph: Graph, v: Value, outer: Op) -> bool:
    """``v`` is the result of a concat along the axis of the concat ``outer``, and its one use
    is by ``outer``: ``outer`` may take the inner concat's operands in its place."""
    inner = v.owner
    if outer.name != "sqnxt.concat" or inner is None or inner.name not in ("sqnxt.concat", "sqnxt.concat_view"):
        return False
    axis = outer.attrs["axis"] % outer.result.type.rank
    uses = graph.uses(v)
    return inner.attrs["axis"] % inner.result.type.rank == axis and len(uses) == 1 and uses[0][0] is outer


class SpliceNested(RewritePattern):
    """concat(..., concat(a, b), ...) -> concat(..., a, b, ...) on the same axis, when the
    inner concat's only reader is the outer one."""

    ops = ("sqnxt.concat",)

    def match_and_rewrite(self, op: Op, rw: Rewriter) -> None:
        new, spliced = [], []
        for v in op.operands:
            if spliceable(rw.graph, v, op):
                new.extend(v.owner.operands)
                spliced.append(v)
            else:
                new.append(v)
        if not spliced:
            return None
        rw.set_operands(op, new)
        for v in spliced:
            rw.erase(v.owner)
        rw.count("nested-concat-spliced", len(spliced))


class InPlace(RewritePattern):
    """concat(parts) -> concat_view(parts) when every part can be written in place."""

    ops = ("sqnxt.concat",)

    def match_and_rewrite(self, op: Op, rw: Rewriter) -> None:
        users = rw.graph.uses(op.result)
        if len(users) == 1 and spliceable(rw.graph, op.result, users[0][0]):
            return rw.decline("spliced")      # into the concat reading it (SpliceNested), first
        if not contiguous(op.result.type.shape, op.attrs["axis"]):
            return rw.decline("kept-copy-not-contiguous")
        for v in op.operands:
            why = part_problem(rw.graph, op, v)
            if why:
                return rw.decline(f"kept-copy-{why}")
        rw.convert(op, "sqnxt.concat_view", {"axis": op.attrs["axis"]})
        rw.count("concat-in-place")


PATTERNS = (SpliceNested(), InPlace())


def as_copy(op: Op) -> None:
    """Turn the concat in place ``op`` back into the copy it was (``sqnxt.concat``, a move
    layer): the memory planner found the copy better (its result can stay resident where
    the whole concat, live from its first part on, cannot: docs/memory-planning.md).  The
    op keeps its id, operands and result (its place in the program order)."""
    op.name = "sqnxt.concat"
    op.attrs = {"axis": op.attrs["axis"]}


class ConcatInPlace(Pass):
    name = "concat-in-place"
    summary = "Let the producers of a concat's parts write into its result: the concat moves nothing."

    def run(self, graph: Graph, ctx: PassContext) -> None:
        apply_patterns(graph, PATTERNS, self.stats, name=self.name)
