"""The two arithmetic strategies of a tiled execution: float32 (:class:`_Fp32`) and 16-bit
fixed point with wide accumulators (:class:`_Int16`).

The layer drivers (:mod:`sqnxt_compiler.reference.tiled_layers`) cut the operands into
tiles and loop over them; a strategy says in which number format: the arrays the tiles
are cut from (``tensor``), the bias in the accumulator's scale (``bias``), a tile's
partial sums (``part``) and how a stored partial sum saturates (``store``), the
finalization of an output tile (bias, activation, residual, requantization: ``pre``,
``finish``, ``requant``) and the output value (``out``, ``out_frac``).
"""
from __future__ import annotations

import math

import numpy as np

from .executor import activate
from .fixed_point import FRAC_MIN, QTensor, frac_bits, quantize, rescale
from .layer_stats import LayerStats
from ..cost.tiling import largest_cover

#: No activation, as (act, alpha, beta) (executor.act_of)
NO_ACT = ("none", 0.0, 0.0)


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
        if L.epilogue.pool:
            acc = largest_cover(L, m) * m.tk
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
