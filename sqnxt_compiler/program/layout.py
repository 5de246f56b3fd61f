"""The DRAM layout of a lowered network: a word address for every tensor a program reads
or writes in DRAM (docs/isa.md, "Programs").

Regions, in this order (deterministic: the graph's op order): the network inputs; then,
per scheduled layer in program order, every data input or residual not placed yet (a
tensor that ops not run on the array produce: the program assumes it is in DRAM at its
address before the program runs), its weights (constants, as the op holds them:
row-major), its bias (``K x pw`` words: the accumulator format, one entry per output
channel), its output unless the memory plan keeps it in the buffer, and its partial-sum
scratch area when its c loop is outside a tiled x, y or k loop (the cost model's
``output_visits`` > 1: one packed ``kc x rows x cols x pw`` region per output tile, in the
walk's order of first visits).  Every region starts at a multiple of :data:`ALIGN` words;
tensors are dense NCHW of batch 1 (element ``[c][h][w]`` at ``base + (c*H + h)*W + w``).
DRAM word addresses are 32 bits: a network whose regions end past ``2**32`` words is a
one-line error.

**Concatenations** (a ``move`` layer over parts, :func:`concat_parts`): the parts of a
concat whose axis leaves each part contiguous (every axis before it of size 1: a channel
concat of NCHW, batch 1) are laid out one after the other in one region, the concat's
input (``concat_input``), each part's tensor a sub-region of it at its offset (not
aligned: the part's region starts where the previous part ends).  The layers that
produce the parts write them there, so the concat reads its input as one tensor, tile by
tile, exactly as the cost model counts a move (one box per tile).  The combined region
is allocated where its first part is placed.  A concat written in place
(``sqnxt.concat_view``, the ``concat-in-place`` pass) is the same without the copy: its
result's region is the parts' combined region, which the layers reading it read; a concat
in place nested in another (:mod:`sqnxt_compiler.ir.storage`) is a slice of the outermost
one's region, as is every part, also for the other layers that read it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..cost.tiling import pooled_geometry, tile_steps
from ..diagnostics import SqnxtError
from ..ir.core import Value, part_offsets, view_origin
from ..ir.storage import storage
from ..layers import resident_at
from .isa import DRAM_ADDR_BITS

#: Every DRAM region starts at a multiple of this many words (64 bytes: a DRAM burst).
ALIGN = 32


@dataclass(frozen=True)
class Region:
    """One DRAM region: ``words`` words from word ``base``."""

    name: str
    kind: str          # "input", "activation", "weights", "bias", "psum"
    base: int
    words: int

    @property
    def end(self) -> int:
        return self.base + self.words


def value_key(v: Value) -> tuple:
    """The key of the words ``v`` is (through views): its producer's id and result index,
    or the value's name for one without a producer."""
    o = view_origin(v)
    return ("op", o.owner.id, o.index) if o.owner is not None else ("value", o.name)


