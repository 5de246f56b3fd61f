"""Depth-first (layer-fused) stacks: consecutive layers run band by band over the last
member's output rows, so that only a band of each intermediate tensor lives in the buffer
(docs/cost-model.md, "Fused stacks").

A **stack** is a sequence ``L_1 .. L_n`` of conv layers (a fused pool or a fused residual
add allowed) with **links** (:func:`chainable`): each member reads as its data input an
earlier member's output or a DRAM tensor, and as its fused residual an earlier member's
output, a DRAM tensor or none; every member but the last is read by a later one.  A chain
(:func:`chain_links`: member k reads member k-1) is the common case; a member read twice
(a SqueezeNext block's input, read by its squeeze1 and by its expand's residual) makes a
stack span blocks.  The stack is cut into **bands** of ``h`` output rows of ``L_n`` (the
last band ragged), and of ``w`` columns or the full width.  Each band walks the members in
order; member ``k`` computes the output rows that band needs of it:

* rows needed, back to front: ``need_n = [r0, r1)``; ``need_k`` = the hull of what its
  readers read: the input rows ``L_j`` reads for its rows ``need_j`` (:func:`input_rows`:
  the conv window, through a fused pool's cover), clipped to the tensor, for a data
  reader ``j``; ``need_j`` itself for a residual reader;
* **recompute** (overlap mode ``"recompute"``): member ``k`` computes all of ``need_k`` in
  every band, so the rows two neighbouring bands share (the halo) are computed twice;
* **keep** (``"keep"``): member ``k`` computes only the rows no earlier band computed,
  ``[max(need_k.lo, done_k), need_k.hi)``, and the halo rows stay in its band buffer from
  the band before (a rolling window of rows: full-width bands need no line buffer; the
  halo rows move to the window's top, :func:`halo_words`).

Only members reading DRAM tensors read from DRAM (their input rows with their halo,
re-read where bands overlap; a residual's rows), only ``L_n`` writes one (its band, once);
every intermediate tensor lives as a window of ``max_b |need_k(b)|`` rows
(:func:`window_rows`) in the buffer.  Each (band, member) is an ordinary layer over a
sub-image, :func:`band_layer`: the member's rows cut out of it, its pads kept only at the
tensor's borders, its input and residual resident when they are members' windows, its
output resident for ``k < n``, so the cost model, the solver and the executors treat it
like any layer.  :func:`stack_work` lists them (with the keep mode's halo moves) and
:func:`stack_figures` sums their costs; the members' weights may stay in the buffer across
the bands (``StackConfig.weights_kept``: the ``resident_weights`` home and a preload).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .features import pool_cover
from .layer import ElementFn, Layer
from .tiling import window

#: Overlap modes of an intermediate tensor between neighbouring bands.
MODES = ("recompute", "keep")


@dataclass(frozen=True)
class StackConfig:
    """How a stack runs: bands of ``h`` rows of the last member's output and ``w`` columns
    (None: the full width), the overlap ``mode`` of every intermediate, and whether the
    members' weights stay in the buffer across the bands (``weights_kept``)."""

    h: int
    w: int | None
    mode: str
    weights_kept: bool

    def describe(self) -> str:
        return (f"{self.h}x{'full' if self.w is None else self.w} bands, {self.mode}"
                f"{', weights kept' if self.weights_kept else ''}")


def input_rows(L: Layer, a: int, b: int) -> tuple[int, int]:
    """The input rows ``[lo, hi)`` member ``L`` reads for its output rows ``[a, b)``: through
    a fused pool's cover (the conv rows its windows read), then the conv window
    ``[a*s - pad_top, (b-1)*s - pad_top + R_eff)`` clipped to ``[0, H)``."""
    if L.epilogue.pool is not None:
        p = L.epilogue.pool
        a, b = pool_cover(a, b, (p.R, p.stride_h, p.pad_top, L.conv_P))
    lo, hi, _pl, _ph = window(a, b, L.stride_h, L.pad_top, L.R_eff, L.H)
    return lo, hi


