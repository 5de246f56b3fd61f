"""The tile walk of a scheduled layer, stated once: the DRAM-level tile loops and what
each step of them loads, computes and writes back.

:func:`tile_loops` yields every :class:`Tile` of a layer in its mapping's execution order
(groups one after another, then the four tile loops x, y, c, k nested in the mapping's
order, ragged last tiles: :func:`tile_ranges`); :func:`window` is the input extent a
tile's outputs read along one axis.  :func:`tile_steps` walks the same tiles and says, at
each one, what the loop nest does at the DRAM level (a :class:`TileStep`): whether the
input tile is (re)fetched, whether the weight tile is, whether this output tile's partial
sums come back from DRAM, whether the tile finishes its output (all input channels of its
group accumulated) and whether the output tile leaves the buffer after it (a partial-sum
spill or the final write-back).  One resident tile per operand: a tile is fetched when the
loop nest moves to another tile of that operand (docs/tiled-execution.md).

The tiled executor (:func:`sqnxt_compiler.reference.tiled_layers._drive`) counts its
transfers from these steps, and those counts are held equal to the cost model's
(``CostReport.transfers``); the lowering to the accelerator's program
(:mod:`sqnxt_compiler.program.lower`) emits its LOADs, COMPUTEs and STOREs from them.
Whether a transfer really happens also depends on the operand's home (a resident input
is read in place, a resident output is not written back): the consumer applies the
layer's ``homes``; the steps say what the walk fetches.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator

from sqnxt_compiler.diagnostics import SqnxtError


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


@dataclass(frozen=True)
class TileStep:
    """One step of the walk: a tile and what the DRAM-level loop nest does around it.

    * ``load_input``: the input tile changes here (the first step included): fetched
      unless the input is resident; ``in_key`` = (g, x, y, c) (channel-wise: k for c).
    * ``load_weights``: the weight tile (g, c, k) changes here (layers with weights only).
    * ``new_visit``: the loop nest moves to this output tile (g, x, y, k) here: a visit of
      it starts (``visit``: the index of the visit among all visits, from 0).
    * ``reload_psum``: the visit is not the tile's first: its partial sums come back from
      DRAM before this step accumulates into them.
    * ``accumulate``: the step adds to partial sums (they came from an earlier c tile of
      this visit, or were reloaded); False on the tile's very first c tile.
    * ``finish``: the step completes the output tile (all input channels of its group).
    * ``leaves``: after this step the output tile leaves the buffer: ``"psum"`` (a
      partial-sum spill to DRAM: its visit ends unfinished), ``"final"`` (finished:
      written back unless the output is resident), or None (the next step continues it).
    """

    index: int
    tile: Tile
    in_key: tuple
    load_input: bool
    load_weights: bool
    out_key: tuple
    new_visit: bool
    visit: int
    reload_psum: bool
    accumulate: bool
    finish: bool
    leaves: str | None


def tile_steps(layer, mapping) -> Iterator[TileStep]:
    """The steps of the layer's tile walk in execution order (module doc; one per tile of
    :func:`tile_loops`)."""
    cw = layer.channelwise
    has_w = layer.has_weights
    done: dict[tuple, int] = {}      # input channels accumulated per unfinished output tile
    res_in = res_w = res_out = None
    visit = -1
    pending = None                   # the previous step, its ``leaves`` not yet known
    for i, t in enumerate(tile_loops(layer, mapping)):
        in_key = (t.g, t.x, t.y, t.k if cw else t.c)
        load_in = in_key != res_in
        res_in = in_key
        load_w = has_w and (t.g, t.c, t.k) != res_w
        if load_w:
            res_w = (t.g, t.c, t.k)
        out_key = (t.g, t.x, t.y, t.k)
        new_visit = out_key != res_out
        if new_visit:
            visit += 1
            if pending is not None:
                yield _left(pending, done)
                pending = None
        prev = done.pop(out_key, None)
        reload = new_visit and prev is not None
        total = (prev or 0) + (t.c[1] - t.c[0])
        finish = total == layer.Cg
        if not finish:
            done[out_key] = total
        if pending is not None:
            yield pending
        res_out = out_key
        pending = TileStep(i, t, in_key, load_in, load_w, out_key, new_visit, visit, reload,
                           prev is not None, finish, None)
    if pending is not None:
        yield _left(pending, done)
    if done:
        raise SqnxtError(f"{len(done)} output tiles never received all {layer.Cg} input channels")


def _left(step: TileStep, done: dict) -> TileStep:
    """``step`` with its output tile leaving after it: finished or spilled."""
    kind = "psum" if step.out_key in done else "final"
    return TileStep(step.index, step.tile, step.in_key, step.load_input, step.load_weights, step.out_key,
                    step.new_visit, step.visit, step.reload_psum, step.accumulate, step.finish, kind)


def pooled_geometry(L):
    """(the conv's own layer, tile -> the conv tile its pool windows cover) of a conv
    with a fused pool (``sqnxt_compiler.cost.features.pool_cover`` per axis)."""
    from .features import pool_cover

    Lc, p = L.without_pool(), L.epilogue.pool
    py = (p.R, p.stride_h, p.pad_top, L.conv_P)
    px = (p.S, p.stride_w, p.pad_left, L.conv_Q)
    return Lc, lambda t: Tile(t.g, pool_cover(*t.x, px), pool_cover(*t.y, py), t.c, t.k)


def largest_cover(L, m) -> int:
    """The largest (rows x columns) conv cover of any pooled tile of mapping ``m``: the
    cost model's ``C_ym * C_xm``."""
    from .features import pool_cover, tiles

    p = L.epilogue.pool
    cy = max(b - a for a, b in (pool_cover(*r, (p.R, p.stride_h, p.pad_top, L.conv_P))
                                for r in tiles(L.P, m.ty)))
    cx = max(b - a for a, b in (pool_cover(*r, (p.S, p.stride_w, p.pad_left, L.conv_Q))
                                for r in tiles(L.Q, m.tx)))
    return cy * cx
