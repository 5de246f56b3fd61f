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

The parts, one module each beside this one: :mod:`.tiles` (the tile loops and input
windows), :mod:`.fixed_point` (int16 scales, quantization, rescaling), :mod:`.arith` (the
two arithmetic strategies), :mod:`.tiled_layers` (the tile kernels and the layer drivers)
and :mod:`.layer_stats`; this module is the executor and re-exports their public names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..diagnostics import Location, SqnxtError
from ..ir.core import Op
from ..ir.graph import Graph
from .arith import NO_ACT, _Fp32, _Int16
from .executor import Interpreter
from .fixed_point import (FRAC_MAX, FRAC_MIN, INT16_MAX, INT16_MIN, QTensor, frac_bits, quantize, rescale,
                          shared_scales)
from .layer_stats import LayerStats
from .memory import MemoryImage
from .tiled_layers import _run_layer, _store_tiles, runs_whole
from ..cost.tiling import Tile, pooled_geometry, tile_loops, tile_ranges, window
from .tiles import fetch, windows

__all__ = ["PRECISIONS", "TOLERANCES", "TiledExecutor", "TiledRun", "execute_tiled", "run_tiled",
           "FRAC_MAX", "FRAC_MIN", "INT16_MAX", "INT16_MIN", "LayerStats", "NO_ACT", "QTensor",
           "Tile", "fetch", "frac_bits", "pooled_geometry", "quantize", "rescale", "runs_whole",
           "tile_loops", "tile_ranges", "window", "windows"]

#: (rtol, atol) of ``sqnxtc check --tiled`` per precision, in the rule of
#: :func:`sqnxt_compiler.reference.check.compare` (atol scaled by max(1, max|ref|)).
#: fp32: the plain check's defaults (tiling only reorders float32 sums: measured errors
#: equal the plain executor's, ~1e-6).  int16: 2.5x the worst error measured on the zoo's
#: 19 SqueezeNext models (max|d| / max|ref| <= 9.9e-4 over 3 seeds; docs/tiled-execution.md).
TOLERANCES: dict[str, tuple[float, float]] = {"fp32": (1e-4, 1e-5), "int16": (0.0, 2.5e-3)}
PRECISIONS = ("fp32", "int16")


@dataclass
class TiledRun:
    outputs: dict[str, np.ndarray]
    layers: list[LayerStats]
    precision: str
    unscheduled: list[str]    # op names run with the plain kernels
    maxabs: dict = field(default_factory=dict)   # op id -> max |float result|


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
        self._stacks: dict[int, dict] = {}     # a fused stack's members seen so far, by stack

    def execute(self, inputs: dict[str, np.ndarray]) -> TiledRun:
        """One run from fresh statistics: outputs and stats as a :class:`TiledRun`."""
        self.layers, self.unscheduled, self.maxabs, self._stacks = [], [], {}, {}
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
        if "stack" in op.attrs:          # a fused stack's member: the stack runs at its last
            y = self._stack_member(op, args)
        elif "schedule" in op.attrs:
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

    def _stack_member(self, op: Op, args: list):
        """A member of a fused stack (``stack`` attribute): its operands are kept and, but
        for the last member, an all-zero placeholder of its result's shape stands for it
        (nothing outside the stack reads a member's result but the last's: the plan's
        ranges); at the last member the stack runs band by band (:func:`.stack_run.run_stack`)
        and every member's statistics of its band layers are recorded (``layers``, one per
        band layer), with the members' largest values for the int16 calibration."""
        from .stack_run import run_stack

        sa = op.attrs["stack"]
        st = sa.stack
        mine = self._stacks.setdefault(sa.index, {})
        mine[sa.member] = (op, args)
        if sa.member < len(st.layers) - 1:
            shape = op.result.type.shape
            if self.arith.int_mode:
                return QTensor(np.zeros(shape, np.int16), self.arith.out_frac(op))
            return np.zeros(shape, np.float32)
        ops = [mine[k][0] for k in range(len(st.layers))]
        run = run_stack(st, ops, [mine[k][1] for k in range(len(st.layers))], self.arith)
        self.layers.extend(x for x in run.stats if x is not None)
        if getattr(self.arith, "probe", False):
            for o, y in zip(ops, run.outputs):
                self.maxabs[o.id] = float(np.max(np.abs(y))) if y.size else 0.0
        del self._stacks[sa.index]
        return run.outputs[-1]

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
        acc: dict[int, float] = {}       # per op (a stack's member: over its band layers)
        for st in cal.layers:
            acc[st.op_id] = max(acc.get(st.op_id, 0.0), st.acc_max)
        arith = _Int16(psum_bits, shared_scales(graph, cal.maxabs), acc)
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