def input_cols(L: Layer, a: int, b: int) -> tuple[int, int]:
    """The input columns member ``L`` reads for its output columns ``[a, b)``
    (:func:`input_rows` along the other axis)."""
    if L.epilogue.pool is not None:
        p = L.epilogue.pool
        a, b = pool_cover(a, b, (p.S, p.stride_w, p.pad_left, L.conv_Q))
    lo, hi, _pl, _ph = window(a, b, L.stride_w, L.pad_left, L.S_eff, L.W)
    return lo, hi


def chain_links(n: int) -> tuple[tuple[int | None, int | None], ...]:
    """The links of a plain chain of ``n`` members: member k reads member k-1's output as
    its data input (member 0 reads DRAM), no residual inside the stack."""
    return tuple((k - 1 if k else None, None) for k in range(n))


def chainable(layers: list[Layer], links=None) -> str:
    """Why ``layers`` cannot be a stack ("" when they can): at least two conv members; per
    member its ``links`` entry ``(src, res)`` (None: :func:`chain_links`): ``src`` the
    earlier member whose output it reads as its data input (None: DRAM), of the shape it
    reads (``H_k = P_src``, ``W_k = Q_src``, ``C_k = K_src``); ``res`` the earlier member
    whose output is its fused residual (None: DRAM or none), of its own output's shape;
    every member but the last read by a later one."""
    links = chain_links(len(layers)) if links is None else tuple(links)
    if len(layers) < 2:
        return "a stack has at least two members"
    if len(links) != len(layers):
        return f"{len(links)} links for {len(layers)} members"
    for L in layers:
        if L.kind != "conv":
            return f"member '{L.name}' is a {L.kind} layer (stacks run convs)"
    read = set()
    for k, (B, (src, res)) in enumerate(zip(layers, links)):
        for j in (src, res):
            if j is not None and not 0 <= j < k:
                return f"member '{B.name}' reads member {j}, not an earlier one"
        if src is not None:
            A = layers[src]
            if (B.H, B.W, B.C) != (A.P, A.Q, A.K):
                return (f"member '{B.name}' reads {B.C}x{B.H}x{B.W}, not the {A.K}x{A.P}x{A.Q} "
                        f"output of '{A.name}'")
            read.add(src)
        if res is not None:
            A = layers[res]
            if not B.epilogue.residual or (A.K, A.P, A.Q) != (B.K, B.P, B.Q):
                return f"member '{B.name}' adds no residual of the {A.K}x{A.P}x{A.Q} output of '{A.name}'"
            read.add(res)
    lost = [L.name for k, L in enumerate(layers[:-1]) if k not in read]
    if lost:
        return f"the output of member '{lost[0]}' is read by no later member"
    return ""


@dataclass(frozen=True)
class Band:
    """One band (a tile of the last member's output): per member, the output rows and
    columns it needs (``need``, ``need_cols``) and those it computes (``rows``, ``cols``: all
    of the need when recomputing; when keeping, the part no earlier band computed), and the
    stack input's rows and columns it reads from DRAM (``input``, ``input_cols``)."""

    index: int
    need: tuple[tuple[int, int], ...]
    rows: tuple[tuple[int, int], ...]
    input: tuple[int, int]
    need_cols: tuple[tuple[int, int], ...] = ()
    cols: tuple[tuple[int, int], ...] = ()
    input_cols: tuple[int, int] = (0, 0)

    def area(self, k: int, needed: bool = False) -> int:
        """Output positions of member ``k`` needed (``needed``) or computed in this band."""
        (a, b), (c, d) = (self.need[k], self.need_cols[k]) if needed else (self.rows[k], self.cols[k])
        return max(0, b - a) * max(0, d - c)


def _hull(spans) -> tuple[int, int]:
    """The smallest interval holding every ``[lo, hi)`` of ``spans``."""
    spans = list(spans)
    return min(a for a, _ in spans), max(b for _, b in spans)


