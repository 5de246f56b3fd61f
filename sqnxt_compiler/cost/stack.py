"""Depth-first (layer-fused) stacks: a chain of layers run band by band over the last
member's output rows, so that only a band of each intermediate tensor lives in the buffer
(docs/cost-model.md, "Fused stacks").

A **stack** is a chain ``L_1 .. L_n`` of conv layers (each reading the previous one's
output as its data input; a fused pool or a fused residual add allowed, the residual read
from DRAM) cut into **bands** of ``h`` output rows of ``L_n`` (the last band ragged).  Each
band walks the members in order; member ``k`` computes the output rows that band needs
of it:

* rows needed, back to front: ``need_n = [r0, r1)``; ``need_{k-1}`` = the input rows
  ``L_k`` reads for its rows ``need_k`` (:func:`input_rows`: the conv window, through a
  fused pool's cover), clipped to the tensor;
* **recompute** (overlap mode ``"recompute"``): member ``k`` computes all of ``need_k`` in
  every band, so the rows two neighbouring bands share (the halo) are computed twice;
* **keep** (``"keep"``): member ``k`` computes only the rows no earlier band computed,
  ``[max(need_k.lo, done_k), need_k.hi)``, and the halo rows stay in its band buffer from
  the band before (a rolling window of rows: full-width bands need no line buffer; the
  halo rows move to the window's top, :func:`halo_words`).

Only member 1 reads a tensor from DRAM (the stack's input, the rows ``input_rows(L_1,
need_1)`` with their halo, re-read where bands overlap), only ``L_n`` writes one (its band,
once); every intermediate tensor lives as a window of ``max_b |need_k(b)|`` rows
(:func:`window_rows`) in the buffer.  Each (band, member) is an ordinary layer over a
sub-image, :func:`band_layer`: the member's rows cut out of it, its pads kept only at the
tensor's borders, its input resident for ``k > 1`` and its output resident for ``k < n``,
so the cost model, the solver and the executors treat it like any layer.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .features import pool_cover
from .layer import Layer
from .tiling import window

#: Overlap modes of an intermediate tensor between neighbouring bands.
MODES = ("recompute", "keep")


def input_rows(L: Layer, a: int, b: int) -> tuple[int, int]:
    """The input rows ``[lo, hi)`` member ``L`` reads for its output rows ``[a, b)``: through
    a fused pool's cover (the conv rows its windows read), then the conv window
    ``[a*s - pad_top, (b-1)*s - pad_top + R_eff)`` clipped to ``[0, H)``."""
    if L.epilogue.pool is not None:
        p = L.epilogue.pool
        a, b = pool_cover(a, b, (p.R, p.stride_h, p.pad_top, L.conv_P))
    lo, hi, _pl, _ph = window(a, b, L.stride_h, L.pad_top, L.R_eff, L.H)
    return lo, hi


def chainable(layers: list[Layer]) -> str:
    """Why ``layers`` cannot be a stack ("" when they can): at least two conv members, each
    member's input rows the previous one's output rows (``H_k = P_{k-1}``) and the same
    columns (full-width bands: ``W_k = Q_{k-1}``) and channels."""
    if len(layers) < 2:
        return "a stack has at least two members"
    for L in layers:
        if L.kind != "conv":
            return f"member '{L.name}' is a {L.kind} layer (stacks run convs)"
    for A, B in zip(layers, layers[1:]):
        if (B.H, B.W, B.C) != (A.P, A.Q, A.K):
            return (f"member '{B.name}' reads {B.C}x{B.H}x{B.W}, not the {A.K}x{A.P}x{A.Q} "
                    f"output of '{A.name}'")
    return ""


@dataclass(frozen=True)
class Band:
    """One band: per member, the output rows it needs (``need``) and those it computes
    (``rows``: all of ``need`` when recomputing, the rows no earlier band computed when
    keeping), and the stack input's rows it reads from DRAM (``input``)."""

    index: int
    need: tuple[tuple[int, int], ...]
    rows: tuple[tuple[int, int], ...]
    input: tuple[int, int]


