"""Tiled execution: run every scheduled layer tile by tile, exactly as its mapping says.

``run_tiled(graph, inputs, precision=...)`` runs the graph op by op like
:func:`sqnxt_compiler.reference.executor.run` (:class:`TiledExecutor` is the executor's
``Interpreter`` with ``run_op`` overridden), but every op that carries a ``schedule``
attribute (conv, fc, max/avg pool, global average pool, element-wise add) executes as the
accelerator would run it (docs/tiled-execution.md):

* the groups one after another (ordinary and grouped conv; channel-wise layers are one
  group whose k loop runs over the channels and whose c loop is trivial, as in the cost
  model), and inside each group the four DRAM-level tile loops x, y, c, k nested in the
  mapping's order, outermost first, with ragged last tiles;
* per tile, the input block the tile's outputs read is fetched from the (unpadded) input
  tensor with its halo (``(t - 1) * stride + kernel`` rows/columns), and zero padding (or
  -inf for max pooling) is added only on the sides where that block runs over the border;
* the tile's partial sums over its c range are added to the output tile's psum buffer;
  when the last input channel of the group has been accumulated the output tile is
  finalized (bias, fused activation, the fused residual add's tile and the activation
  after it, requantization in int16) and written, once.

Inside a tile the arithmetic is numpy (the array's spatial unrolling is not simulated MAC
by MAC).  Per layer the run counts tiles, MACs (element operations for pool/gap/add),
finalized output elements, and the DMA transfers implied by one resident tile per tensor
(a tile is fetched when the loop nest moves to a different tile of that tensor; an output
tile is written back whenever it stops being resident and read back when a later visit
finds a partial sum): :class:`LayerStats`, comparable with the cost model's
``CostReport.tiles_n``/``transfers``.

``precision="int16"``: 16-bit fixed point with per-tensor power-of-two scales and wide
accumulators (the rules are in docs/tiled-execution.md and in :class:`_Int16`).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from ..cost.layer import ELEMENT_KINDS
from ..diagnostics import Location, SqnxtError
from ..ir.core import Op
from ..ir.graph import Graph
from ..layers import layer_of, stands_in
from .executor import Interpreter, act_of, activate
from .memory import MemoryImage

#: No activation, as (act, alpha, beta) (executor.act_of)
NO_ACT = ("none", 0.0, 0.0)

#: (rtol, atol) of ``sqnxtc check --tiled`` per precision, in the rule of
#: :func:`sqnxt_compiler.reference.check.compare` (atol scaled by max(1, max|ref|)).
#: fp32: the plain check's defaults (tiling only reorders float32 sums: measured errors
#: equal the plain executor's, ~1e-6).  int16: 2.5x the worst error measured on the zoo's
#: 19 SqueezeNext models (max|d| / max|ref| <= 9.9e-4 over 3 seeds; docs/tiled-execution.md).
TOLERANCES: dict[str, tuple[float, float]] = {"fp32": (1e-4, 1e-5), "int16": (0.0, 2.5e-3)}
PRECISIONS = ("fp32", "int16")

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
#: fractional bits of any tensor are clamped to this range
FRAC_MIN, FRAC_MAX = -32, 32
#: float64 holds every partial sum of int16 x int16 products exactly while the contraction
#: is shorter than 2**53 / 2**30
_EXACT_F64_TERMS = 1 << 22


# --------------------------------------------------------------------------- statistics
@dataclass
class LayerStats:
    """What one scheduled layer's tiled execution did."""

    name: str
    op: str
    op_id: int
    kind: str
    layer: object             # the cost model's Layer
    mapping: object           # the Mapping executed
    tiles: int = 0            # tile iterations executed (all groups, all batch elements)
    tiles_n: dict = field(default_factory=dict)   # distinct tiles per loop {"x","y","c","k"}
    groups: int = 1
    macs: int = 0             # MACs computed (element operations for pool/gap/add)
    outputs: int = 0          # output elements finalized (written)
    output_elements: int = 0  # size of the output tensor
    writes_min: int = 0       # fewest / most times any output element was finalized
    writes_max: int = 0
    transfers: dict = field(default_factory=lambda: {"input": 0, "weights": 0, "outputs": 0,
                                                     "psum_reads": 0, "residual": 0})
    acc_max: float = 0.0         # max |stored partial sum| or |sum + bias| (fp32 with probe;
                                 # int16: in accumulator units, see acc_bits)
    psum_bits: int = 0           # int16: width a stored partial sum saturates to
    psum_saturations: int = 0    # int16: partial sums clipped to psum_bits
    output_saturations: int = 0  # int16: outputs clipped to int16 on requantization
    fracs: dict = field(default_factory=dict)      # int16: fractional bits in/weights/acc/out
    coverage: np.ndarray | None = None  # trace=True: times each (k, c-in-group, p, q) was computed

    @property
    def tiles_expected(self) -> int:
        return self.groups * math.prod(self.tiles_n.values())

    @property
    def acc_bits(self) -> int:
        """int16: bits (sign included) the largest stored partial sum needed."""
        return int(self.acc_max).bit_length() + 1