def bands(layers: list[Layer], h: int, mode: str = "recompute", w: int | None = None, links=None) -> list[Band]:
    """The bands of ``h`` output rows (and ``w`` columns; None: the full width) of the last
    member, rows outer, columns inner (module doc).  ``links`` (:func:`chainable`; None: a
    chain): a member read by several later members (a data input and a residual) needs
    the hull of what they read: the input rows of a data reader, the output rows of a
    residual reader.  Keep mode keeps the halo along the walk's inner axis: rows for
    full-width bands; columns (from the band to the left) for narrower ones, whose rows are
    recomputed from one row of bands to the next (keeping those too would need a line
    buffer of the full width)."""
    if mode not in MODES:
        raise ValueError(f"overlap mode must be one of {MODES}, got {mode!r}")
    if h < 1 or (w is not None and w < 1):
        raise ValueError(f"band height and width must be >= 1, got {h} x {w}")
    n = len(layers)
    links = chain_links(n) if links is None else tuple(links)
    P, Q = layers[-1].P, layers[-1].Q
    w = Q if w is None or w > Q else w
    full = w == Q
    done_r = [0] * n
    out = []
    for r0 in range(0, P, h):
        done_c = [0] * n
        for c0 in range(0, Q, w):
            need, ncol = [None] * n, [None] * n
            need[-1], ncol[-1] = (r0, min(P, r0 + h)), (c0, min(Q, c0 + w))
            for k in range(n - 2, -1, -1):
                rs, cs = [], []
                for j in range(k + 1, n):
                    src, res = links[j]
                    if src == k:
                        rs.append(input_rows(layers[j], *need[j]))
                        cs.append(input_cols(layers[j], *ncol[j]))
                    if res == k:
                        rs.append(need[j])
                        cs.append(ncol[j])
                need[k], ncol[k] = _hull(rs), _hull(cs)
            rows, cols = list(need), list(ncol)
            if mode == "keep" and full:
                rows = [(max(a, min(done_r[k], b)), b) for k, (a, b) in enumerate(need)]
            elif mode == "keep":
                cols = [(max(a, min(done_c[k], b)), b) for k, (a, b) in enumerate(ncol)]
            for k in range(n):
                done_r[k] = max(done_r[k], rows[k][1])
                done_c[k] = max(done_c[k], cols[k][1])
            out.append(Band(len(out), tuple(need), tuple(rows), input_rows(layers[0], *rows[0]),
                            tuple(ncol), tuple(cols), input_cols(layers[0], *cols[0])))
    return out


def window_rows(layers: list[Layer], bs: list[Band]) -> list[int]:
    """Rows of each intermediate tensor (member k's output, k < n) that live in the buffer
    at once: the largest band need ``max_b |need_k(b)|`` (keep: the same window, whose top
    rows are the halo kept from the band before)."""
    return [max(b.need[k][1] - b.need[k][0] for b in bs) for k in range(len(layers) - 1)]


def window_words(layers: list[Layer], bs: list[Band]) -> int:
    """Buffer words of the intermediate band windows = sum_k max_b |need_k(b)| * K_k, the
    need as rows x columns (full-width bands: ``window_rows_k * Q_k * K_k``)."""
    return sum(max(b.area(k, needed=True) for b in bs) * L.K for k, L in enumerate(layers[:-1]))


def halo_words(layers: list[Layer], bs: list[Band]) -> int:
    """Keep mode: words moved inside the buffer, over all bands, to bring each
    intermediate's kept halo (its need less what it computes) to the start of its window:
    sum_b sum_{k<n} (|need_k(b)| - |computed_k(b)|) * K_k, as rows x columns (0 when
    recomputing)."""
    return sum((b.area(k, needed=True) - b.area(k)) * L.K for b in bs for k, L in enumerate(layers[:-1]))


def computed_outputs(layers: list[Layer], bs: list[Band]) -> list[int]:
    """Output positions (rows x columns) each member computes over all bands (>= P_k * Q_k;
    the excess is the recomputed halo)."""
    return [sum(b.area(k) for b in bs) for k in range(len(layers))]