def bands(layers: list[Layer], h: int, mode: str = "recompute") -> list[Band]:
    """The bands of ``h`` output rows of the last member, top to bottom (module doc)."""
    if mode not in MODES:
        raise ValueError(f"overlap mode must be one of {MODES}, got {mode!r}")
    if h < 1:
        raise ValueError(f"band height must be >= 1, got {h}")
    n = len(layers)
    P = layers[-1].P
    done = [0] * n
    out = []
    for i, r0 in enumerate(range(0, P, h)):
        need = [None] * n
        need[-1] = (r0, min(P, r0 + h))
        for k in range(n - 1, 0, -1):
            need[k - 1] = input_rows(layers[k], *need[k])
        if mode == "recompute":
            rows = list(need)
        else:
            rows = [(max(a, min(done[k], b)), b) for k, (a, b) in enumerate(need)]
        for k, (_a, b) in enumerate(rows):
            done[k] = max(done[k], b)
        out.append(Band(i, tuple(need), tuple(rows), input_rows(layers[0], *rows[0])))
    return out


def window_rows(layers: list[Layer], bs: list[Band]) -> list[int]:
    """Rows of each intermediate tensor (member k's output, k < n) that live in the buffer
    at once: the largest band need ``max_b |need_k(b)|`` (keep: the same window, whose top
    rows are the halo kept from the band before)."""
    return [max(b.need[k][1] - b.need[k][0] for b in bs) for k in range(len(layers) - 1)]


def window_words(layers: list[Layer], bs: list[Band]) -> int:
    """Buffer words of the intermediate band windows = sum_k window_rows_k * Q_k * K_k."""
    return sum(r * L.Q * L.K for r, L in zip(window_rows(layers, bs), layers))


def halo_words(layers: list[Layer], bs: list[Band]) -> int:
    """Keep mode: words moved inside the buffer, over all bands, to bring each
    intermediate's kept halo rows (``need_k(b) - rows_k(b)``) to the top of its window:
    sum_b sum_{k<n} (|need_k(b)| - |rows_k(b)|) * Q_k * K_k (0 when recomputing)."""
    return sum(((b.need[k][1] - b.need[k][0]) - (b.rows[k][1] - b.rows[k][0])) * L.Q * L.K
               for b in bs for k, L in enumerate(layers[:-1]))


def computed_rows(layers: list[Layer], bs: list[Band]) -> list[int]:
    """Output rows each member computes over all bands: sum_b |rows_k(b)| (>= P_k; the
    excess is the recomputed halo)."""
    return [sum(b.rows[k][1] - b.rows[k][0] for b in bs) for k in range(len(layers))]


def recomputed_macs(layers: list[Layer], bs: list[Band]) -> int:
    """MACs spent again on halo rows: sum_b sum_k macs(band_layer_k(b)) - sum_k macs(L_k)
    (a member's MACs per conv row are ``Q * K * (C / groups) * R * S``; a pooled member's
    band computes the conv rows its pool windows cover, so where the windows of two bands
    overlap those conv rows are computed by both, in keep mode too: the fused pool's own
    recompute, as between its y tiles)."""
    n = len(layers)
    return (sum(band_layer(L, b.rows[k], k, n).macs for b in bs for k, L in enumerate(layers)
                if b.rows[k][1] > b.rows[k][0])
            - sum(L.macs for L in layers))


def band_layer(L: Layer, rows: tuple[int, int], k: int, n: int) -> Layer:
    """Member ``k`` (0-based) of ``n`` run on its output rows ``[a, b)`` of one band: the
    layer over the input rows it reads (:func:`input_rows`), ``P = b - a``, its top / bottom
    pads only where those rows reach the tensor's border, its input resident in the buffer
    when ``k > 0`` (the band window of the member before), its output resident when
    ``k < n - 1`` (its own band window).  A fused pool's pads stay the pool's (its cover is
    clipped the same way).  ``a < b``: a member with no row to compute does not run."""
    a, b = rows
    if b <= a:
        raise ValueError(f"member '{L.name}': no rows to compute in [{a}, {b})")
    if L.epilogue.pool is not None:
        p = L.epilogue.pool
        ca, cb = pool_cover(a, b, (p.R, p.stride_h, p.pad_top, L.conv_P))
        pool = replace(p, pad_top=max(0, p.pad_top - a * p.stride_h),
                       pad_bottom=max(0, (b - 1) * p.stride_h - p.pad_top + p.R - L.conv_P))
    else:
        ca, cb, pool = a, b, None
    lo, hi, pad_lo, pad_hi = window(ca, cb, L.stride_h, L.pad_top, L.R_eff, L.H)
    band = replace(L, name=f"{L.name}[{a}:{b}]", H=hi - lo, P=b - a, pad_top=pad_lo, pad_bottom=pad_hi,
                   epilogue=L.epilogue if pool is None else replace(L.epilogue, pool=pool))
    return band.with_homes(resident_inputs=int(k > 0), resident_output=k < n - 1)
