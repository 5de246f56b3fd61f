"""What DRAM and the global buffer hold while a compiled network runs: the tiled
executor's memory image (docs/tiled-execution.md, "The memory image").

The tiled executor computes values; this module checks that the *words* each op reads are
there when it reads them, as the schedule's operand homes and the memory plan's addresses
say (docs/memory-planning.md).  It is independent of the planner: it reads the graph,
every op's ``plan`` attribute and its schedule's footprint, nothing of the planner's own
liveness.

* **DRAM**: one written-mask per activation (by value, through views: a view's words are
  its origin's).  The network inputs and every constant (weights) start written.  A
  scheduled op whose output home is ``dram`` (or that has no plan: every activation goes
  through DRAM) writes all of its output words; an op the array does not run (the host's
  work, a shape op applied to data) reads its operands from DRAM and writes its result
  there.  Reading a DRAM word that no one wrote fails the check.
* **Buffer**: one owner tag per word of the global buffer.  A step first claims its tile
  region (``tiles_at``, the schedule's footprint), then a resident output's region
  (``output_at``, the tensor's words); a resident operand (input or fused residual whose
  home is ``buffer``) must then still own every word of its region.  A region claimed by
  anything else in between (overwritten while live) fails the check.
* Reads are checked as a whole tensor: every layer reads its data operands' words (a
  strided 1x1 conv skips some, a safe over-approximation: producers write whole tensors).
"""
from __future__ import annotations

import numpy as np

from ..diagnostics import CheckFailed
from ..ir.core import Op, Value, view_origin
from ..ir.graph import Graph
from ..layers import data_operands, resident_at

FREE = -1          # a buffer word nobody owns


def _name(v: Value) -> str:
    """The tensor's name in messages: its producer's source node, else the value name."""
    return (v.owner.loc.node if v.owner is not None and v.owner.loc.node else None) or f"%{v.name}"


def _who(op: Op) -> str:
    """The reader in messages (an op's own errors are located at its node already)."""
    return "the graph output" if op.name == "sqnxt.output" else "it"


