"""The tiles of a scheduled layer: the DRAM-level tile loops, and each tile's input window.

:func:`tile_loops` yields every :class:`Tile` of a layer in its mapping's execution order
(groups one after another, then the four tile loops x, y, c, k nested in the mapping's
order, ragged last tiles: :func:`tile_ranges`); :func:`window` is the input extent a tile's
outputs read along one axis (halo and the padding on each side), :func:`fetch` the DMA of
one input tile (zero or -inf padding only where the tile runs over the border) and
:func:`windows` the kernel windows of a fetched tile.  With a fused pool the tiles are the
pooled output's and each computes the conv outputs its pool windows cover
(:func:`pooled_geometry`, :func:`largest_cover`).  The tile loops and the walk's steps
are stated once in :mod:`sqnxt_compiler.cost.tiling` (re-exported here).
docs/tiled-execution.md.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

# the tile loops, the walk and a fused pool's covers are stated once in
# sqnxt_compiler.cost.tiling (shared with the lowering to programs)
from ..cost.tiling import Tile, window
from ..diagnostics import SqnxtError


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