@dataclass
class TiledRun:
    outputs: dict[str, np.ndarray]
    layers: list[LayerStats]
    precision: str
    unscheduled: list[str]    # op names run with the plain kernels
    maxabs: dict = field(default_factory=dict)   # op id -> max |float result|


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


# --------------------------------------------------------------------------- arithmetic
def frac_bits(maxabs: float) -> int:
    """Fractional bits of a power-of-two scale: the largest f (clamped to FRAC_MIN..FRAC_MAX)
    with round(maxabs * 2**f) <= 32767, so the tensor's largest |value| fits int16."""
    if not np.isfinite(maxabs) or maxabs <= 0:
        return 15 if maxabs == 0 else FRAC_MIN
    f = math.floor(math.log2(INT16_MAX / maxabs))
    while f > FRAC_MIN and round(maxabs * 2.0 ** f) > INT16_MAX:
        f -= 1
    while f < FRAC_MAX and round(maxabs * 2.0 ** (f + 1)) <= INT16_MAX:
        f += 1
    return max(FRAC_MIN, min(FRAC_MAX, f))


def quantize(x: np.ndarray, f: int) -> np.ndarray:
    """int16 of x * 2**f, round to nearest (ties to even), saturating."""
    return np.clip(np.rint(np.asarray(x, np.float64) * 2.0 ** f), INT16_MIN, INT16_MAX).astype(np.int16)


def rescale(acc: np.ndarray, shift: int, count: int = 1) -> tuple[np.ndarray, int]:
    """int16 of round(acc * 2**shift / count): integer arithmetic, round half up
    (floor((2n + d) / 2d)), saturating.  Returns (values, number of saturated elements)."""
    acc = np.asarray(acc, dtype=np.int64)
    shift = max(-62, min(60, shift))
    if shift >= 0:
        # anything with |acc| * 2**shift / count > 2**16 saturates anyway: clip first so
        # that the left shift cannot overflow int64
        bound = ((1 << 16) * count >> shift) + 1
        num, den = np.clip(acc, -bound, bound) << shift, count
    else:
        num, den = acc, count << min(-shift, 40)
    q = np.floor_divide(2 * num + den, 2 * den)
    sat = int(np.count_nonzero((q < INT16_MIN) | (q > INT16_MAX)))
    return np.clip(q, INT16_MIN, INT16_MAX).astype(np.int16), sat


@dataclass
class QTensor:
    """An int16 activation with ``frac`` fractional bits: value = q * 2**-frac."""

    q: np.ndarray
    frac: int

    @property
    def shape(self):
        return self.q.shape

    def dequantize(self) -> np.ndarray:
        return (self.q.astype(np.float64) * 2.0 ** -self.frac).astype(np.float32)


