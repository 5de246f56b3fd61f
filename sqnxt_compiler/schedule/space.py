"""The mapping space of one layer on one target, and its exact reduction.

The space (docs/scheduler.md): dataflow WS or OS (OS only for pool/gap/add), every tile
size 1..bound of each loop x, y, c, k (per group), every order of the four tile loops.

**Exact reduction (dominance).**  The cost model sees a tile size only through its row of
per-loop tables (:mod:`sqnxt_compiler.cost.features`), and every cost figure, the
buffer footprint and every objective is non-decreasing in every entry of those rows (the
tile size itself is one of them).  So if tile size t1 has a row <= the row of t2 entry by
entry, replacing t2 by t1 never costs more, never needs more buffer, and t1 <= t2.  The
candidates of a loop are therefore the tile sizes whose row is not dominated (for equal
rows, the smallest size).  Consequences, proved in docs/scheduler.md and tested against
brute force: the best objective over the candidates equals the best over the whole space,
and so does the tie-broken answer (the tie-break prefers smaller tiles).

Rows are restricted to the entries a dataflow uses, so each dataflow has its own (smaller)
candidate lists.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqnxt_compiler.cost.features import c_feat, k_feat, x_feat, y_feat
from sqnxt_compiler.cost.layer import Layer
from sqnxt_compiler.cost.mapping import LOOPS, Mapping
from sqnxt_compiler.cost.model import consts, cost_terms
from sqnxt_compiler.targets import Target

#: The table entries each dataflow reads, by loop (indices into the feature tuples
#: (n, B, Wn, I, Im, t) for x/y, (n, CB, Z, ZP, t) for c, (n, KB, t) for k).
USED = {
    "WS": {"x": (0, 3, 4, 5), "y": (0, 3, 4, 5), "c": (0, 1, 4), "k": (0, 1, 2)},
    "OS": {"x": (0, 1, 2, 3, 4, 5), "y": (0, 1, 2, 3, 4, 5), "c": (0, 2, 3, 4), "k": (0, 2)},
}


def pareto_min(rows: list[tuple[int, tuple[int, ...]]]) -> list[int]:
    """Tile sizes whose row is not dominated, ascending.  ``rows``: (t, row) with t
    ascending, and t is itself an entry of the row (so only a smaller t can dominate).
    Equal rows keep the smallest t; t2 is dropped if some kept t1 < t2 has
    row(t1) <= row(t2) entry by entry."""
    import numpy as np

    rows = sorted(rows)
    if not rows:
        return []
    arr = np.asarray([r for _, r in rows], dtype=np.int64)
    kept_idx: list[int] = []
    kept = np.empty((0, arr.shape[1]), dtype=np.int64)
    for i in range(len(rows)):
        if kept.shape[0] and bool((kept <= arr[i]).all(axis=1).any()):
            continue
        kept_idx.append(i)
        kept = arr[kept_idx]
    return [rows[i][0] for i in kept_idx]


@dataclass
class Space:
    """Tables for every tile size of every loop, and the candidate lists per dataflow."""

    layer: Layer
    target: Target
    bounds: dict = field(init=False)
    feats: dict = field(init=False)       # loop -> {t: full feature tuple}
    cands: dict = field(init=False)       # dataflow -> loop -> [t ascending]

    def __post_init__(self) -> None:
        L, T = self.layer, self.target
        self.bounds = {"x": L.Q, "y": L.P, "c": L.Cg, "k": L.Kg}
        fn = {"x": x_feat, "y": y_feat, "c": c_feat, "k": k_feat}
        self.feats = {d: {t: fn[d](L, T, t).as_tuple() for t in range(1, self.bounds[d] + 1)}
                      for d in LOOPS}
        self.cands = {}
        for df in self.dataflows:
            self.cands[df] = {}
            for d in LOOPS:
                rows = [(t, tuple(f[i] for i in USED[df][d])) for t, f in self.feats[d].items()]
                self.cands[df][d] = pareto_min(rows)

    @property
    def dataflows(self) -> tuple[str, ...]:
        return ("WS", "OS") if self.layer.is_mac else ("OS",)

    def size_full(self) -> int:
        """Mappings in the whole space: dataflows x 24 orders x product of loop bounds."""
        n = len(self.dataflows) * 24
        for d in LOOPS:
            n *= self.bounds[d]
        return n

    def size_candidates(self) -> int:
        """Mappings over the candidate tile sizes (both dataflows, 24 orders each)."""
        total = 0
        for df in self.dataflows:
            n = 24
            for d in LOOPS:
                n *= len(self.cands[df][d])
            total += n
        return total


_SPACES: dict = {}


def get_space(layer: Layer, target: Target) -> Space:
    """The Space of a layer shape on a target, cached per (layer.key(), target)."""
    key = (layer.key(), target)
    sp = _SPACES.get(key)
    if sp is None:
        if len(_SPACES) > 512:
            _SPACES.clear()
        sp = _SPACES[key] = Space(layer, target)
    return sp


def min_footprint_words(layer: Layer, target: Target) -> int:
    """Smallest buffer footprint of any mapping (words): all tiles 1 (the footprint is
    non-decreasing in every tile size and independent of dataflow and order)."""
    k = consts(layer, target)
    sp = get_space(layer, target)
    t = cost_terms(k, False, sp.feats["x"][1], sp.feats["y"][1], sp.feats["c"][1], sp.feats["k"][1],
                   ("k", "c", "y", "x"))
    return int(t["fp_total"])


def unit_mapping(layer: Layer) -> Mapping:
    """All tiles 1, OS (valid for every layer kind)."""
    return Mapping("OS", 1, 1, 1, 1, ("k", "c", "y", "x"))
