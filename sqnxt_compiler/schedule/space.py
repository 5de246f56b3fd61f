"""The mapping space of one layer on one target, and its exact reduction.

The space (docs/scheduler.md): dataflow WS or OS (OS only for pool/gap/add; the target's
``dataflow.allowed`` may restrict conv/fc to one), every tile
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

Rows are restricted to the entries a dataflow reads (:func:`table_reads`, traced from the
cost model's formulas), so each dataflow has its own (smaller)
candidate lists.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields, replace
from itertools import product

import numpy as np

from sqnxt_compiler.cost.features import (c_feat, element_cycles, k_feat, nonzero_fraction, ws_k_block, x_feat,
                                          y_feat)
from sqnxt_compiler.cost.layer import Layer
from sqnxt_compiler.cost.mapping import DATAFLOWS, LOOPS, ORDERS
from sqnxt_compiler.cost.model import Consts, allowed_dataflows, consts, cost_terms, reuse_conditions
from sqnxt_compiler.targets import Target

class _Trace:
    """A value traced through :func:`~sqnxt_compiler.cost.model.cost_terms`: the per-loop
    table entries ``(loop, index)`` it was computed from.  Every operation ``cost_terms``
    may apply (``+ - *``, ``n > 1``, the literals' ``& |``, ``_cdiv``, ``_max``, ``_any``,
    ``_where``) gives the union of its operands' entries; a constant factor, even 0, drops
    nothing (the trace is of what the formulas can read, whatever the layer)."""

    __slots__ = ("src",)

    def __init__(self, src):
        self.src = frozenset(src)

    def _union(self, o):
        return _Trace(self.src | _reads(o))

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _union
    __and__ = __rand__ = __or__ = __ror__ = _union

    def __gt__(self, c):
        return self

    def ceil_div(self, d):
        return self

    def maximum(self, a, b):
        return _Trace(_reads(a) | _reads(b))

    def any_of(self, xs):
        return _Trace(frozenset().union(*map(_reads, xs)))

    def select(self, a, b):
        return _Trace(self.src | _reads(a) | _reads(b))


def _reads(x) -> frozenset:
    return x.src if isinstance(x, _Trace) else frozenset()


#: Every constant of the formulas 1 (the trace reads what the formulas can read).
_ONES = Consts(**{f.name: 1 for f in fields(Consts)})


def table_reads() -> dict:
    """The table entries each dataflow's formulas read, by loop: the indices into the
    feature tuples (n, B, Wn, I, Im, C, Cm, t) of x / y, (n, CB, Z, ZP, t) of c, (n, KB, t)
    of k that the objectives and the footprint (``total_cycles``, ``energy_total``,
    ``fp_total``) depend on, found by running ``cost_terms`` over :class:`_Trace` values
    (every constant 1, channel-wise or not, double-buffered or not, every loop order).
    Read from the one statement of the formulas, so a new term that reads a new entry
    enters the dominance rows by itself."""
    out = {}
    sizes = {"x": 8, "y": 8, "c": 5, "k": 3}
    for df in DATAFLOWS:
        reads: set = set()
        for cw in (False, True):
            for double in (False, True):
                k = replace(_ONES, cw=cw, double=double)
                tabs = [[_Trace({(d, i)}) for i in range(sizes[d])] for d in LOOPS]
                t = cost_terms(k, df == "OS", *tabs, lambda a, b: True)
                for name in ("total_cycles", "energy_total", "fp_total"):
                    reads |= _reads(t[name])
        out[df] = {d: tuple(sorted(i for dd, i in reads if dd == d)) for d in LOOPS}
    return out


#: The table entries each dataflow reads, by loop (:func:`table_reads`): the columns of
#: the dominance rows.
USED = table_reads()


def pareto_min(rows: list[tuple[int, tuple[int, ...]]]) -> list[int]:
    """Tile sizes whose row is not dominated, ascending.  ``rows``: (t, row), and t is
    itself an entry of the row (so only a smaller t can dominate).  Equal rows keep the
    smallest t; t2 is dropped if some t1 < t2 has row(t1) <= row(t2) entry by entry."""
    rows = sorted(rows)
    if not rows:
        return []
    arr = np.asarray([r for _, r in rows], dtype=np.int64).reshape(len(rows), -1)
    return [t for (t, _), k in zip(rows, pareto_keep(arr)) if k]


def pareto_keep(arr: np.ndarray, block: int = 256) -> np.ndarray:
    """Which rows of ``arr`` (int64, one row per tile size, t ascending, the t entry
    itself left out) no earlier row dominates (earlier row <= this row entry by entry).

    Dominance is transitive, so a row is dropped iff some *kept* earlier row dominates it,
    or some earlier row of its own block does (that row is kept or dominated by a kept
    one); rows are compared a block at a time, as arrays.  When the first column is
    non-increasing (the tile count n = ceil(N / t) of every per-loop table), an earlier
    row can only dominate a row with the same first entry, so each run of equal first
    entries is reduced on its own (one remaining column: a strict prefix minimum)."""
    keep = np.zeros(len(arr), dtype=bool)
    if len(arr) == 0:
        return keep
    if arr.shape[1] == 0:
        keep[0] = True
        return keep
    first = arr[:, 0]
    if bool((first[1:] <= first[:-1]).all()):
        cuts = np.flatnonzero(first[1:] != first[:-1]) + 1
        bounds = [0, *cuts.tolist(), len(arr)]
        runs = list(zip(bounds[:-1], bounds[1:]))
        sub = arr[:, 1:]
    else:
        runs, sub = [(0, len(arr))], arr
    for lo, hi in runs:
        if hi - lo == 1 or sub.shape[1] == 0:
            keep[lo] = True
            continue
        if sub.shape[1] == 1:
            col = sub[lo:hi, 0]
            prev = np.minimum.accumulate(col)
            keep[lo] = True
            keep[lo + 1:hi] = col[1:] < prev[:-1]
            continue
        for a in range(lo, hi, block):
            blk = sub[a:min(a + block, hi)]
            alive = np.ones(len(blk), dtype=bool)
            kept = sub[lo:a][keep[lo:a]]
            if kept.shape[0]:
                alive &= ~(kept[:, None, :] <= blk[None, :, :]).all(axis=2).any(axis=0)
            # earlier rows of the block: le[j, i] = row j <= row i, for j < i
            le = (blk[:, None, :] <= blk[None, :, :]).all(axis=2)
            le &= np.tri(len(blk), k=-1, dtype=bool).T
            alive &= ~le.any(axis=0)
            keep[a:a + len(blk)] = alive
    return keep


def _ragged(N: int, f) -> tuple:
    """For every tile size t = 1..N of a loop of bound N: (t, n, full, last), with
    n = ceil(N / t) tiles, n - 1 full tiles of size t and a last tile of size
    ``last = N - (n - 1) t`` (= t when t divides N): the tiles of
    :func:`sqnxt_compiler.cost.features.tiles`.  ``f`` maps an int64 array of tile
    lengths to the per-tile values; ``full`` = f(t), ``last`` = f(last)."""
    t = np.arange(1, N + 1, dtype=np.int64)
    n = -(-N // t)
    r = N - (n - 1) * t
    return t, n, f(t), f(r)


def chan_tables(layer: Layer, target: Target) -> np.ndarray:
    """The c loop's tables (n, CB, Z, ZP, t) of :func:`sqnxt_compiler.cost.features.c_feat`
    for every tile size t = 1..Cg, as rows of an int64 array, vectorized.

    Each of CB, Z, ZP is a sum over the tiles of a function of the tile's length, so it
    is (n - 1) f(t) + f(last) with f the per-tile term of c_feat:
    ceil(c_i / pe_rows); z_i = ceil(c_i R S nz) (element_cycles without weights);
    pass(z_i) = max(z_i, D) with double-buffered accumulators, else z_i + D.
    tests/test_oracle.py checks every row against c_feat."""
    N, P = layer.Cg, target.pe_rows
    if layer.is_mac:
        nz = nonzero_fraction(layer, target)
        num, den = layer.R * layer.S * nz.numerator, nz.denominator

        def z(l):
            return -(-(l * num) // den)
    else:
        def z(l):
            return np.full_like(l, element_cycles(layer, target))
    D = target.os_drain_cycles

    def zp(l):
        zz = z(l)
        return np.maximum(zz, D) if target.os_double_buffered_accumulators else zz + D

    t, n, cb_f, cb_l = _ragged(N, lambda l: -(-l // P))
    _, _, z_f, z_l = _ragged(N, z)
    _, _, p_f, p_l = _ragged(N, zp)
    return np.stack([n, (n - 1) * cb_f + cb_l, (n - 1) * z_f + z_l, (n - 1) * p_f + p_l, t], axis=1)


def out_tables(layer: Layer, target: Target) -> np.ndarray:
    """The k loop's tables (n, KB, t) of :func:`sqnxt_compiler.cost.features.k_feat` for
    every tile size t = 1..Kg, vectorized: KB = (n - 1) ceil(t / b) + ceil(last / b),
    b = ws_k_block.  tests/test_oracle.py checks every row against k_feat."""
    b = ws_k_block(layer, target)
    t, n, f, l = _ragged(layer.Kg, lambda x: -(-x // b))
    return np.stack([n, (n - 1) * f + l, t], axis=1)


def order_signature(order: tuple[str, ...], bounds: dict, channelwise: bool, has_weights: bool) -> tuple:
    """What the cost model can see of a tile-loop order, for every way the loops can be
    tiled (``big`` flags).

    The order enters the cost model only through the refetch factors ``fI = n_k if in_k``
    (not for channel-wise layers), ``fW = (n_x if w_x) * (n_y if w_y)`` (weights only) and
    ``v = n_c if out_c`` (:func:`sqnxt_compiler.cost.model.reuse_conditions`).  A factor
    whose loop has one tile is 1 whatever its condition, and a loop of bound 1 always has
    one tile.  So the signature lists, for every assignment of ``big`` to the loops of
    bound > 1 (the others are never big), each condition whose factor can differ from 1;
    two orders with equal signatures give every mapping equal cycles and energy."""
    free = [l for l in LOOPS if bounds[l] > 1]
    sig = []
    for bits in product((False, True), repeat=len(free)):
        big = {l: False for l in LOOPS}
        big.update(zip(free, bits))
        c = reuse_conditions(order, big)
        sig.append((c["in_k"] if big["k"] and not channelwise else None,
                    c["w_x"] if big["x"] and has_weights else None,
                    c["w_y"] if big["y"] and has_weights else None,
                    c["out_c"] if big["c"] else None))
    return tuple(sig)


def order_representatives(layer: Layer) -> tuple[int, ...]:
    """Indices into ORDERS of the orders worth searching, ascending: the first order of
    each class of orders with equal :func:`order_signature`.

    **Exact**: orders of one class give every tile choice the same cycles, energy and
    footprint, and the tie-break prefers the smaller order index, so the tie-broken best
    mapping of the whole space always uses a representative.  An ordinary convolution
    (all four loops of bound > 1) has 18 classes (e.g. k c y x and k c x y: swapping the
    two innermost loops changes no condition there); a depthwise one 4; a fully
    connected layer (x and y of bound 1) 2, k outside c (index 0, k c y x) and c outside
    k (index 6, c k y x); pool, gap and add layers 1."""
    bounds = {"x": layer.Q, "y": layer.P, "c": layer.Cg, "k": layer.Kg}
    seen: dict = {}
    for i, o in enumerate(ORDERS):
        seen.setdefault(order_signature(o, bounds, layer.channelwise, layer.has_weights), i)
    return tuple(sorted(seen.values()))


@dataclass
class Space:
    """Tables for every tile size of every loop, and the candidate lists per dataflow."""

    layer: Layer
    target: Target
    bounds: dict = field(init=False)
    feats: dict = field(init=False)       # loop -> {t: full feature tuple}, t = 1 and candidates
    cands: dict = field(init=False)       # dataflow -> loop -> [t ascending]
    orders: tuple = field(init=False)     # indices into ORDERS of the order representatives
    grids: dict = field(init=False, default_factory=dict, repr=False, compare=False)  # oracle's tables

    def __post_init__(self) -> None:
        L, T = self.layer, self.target
        self.bounds = {"x": L.Q, "y": L.P, "c": L.Cg, "k": L.Kg}
        fn = {"x": x_feat, "y": y_feat}
        arrays = {d: np.asarray([fn[d](L, T, t).as_tuple() for t in range(1, self.bounds[d] + 1)],
                                dtype=np.int64) for d in ("x", "y")}
        arrays["c"], arrays["k"] = chan_tables(L, T), out_tables(L, T)
        self.orders = order_representatives(L)
        self.cands = {}
        for df in self.dataflows:
            self.cands[df] = {}
            for d in LOOPS:
                # rows are t = 1..bound in order and t is the last used entry: leave it out
                cols = USED[df][d]
                assert cols[-1] == len(arrays[d][0]) - 1
                if d in L.spanned:        # one tile of the whole loop (Layer.spanned)
                    self.cands[df][d] = [self.bounds[d]]
                    continue
                keep = pareto_keep(arrays[d][:, cols[:-1]])
                self.cands[df][d] = (np.flatnonzero(keep) + 1).tolist()
        # full rows (python ints) of the candidates, and of tile size 1 (min_footprint_words)
        keep = {d: {1}.union(*(self.cands[df][d] for df in self.dataflows)) for d in LOOPS}
        self.feats = {d: {t: tuple(arrays[d][t - 1].tolist()) for t in sorted(keep[d])} for d in LOOPS}

    @property
    def dataflows(self) -> tuple[str, ...]:
        """The dataflows searched: :func:`~sqnxt_compiler.cost.model.allowed_dataflows`."""
        return allowed_dataflows(self.layer, self.target)

    def size_full(self) -> int:
        """Mappings in the whole space: dataflows x 24 orders x product of loop bounds (1
        for a loop the layer spans: :attr:`Layer.spanned`)."""
        n = len(self.dataflows) * 24
        for d in LOOPS:
            n *= 1 if d in self.layer.spanned else self.bounds[d]
        return n

    def size_candidates(self) -> int:
        """Mappings over the candidate tile sizes and the order representatives (both
        dataflows)."""
        total = 0
        for df in self.dataflows:
            n = len(self.orders)
            for d in LOOPS:
                n *= len(self.cands[df][d])
            total += n
        return total


_SPACES: dict = {}


_MIN_FP: dict = {}
#: the scalar feature row of each loop for one tile size (cost.features)
_FEATS = {"x": x_feat, "y": y_feat, "c": c_feat, "k": k_feat}
_SPACES_LOCK = threading.Lock()


def clear_spaces() -> None:
    """Forget the cached spaces (and their smallest footprints)."""
    _SPACES.clear()
    _MIN_FP.clear()


def get_space(layer: Layer, target: Target) -> Space:
    """The Space of a layer shape on a target, cached per (shape, measured sparsity,
    target): the operand homes (docs/cost-model.md, "Operand homes") do not change the
    candidates (every cost term stays non-decreasing in the per-loop tables), so layers
    that differ only in homes share one space.  Its ``layer`` is the first such layer:
    cost constants must come from the layer at hand (``consts(layer, target)``)."""
    key = (layer.shape_key(), layer.weight_zero_fraction, target)
    sp = _SPACES.get(key)
    if sp is None:
        with _SPACES_LOCK:       # layers are solved in threads: build each space once
            sp = _SPACES.get(key)
            if sp is None:
                if len(_SPACES) > 512:
                    _SPACES.clear()
                sp = _SPACES[key] = Space(layer, target)
    return sp


def min_footprint_words(layer: Layer, target: Target) -> int:
    """Smallest buffer footprint of any mapping (words): all tiles 1, a loop the layer
    spans its bound (the footprint is non-decreasing in every tile size and independent
    of dataflow and order); cached per (layer key, target)."""
    key = (layer.key(), target)
    hit = _MIN_FP.get(key)
    if hit is not None:
        return hit
    k = consts(layer, target)
    bounds = {"x": layer.Q, "y": layer.P, "c": layer.Cg, "k": layer.Kg}
    # one row per loop (the Space's tables hold the same rows: tests/test_oracle.py), not
    # the whole space: a warm compile reads its schedules and builds no space at all
    row = {d: _FEATS[d](layer, target, bounds[d] if d in layer.spanned else 1).as_tuple() for d in LOOPS}
    t = cost_terms(k, False, row["x"], row["y"], row["c"], row["k"], ("k", "c", "y", "x"))
    if len(_MIN_FP) > 4096:
        _MIN_FP.clear()
    _MIN_FP[key] = int(t["fp_total"])
    return _MIN_FP[key]