class MemoryImage:
    """The DRAM written-masks and the buffer owner tags of one run (module doc)."""

    def __init__(self, graph: Graph):
        plan = graph.attrs.get("plan")
        self.buffer = np.full(plan.buffer_words if plan is not None else 0, FREE, dtype=np.int64)
        self.dram: dict[int, np.ndarray] = {}       # id(origin value) -> written mask

    # ------------------------------------------------------------------ DRAM
    def write_dram(self, v: Value) -> None:
        """Every word of ``v`` (its origin) is written to DRAM."""
        o = view_origin(v)
        self.dram[id(o)] = np.ones(o.type.numel, dtype=bool)

    def read_dram(self, v: Value, reader: Op) -> None:
        """``reader`` reads every word of ``v`` from DRAM: each must have been written."""
        o = view_origin(v)
        mask = self.dram.get(id(o))
        missing = o.type.numel if mask is None else int(np.count_nonzero(~mask))
        if missing:
            raise CheckFailed(f"memory image: {_who(reader)} reads "
                              f"'{_name(o)}' from DRAM, but {missing} of its {o.type.numel} words "
                              f"were never written there")

    # ------------------------------------------------------------------ buffer
    def claim(self, lo: int, words: int, tag: int, what: str, op: Op) -> None:
        """``tag`` now owns buffer words [lo, lo + words) (inside the buffer)."""
        if lo < 0 or lo + words > self.buffer.size:
            raise CheckFailed(f"memory image: {what} at "
                              f"[{lo}, {lo + words}) lies outside the {self.buffer.size}-word buffer")
        self.buffer[lo:lo + words] = tag

    def read_buffer(self, v: Value, reader: Op) -> None:
        """``reader`` reads ``v`` in place: its producer's region must still be its own (a
        concat in place: each part's, one after the other)."""
        o = view_origin(v)
        src = o.owner
        if src is not None and src.has_trait("in_place_parts"):
            at = None
            for p in src.operands:
                here = resident_at(p)
                if at is not None and here is not None and here != at:
                    raise CheckFailed(f"memory image: {_who(reader)} reads '{_name(o)}' from the buffer, "
                                      f"but its part '{_name(view_origin(p))}' is at word {here}, "
                                      f"not {at} where the previous part ends")
                self.read_buffer(p, reader)
                at = (here if here is not None else 0) + view_origin(p).type.numel
            return
        plan = src.attrs.get("plan") if src is not None else None
        if plan is None or plan.output != "buffer":
            raise CheckFailed(f"memory image: {_who(reader)} reads "
                              f"'{_name(o)}' from the buffer, but it was never placed there")
        words = o.type.numel
        owners = self.buffer[plan.offset:plan.offset + words]
        lost = int(np.count_nonzero(owners != src.id))
        if lost or owners.size != words:
            raise CheckFailed(f"memory image: {_who(reader)} reads "
                              f"'{_name(o)}' at buffer words [{plan.offset}, {plan.offset + words}), "
                              f"but {lost or words} of them were overwritten while it was live")

    # ------------------------------------------------------------------ one op
    def start(self, graph: Graph) -> None:
        """The network inputs and the constants are in DRAM before the run."""
        for op in graph.ops():
            if op.name in ("sqnxt.input", "sqnxt.constant"):
                self.write_dram(op.result)

    def step(self, op: Op) -> None:
        """Check and record what ``op`` reads and writes (module doc)."""
        if op.name in ("sqnxt.input", "sqnxt.constant") or op.has_trait("view") \
                or op.has_trait("reads_shape_only"):
            return
        if op.name == "sqnxt.output":
            for v in op.operands:
                self.read_dram(v, op)
            return
        if op.has_trait("in_place_parts"):
            # its words are its parts': resident, its readers check the parts' regions; in
            # DRAM, they are there once every part was written
            if resident_at(op.result) is None:
                for v in op.operands:
                    self.read_dram(v, op)
                self.write_dram(op.result)
            return
        plan = op.attrs.get("plan") if "schedule" in op.attrs else None
        if plan is None:      # all-DRAM, or an op the array does not run
            for v in op.operands:
                self.read_dram(v, op)
            for r in op.results:
                self.write_dram(r)
            return
        sched = op.attrs["schedule"].schedule
        stack = op.attrs.get("stack")
        if stack is not None:
            self._stack_member(op, plan, sched, stack)
            return
        self.claim(plan.tiles, sched.cost.footprint["total"], -2 - op.id, "the tiles", op)
        if plan.output == "buffer":
            self.claim(plan.offset, op.result.type.numel, op.id, "the resident output", op)
        for v, home in _operand_homes(op, plan):
            (self.read_buffer if home == "buffer" else self.read_dram)(v, op)
        if plan.output != "buffer":
            self.write_dram(op.result)

    def _stack_member(self, op: Op, plan, sched, stack) -> None:
        """A fused stack's member: the stack's region (windows, kept weights, tiles) is claimed
        at its first member, for the whole stack, and must still be the stack's at every
        later member; an operand whose home is ``band`` (a window of another member, which
        the stack's run checks band by band) is not in DRAM nor resident; every other operand
        is read from DRAM; the last member writes its output to DRAM, the others none."""
        words = sched.cost.footprint["total"]
        tag = -(1 << 40) - stack.index
        if stack.member == 0:
            self.claim(plan.tiles, words, tag, "the fused stack's region", op)
        else:
            lost = int(np.count_nonzero(self.buffer[plan.tiles:plan.tiles + words] != tag))
            if lost:
                raise CheckFailed(f"memory image: {lost} words of the fused stack's region "
                                  f"[{plan.tiles}, {plan.tiles + words}) were overwritten between its members")
        for v, home in _operand_homes(op, plan):
            if home == "dram":
                self.read_dram(v, op)
            elif home == "buffer":
                self.read_buffer(v, op)
        if plan.output == "dram":
            self.write_dram(op.result)


def _operand_homes(op: Op, plan) -> list[tuple[Value, str]]:
    """Each distinct operand of a planned op with its home: the data inputs' from the plan,
    a fused residual's, anything else (weights, parameters, parts) ``dram``."""
    homes = {}
    for v, home in zip(data_operands(op), plan.inputs):
        homes.setdefault(id(v), (v, home))
    if op.attrs.get("residual"):
        r = op.operands[-1]
        homes[id(r)] = (r, plan.residual)
    for v in op.operands:
        homes.setdefault(id(v), (v, "dram"))
    return list(homes.values())
