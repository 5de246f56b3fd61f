"""Run a fused stack band by band, as its schedules say (docs/cost-model.md, "Fused stacks";
the stack: :class:`sqnxt_compiler.schedule.stacks.Stack`).

:func:`run_stack` walks the stack's bands in order and, in each, its members in order, each
as its band layer: the tiled layer driver (:func:`.tiled_layers._run_layer` with ``band``)
on the rows and columns the band layer reads, cut from the stack's DRAM input (a member
whose data input or residual is no member) or from the window of the member it reads.
Every member's output is kept whole here (a numpy array per member) but a band may read
only what the bands before it and this one computed: each read is checked against the rows
and columns computed so far (a stack whose bands read what no band computed fails with a
one-line error, never silently), and keep mode's halo is read from what an earlier band
computed.  Per work item it returns the layer statistics
(:class:`.layer_stats.LayerStats`: tiles, MACs, transfers), in the order of
:func:`sqnxt_compiler.cost.stack.stack_work`, to compare with the cost model's reports of
the same layers (a halo move: no transfer, the words it moves).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cost.stack import bands, input_cols, input_rows
from ..diagnostics import SqnxtError
from ..ir.core import Op
from .fixed_point import QTensor
from .layer_stats import LayerStats
from .tiled_layers import _run_layer


@dataclass
class StackRun:
    """A stack's run: every member's output (whole; int16: a QTensor) and the statistics of
    its work in order (None for a halo move), with the halo words the keep mode moved."""

    outputs: list
    stats: list
    halo_words: int


def _cut(v, rows: tuple[int, int], cols: tuple[int, int]):
    """Rows ``[a, b)`` and columns ``[c, d)`` of an (N, C, H, W) array or QTensor."""
    (a, b), (c, d) = rows, cols
    if isinstance(v, QTensor):
        return QTensor(v.q[:, :, a:b, c:d], v.frac)
    return v[:, :, a:b, c:d]


def run_stack(stack, ops: list[Op], args: list[list], arith) -> StackRun:
    """Run ``stack`` (its members the ops ``ops``, in order; ``args[k]``: member k's operands
    as the executor passes them, the operand a member reads from another member ignored)
    band by band (module doc), in ``arith``'s precision (int16: a band layer's stored
    partial sums as wide as its schedule's, ``layer_psum_bits``)."""
    layers, cfg, links = list(stack.layers), stack.config, stack.links
    n = len(layers)
    bs = bands(layers, cfg.h, cfg.mode, cfg.w, links)
    outs = [None] * n
    done = [np.zeros((L.P, L.Q), dtype=bool) for L in layers]
    stats: list = []
    halo = 0
    work = iter(stack.schedules)
    for b in bs:
        for k, (op, L) in enumerate(zip(ops, layers)):
            if b.area(k):
                sched = next(work, None)
                rows, cols = b.rows[k], b.cols[k]
                want = (rows[1] - rows[0], cols[1] - cols[0])
                if sched is None or (sched.layer.P, sched.layer.Q) != want:
                    raise SqnxtError(f"{stack.describe()}: band {b.index} of '{L.name}' computes {want[0]}x{want[1]} "
                                     f"outputs; its schedule is "
                                     f"{'missing' if sched is None else f'for {sched.layer.P}x{sched.layer.Q}'}")
                src, res = links[k]
                a = list(args[k])
                ins = (input_rows(L, *rows), input_cols(L, *cols))
                a[0] = _cut(args[k][0] if src is None else _read(outs, done, src, ins, L), *ins)
                if res is not None:
                    a[-1] = _read(outs, done, res, (rows, cols), L)
                if L.epilogue.residual:
                    a[-1] = _cut(a[-1], rows, cols)
                pb = arith.layer_psum_bits(sched) if arith.int_mode else 64
                y, st = _run_layer(op, a, arith, False, pb, band=(sched.layer, sched.mapping))
                if outs[k] is None:
                    shape = (y.shape[0], L.K, L.P, L.Q)
                    outs[k] = (QTensor(np.zeros(shape, np.int16), y.frac) if isinstance(y, QTensor)
                               else np.zeros(shape, np.float32))
                (r0, r1), (c0, c1) = rows, cols
                if isinstance(y, QTensor):
                    outs[k].q[:, :, r0:r1, c0:c1] = y.q
                else:
                    outs[k][:, :, r0:r1, c0:c1] = y
                done[k][r0:r1, c0:c1] = True
                stats.append(st)
            if cfg.mode == "keep" and k < n - 1:
                kept = b.area(k, needed=True) - b.area(k)
                if kept > 0:
                    next(work)
                    stats.append(None)
                    halo += kept * L.K
    if next(work, None) is not None:
        raise SqnxtError(f"{stack.describe()}: more schedules than work")
    return StackRun(outs, stats, halo)


def _read(outs, done, j: int, area, reader) -> object:
    """Member ``j``'s output, after checking that the rows and columns ``area`` a band of
    ``reader`` reads from it were computed by this band or an earlier one."""
    (a, b), (c, d) = area
    if outs[j] is None or not done[j][a:b, c:d].all():
        raise SqnxtError(f"stack: '{reader.name}' reads rows {a}:{b}, columns {c}:{d} of member {j}, "
                         f"which no band computed yet")
    return outs[j]


__all__ = ["StackRun", "run_stack", "LayerStats"]