@dataclass
class DramLayout:
    """Every region (:class:`Region`), by what it holds."""

    regions: list[Region] = field(default_factory=list)
    tensors: dict[tuple, Region] = field(default_factory=dict)    # value_key -> region
    weights: dict[int, Region] = field(default_factory=dict)      # layer index -> weights
    bias: dict[int, Region] = field(default_factory=dict)         # layer index -> bias
    psum: dict[int, Region] = field(default_factory=dict)         # layer index -> scratch
    psum_at: dict[int, dict[tuple, int]] = field(default_factory=dict)   # layer -> out tile -> offset
    concat_input: dict[int, Region] = field(default_factory=dict)  # concat layer -> its parts' region
    end: int = 0
    _parts: dict = field(default_factory=dict)       # part value_key -> (group, offset)
    _part_groups: dict = field(default_factory=dict)  # group -> (name, words, result key or None)
    _groups: dict = field(default_factory=dict)       # group -> its region, once placed

    def add(self, name: str, kind: str, words: int) -> Region:
        base = -(-self.end // ALIGN) * ALIGN
        r = Region(name, kind, base, max(1, words))
        if r.end > 1 << DRAM_ADDR_BITS:
            raise SqnxtError(f"the network does not fit the {DRAM_ADDR_BITS}-bit DRAM address space: "
                             f"region '{name}' ({words} words) would end at word {r.end}")
        self.regions.append(r)
        self.end = r.end
        return r

    def tensor(self, v: Value) -> Region:
        return self.tensors[value_key(v)]

    def _group(self, grp) -> Region:
        """The region of the parts' group ``grp`` (a concat layer's index, or ``("view", op
        id)`` for a concat in place, whose result it is), allocated on first use."""
        if grp not in self._groups:
            gname, words, result = self._part_groups[grp]
            g = self._groups[grp] = self.add(gname, "activation", words)
            if isinstance(grp, int):
                self.concat_input[grp] = g
            else:
                self.tensors[result] = g
        return self._groups[grp]

    def place(self, v: Value, kind: str) -> Region:
        key = value_key(v)
        if key not in self.tensors:
            o = view_origin(v)
            name = (o.owner.loc.node if o.owner is not None and o.owner.loc.node else None) or f"%{o.name}"
            part = self._parts.get(key)
            if part is not None:       # a concat's part: a sub-region of the concat's input
                grp, off = part
                g = self._group(grp)
                self.tensors[key] = Region(name, kind, g.base + off, o.type.numel)
            else:
                self.tensors[key] = self.add(name, kind, o.type.numel)
        return self.tensors[key]


def psum_offsets(L, m, pw: int) -> tuple[dict[tuple, int], int]:
    """The partial-sum scratch of a layer: each output tile's (g, x, y, k) offset, its
    ``kc x rows x cols`` computed outputs (a fused pool's cover) ``pw`` words each, packed
    in the order of the tiles' first visits; and the total words."""

    cover = pooled_geometry(L)[1] if L.epilogue.pool is not None else (lambda t: t)
    at: dict[tuple, int] = {}
    total = 0
    for s in tile_steps(L, m):
        if s.out_key in at:
            continue
        c = cover(s.tile)
        at[s.out_key] = total
        total += (c.k[1] - c.k[0]) * (c.y[1] - c.y[0]) * (c.x[1] - c.x[0]) * pw
    return at, total


def is_concat(op) -> bool:
    """``op`` is a concatenation (a move whose operands are parts of its input)."""
    from ..ir.core import Move

    t = op.get_trait(Move)
    return t is not None and t.parts


def concat_parts(op) -> tuple[list, str | None]:
    """The parts of the concat ``op`` as (value, word offset in the concatenated input), and
    None; or [] and why they cannot be laid out as one tensor (module doc)."""
    shape = op.result.type.shape
    axis = op.attrs["axis"] % max(len(shape), 1)
    if axis == 0 or math.prod(shape[1:axis]) != 1:
        return [], (f"a concat along axis {axis} of {list(shape)}: its parts are not contiguous slices "
                    "of one tensor (only a concat whose axes before the concat axis are all 1, a channel "
                    "concat, is one LOAD box per tile)")
    out, off, seen = [], 0, set()
    for v in op.operands:
        o = view_origin(v)
        if o.type.numel != v.type.numel:
            return [], f"part '{v.name}' is a view of a larger tensor"
        if o.owner is not None and o.owner.has_trait("in_place_parts"):
            return [], f"part '{v.name}' is a concat written in place (its own parts' region)"
        key = value_key(v)
        if key in seen:
            return [], (f"part '{v.name}' appears twice: one tensor cannot sit at two places of the "
                        "concatenated input (its producer writes it once)")
        seen.add(key)
        if _resident(v):
            return [], f"part '{v.name}' is resident in the buffer"
        out.append((v, off))
        off += v.type.numel
    return out, None


def dram_layout(graph, layers: list, target, params: dict | None = None,
                extra_inputs: dict | None = None) -> DramLayout:
    """The layout (module doc) of ``layers``: (index, op, schedule, plan attribute or None,
    data operands, residual operand or None, weights value or None, bias value or None)
    per scheduled layer, in program order.  ``params``: per eltwise layer with parameter
    vectors, (the activation holding its one vector, or None: constants packed ``K x
    params`` in a region of their own, the layer's "weights"; the words); ``extra_inputs``:
    per layer, the tensors it reads from DRAM beside its data operands (an eltwise layer's
    broadcast operands)."""
    params, extra_inputs = params or {}, extra_inputs or {}
    lay = DramLayout()
    pw = target.psum_words
    for li, op, *_ in layers:
        if is_concat(op):
            parts, why = concat_parts(op)
            if why is not None:
                raise SqnxtError(f"layer '{_name(op)}': {why}")
            for v, off in parts:
                key = value_key(v)
                if key in lay._parts:
                    raise SqnxtError(f"layer '{_name(op)}': part '{v.name}' is a part of another concat too")
                lay._parts[key] = (li, off)
            lay._part_groups[li] = (f"{_name(op)}/input", op.result.type.numel, None)
    for op in graph.ops():
        if op.has_trait("in_place_parts") and not _resident(op.result):   # in DRAM: the root's region
            root, base = storage(graph, op.result)
            grp = ("view", root.owner.id)
            if root is not op.result:            # a concat nested in another: a slice of the root's
                lay._parts[value_key(op.result)] = (grp, base)
            for v, off in part_offsets(op):
                src = view_origin(v).owner
                if src is not None and src.has_trait("in_place_parts"):
                    continue                     # a nested concat: placed as the slice above, itself
                key = value_key(v)
                if key in lay._parts:
                    raise SqnxtError(f"concat '{_name(op)}': part '{v.name}' is a part of another concat too")
                lay._parts[key] = (grp, base + off)
            lay._part_groups[grp] = (_name(root.owner), root.type.numel, value_key(root))
    for op in graph.inputs:
        lay.place(op.result, "input")
    for li, op, sched, plan, data, residual, w, b in layers:
        for v in data + ([residual] if residual is not None else []) + extra_inputs.get(li, []):
            if value_key(v) not in lay.tensors and not _resident(v):
                lay.place(v, "activation")
        if w is not None:
            words = w.size if isinstance(w, np.ndarray) else view_origin(w).type.numel   # synthesized: an array
            lay.weights[li] = lay.add(f"{sched.layer.name}/weights", "weights", words)
        elif li in params:
            pv, words = params[li]
            lay.weights[li] = (lay.place(pv, "activation") if pv is not None
                               else lay.add(f"{sched.layer.name}/params", "weights", words))
        if b is not None:
            lay.bias[li] = lay.add(f"{sched.layer.name}/bias", "bias", sched.layer.K * pw)
        if li in lay._part_groups:      # parts no layer produced (host ops, constants): placed now
            for v in op.operands:
                lay.place(v, "activation")
        if plan is None or plan.output != "buffer":
            lay.place(op.result, "activation")
        if sched.cost.refetch["output_visits"] > 1:
            at, words = psum_offsets(sched.layer, sched.mapping, pw)
            lay.psum[li] = lay.add(f"{sched.layer.name}/psum", "psum", words)
            lay.psum_at[li] = at
    return lay


def _resident(v: Value) -> bool:
    """The value is a tensor the memory plan keeps in the buffer (:func:`~sqnxt_compiler.layers.resident_at`)."""
    return resident_at(v) is not None


def _name(op) -> str:
    return op.loc.node or f"{op.name}#{op.id}"
