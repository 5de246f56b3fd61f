"""16-bit fixed point: per-tensor power-of-two scales, quantization and integer rescaling.

A tensor's scale is ``frac`` fractional bits (:func:`frac_bits` of its max |value|, so that
the largest fits int16); :func:`quantize` rounds to nearest, :func:`rescale` moves
integers to another scale (optionally dividing by a count) rounding half up; both
saturate to int16.  :class:`QTensor` is an int16 activation with its ``frac``.  The rules
of the tiled int16 execution that uses them: :class:`sqnxt_compiler.reference.arith._Int16`
and docs/tiled-execution.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.core import view_origin

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
#: fractional bits of any tensor are clamped to this range
FRAC_MIN, FRAC_MAX = -32, 32
#: float64 holds every partial sum of int16 x int16 products exactly while the contraction
#: is shorter than 2**53 / 2**30
_EXACT_F64_TERMS = 1 << 22


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


def shared_scales(graph, calib: dict[int, float]) -> dict[int, float]:
    """``calib`` (op id -> max |result| in the calibration run) with every part of a concat
    written in place (an ``in_place_parts`` op's operands) taking the concat's range: the
    layers producing the parts write int16 words of one tensor, so they write them at its
    scale (the concat's max |value| is the largest of its parts'); a concat nested in
    another takes the outermost one's."""
    out = dict(calib)
    for op in reversed(graph.ops()):     # the outermost first: a nested concat takes its range
        if op.has_trait("in_place_parts") and op.id in out:
            for v in op.operands:
                src = view_origin(v).owner
                if src is not None:
                    out[src.id] = out[op.id]
    return out


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