class _Fp32:
    """float32 tiles, float32 partial sums; bias and activation on the finished sum."""

    name = "fp32"
    int_mode = False

    def __init__(self, probe: bool = False):
        self.probe = probe          # record every layer's max |partial sum| (calibration)

    def tensor(self, v, st: LayerStats, role: str):
        """(array the tiles are cut from, fractional bits or None)."""
        return np.asarray(v, dtype=np.float32), None

    def bias(self, b, fa):
        return None if b is None else np.asarray(b, dtype=np.float32)

    def part(self, arr):
        return np.asarray(arr, dtype=np.float32)

    def store(self, acc, st):
        if self.probe and acc.size:
            st.acc_max = max(st.acc_max, float(np.max(np.abs(acc))))
        return acc

    def pre(self, acc, bias, act, fa, st):
        """``act(acc + bias)``, in the accumulator's number format."""
        y = acc
        if bias is not None:
            y = y + bias.reshape(-1, 1, 1)
            if self.probe and y.size:
                st.acc_max = max(st.acc_max, float(np.max(np.abs(y))))
        return activate(np.asarray(y, dtype=np.float32), *act)

    def requant(self, y, fa, fo, st):
        """The output format of a value in the accumulator's: float32 as is."""
        return np.asarray(y, dtype=np.float32)

    def finish(self, acc, bias, act, fa, fo, st, res=None, post_act=NO_ACT):
        """``post_act(act(acc + bias) + res)`` (``res``: the residual tile, or None); the
        activations as (act, alpha, beta)."""
        y = self.pre(acc, bias, act, fa, st)
        if res is not None:
            y = y + res[0]
            if self.probe and y.size:
                st.acc_max = max(st.acc_max, float(np.max(np.abs(y))))
            y = activate(np.asarray(y, dtype=np.float32), *post_act)
        return y

    def out(self, y, fo):
        return y

    def out_frac(self, op):
        return None


