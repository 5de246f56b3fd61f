"""One scheduled layer, tile by tile: the per-kind tile kernels and the layer drivers.

:func:`_run_layer` runs a layer that has a tiled kernel of its own (conv, fc, max/avg
pool, global average pool, element-wise add; a conv with a fused pool through
:func:`_pool_tile`), :func:`_store_tiles` a layer whose tiles store the op's reference
result (:func:`runs_whole`); both hand their per-tile computation and output-tile
finalization to :func:`_drive`, the DRAM-level loop nest of one batch element, which
counts the tiles and transfers in a :class:`~sqnxt_compiler.reference.layer_stats.LayerStats`.
The number format is the strategy's (:mod:`sqnxt_compiler.reference.arith`).
docs/tiled-execution.md.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..cost.layer import ELEMENT_KINDS
from ..diagnostics import SqnxtError
from ..ir.core import Op
from ..layers import layer_of, stands_in
from .arith import NO_ACT
from .executor import act_of
from .fixed_point import _EXACT_F64_TERMS, quantize, rescale
from .layer_stats import LayerStats
from ..cost.tiling import Tile, pooled_geometry, tile_steps
from .tiles import fetch, windows


# --------------------------------------------------------------------------- tile kernels
def _conv_part(xt, wt, win_fn):
    """Partial sums of one tile: wt (k, c, R, S) x windows (c, p, q, R, S) -> (k, p, q),
    as one matrix product over the (c, r, s) columns of the tile (im2col)."""
    win = win_fn(xt)
    c, p, q, r, s = win.shape
    k = wt.shape[0]
    cols = win.reshape(c, p * q) if r == s == 1 else \
        win.transpose(0, 3, 4, 1, 2).reshape(c * r * s, p * q)
    return (wt.reshape(k, c * r * s) @ cols).reshape(k, p, q)


def _dw_part(xt, wt, win_fn):
    """Depthwise: channel k with its own R x S kernel: (k, p, q)."""
    win = win_fn(xt)
    return np.einsum("kpqrs,krs->kpq", win, wt[:, 0])


# --------------------------------------------------------------------------- one layer
def _complete(done: int, L) -> bool:
    """An output tile is final once all input channels of its group were accumulated."""
    return done == L.Cg


def _drive(st: LayerStats, L, m, arith, n_inputs: int, has_weights: bool,
           compute: Callable[[Tile], np.ndarray], finalize: Callable[[Tile, np.ndarray], None]):
    """The DRAM-level loop nest of one batch element: tile by tile in the mapping's order
    (the steps of :func:`sqnxt_compiler.cost.tiling.tile_steps`: when each operand tile is
    fetched and each output tile leaves), psums across c tiles, finalization after the
    group's last input channel.  Transfers
    follow the layer's operand homes (docs/memory-planning.md): a resident input tile is
    read in place (no transfer), as are resident weights (a fused stack's), a final
    output tile of a resident output is copied into the resident tensor (no write-back);
    partial sums always spill through DRAM."""
    in_dram = n_inputs - L.homes.resident_inputs
    out_dram = 0 if L.homes.resident_output else 1
    psum: dict[tuple, tuple[np.ndarray, int]] = {}   # partial output tiles in the buffer/DRAM
    seen = {"x": set(), "y": set(), "c": set(), "k": set()}
    for s in tile_steps(L, m):          # the walk, stated once (cost/tiling.py)
        t = s.tile
        for name in seen:
            seen[name].add(getattr(t, name))
        if s.load_input:                              # one resident tile per tensor
            st.transfers["input"] += in_dram
        if has_weights and s.load_weights and not L.homes.resident_weights:
            st.transfers["weights"] += 1              # resident weights are read in place
        if s.reload_psum:
            st.transfers["psum_reads"] += 1           # a later visit reads its psums back
        part = arith.part(compute(t))
        st.tiles += 1
        if st.coverage is not None:   # trace: which (k, c, p, q) this tile computed
            ks = slice(t.g * L.Kg + t.k[0], t.g * L.Kg + t.k[1])
            st.coverage[ks, t.c[0]:t.c[1], t.y[0]:t.y[1], t.x[0]:t.x[1]] += 1
        prev = psum.pop(s.out_key, None)
        acc = part if prev is None else prev[0] + part
        done = (0 if prev is None else prev[1]) + (t.c[1] - t.c[0])
        acc = arith.store(acc, st)
        if _complete(done, L):
            finalize(t, acc)
        else:
            psum[s.out_key] = (acc, done)
        if s.leaves is not None:                      # write back: partial, or final unless resident
            st.transfers["outputs"] += 1 if s.leaves == "psum" else out_dram
    if psum:
        raise SqnxtError(f"{len(psum)} output tiles never received all {L.Cg} input channels")
    st.tiles_n = {k: len(v) for k, v in seen.items()}


def _run_layer(op: Op, args: list, arith, trace: bool, cur_psum_bits: int,
               band=None) -> tuple[object, LayerStats]:
    """Run ``op`` tile by tile as its schedule says; ``band`` (a fused stack's (band layer,
    mapping), :mod:`.stack_run`): as that band layer instead, ``args`` cut to the rows and
    columns it reads, its pads (and a fused pool's) the band layer's."""
    if band is None:
        sched = op.attrs["schedule"].schedule
        L, m = sched.layer, sched.mapping
        fresh = layer_of(op)
        if fresh is None or fresh.shape_key() != L.shape_key():   # sparsity may differ
            raise SqnxtError(f"the schedule's layer ({L.describe()}) does not match the op")
    else:
        L, m = band
    st = LayerStats(L.name, op.name, op.id, L.kind, L, m, groups=L.eff_groups)
    # the bias (conv / fc with a bias operand): one transfer per layer into the output
    # path's bias memory before the first tile (docs/isa.md), applied as tiles finish
    # (not a residual operand); resident weights bring their bias (a stack's preload)
    st.transfers["bias"] = int(L.is_mac and L.epilogue.bias and not L.homes.resident_weights)
    arith.cur_psum_bits = cur_psum_bits
    if arith.int_mode:
        st.psum_bits = cur_psum_bits
    out_shape = op.result.type.shape if band is None else (op.result.type.shape[0], L.K, L.P, L.Q)
    N = out_shape[0]
    kind = L.kind
    act = act_of(op)
    post_act = (op.attrs.get("post_act", "none"), 0.0, 0.0)
    fo = arith.out_frac(op)

    # the operands as (N, C, H, W) arrays the tiles are cut from
    if kind == "add":
        xs, fis = zip(*(arith.tensor(a, st, f"in{i}") for i, a in enumerate(args)))
        fa = max(fis) if arith.int_mode else None
        if arith.int_mode:   # align every operand to the accumulator's scale (exact)
            xs = [x * 2.0 ** (fa - f) for x, f in zip(xs, fis)]
    else:
        x, fi = arith.tensor(args[0], st, "in")
        if kind == "fc":
            x = x.reshape(N, -1, 1, 1)
        xs, fa = [x], fi
    w = b = None
    if kind in ("conv", "fc"):
        if arith.int_mode:
            w, fw = arith.tensor(args[1], st, "w", fmax=arith.weight_frac_limit(op, fi))
        else:
            w, fw = arith.tensor(args[1], st, "w")
        if kind == "fc":
            w = w.reshape(w.shape[0], -1, 1, 1)
        fa = (fi + fw) if arith.int_mode else None
        n_wb = len(args) - (1 if L.epilogue.residual else 0)      # x, w[, b] before the residual
        b = arith.bias(args[2] if n_wb > 2 else None, fa)
        if arith.int_mode and L.Cg * L.R * L.S >= _EXACT_F64_TERMS:
            raise SqnxtError("contraction too long for exact int16 tile sums")
    res = res_f = None
    if L.epilogue.residual:
        res, res_f = arith.tensor(args[-1], st, "residual")
        res = res.reshape(N, L.K, L.P, L.Q)
    res_dram = 1 if L.epilogue.residual and not L.homes.resident_residual else 0
    if arith.int_mode:
        st.fracs.update(acc=fa, out=fo)

    pool_attrs = op.attrs.get("pool")
    if band is not None and L.epilogue.pool is not None:    # the band's pool pads
        p = L.epilogue.pool
        pool_attrs = {**pool_attrs, "pads": (p.pad_top, p.pad_left, p.pad_bottom, p.pad_right)}
    K, P, Q = L.K, L.P, L.Q
    y = np.zeros((N, K, P, Q), dtype=np.int16 if arith.int_mode else np.float32)
    # a fused pool: the tile loops run over the pooled output; each tile computes the conv
    # outputs its windows cover (Lc: the conv's own geometry, conv_tile: the cover)
    Lc, conv_tile = (pooled_geometry(L) if L.epilogue.pool else (L, lambda t: t))
    writes = np.zeros((K, P, Q), dtype=np.int32)
    if trace:
        st.coverage = np.zeros((K, L.Cg, P, Q), dtype=np.int32)
    cw = L.channelwise
    Cg, Kg = L.Cg, L.Kg

    # per-kind tile computation and output-tile finalization
    if kind in ("conv", "fc") and not cw:
        def compute(t):
            cs = slice(t.g * Cg + t.c[0], t.g * Cg + t.c[1])
            ks = slice(t.g * Kg + t.k[0], t.g * Kg + t.k[1])
            tc = conv_tile(t)
            xt = fetch(xs[0][n], cs, tc, Lc)
            part = _conv_part(xt, w[ks, t.c[0]:t.c[1]], lambda a: windows(a, tc, Lc))
            st.macs += part.size * xt.shape[0] * L.R * L.S
            return part
    elif kind == "conv":  # depthwise: channel k reads input channel k only
        def compute(t):
            ks = slice(t.k[0], t.k[1])
            tc = conv_tile(t)
            xt = fetch(xs[0][n], ks, tc, Lc)
            part = _dw_part(xt, w[ks], lambda a: windows(a, tc, Lc))
            st.macs += part.size * L.R * L.S
            return part
    elif kind == "maxpool":
        def compute(t):
            xt = fetch(xs[0][n], slice(t.k[0], t.k[1]), t, L, fill=-np.inf)
            part = windows(xt, t, L).max(axis=(3, 4))
            st.macs += part.size * L.R * L.S
            return part
    elif kind in ("avgpool", "gap"):
        if kind == "avgpool":
            pt_, pl_, pb_, pr_ = op.attrs["pads"]
            inc = op.attrs["count_include_pad"]
            # the cells a window's divisor counts: the declared padded area or the input
            cy = (-pt_, L.H + pb_) if inc else (0, L.H)
            cx = (-pl_, L.W + pr_) if inc else (0, L.W)
        else:
            cy, cx = (0, L.H), (0, L.W)

        def counted(o0, o1, s, p, k, lim):
            a = np.arange(o0, o1) * s - p
            return np.clip(np.minimum(a + k, lim[1]) - np.maximum(a, lim[0]), 0, None)

        def compute(t):
            xt = fetch(xs[0][n], slice(t.k[0], t.k[1]), t, L)
            part = windows(xt, t, L).sum(axis=(3, 4), dtype=np.float64)
            st.macs += part.size * L.R * L.S
            cnt = np.outer(counted(*t.y, L.stride_h, L.pad_top, L.R, cy),
                           counted(*t.x, L.stride_w, L.pad_left, L.S, cx))
            if arith.int_mode:
                return part, cnt
            return part / cnt
    elif kind == "add":
        def compute(t):
            ks = slice(t.k[0], t.k[1])
            part = fetch(xs[0][n], ks, t, L).astype(np.float64 if arith.int_mode else np.float32)
            for xi in xs[1:]:
                part = part + fetch(xi[n], ks, t, L)
            st.macs += part.size * len(xs)
            return part
    else:
        raise SqnxtError(f"no tiled kernel for layer kind {kind}")

    def finalize(t, acc):
        ks = slice(t.g * Kg + t.k[0], t.g * Kg + t.k[1])
        bt = None if b is None else b[ks]
        cnt = 1
        if isinstance(acc, tuple):       # int16 avg/gap: (sum, divisor per output)
            acc, cnt = acc
        if arith.int_mode and kind in ("avgpool", "gap"):
            out = _avg_int(acc, cnt, fa, fo, st)
        elif L.epilogue.pool:         # act on the covered conv outputs, pool in the buffer
            out = _pool_tile(arith.pre(acc, bt, act, fa, st), t, conv_tile(t), L, pool_attrs,
                             arith, fa, fo, st)
        elif res is not None:         # the residual tile arrives as the output tile leaves
            rt = res[n, ks, t.y[0]:t.y[1], t.x[0]:t.x[1]]
            st.transfers["residual"] += res_dram
            out = arith.finish(acc, bt, act, fa, fo, st, (rt, res_f), post_act)
        else:
            out = arith.finish(acc, bt, act if kind in ("conv", "fc", "add") else NO_ACT, fa, fo, st)
        y[n, ks, t.y[0]:t.y[1], t.x[0]:t.x[1]] = out
        writes[ks, t.y[0]:t.y[1], t.x[0]:t.x[1]] += 1
        st.outputs += out.size

    for n in range(N):
        if arith.int_mode and kind in ("avgpool", "gap"):
            _drive_avg_int(st, L, m, arith, compute, finalize)
        else:
            _drive(st, L, m, arith, len(xs), w is not None, compute, finalize)
    st.output_elements = y.size
    _written_once(st, writes, N)
    y = y.reshape(out_shape)
    return arith.out(y, fo), st


def runs_whole(op: Op, L) -> bool:
    """Layers whose tiles store the op's reference result (:func:`_store_tiles`): the
    element-wise and data-movement layers, and every layer that stands for its op's cost
    (:func:`sqnxt_compiler.layers.stands_in`: the reductions, a matmul by constant
    weights); the layers that are their op (conv, fc, pools, gap, add) have a tiled kernel
    of their own (:func:`_run_layer`)."""
    return L.kind in ELEMENT_KINDS or stands_in(op)


def _store_tiles(op: Op, ref: np.ndarray, arith, trace: bool) -> tuple[object, LayerStats]:
    """An element-wise, data-movement or reduction layer, tile by tile: the op's reference
    kernel gave ``ref`` (float; in int16 from the dequantized operands), quantized here at
    the output's scale in int16; the mapping's tile loops store it region by region
    (an output tile when its group's last c tile is reached), with the transfers of the
    layer's operand homes, and every output element must be written exactly once."""
    sched = op.attrs["schedule"].schedule
    L, m = sched.layer, sched.mapping
    fresh = layer_of(op)
    if fresh is None or fresh.shape_key() != L.shape_key():
        raise SqnxtError(f"the schedule's layer ({L.describe()}) does not match the op")
    st = LayerStats(L.name, op.name, op.id, L.kind, L, m, groups=L.eff_groups)
    # a matmul's bias (its epilogue's): one transfer into the bias memory, as a conv's
    st.transfers["bias"] = int(L.is_mac and L.epilogue.bias)
    fo = arith.out_frac(op)
    if arith.int_mode:
        arith.cur_psum_bits = 64          # stored values are int16 outputs: nothing to saturate
        st.psum_bits = 64
        st.fracs.update(out=fo)
        src = quantize(np.asarray(ref, dtype=np.float64), fo)
    else:
        src = np.asarray(ref, dtype=np.float32)
    K, P, Q = L.K, L.P, L.Q
    N = src.size // (K * P * Q)
    src = src.reshape(N, K, P, Q)
    y = np.zeros_like(src)
    writes = np.zeros((K, P, Q), dtype=np.int32)
    if trace:
        st.coverage = np.zeros((K, L.Cg, P, Q), dtype=np.int32)

    def region(t):
        return (slice(t.g * L.Kg + t.k[0], t.g * L.Kg + t.k[1]), slice(*t.y), slice(*t.x))

    def compute(t):
        ks, ys, xs = region(t)
        part = src[n, ks, ys, xs]
        st.macs += part.size * (L.macs // (K * P * Q)) * (t.c[1] - t.c[0]) // L.Cg
        return part.astype(np.float64) if t.c[1] == L.Cg else np.zeros(part.shape)

    def finalize(t, acc):
        ks, ys, xs = region(t)
        y[n, ks, ys, xs] = acc
        writes[ks, ys, xs] += 1
        st.outputs += acc.size

    for n in range(N):
        _drive(st, L, m, arith, L.n_inputs, L.has_weights, compute, finalize)
    st.output_elements = y.size
    _written_once(st, writes, N)
    return arith.out(y.reshape(op.result.type.shape), fo), st


def _written_once(st: LayerStats, writes: np.ndarray, N: int) -> None:
    """Record how often each output element was finalized per batch element (``writes``
    counts them over N elements) and raise unless every one was exactly once."""
    lo, hi = int(writes.min()), int(writes.max())
    st.writes_min, st.writes_max = lo // N, -(-hi // N)
    if lo != N or hi != N:
        raise SqnxtError(f"tiled execution finalized output elements between {lo / N:g} and "
                         f"{hi / N:g} times per batch element (must be exactly once)")


# --------------------------------------------------------------------------- fused pools
def _pool_counts(o0, o1, stride, pad, k, lim) -> np.ndarray:
    """Cells of each window of outputs [o0, o1) that lie in [lim[0], lim[1])."""
    a = np.arange(o0, o1) * stride - pad
    return np.clip(np.minimum(a + k, lim[1]) - np.maximum(a, lim[0]), 0, None)


def _pool_tile(yc, t: Tile, tc: Tile, L, pool: dict, arith, fa, fo, st):
    """The pooled tile ``t`` from ``yc``, the conv outputs of its cover ``tc`` (k, rows,
    cols), in the accumulator's format; then the output format (int16: requantized).
    Max: -inf (int16: below any value) where a window leaves the conv's output; average:
    divided by the cells the window counts (the declared padded area with
    count_include_pad, the conv's output otherwise; a ceil-mode overhang never counts)."""
    p = L.epilogue.pool
    kh, kw, sh, sw = p.R, p.S, p.stride_h, p.stride_w
    a_y, a_x = t.y[0] * sh - p.pad_top, t.x[0] * sw - p.pad_left
    b_y, b_x = (t.y[1] - 1) * sh - p.pad_top + kh, (t.x[1] - 1) * sw - p.pad_left + kw
    pads = ((0, 0), (tc.y[0] - a_y, b_y - tc.y[1]), (tc.x[0] - a_x, b_x - tc.x[1]))
    mx = pool["kind"] == "max"
    if arith.int_mode:
        fill = np.iinfo(np.int64).min if mx else 0
        yp = np.pad(np.asarray(yc, np.int64), pads, constant_values=fill)
    else:
        yp = np.pad(np.asarray(yc, np.float64), pads, constant_values=-np.inf if mx else 0.0)
    win = sliding_window_view(yp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    win = win[:, :t.y[1] - t.y[0], :t.x[1] - t.x[0]]
    if mx:
        return arith.requant(win.max(axis=(3, 4)), fa, fo, st)
    total = win.sum(axis=(3, 4))
    pt, pl, pb, pr = pool["pads"]
    inc = pool["count_include_pad"]
    cy = (-pt, L.conv_P + pb) if inc else (0, L.conv_P)
    cx = (-pl, L.conv_Q + pr) if inc else (0, L.conv_Q)
    cnt = np.outer(_pool_counts(*t.y, sh, p.pad_top, kh, cy), _pool_counts(*t.x, sw, p.pad_left, kw, cx))
    if arith.int_mode:
        return _avg_int(total, np.broadcast_to(cnt, total.shape), fa, fo, st)
    return (total / cnt).astype(np.float32)


def _avg_int(acc, cnt, fa, fo, st):
    """int16 average: round(sum * 2**(fo - fa) / count) in integers, per output."""
    acc = np.asarray(acc, np.int64)
    cnt = np.asarray(cnt, np.int64)
    out = np.empty(acc.shape, np.int16)
    for c in np.unique(cnt):   # one divisor per distinct count (border windows differ)
        sel = np.broadcast_to(cnt == c, acc.shape)
        q, sat = rescale(acc[sel], fo - fa, int(c))
        out[sel] = q
        st.output_saturations += sat
    return out


def _drive_avg_int(st, L, m, arith, compute, finalize):
    """_drive for int16 avg/gap: the tile result is (sum, count); the c loop is trivial."""
    def comp(t):
        s, cnt = compute(t)
        comp.cnt = np.broadcast_to(cnt, s.shape)
        return s

    def fin(t, acc):
        finalize(t, (acc, comp.cnt))
    _drive(st, L, m, arith, 1, False, comp, fin)
