"""The tiles of a scheduled layer: the DRAM-level tile loops, and each tile's input window.

:func:`tile_loops` yields every :class:`Tile` of a layer in its mapping's execution order
(groups one after another, then the four tile loops x, y, c, k nested in the mapping's
order, ragged last tiles: :func:`tile_ranges`); :func:`window` is the input extent a tile's
outputs read along one axis (halo and the padding on each side), :func:`fetch` the DMA of
one input tile (zero or -inf padding only where the tile runs over the border) and
:func:`windows` the kernel windows of a fetched tile.  With a fused pool the tiles are the
pooled output's and each computes the conv outputs its pool windows cover
(:func:`pooled_geometry`, :func:`_largest_cover`).  docs/tiled-execution.md.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..diagnostics import SqnxtError


# --------------------------------------------------------------------------- tile loops
@dataclass(frozen=True)
class Tile:
    g: int                    # group (0 for channel-wise layers)
    x: tuple[int, int]        # output columns [x0, x1)
    y: tuple[int, int]        # output rows [y0, y1)
    c: tuple[int, int]        # input channels of the group [c0, c1)
    k: tuple[int, int]        # output channels of the group [k0, k1)


def tile_ranges(bound: int, size: int) -> list[tuple[int, int]]:
    """The tiles of one loop: [0, t), [t, 2t), ..., the last one ragged."""
    return [(a, min(a + size, bound)) for a in range(0, bound, size)]


def tile_loops(layer, mapping) -> Iterator[Tile]:
    """Every tile, in execution order: groups one after another, then the four tile loops
    nested in ``mapping.order`` (outermost first; the innermost loop varies fastest)."""
    ranges = {"x": tile_ranges(layer.Q, mapping.tx), "y": tile_ranges(layer.P, mapping.ty),
              "c": tile_ranges(layer.Cg, mapping.tc), "k": tile_ranges(layer.Kg, mapping.tk)}
    loops = [ranges[name] for name in mapping.order]
    for g in range(layer.eff_groups):
        for idx in itertools.product(*loops):     # nested loops, mapping.order[0] outermost
            t = dict(zip(mapping.order, idx))
            yield Tile(g, t["x"], t["y"], t["c"], t["k"])


def window(o0: int, o1: int, stride: int, pad_before: int, kernel: int, size: int):
    """The input extent that outputs [o0, o1) read along one axis, split into the part
    inside the input and the padding on each side: (lo, hi, pad_lo, pad_hi), with input
    rows [lo, hi) and ``pad_lo + (hi - lo) + pad_hi = (o1 - o0 - 1) * stride + kernel``."""
    a = o0 * stride - pad_before
    b = (o1 - 1) * stride - pad_before + kernel
    lo, hi = max(a, 0), min(b, size)
    if hi <= lo:                  # the tile reads padding only
        return 0, 0, b - a, 0
    return lo, hi, lo - a, b - hi


def fetch(x: np.ndarray, chans: slice, t: Tile, L, fill=0.0) -> np.ndarray:
    """DMA of one input tile: channels ``chans`` of the (C, H, W) tensor ``x``, the rows
    and columns the tile's outputs read (halo included), padded with ``fill`` only where
    the tile runs over the border.  A copy (the tile in the global buffer)."""
    r0, r1, pt, pb = window(t.y[0], t.y[1], L.stride_h, L.pad_top, L.R_eff, x.shape[1])
    c0, c1, pl, pr = window(t.x[0], t.x[1], L.stride_w, L.pad_left, L.S_eff, x.shape[2])
    blk = x[chans, r0:r1, c0:c1]
    if pt or pb or pl or pr:
        return np.pad(blk, ((0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    return blk.copy()


def windows(xt: np.ndarray, t: Tile, L) -> np.ndarray:
    """(c, rows, cols, R, S) strided view of the tile's kernel windows (taps dilation
    apart); checks that the input tile yields exactly the tile's outputs."""
    c, h, w = xt.shape
    want = (t.y[1] - t.y[0], t.x[1] - t.x[0])
    kh, kw = L.R_eff, L.S_eff
    got = ((h - kh) // L.stride_h + 1 if h >= kh else 0,
           (w - kw) // L.stride_w + 1 if w >= kw else 0)
    if got != want:
        raise SqnxtError(f"input tile of {h}x{w} gives {got[0]}x{got[1]} outputs, the tile has "
                         f"{want[0]}x{want[1]}")
    sc, sy, sx = xt.strides
    return as_strided(xt, (c, want[0], want[1], L.R, L.S),
                      (sc, sy * L.stride_h, sx * L.stride_w, sy * L.dilation_h, sx * L.dilation_w),
                      writeable=False)


# --------------------------------------------------------------------------- fused pool covers
def pooled_geometry(L):
    """(the conv's own layer, tile -> the conv tile its pool windows cover) of a conv
    with a fused pool (``sqnxt_compiler.cost.features.pool_cover`` per axis)."""
    from ..cost.features import pool_cover

    Lc, p = L.without_pool(), L.epilogue.pool
    py = (p.R, p.stride_h, p.pad_top, L.conv_P)
    px = (p.S, p.stride_w, p.pad_left, L.conv_Q)
    return Lc, lambda t: Tile(t.g, pool_cover(*t.x, px), pool_cover(*t.y, py), t.c, t.k)


def _largest_cover(L, m) -> int:
    """The largest (rows x columns) conv cover of any pooled tile of mapping ``m``: the
    cost model's ``C_ym * C_xm``."""
    from ..cost.features import pool_cover, tiles

    p = L.epilogue.pool
    cy = max(b - a for a, b in (pool_cover(*r, (p.R, p.stride_h, p.pad_top, L.conv_P))
                                for r in tiles(L.P, m.ty)))
    cx = max(b - a for a, b in (pool_cover(*r, (p.S, p.stride_w, p.pad_left, L.conv_Q))
                                for r in tiles(L.Q, m.tx)))
    return cy * cx
