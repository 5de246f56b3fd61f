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
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..cost.tiling import pooled_geometry, tile_steps
from ..diagnostics import SqnxtError
from ..ir.core import Value, view_origin
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
    end: int = 0

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

    def place(self, v: Value, kind: str) -> Region:
        key = value_key(v)
        if key not in self.tensors:
            o = view_origin(v)
            name = (o.owner.loc.node if o.owner is not None and o.owner.loc.node else None) or f"%{o.name}"
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


def dram_layout(graph, layers: list, target) -> DramLayout:
    """The layout (module doc) of ``layers``: (index, op, schedule, plan attribute or None,
    data operands, residual operand or None, weights value or None, bias value or None)
    per scheduled layer, in program order."""
    lay = DramLayout()
    pw = target.psum_words
    for op in graph.inputs:
        lay.place(op.result, "input")
    for li, op, sched, plan, data, residual, w, b in layers:
        for v in data + ([residual] if residual is not None else []):
            if value_key(v) not in lay.tensors and not _resident(v):
                lay.place(v, "activation")
        if w is not None:
            lay.weights[li] = lay.add(f"{sched.layer.name}/weights", "weights", view_origin(w).type.numel)
        if b is not None:
            lay.bias[li] = lay.add(f"{sched.layer.name}/bias", "bias", sched.layer.K * pw)
        if plan is None or plan.output != "buffer":
            lay.place(op.result, "activation")
        if sched.cost.refetch["output_visits"] > 1:
            at, words = psum_offsets(sched.layer, sched.mapping, pw)
            lay.psum[li] = lay.add(f"{sched.layer.name}/psum", "psum", words)
            lay.psum_at[li] = at
    return lay


def _resident(v: Value) -> bool:
    """The value is a tensor the memory plan keeps in the buffer (its producer's plan)."""
    o = view_origin(v)
    p = o.owner.attrs.get("plan") if o.owner is not None else None
    return p is not None and p.output == "buffer"