def computed_rows(layers: list[Layer], bs: list[Band]) -> list[int]:
    """Full-width bands: output rows each member computes over all bands, sum_b |rows_k(b)|
    (= computed_outputs / Q_k)."""
    return [c // L.Q for c, L in zip(computed_outputs(layers, bs), layers)]


def recomputed_macs(layers: list[Layer], bs: list[Band]) -> int:
    """MACs spent again on halo rows: sum_b sum_k macs(band_layer_k(b)) - sum_k macs(L_k)
    (a member's MACs per conv row are ``Q * K * (C / groups) * R * S``; a pooled member's
    band computes the conv rows its pool windows cover, so where the windows of two bands
    overlap those conv rows are computed by both, in keep mode too: the fused pool's own
    recompute, as between its y tiles)."""
    n = len(layers)
    return (sum(band_layer(L, b.rows[k], k, n, b.cols[k]).macs for b in bs for k, L in enumerate(layers)
                if b.area(k))
            - sum(L.macs for L in layers))


def _cut(L: Layer, a: int, b: int, axis: str) -> dict:
    """The fields of ``L`` restricted to its output rows (``axis = "y"``) or columns
    (``"x"``) ``[a, b)``: the input extent they read, the output extent, the pads kept only
    at the tensor's border, a fused pool's pads likewise (its cover clipped the same way)."""
    y = axis == "y"
    stride, pad, kernel, size = ((L.stride_h, L.pad_top, L.R_eff, L.H) if y else
                                 (L.stride_w, L.pad_left, L.S_eff, L.W))
    pool = L.epilogue.pool
    changes = {}
    if pool is not None:
        pk, ps, pp, n = ((pool.R, pool.stride_h, pool.pad_top, L.conv_P) if y else
                         (pool.S, pool.stride_w, pool.pad_left, L.conv_Q))
        ca, cb = pool_cover(a, b, (pk, ps, pp, n))
        lo_pad, hi_pad = max(0, pp - a * ps), max(0, (b - 1) * ps - pp + pk - n)
        changes["pool"] = {"pad_top": lo_pad, "pad_bottom": hi_pad} if y else {"pad_left": lo_pad, "pad_right": hi_pad}
    else:
        ca, cb = a, b
    lo, hi, pad_lo, pad_hi = window(ca, cb, stride, pad, kernel, size)
    if y:
        changes.update(H=hi - lo, P=b - a, pad_top=pad_lo, pad_bottom=pad_hi)
    else:
        changes.update(W=hi - lo, Q=b - a, pad_left=pad_lo, pad_right=pad_hi)
    return changes


def band_layer(L: Layer, rows: tuple[int, int], k: int, n: int, cols: tuple[int, int] | None = None,
               link: tuple[int | None, int | None] | None = None) -> Layer:
    """Member ``k`` (0-based) of ``n`` run on its output rows ``[a, b)`` (and columns;
    None: all) of one band: the layer over the input rows and columns it reads
    (:func:`input_rows`, :func:`input_cols`), ``P = b - a``, its pads only where those reach
    the tensor's border, its input resident in the buffer when it reads a member (``link``
    = (src, res), :func:`chainable`; None: a chain, src = k - 1: the band window of the
    member before), its residual resident when a member's, its output resident when ``k <
    n - 1`` (its own band window).  A
    fused pool's pads likewise (its cover is clipped the same way).  A member with no
    position to compute does not run: an empty range is an error."""
    cols = (0, L.Q) if cols is None else cols
    for what, (a, b) in (("rows", rows), ("columns", cols)):
        if b <= a:
            raise ValueError(f"member '{L.name}': no {what} to compute in [{a}, {b})")
    ch = {}
    pool_ch = {}
    for axis, (a, b) in (("y", rows), ("x", cols)):
        c = _cut(L, a, b, axis)
        pool_ch.update(c.pop("pool", {}))
        ch.update(c)
    epi = L.epilogue if L.epilogue.pool is None else replace(L.epilogue, pool=replace(L.epilogue.pool, **pool_ch))
    name = f"{L.name}[{rows[0]}:{rows[1]}]" if cols == (0, L.Q) else \
        f"{L.name}[{rows[0]}:{rows[1]},{cols[0]}:{cols[1]}]"
    band = replace(L, name=name, epilogue=epi, **ch)
    src, res = (k - 1 if k else None, None) if link is None else link
    return band.with_homes(resident_inputs=int(src is not None), resident_output=k < n - 1,
                           resident_residual=res is not None)


def resident_weight_words(layers: list[Layer], psum_words: int) -> int:
    """Buffer words of the members' weights and biases when the stack keeps them across
    its bands = sum_k (weight_words_k + K_k * pw * has_bias_k)."""
    return sum(L.weight_words + (L.K * psum_words if L.epilogue.bias else 0) for L in layers)


def weight_preload(layers: list[Layer], target) -> tuple[int, int]:
    """(cycles, DRAM words) of loading every member's weights and bias into the buffer once,
    before the first band, one transfer per tensor, member by member: words =
    :func:`resident_weight_words`, cycles = sum_k (lat * (has_weights_k + has_bias_k) +
    ceil(words_k / bw)) (each member's share is its own: :func:`member_report`)."""
    bw = target.dram_words_per_cycle
    cycles = words = 0
    for L in layers:
        w = resident_weight_words([L], target.psum_words)
        transfers = int(L.weight_words > 0) + int(bool(L.epilogue.bias))
        cycles += target.dram_latency_cycles * transfers + -(-w * bw.denominator // bw.numerator)
        words += w
    return cycles, words


def halo_layer(L: Layer, positions: int) -> Layer:
    """Keep mode: the move of ``positions`` (rows x columns) kept halo outputs of member
    ``L``'s window to its start, all ``K`` channels, resident to resident, as one row of
    a ``move`` layer."""
    return Layer(f"{L.name}/halo", "move", C=L.K, K=L.K, H=1, W=positions, R=1, S=1, P=1, Q=positions,
                 element=ElementFn("copy")).with_homes(resident_inputs=1, resident_output=True)


def stack_capacity(layers: list[Layer], bs: list[Band], cfg: StackConfig, target) -> int:
    """Buffer words left to the tiles of every (band, member) = buffer - band windows -
    kept weights (:func:`window_words`, :func:`resident_weight_words`); <= 0: no stack."""
    kept = resident_weight_words(layers, target.psum_words) if cfg.weights_kept else 0
    return target.buffer_words - window_words(layers, bs) - kept


def stack_work(layers: list[Layer], cfg: StackConfig, target, links=None) -> list[Layer] | None:
    """What the stack runs, in order, as ordinary layers: per band, each member's band layer
    (:func:`band_layer`, its weights resident when kept) and, in keep mode, after each
    intermediate member the move of its kept halo (:func:`halo_layer`); every one with the
    capacity :func:`stack_capacity`.  None when the windows and kept weights leave no room."""
    items = stack_items(layers, cfg, target, links)
    return None if items is None else [L for _k, L in items]


def stack_items(layers: list[Layer], cfg: StackConfig, target, links=None) -> list[tuple[int, Layer]] | None:
    """:func:`stack_work` with the member each item belongs to (a halo move: the member whose
    window it moves): (member, layer) in run order, or None (no room)."""
    links = chain_links(len(layers)) if links is None else tuple(links)
    bs = bands(layers, cfg.h, cfg.mode, cfg.w, links)
    cap = stack_capacity(layers, bs, cfg, target)
    if cap <= 0:
        return None
    n = len(layers)
    work = []
    for b in bs:
        for k, L in enumerate(layers):
            if b.area(k):
                work.append((k, band_layer(L, b.rows[k], k, n, b.cols[k], links[k]).with_homes(
                    capacity=cap, resident_weights=cfg.weights_kept)))
            if cfg.mode == "keep" and k < n - 1:
                kept = b.area(k, needed=True) - b.area(k)
                if kept > 0:
                    work.append((k, halo_layer(L, kept).with_homes(capacity=cap)))
    return work


@dataclass(frozen=True)
class StackFigures:
    """A stack's totals: cycles, energy, DRAM words, and its buffer footprint (band windows
    + kept weights + the largest (band, member) tile footprint)."""

    cycles: int
    energy: int
    dram_words: int
    footprint: int
    windows: int
    weights: int


def stack_figures(layers: list[Layer], cfg: StackConfig, reports: list, target, links=None) -> StackFigures:
    """The stack's figures from the cost reports of its :func:`stack_work`, in order: the
    sums of their cycles, energy and DRAM words, plus, with kept weights, the preload
    (:func:`weight_preload`: its cycles; its words, each a DRAM read and a buffer write:
    ``(e_dram + e_buffer)`` energy); footprint = windows + kept weights + max tile
    footprint (the (band, member) layers run one after another)."""
    bs = bands(layers, cfg.h, cfg.mode, cfg.w, links)
    windows = window_words(layers, bs)
    kept = resident_weight_words(layers, target.psum_words) if cfg.weights_kept else 0
    cycles = sum(r.total_cycles for r in reports)
    energy = sum(r.energy_total for r in reports)
    words = sum(r.dram["total"] for r in reports)
    if cfg.weights_kept:
        pc, pw = weight_preload(layers, target)
        cycles, words = cycles + pc, words + pw
        energy += pw * (target.e_dram + target.e_buffer)
    return StackFigures(cycles, energy, words, windows + kept + max(r.footprint["total"] for r in reports),
                        windows, kept)


def member_report(L: Layer, cfg: StackConfig, reports: list, footprint: int, target):
    """One member's share of a stack as one cost report (a compiled plan records one per
    layer): the sums of its work's reports (its band layers, its halo moves) and, with kept
    weights, its own preload (:func:`weight_preload` of it alone: words as weight and bias
    reads, one transfer each, its cycles as DMA before the bands, ``(e_dram + e_buffer)``
    energy a word); the dataflow, tiles and refetch of its largest band; the stack's
    footprint (``footprint``: windows, kept weights, tiles) against the whole buffer.  The
    members' reports add up to the stack's figures (:func:`stack_figures`)."""
    def add(key):
        return sum(getattr(r, key) for r in reports)

    def add_dict(key):
        out = {}
        for r in reports:
            for name, v in getattr(r, key).items():
                out[name] = out.get(name, 0) + v
        return out

    big = max(reports, key=lambda r: (r.macs, r.total_cycles))
    dram, transfers = add_dict("dram"), add_dict("transfers")
    accesses, energy = add_dict("accesses"), add_dict("energy")
    cycles, dma = add("total_cycles"), add("dma_cycles")
    if cfg.weights_kept:
        pc, pw = weight_preload([L], target)
        bias = L.K * target.psum_words if L.epilogue.bias else 0
        dram["weight_reads"] += pw - bias
        dram["bias_reads"] += bias
        dram["total"] += pw
        transfers["weights"] += int(L.weight_words > 0)
        transfers["bias"] += int(bias > 0)
        transfers["total"] += int(L.weight_words > 0) + int(bias > 0)
        accesses["dram"] += pw
        accesses["buffer"] += pw
        energy["dram"] += pw * target.e_dram
        energy["buffer"] += pw * target.e_buffer
        energy["total"] += pw * (target.e_dram + target.e_buffer)
        cycles += pc
        dma += pc
    compute = add("compute_cycles")
    pes_cycles = target.num_pes * compute
    fp = dict(big.footprint, total=footprint, capacity=target.buffer_words)
    return replace(big, macs=add("macs"), macs_performed=add("macs_performed"), compute_cycles=compute,
                   utilization=round(add("macs_performed") / pes_cycles, 6) if pes_cycles else 0.0,
                   utilization_dense=round(add("macs") / pes_cycles, 6) if pes_cycles else 0.0,
                   footprint=fp, dram=dram, transfers=transfers, dma_cycles=dma,
                   prologue_cycles=add("prologue_cycles"), epilogue_cycles=add("epilogue_cycles"),
                   first_step_cycles=big.first_step_cycles,
                   overlap="fused stack: the sum of its band layers (each double-buffered) and its preload",
                   total_cycles=cycles, accesses=accesses, energy=energy)