class _Int16:
    """16-bit fixed point as the accelerator computes (docs/tiled-execution.md):

    * every activation tensor is int16 with its own power-of-two scale (``frac`` bits:
      :func:`frac_bits` of the tensor's max |value| in a calibration run: the fp32 tiled
      execution of the same input); weights likewise, per tensor, from their own values,
      lowered when needed so that the layer's largest partial sum in the calibration run
      keeps one bit of headroom in ``psum_bits``: frac_in + frac_w <= psum_bits - 2 -
      log2(max |psum|);
    * products accumulate exactly (tile sums in float64 hold integers below 2**53) and
      every stored partial sum (the end of each c tile) saturates to ``psum_bits``;
    * bias is added in the accumulator's scale (frac_in + frac_w), the fused activation is
      applied there, a fused residual (int16, its own frac bits) is aligned to that scale
      (exact when its frac bits are fewer, else rounded half up) and added, the activation
      after the add is applied, and the result is requantized to int16 with the output's
      frac bits, round half up, saturating.
    """

    name = "int16"
    int_mode = True

    def __init__(self, psum_bits: int | None, calib: dict[int, float], calib_acc: dict[int, float]):
        self.psum_bits = psum_bits
        self.calib = calib            # op id -> max |output| in the calibration run
        self.calib_acc = calib_acc    # op id -> max |partial sum| of the layer in that run

    def layer_psum_bits(self, sched) -> int:
        if self.psum_bits is not None:
            return self.psum_bits
        # the schedule's output footprint is acc*pw words, pw = ceil(psum_bits/16), acc the
        # accumulator tile: tx*ty*tk, or with a fused pool the largest window cover x tk
        # (plus the pooled tile tx*ty*tk, one word each)
        m, L = sched.mapping, sched.layer
        out = sched.cost.footprint["outputs"]
        if L.pool:
            acc = _largest_cover(L, m) * m.tk
            out -= m.tx * m.ty * m.tk
        else:
            acc = m.tx * m.ty * m.tk
        return 16 * max(1, out // acc)

    def tensor(self, v, st: LayerStats, role: str, fmax: int | None = None):
        if isinstance(v, QTensor):
            q, f = v.q, v.frac
        else:
            a = np.asarray(v, dtype=np.float64)
            f = frac_bits(float(np.max(np.abs(a))) if a.size else 0.0)
            if fmax is not None:
                f = max(FRAC_MIN, min(f, fmax))
            q = quantize(a, f)
        st.fracs[role] = f
        return q.astype(np.float64), f

    def weight_frac_limit(self, op, fi: int) -> int | None:
        """Largest frac_w that keeps the calibrated max |psum| below 2**(psum_bits - 2)."""
        a = self.calib_acc.get(op.id, 0.0)
        if not a > 0 or self.cur_psum_bits >= 64:
            return None
        return math.floor(math.log2(2.0 ** (self.cur_psum_bits - 2) / a)) - fi

    def bias(self, b, fa):
        if b is None:
            return None
        lim = 1 << (self.cur_psum_bits - 1)
        return np.clip(np.rint(np.asarray(b, np.float64) * 2.0 ** fa), -lim, lim - 1).astype(np.int64)

    def part(self, arr):
        arr = np.asarray(arr)
        return arr.astype(np.int64) if arr.dtype.kind == "f" else arr

    def store(self, acc, st):
        if acc.size:
            st.acc_max = max(st.acc_max, float(np.max(np.abs(acc))))
        lim = 1 << (self.cur_psum_bits - 1)
        if self.cur_psum_bits < 64:
            bad = (acc < -lim) | (acc > lim - 1)
            n = int(np.count_nonzero(bad))
            if n:
                st.psum_saturations += n
                acc = np.clip(acc, -lim, lim - 1)
        return acc

    @staticmethod
    def _act(y, act, fa):
        """``act`` = (name, alpha, beta) on int64 values of scale 2**-fa: relu and relu6
        exactly; any other function on the values' real numbers, rounded back to the scale
        (the epilogue unit's function at the accumulator's precision)."""
        act, alpha, beta = act
        if act not in ("none", "relu", "relu6"):
            real = np.asarray(y, dtype=np.float64) * 2.0 ** -fa
            return np.floor(activate(real, act, alpha, beta) * 2.0 ** fa + 0.5).astype(np.int64)
        if act == "relu":
            return np.maximum(y, 0)
        if act == "relu6":
            return np.clip(y, 0, int(round(6 * 2.0 ** fa)))
        return y

    def pre(self, acc, bias, act, fa, st):
        """``act(acc + bias)`` in the accumulator's scale (int64, not requantized)."""
        y = acc if bias is None else acc + bias.reshape(-1, 1, 1)
        return self._act(np.asarray(y, dtype=np.int64), act, fa)

    def requant(self, y, fa, fo, st):
        """Requantize accumulator-scale values to int16 with ``fo`` fractional bits."""
        q, sat = rescale(np.asarray(y, dtype=np.int64), fo - fa)
        st.output_saturations += sat
        return q

    def finish(self, acc, bias, act, fa, fo, st, res=None, post_act=NO_ACT):
        y = self.pre(acc, bias, act, fa, st)
        if res is not None:
            r, fr = res
            if fa >= fr:
                aligned = r.astype(np.int64) << (fa - fr)
            else:
                aligned = np.floor(r * 2.0 ** (fa - fr) + 0.5).astype(np.int64)
            y = self._act(y + aligned, post_act, fa)
        q, sat = rescale(y, fo - fa)
        st.output_saturations += sat
        return q

    def out(self, y, fo):
        return QTensor(y, fo)

    def out_frac(self, op):
        return frac_bits(self.calib.get(op.id, 0.0))


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
    """The DRAM-level loop nest of one batch element: tile by tile in the mapping's order,
    psums across c tiles, finalization after the group's last input channel.  Transfers
    follow the layer's operand homes (docs/memory-planning.md): a resident input tile is
    read in place (no transfer), a final output tile of a resident output is copied into
    the resident tensor (no write-back); partial sums always spill through DRAM."""
    cw = L.channelwise
    in_dram = n_inputs - L.resident_inputs
    out_dram = 0 if L.resident_output else 1
    psum: dict[tuple, tuple[np.ndarray, int]] = {}   # partial output tiles in the buffer/DRAM
    res_in = res_w = res_out = None
    seen = {"x": set(), "y": set(), "c": set(), "k": set()}
    for t in tile_loops(L, m):
        for name in seen:
            seen[name].add(getattr(t, name))
        # one resident tile per tensor: fetch when the loop nest moves to another tile
        in_key = (t.g, t.x, t.y, t.k if cw else t.c)
        if in_key != res_in:
            st.transfers["input"] += in_dram
            res_in = in_key
        if has_weights and (t.g, t.c, t.k) != res_w:
            st.transfers["weights"] += 1
            res_w = (t.g, t.c, t.k)
        out_key = (t.g, t.x, t.y, t.k)
        if out_key != res_out:
            if res_out is not None:                   # write back: partial, or final unless resident
                st.transfers["outputs"] += 1 if res_out in psum else out_dram
            if out_key in psum:
                st.transfers["psum_reads"] += 1       # a later visit reads its psums back
            res_out = out_key
        part = arith.part(compute(t))
        st.tiles += 1
        if st.coverage is not None:   # trace: which (k, c, p, q) this tile computed
            ks = slice(t.g * L.Kg + t.k[0], t.g * L.Kg + t.k[1])
            st.coverage[ks, t.c[0]:t.c[1], t.y[0]:t.y[1], t.x[0]:t.x[1]] += 1
        prev = psum.pop(out_key, None)
        acc = part if prev is None else prev[0] + part
        done = (0 if prev is None else prev[1]) + (t.c[1] - t.c[0])
        acc = arith.store(acc, st)
        if _complete(done, L):
            finalize(t, acc)
        else:
            psum[out_key] = (acc, done)
    if res_out is not None:
        st.transfers["outputs"] += 1 if res_out in psum else out_dram
    if psum:
        raise SqnxtError(f"{len(psum)} output tiles never received all {L.Cg} input channels")
    st.tiles_n = {k: len(v) for k, v in seen.items()}


def _run_layer(op: Op, args: list, arith, trace: bool, cur_psum_bits: int) -> tuple[object, LayerStats]:
    sched = op.attrs["schedule"].schedule
    L, m = sched.layer, sched.mapping
    fresh = layer_of(op)
    if fresh is None or fresh.shape_key() != L.shape_key():   # sparsity may differ
        raise SqnxtError(f"the schedule's layer ({L.describe()}) does not match the op")
    st = LayerStats(L.name, op.name, op.id, L.kind, L, m, groups=L.eff_groups)
    arith.cur_psum_bits = cur_psum_bits
    if arith.int_mode:
        st.psum_bits = cur_psum_bits
    out_shape = op.result.type.shape
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
        n_wb = len(args) - (1 if L.residual else 0)      # x, w[, b] before the residual
        b = arith.bias(args[2] if n_wb > 2 else None, fa)
        if arith.int_mode and L.Cg * L.R * L.S >= _EXACT_F64_TERMS:
            raise SqnxtError("contraction too long for exact int16 tile sums")
    res = res_f = None
    if L.residual:
        res, res_f = arith.tensor(args[-1], st, "residual")
        res = res.reshape(N, L.K, L.P, L.Q)
    res_dram = 1 if L.residual and not L.resident_residual else 0
    if arith.int_mode:
        st.fracs.update(acc=fa, out=fo)

    K, P, Q = L.K, L.P, L.Q
    y = np.zeros((N, K, P, Q), dtype=np.int16 if arith.int_mode else np.float32)
    # a fused pool: the tile loops run over the pooled output; each tile computes the conv
    # outputs its windows cover (Lc: the conv's own geometry, conv_tile: the cover)
    Lc, conv_tile = (pooled_geometry(L) if L.pool else (L, lambda t: t))
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
        elif L.pool:                  # act on the covered conv outputs, pool in the buffer
            out = _pool_tile(arith.pre(acc, bt, act, fa, st), t, conv_tile(t), L, op.attrs["pool"],
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


def pooled_geometry(L):
    """(the conv's own layer, tile -> the conv tile its pool windows cover) of a conv
    with a fused pool (``sqnxt_compiler.cost.features.pool_cover`` per axis)."""
    from ..cost.features import pool_cover

    Lc = L.without_pool()
    py = (L.pool_R, L.pool_stride_h, L.pool_pad_top, L.conv_P)
    px = (L.pool_S, L.pool_stride_w, L.pool_pad_left, L.conv_Q)
    return Lc, lambda t: Tile(t.g, pool_cover(*t.x, px), pool_cover(*t.y, py), t.c, t.k)


def _largest_cover(L, m) -> int:
    """The largest (rows x columns) conv cover of any pooled tile of mapping ``m``: the
    cost model's ``C_ym * C_xm``."""
    from ..cost.features import pool_cover, tiles

    cy = max(b - a for a, b in (pool_cover(*r, (L.pool_R, L.pool_stride_h, L.pool_pad_top, L.conv_P))
                                for r in tiles(L.P, m.ty)))
    cx = max(b - a for a, b in (pool_cover(*r, (L.pool_S, L.pool_stride_w, L.pool_pad_left, L.conv_Q))
                                for r in tiles(L.Q, m.tx)))
    return cy * cx


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
    kh, kw, sh, sw = L.pool_R, L.pool_S, L.pool_stride_h, L.pool_stride_w
    a_y, a_x = t.y[0] * sh - L.pool_pad_top, t.x[0] * sw - L.pool_pad_left
    b_y, b_x = (t.y[1] - 1) * sh - L.pool_pad_top + kh, (t.x[1] - 1) * sw - L.pool_pad_left + kw
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
    cnt = np.outer(_pool_counts(*t.y, sh, L.pool_pad_top, kh, cy), _pool_counts(*t.x, sw, L.pool_pad_left, kw, cx))
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


# --------------------------------------------------------------------------- the graph
class TiledExecutor(Interpreter):
    """The reference :class:`~sqnxt_compiler.reference.executor.Interpreter` with one step
    overridden: :meth:`run_op` runs an op that carries a ``schedule`` tile by tile
    (:func:`_run_layer`); any other op runs with the parent's numpy kernel.

    ``arith`` is the tile arithmetic (:class:`_Fp32` or :class:`_Int16`); in int16 every
    float value between ops is a :class:`QTensor`.  One run's statistics accumulate on the
    instance: ``layers`` (a :class:`LayerStats` per scheduled op), ``unscheduled`` (names
    of the ops run with the plain kernels) and, when ``arith.probe``, ``maxabs`` (op id ->
    max |float result|, the int16 calibration).  :meth:`execute` resets them.
    """

    failure = "tiled execution failed"

    def __init__(self, graph: Graph, arith, *, trace: bool = False,
                 observe: Callable[[Op, np.ndarray], None] | None = None):
        super().__init__(graph, observe=observe)
        self.arith = arith
        self.trace = trace
        self.layers: list[LayerStats] = []
        self.unscheduled: list[str] = []
        self.maxabs: dict[int, float] = {}

    def execute(self, inputs: dict[str, np.ndarray]) -> TiledRun:
        """One run from fresh statistics: outputs and stats as a :class:`TiledRun`."""
        self.layers, self.unscheduled, self.maxabs = [], [], {}
        outputs = self.run(inputs)
        return TiledRun(outputs, self.layers, self.arith.name, self.unscheduled, self.maxabs)

    def begin(self) -> None:
        """Every run starts with a fresh memory image (inputs and constants in DRAM)."""
        self.image = MemoryImage(self.graph)
        self.image.start(self.graph)

    def bind(self, op: Op, inputs: dict[str, np.ndarray]):
        """The input array; in int16 a float input is quantized with its own scale."""
        arr = super().bind(op, inputs)
        if self.arith.int_mode and arr.dtype.kind == "f":
            f = frac_bits(float(np.max(np.abs(arr))) if arr.size else 0.0)
            return QTensor(quantize(arr, f), f)
        return arr

    def run_op(self, op: Op, args: list):
        """A scheduled op tile by tile (its stats appended to ``layers``); any other op with
        the parent's kernel on dequantized operands, its float result quantized in int16
        (constants excepted: a layer quantizes the weights it reads itself).  First the
        memory image checks the words it reads and records those it writes."""
        self.image.step(op)
        if "schedule" in op.attrs:
            sched = op.attrs["schedule"].schedule
            if runs_whole(op, sched.layer):
                ref = super().run_op(op, [self.as_array(a) for a in args])
                y, st = _store_tiles(op, ref, self.arith, self.trace)
            else:
                pb = self.arith.layer_psum_bits(sched) if self.arith.int_mode else 64
                y, st = _run_layer(op, args, self.arith, self.trace, pb)
            self.layers.append(st)
        else:
            self.unscheduled.append(op.name)
            y = super().run_op(op, [self.as_array(a) for a in args])
            if self.arith.int_mode and y.dtype.kind == "f" and op.name != "sqnxt.constant":
                f = self.arith.out_frac(op)
                y = QTensor(quantize(y, f), f)
        if getattr(self.arith, "probe", False) and y.dtype.kind == "f":
            self.maxabs[op.id] = float(np.max(np.abs(y))) if y.size else 0.0
        return y

    def collect(self, op: Op, args: list) -> dict[str, np.ndarray]:
        """The outputs, after the memory image checks they are in DRAM."""
        try:
            self.image.step(op)
        except SqnxtError as exc:
            exc.location = exc.location or Location(file=self.graph.source, node="outputs")
            raise
        return super().collect(op, args)

    def as_array(self, value) -> np.ndarray:
        """Float values as they are; a :class:`QTensor` dequantized."""
        return value.dequantize() if isinstance(value, QTensor) else value


def execute_tiled(graph: Graph, inputs: dict[str, np.ndarray], *, precision: str = "fp32",
                  psum_bits: int | None = None, trace: bool = False,
                  observe: Callable[[Op, np.ndarray], None] | None = None) -> TiledRun:
    """Run ``graph``; scheduled ops tile by tile (module doc).  Returns outputs and stats.

    ``psum_bits`` (int16): width of a stored partial sum; default: the target's
    ``psum_bits`` as stored (whole words), recovered from each schedule's footprint.
    ``trace``: keep a per-layer coverage array of (k, c, p, q) (small graphs only).
    ``observe(op, value)``: called with every computed value (int16: dequantized).
    """
    if precision not in PRECISIONS:
        raise SqnxtError(f"unknown precision '{precision}' (known: {', '.join(PRECISIONS)})")
    if precision == "int16":
        # calibration: the fp32 tiled run of the same input gives every tensor's range and
        # every layer's largest partial sum
        cal = TiledExecutor(graph, _Fp32(probe=True)).execute(inputs)
        arith = _Int16(psum_bits, cal.maxabs, {s.op_id: s.acc_max for s in cal.layers})
    else:
        arith = _Fp32()
    res = TiledExecutor(graph, arith, trace=trace, observe=observe).execute(inputs)
    res.precision = precision
    return res


def run_tiled(graph: Graph, inputs: dict[str, np.ndarray], *, precision: str = "fp32",
              stats: list | None = None, **kw) -> dict[str, np.ndarray]:
    """Outputs of :func:`execute_tiled` (the executor interface of ``check``); the
    per-layer :class:`LayerStats` are appended to ``stats`` when given."""
    res = execute_tiled(graph, inputs, precision=precision, **kw)
    if stats is not None:
        stats.extend(res.layers)
    return res.outputs
