"""Per-loop tables: everything the cost model needs from one tile size of one loop.

The cost of a mapping is a function of a few sums over the tiles of each loop (the tiles
of a loop of bound N with tile size t are ``t, t, ..., N - (n-1) t``, n = ceil(N / t)).
These sums are computed here, exactly, for one tile size; the cost model combines them
(:mod:`sqnxt_compiler.cost.model`), the oracle vectorizes them over all tile sizes and the
CP-SAT solver reads them as tables indexed by the chosen tile size.  Formulas in
docs/cost-model.md, section "Per-loop tables".
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from sqnxt_compiler.targets import Target

from .layer import Layer


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for integers, b > 0."""
    return -(-a // b)


def tiles(n_total: int, t: int) -> list[tuple[int, int]]:
    """The tiles of a loop of bound ``n_total`` with tile size ``t``: half-open ranges
    [i*t, min((i+1)*t, n_total)) for i < ceil(n_total / t); the last one is ragged."""
    return [(a, min(a + t, n_total)) for a in range(0, n_total, t)]


def touched(a: int, b: int, stride: int, kernel: int, pad: int, n_in: int, dilation: int = 1) -> int:
    """Number of distinct input indices read by outputs a..b-1 (one spatial axis), clipped
    to the unpadded input [0, n_in): output o reads [o*stride - pad, o*stride - pad + kernel - 1].

    kernel >= stride: the windows overlap or touch, the span is one interval
    [a*stride - pad, (b-1)*stride - pad + kernel - 1].  kernel < stride: the windows are
    disjoint and each is clipped on its own (a strided DMA skips the gaps).

    ``dilation`` d > 1: output o reads the taps o*stride - pad + j*d, j = 0..kernel-1, and
    the count is of the distinct taps of all the outputs (:func:`touched_dilated`)."""
    if b <= a:
        return 0
    if dilation > 1 and kernel > 1:
        return touched_dilated(a, b, stride, kernel, pad, n_in, dilation)
    if kernel >= stride:
        lo = max(a * stride - pad, 0)
        hi = min((b - 1) * stride - pad + kernel - 1, n_in - 1)
        return max(0, hi - lo + 1)
    total = 0
    for o in range(a, b):
        lo = max(o * stride - pad, 0)
        hi = min(o * stride - pad + kernel - 1, n_in - 1)
        total += max(0, hi - lo + 1)
    return total


def touched_dilated(a: int, b: int, stride: int, kernel: int, pad: int, n_in: int, d: int) -> int:
    """Distinct input indices in [0, n_in) among o*stride - pad + j*d for o in [a, b), j in
    [0, kernel).  stride 1: tap j covers the interval [a - pad + j*d, b - 1 - pad + j*d];
    the intervals are merged in order (they overlap when b - a >= d, else leave gaps a
    strided DMA skips).  Otherwise the taps are counted one by one."""
    if stride == 1:
        total, end = 0, None          # end: one past the last index counted
        for j in range(kernel):
            lo = max(a - pad + j * d, 0)
            hi = min(b - pad + j * d, n_in)
            if end is not None:
                lo = max(lo, end)
            if hi > lo:
                total += hi - lo
                end = hi
        return total
    return len({i for o in range(a, b) for j in range(kernel)
                if 0 <= (i := o * stride - pad + j * d) < n_in})


@dataclass(frozen=True)
class SpatialFeat:
    """One tile size t of a spatial loop (x over Q with the array's columns, or y over P
    with its rows).  Each field is monotone 'more is worse' for the cost.

    A tile's *computed range* is the outputs it computes: the tile itself, or with a fused
    pool the conv outputs its pool windows cover (:func:`pool_cover`)."""

    n: int     # tiles = ceil(N / t)
    B: int     # OS array blocks = sum over tiles of ceil(computed_i / array_dim)
    Wn: int    # OS input-window words along this axis = sum over blocks of touched(block)
    I: int     # input extent loaded from DRAM = sum over tiles of touched(computed range)
    Im: int    # largest tile's input extent = max over tiles of touched(computed range)
    C: int     # outputs computed = sum over tiles of len(computed range) (N without a pool)
    Cm: int    # largest computed range (accumulator footprint; t without a pool)
    t: int     # tile size (output footprint, epilogue)

    def as_tuple(self) -> tuple[int, ...]:
        return (self.n, self.B, self.Wn, self.I, self.Im, self.C, self.Cm, self.t)


@dataclass(frozen=True)
class ChanFeat:
    """One tile size t of the input-channel loop c (per group)."""

    n: int     # tiles = ceil(Cg / t)
    CB: int    # WS row blocks = sum over tiles of ceil(c_i / pe_rows)
    Z: int     # OS streamed nonzero weights per output = sum over tiles of z_i
    ZP: int    # OS pass cycles = sum over tiles of pass(z_i)
    t: int

    def as_tuple(self) -> tuple[int, ...]:
        return (self.n, self.CB, self.Z, self.ZP, self.t)


@dataclass(frozen=True)
class OutFeat:
    """One tile size t of the output-channel loop k (per group)."""

    n: int     # tiles = ceil(Kg / t)
    KB: int    # WS column blocks = sum over tiles of ceil(k_i / ws_k_block)
    t: int

    def as_tuple(self) -> tuple[int, ...]:
        return (self.n, self.KB, self.t)


def pool_cover(a: int, b: int, pool: tuple[int, int, int, int] | None) -> tuple[int, int]:
    """The conv outputs [lo, hi) that pooled outputs a..b-1 read along one axis: pooled
    output o reads conv outputs [o*ps - pp, o*ps - pp + pk) clipped to [0, n_conv);
    ``pool`` = (pk, ps, pp, n_conv), or None (no pool: [a, b))."""
    if pool is None:
        return a, b
    pk, ps, pp, n = pool
    return max(a * ps - pp, 0), min((b - 1) * ps - pp + pk, n)


def spatial_feat(N: int, t: int, array_dim: int, stride: int, kernel: int, pad: int,
                 n_in: int, pool: tuple[int, int, int, int] | None = None, dilation: int = 1) -> SpatialFeat:
    """Tables of a spatial loop of bound N for tile size t (see SpatialFeat); ``pool`` =
    (window, stride, begin pad, conv outputs) of a fused pool along this axis."""
    ts = tiles(N, t)
    B = Wn = I = Im = C = Cm = 0
    for a, b in ts:
        ca, cb = pool_cover(a, b, pool)
        B += ceil_div(cb - ca, array_dim)
        for ba, bb in tiles(cb - ca, array_dim):
            Wn += touched(ca + ba, ca + bb, stride, kernel, pad, n_in, dilation)
        e = touched(ca, cb, stride, kernel, pad, n_in, dilation)
        I += e
        Im = max(Im, e)
        C += cb - ca
        Cm = max(Cm, cb - ca)
    return SpatialFeat(len(ts), B, Wn, I, Im, C, Cm, t)


def x_feat(layer: Layer, target: Target, t: int) -> SpatialFeat:
    """x loop: output columns Q on the array's columns (OS), kernel width S."""
    p = layer.epilogue.pool
    pool = None if p is None else (p.S, p.stride_w, p.pad_left, layer.conv_Q)
    return spatial_feat(layer.Q, t, target.pe_cols, layer.stride_w, layer.S, layer.pad_left, layer.W, pool,
                        layer.dilation_w)


def y_feat(layer: Layer, target: Target, t: int) -> SpatialFeat:
    """y loop: output rows P on the array's rows (OS), kernel height R."""
    p = layer.epilogue.pool
    pool = None if p is None else (p.R, p.stride_h, p.pad_top, layer.conv_P)
    return spatial_feat(layer.P, t, target.pe_rows, layer.stride_h, layer.R, layer.pad_top, layer.H, pool,
                        layer.dilation_h)


def nonzero_fraction(layer: Layer, target: Target) -> Fraction:
    """Fraction of weights that are nonzero: 1 - measured zeros, or 1 - the target's
    assumed zero fraction when the layer carries no measurement."""
    z = layer.weight_zero_fraction if layer.weight_zero_fraction is not None else target.os_weight_zero_fraction
    return 1 - Fraction(z)


def os_pass_cycles(z: int, target: Target) -> int:
    """Cycles of one OS pass that streams z weights: max(z, drain) when the accumulators
    are double-buffered in the register file (the drain overlaps the next pass), else
    z + drain."""
    d = target.os_drain_cycles
    return max(z, d) if target.os_double_buffered_accumulators else z + d


def os_ops_per_pass(layer: Layer, target: Target, c_i: int) -> int:
    """Weights streamed (= cycles of work) per OS pass over c_i input channels:
    ceil(c_i * R * S * nonzero) for MAC layers (zero weights skipped); R * S * n_inputs
    element operations for pool/gap/add (no weights, nothing skipped); for eltwise/move
    ``element.ops + element.funcs * nonlinear_cycles`` (:func:`element_cycles`)."""
    if not layer.is_mac:
        return element_cycles(layer, target)
    nz = nonzero_fraction(layer, target)
    return ceil_div(c_i * layer.R * layer.S * nz.numerator, nz.denominator)


def element_cycles(layer: Layer, target: Target) -> int:
    """PE cycles per output element of a non-MAC layer (one OS pass): R * S * n_inputs for
    pool/gap/add; element.ops + element.funcs * array.nonlinear_cycles for eltwise (a nonlinear
    function is a piecewise-linear approximation of that many cycles); 0 for move (a copy:
    the pass is its drain)."""
    if layer.kind in ("eltwise", "move"):
        return layer.element.ops + layer.element.funcs * target.nonlinear_cycles
    return layer.R * layer.S * layer.n_inputs


def c_feat(layer: Layer, target: Target, t: int) -> ChanFeat:
    """Tables of the input-channel loop (bound Cg) for tile size t (see ChanFeat)."""
    ts = tiles(layer.Cg, t)
    CB = Z = ZP = 0
    if layer.is_mac:
        nz = nonzero_fraction(layer, target)
        num, den = layer.R * layer.S * nz.numerator, nz.denominator
    for a, b in ts:
        CB += ceil_div(b - a, target.pe_rows)
        # same value as os_ops_per_pass(layer, target, b - a), without re-deriving nz
        z = ceil_div((b - a) * num, den) if layer.is_mac else element_cycles(layer, target)
        Z += z
        ZP += os_pass_cycles(z, target)
    return ChanFeat(len(ts), CB, Z, ZP, t)


def ws_k_block(layer: Layer, target: Target) -> int:
    """Channels per WS pass along k: pe_cols, or min(pe_rows, pe_cols) for a depthwise
    conv (its weight block is diagonal: channel i on row i and column i)."""
    return min(target.pe_rows, target.pe_cols) if layer.channelwise else target.pe_cols


def k_feat(layer: Layer, target: Target, t: int) -> OutFeat:
    """Tables of the output-channel loop (bound Kg) for tile size t (see OutFeat)."""
    ts = tiles(layer.Kg, t)
    blk = ws_k_block(layer, target)
    return OutFeat(len(ts), sum(ceil_div(b - a, blk) for a, b in ts), t)
