"""Functional simulation of a lowered program (docs/isa.md, "Functional simulation").

:func:`run_program` executes the instruction stream of a :class:`~.lower.Lowered` network in
program order on a DRAM image and a buffer image (numpy, fp32 values): LOAD and STORE copy
3-D boxes between the two, COMPUTE runs one tile from the buffer image as its descriptor
and its fields say, reading the buffer only through the instruction's addresses (the per
tile kernels of the tiled executor: :func:`~sqnxt_compiler.reference.tiled_layers._conv_part`,
``_dw_part``; :func:`~sqnxt_compiler.reference.executor.activate` for the activations).

Values are held per element: an element of ``ew`` words keeps its value in its first word
(the other words are written with 0); the image is fp32 whatever the word width, so the
simulation is the fp32 arithmetic of the tiled executor.  ``precision="int16"``: the images
hold integers (float64, exact) and the arithmetic is the tiled executor's int16 (its
calibration, :class:`~sqnxt_compiler.reference.arith._Int16`'s rules and
:mod:`~sqnxt_compiler.reference.fixed_point`'s rounding, imported: :class:`_Fixed`).

Checks, each a one-line :class:`FuncSimError` naming the instruction, its layer and the
region:

* **read before write**: a DRAM word read that neither the initial image (network inputs,
  weights, biases), a STORE nor the host (ops not on the array) wrote; a buffer word read
  that no instruction wrote since the layer (re)assigned the buffer (at each layer's first
  instruction every buffer word but the resident tensors live at the layer is forgotten);
  a bias entry not loaded in this layer;
* **overwrite of a live value**: a write over a buffer word or a DRAM word that was
  written and has not been read since (a tile overwritten before its COMPUTE or STORE read
  it; an output tile written twice);
* **tokens**: a pop from an empty counter (the verifier's rule: the n-th pop after the
  n-th push in program order), a counter past 255, counters not zero at FINISH;
* boxes outside the DRAM image or the buffer.

Ops not on the array run on the host (docs/isa.md: the program assumes their results are
in DRAM at their layout address): the graph runs op by op in the reference interpreter's
order; a scheduled op runs its layer's instructions and its value is read back from the
DRAM image (or from the buffer for a resident output); any other op runs its numpy kernel
on those values and, when the layout gives its result a DRAM region, the host writes it
there.  The host partition's ops (the ``host`` trait: a TopK / ArgMax tail) are such ops:
the lowering accepts them only when no layer reads their results (``lower._check_host_ops``),
so the program never waits for them: they run with the reference executor's kernels on
the values the program wrote to DRAM.  Each layer's simulated output is compared with the op's reference
kernel on the same (simulated) operands within fp32 tolerance (:data:`LAYER_TOL`).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from ..diagnostics import SqnxtError
from ..ir.core import view_origin
from ..reference.check import compare
from ..reference.executor import Interpreter, activate, bind_input, erf, eval_op, gelu, sigmoid
from ..reference.fixed_point import INT16_MAX, frac_bits, quantize, shared_scales
from ..reference.layer_stats import LayerStats
from ..reference.tiled_layers import _avg_int, _conv_part, _dw_part
from . import isa
from .layout import is_concat, value_key
from .lower import axis_box, const_value, param_matrix, scheduled_layers

#: (rtol, atol) of a layer's simulated output against its op's reference kernel
#: (reference/check.py's rule and defaults).
LAYER_TOL = (1e-4, 1e-5)


class FuncSimError(SqnxtError):
    """A program the functional simulator rejects (read before write, a live value
    overwritten, tokens) or a feature it does not simulate: one line."""


#: cost-model DRAM categories (CostReport.dram) by transfer
DRAM_KEYS = {"LOAD:input": "input_reads", "LOAD:weight": "weight_reads", "STORE:output": "output_writes",
             "STORE:psum": "psum_writes", "LOAD:psum": "psum_reads", "LOAD:residual": "residual_reads",
             "LOAD:bias": "bias_reads"}


@dataclass
class FuncRun:
    """The result of a functional simulation."""

    outputs: dict                                   # network outputs by name
    words: list                                     # per layer: Counter "LOAD:input" -> DRAM words
    transfers: list                                 # per layer: Counter "LOAD:input" -> transfers
    layer_err: list                                 # per layer: max abs error vs the op's reference kernel
    layer_names: list
    instructions: int = 0
    tokens: dict = field(default_factory=dict)      # pushes per counter
    seconds: float = 0.0

    def dram(self, li: int) -> dict:
        """Layer ``li``'s DRAM words in the cost model's categories (``CostReport.dram``
        keys but ``total``)."""
        c = self.words[li]
        return {v: c.get(k, 0) for k, v in DRAM_KEYS.items()}


_NEXT, _PREV = isa.NEXT_QUEUE, isa.PREV_QUEUE


class _Mem:
    """One memory image: values (fp32, one per word), written and unread masks, a name."""

    def __init__(self, name: str, words: int, dtype=np.float32):
        self.name = name
        self.val = np.zeros(words, dtype)
        self.wr = np.zeros(words, bool)
        self.unread = np.zeros(words, bool)


class _Machine:
    def __init__(self, low, graph, ops, fx=None):
        self.low, self.graph, self.ops = low, graph, ops
        self.fx = fx                 # int16: the fixed-point formats (:class:`_Fixed`), else None
        self.prog = low.program
        tgt = low.target
        self.pw = tgt.psum_words
        dt = np.float64 if fx is not None else np.float32     # int16: integers, exact in float64
        self.dram = _Mem("DRAM", max(low.layout.end, 1), dt)
        self.buf = _Mem("buffer", tgt.buffer_words, dt)
        kmax = max([d.K for d in self.prog.layers] or [1])
        self.bias = _Mem("bias memory", kmax, dt)
        self.tokens = dict.fromkeys(isa.TOKEN_COUNTERS, 0)
        self.pushes = Counter()
        self.words = [Counter() for _ in low.layers]
        self.transfers = [Counter() for _ in low.layers]
        self.pc = 0
        self.cur_layer = -1
        self.protected = []     # (name, lo, hi) buffer ranges the running layer must not write
        self.at = ""            # "instruction i (MN, layer l 'name')" of the running one

    # ------------------------------------------------------------------ naming regions
    def _where_dram(self, w: int) -> str:
        for r in self.low.layout.regions:
            if r.base <= w < r.end:
                return f"DRAM region '{r.name}' ({r.kind}) word {w - r.base}"
        return f"DRAM word {w} (no region)"

    def _where_buf(self, w: int) -> str:
        if 0 <= self.cur_layer < len(self.low.layers):
            info = self.low.layers[self.cur_layer]
            for (role, c), (a, n) in info.slots.items():
                if a <= w < a + n:
                    return f"buffer slot {role}/{c} [{a}, {a + n}) word {w - a}"
            for name, (a, n) in info.resident.items():
                if a <= w < a + n:
                    return f"resident '{name}' [{a}, {a + n}) word {w - a}"
            for name, a, n in info.live:
                if a <= w < a + n:
                    return f"resident tensor '{name}' [{a}, {a + n}) word {w - a}"
        return f"buffer word {w} (no region of the layer)"

    def _where(self, mem: _Mem, w: int) -> str:
        if mem is self.dram:
            return self._where_dram(w)
        if mem is self.buf:
            return self._where_buf(w)
        return f"bias memory entry {w}"

    def fail(self, msg: str):
        return FuncSimError(f"{self.at}: {msg}")

    # ------------------------------------------------------------------ word access
    def _bounds(self, mem: _Mem, idx: np.ndarray, what: str):
        if idx.size and (idx.min() < 0 or idx.max() >= mem.val.size):
            bad = int(idx.max()) if idx.max() >= mem.val.size else int(idx.min())
            raise self.fail(f"{what} word {bad} outside the {mem.name} ({mem.val.size} words)")

    def read(self, mem: _Mem, first: np.ndarray, ew: int, what: str) -> np.ndarray:
        """Values of the elements whose first words are ``first`` (any shape), ``ew`` words
        each, after checking every word was written."""
        first = np.asarray(first, np.int64)
        words = (first.reshape(-1, 1) + np.arange(ew)).ravel() if ew > 1 else first.ravel()
        self._bounds(mem, words, f"{what}: reads")
        ok = mem.wr[words]
        if not ok.all():
            w = int(words[np.argmin(ok)])
            raise self.fail(f"{what}: reads {self._where(mem, w)} before any write")
        mem.unread[words] = False
        return mem.val[first]

    def write(self, mem: _Mem, first: np.ndarray, ew: int, values, what: str) -> None:
        first = np.asarray(first, np.int64)
        words = (first.reshape(-1, 1) + np.arange(ew)).ravel() if ew > 1 else first.ravel()
        self._bounds(mem, words, f"{what}: writes")
        if mem is self.buf and words.size:
            lo, hi = int(words.min()), int(words.max())
            for name, a, b in self.protected:
                if lo < b and a <= hi:
                    hit = words[(words >= a) & (words < b)]
                    if hit.size:
                        raise self.fail(f"{what}: overwrites the live resident tensor '{name}' [{a}, {b}) "
                                        f"word {int(hit[0]) - a}")
        live = mem.unread[words]
        if live.any():
            w = int(words[np.argmax(live)])
            raise self.fail(f"{what}: overwrites {self._where(mem, w)}, written and not read since")
        if ew > 1:
            mem.val[words] = 0.0
        mem.val[first] = np.broadcast_to(np.asarray(values, mem.val.dtype), first.shape)
        mem.wr[words] = True
        mem.unread[words] = True

    def host_write(self, mem: _Mem, base: int, values: np.ndarray, ew: int = 1) -> None:
        """The initial image or the host: no checks, not counted as unread."""
        v = np.asarray(values, mem.val.dtype).ravel()
        first = base + np.arange(v.size) * ew
        if ew > 1:
            mem.val[base:base + v.size * ew] = 0.0
            mem.wr[base:base + v.size * ew] = True
        mem.val[first] = v
        mem.wr[first] = True

    # ------------------------------------------------------------------ layer boundary
    def enter_layer(self, li: int) -> None:
        """A new layer reassigns the buffer: only the resident tensors live at it keep
        their contents; the bias memory is reloaded."""
        self.cur_layer = li
        info = self.low.layers[li]
        keep = np.zeros(self.buf.val.size, bool)
        for a, n in info.resident.values():
            keep[a:a + n] = True
        for _name, a, n in info.live:
            keep[a:a + n] = True
        self.buf.wr &= keep
        self.buf.unread &= keep
        # the resident tensors live at the layer other than its own output: never written
        self.protected = []
        out = info.resident.get("out")
        for name, a, n in info.live:
            if out is None or (a, n) != out:
                self.protected.append((name, a, a + n))
        self.bias.wr[:] = False
        self.bias.unread[:] = False
        if self.fx is not None:
            self.fx.ar.cur_psum_bits = self.fx.layer[li]["psum_bits"]

    # ------------------------------------------------------------------ tokens
    def tokens_of(self, insn) -> None:
        q = insn.queue
        for flag, ctr in (("pop_prev", lambda: f"{_PREV[q]}->{q}"), ("pop_next", lambda: f"{_NEXT[q]}->{q}")):
            if getattr(insn, flag, 0):
                c = ctr()
                if self.tokens[c] <= 0:
                    raise self.fail(f"pops a {c} token that no earlier instruction pushed")
                self.tokens[c] -= 1
        for flag, ctr in (("push_next", lambda: f"{q}->{_NEXT[q]}"), ("push_prev", lambda: f"{q}->{_PREV[q]}")):
            if getattr(insn, flag, 0):
                c = ctr()
                self.tokens[c] += 1
                self.pushes[c] += 1
                if self.tokens[c] > 255:
                    raise self.fail(f"the {c} counter passes 255 (machine fault)")

    # ------------------------------------------------------------------ execution
    def run_until(self, stop) -> None:
        """Execute instructions from ``pc`` while ``stop(insn)`` is false."""
        insns = self.prog.insns
        while self.pc < len(insns):
            insn = insns[self.pc]
            if stop(insn):
                return
            self.step(insn)
            self.pc += 1

    def step(self, insn) -> None:
        i, mn = self.pc, insn.mnemonic
        li = getattr(insn, "layer", self.cur_layer)
        if li != self.cur_layer and mn != "FINISH":
            if li < self.cur_layer:
                raise FuncSimError(f"instruction {i} ({mn}): layer {li} after layer {self.cur_layer}")
            self.enter_layer(li)
        d = self.prog.layers[li] if 0 <= li < len(self.prog.layers) else None
        self.at = f"instruction {i} ({mn}{' ' + insn.kind if hasattr(insn, 'kind') else ''}, layer {li} " \
                  f"'{d.name if d else '?'}')"
        self.tokens_of(insn)
        if mn == "LOAD":
            self.load(insn, d)
        elif mn == "STORE":
            self.store(insn)
        elif mn == "COMPUTE":
            self.compute(insn, d)
        elif mn == "FINISH":
            if any(self.tokens.values()):
                raise self.fail(f"token counters not zero at FINISH: {self.tokens}")

    @staticmethod
    def _dram_elems(insn) -> np.ndarray:
        i2, i1, i0 = np.ogrid[:insn.n2, :insn.n1, :insn.n0]
        return insn.dram + i2 * insn.ds2 + i1 * insn.ds1 + i0 * insn.ds0

    def load(self, insn, d) -> None:
        ew = insn.ew
        vals = self.read(self.dram, self._dram_elems(insn), ew, f"LOAD {insn.kind} from DRAM")
        key = f"LOAD:{insn.kind}"
        self.words[insn.layer][key] += insn.n0 * insn.n1 * insn.n2 * ew
        self.transfers[insn.layer][key] += 1
        if insn.kind == "bias":
            if insn.pt or insn.pb or insn.pl or insn.pr:
                raise self.fail("a bias box with padding")
            self.write(self.bias, insn.buf + np.arange(vals.size), 1, vals.ravel(), "LOAD bias into the bias memory")
            self.bias.unread[:] = False          # entries a layer's tiles skip are not a hazard
            return
        pad = 0.0 if insn.padv == "zero" else -np.inf
        if insn.pt or insn.pb or insn.pl or insn.pr:
            full = np.full((insn.n2, insn.pt + insn.n1 + insn.pb, insn.pl + insn.n0 + insn.pr), pad, np.float32)
            full[:, insn.pt:insn.pt + insn.n1, insn.pl:insn.pl + insn.n0] = vals
            vals = full
        first = insn.buf + np.arange(vals.size) * ew
        self.write(self.buf, first, ew, vals.ravel(), f"LOAD {insn.kind} into the buffer")

    def store(self, insn) -> None:
        ew = insn.ew
        n = insn.n0 * insn.n1 * insn.n2
        vals = self.read(self.buf, insn.buf + np.arange(n) * ew, ew, f"STORE {insn.kind} from the buffer")
        self.write(self.dram, self._dram_elems(insn).ravel(), ew, vals, f"STORE {insn.kind} to DRAM")
        key = f"STORE:{insn.kind}"
        self.words[insn.layer][key] += n * ew
        self.transfers[insn.layer][key] += 1

    # ------------------------------------------------------------------ COMPUTE
    def compute(self, c, d) -> None:
        kind = d.kind
        if kind not in ("conv", "fc", "maxpool", "avgpool", "gap", "add", "eltwise", "move"):
            raise self.fail(f"layer kind {kind} is not simulated")
        pw = self.pw
        fx = self.fx.layer[c.layer] if self.fx is not None else None
        kc, oh, ow = c.kc, c.oh, c.ow
        # the computed outputs (a fused pool: the cover of the pooled tile)
        if d.pool != "none":
            conv_P = (d.H + d.pt + d.pb - ((d.R - 1) * d.dh + 1)) // d.sh + 1
            conv_Q = (d.W + d.pl + d.pr - ((d.S - 1) * d.dw + 1)) // d.sw + 1
            cy = (max(c.oy * d.pool_sh - d.pool_pt, 0), min((c.oy + oh - 1) * d.pool_sh - d.pool_pt + d.pool_r, conv_P))
            cx = (max(c.ox * d.pool_sw - d.pool_pl, 0), min((c.ox + ow - 1) * d.pool_sw - d.pool_pl + d.pool_s, conv_Q))
        else:
            conv_P = conv_Q = None
            cy, cx = (c.oy, c.oy + oh), (c.ox, c.ox + ow)
        rows, cols = cy[1] - cy[0], cx[1] - cx[0]
        if kind in ("conv", "fc", "maxpool", "avgpool", "gap"):
            part = self._window_kernel(c, d, cy, cx)
        elif kind == "add":
            xs = self._operands(c, d)
            if fx is not None:         # every operand aligned to the accumulator's scale (exact)
                xs = [x * 2.0 ** (fx["fa"] - f) for x, f in zip(xs, fx["fin"])]
            part = xs[0].astype(self.buf.val.dtype)
            for x in xs[1:]:
                part = part + x
        else:                          # eltwise, move: on the operands' real values
            xs = self._operands(c, d)
            if fx is not None:
                xs = [x * 2.0 ** -f for x, f in zip(xs, fx["fin"])]
            part = self._element(d, xs, c)
            if fx is not None:         # the output's int16 format (the layer's only rounding)
                part = quantize(part, fx["fo"]).astype(np.float64)
        acc_first = c.acc_addr + np.arange(kc * rows * cols) * pw
        if c.acc:
            prev = self.read(self.buf, acc_first, pw, "COMPUTE reads its accumulators").reshape(part.shape)
            part = prev + part
        if fx is not None and kind not in ("eltwise", "move"):
            part = self.fx.ar.store(np.asarray(part, np.int64), fx["st"]).astype(np.float64)  # psum_bits
        self.write(self.buf, acc_first, pw, part.ravel(), "COMPUTE writes its accumulators")
        if not c.fin:
            return
        y = self.read(self.buf, acc_first, pw, "COMPUTE drains its accumulators").reshape(kc, rows, cols)
        y = self._epilogue(c, d, y, cy, cx, conv_P, conv_Q)
        if d.out_res:
            i2, i1, i0 = np.ogrid[:kc, :oh, :ow]
            out = c.out_addr + i2 * (d.P * d.Q) + i1 * d.Q + i0
        else:
            out = c.out_addr + np.arange(kc * oh * ow)
        self.write(self.buf, out.ravel(), 1, y.ravel(), "COMPUTE writes its output tile")

    def _geom(self, d):
        """(H, W, R, S, sh, sw, dh, dw, pt, pl) of the input path (fc: one 1x1 position)."""
        if d.kind == "fc":
            return 1, 1, 1, 1, 1, 1, 1, 1, 0, 0
        return d.H, d.W, d.R, d.S, d.sh, d.sw, d.dh, d.dw, d.pt, d.pl

    def _window_kernel(self, c, d, cy, cx) -> np.ndarray:
        H, W, R, S, sh, sw, dh, dw, pt, pl = self._geom(d)
        kind = d.kind
        dt = self.buf.val.dtype
        nch = c.kc if d.chanwise else c.cc
        by = axis_box(cy[0], cy[1], sh, pt, R, dh, H)
        bx = axis_box(cx[0], cx[1], sw, pl, S, dw, W)
        if by is None or bx is None:
            raise self.fail("the tile's input window is not one strided box")
        (y0, ny, sy), (x0, nx, sx) = by, bx
        i2, i1, i0 = np.ogrid[:nch, :ny, :nx]
        if d.in_res:
            addr = c.in_addr + i2 * (H * W) + i1 * (sy * W) + i0 * sx
        else:
            addr = c.in_addr + (i2 * ny + i1) * nx + i0
        if c.padded:
            raise self.fail("padded=1 input tiles are not simulated (the lowering never emits them)")
        t = self.read(self.buf, addr, 1, "COMPUTE reads its input tile").reshape(nch, ny, nx)
        # the dense window span, padding synthesized (max pooling: -inf)
        ay, ax = cy[0] * sh - pt, cx[0] * sw - pl
        hy = (cy[1] - 1) * sh - pt + (R - 1) * dh + 1 - ay
        hx = (cx[1] - 1) * sw - pl + (S - 1) * dw + 1 - ax
        pad = -np.inf if kind == "maxpool" else 0.0
        X = np.full((nch, hy, hx), pad, dt)
        X[:, (y0 - ay) + sy * np.arange(ny)[:, None], (x0 - ax) + sx * np.arange(nx)[None, :]] = t
        rows, cols = cy[1] - cy[0], cx[1] - cx[0]

        def win(a):
            s0, s1, s2 = a.strides
            return as_strided(a, (a.shape[0], rows, cols, R, S), (s0, s1 * sh, s2 * sw, s1 * dh, s2 * dw),
                              writeable=False)
        if kind in ("conv", "fc"):
            wn = c.kc * (1 if d.chanwise else c.cc) * R * S
            wt = self.read(self.buf, c.w_addr + np.arange(wn), 1, "COMPUTE reads its weight tile")
            if d.chanwise:
                return _dw_part(X, wt.reshape(c.kc, 1, R, S), win).astype(dt)
            return _conv_part(X, wt.reshape(c.kc, c.cc, R, S), win).astype(dt)
        if kind == "maxpool":
            return win(X).max(axis=(3, 4)).astype(dt)
        total = win(X).sum(axis=(3, 4), dtype=np.float64)
        if kind == "avgpool" and d.inc_pad:
            ly, lx = (-d.pt, d.H + d.pb - d.xb), (-d.pl, d.W + d.pr - d.xr)
        else:
            ly, lx = (0, d.H), (0, d.W)
        cnt = np.outer(_counts(*cy, sh, pt, R, ly), _counts(*cx, sw, pl, S, lx))
        if self.fx is not None:        # int16: the sum; the epilogue divides (rounding once)
            self._cnt = np.broadcast_to(cnt, total.shape)
            return total
        return (total / cnt).astype(np.float32)

    def _operands(self, c, d) -> list:
        """The n_in operand tiles of an add / eltwise (kc x oh x ow each)."""
        kc, oh, ow = c.kc, c.oh, c.ow
        i2, i1, i0 = np.ogrid[:kc, :oh, :ow]
        n = kc * oh * ow
        out = []
        for j in range(d.n_in):
            if j == 0:
                res, base = d.in_res, c.in_addr
            elif j == 1 or not d.in2_res:
                res, base = d.in2_res, c.in2_addr + (j - 1) * n
            elif j == 2 and d.n_in == 3:     # operands 1 and 2 resident: operand 2 at in2_addr + d2
                res, base = True, c.in2_addr + c.d2
            else:   # the lowering refuses it: COMPUTE has no address for a resident operand 3..
                raise self.fail(f"operand {j} is resident but the instruction has no address for it")
            if res:
                addr = base + i2 * (d.H * d.W) + i1 * d.W + i0
            else:
                addr = base + (i2 * oh + i1) * ow + i0
            out.append(self.read(self.buf, addr, 1, f"COMPUTE reads operand {j}").reshape(kc, oh, ow))
        return out

    def _element(self, d, xs, c) -> np.ndarray:
        if d.kind == "move":           # a copy of the gathered words (the LOAD's box gathered them)
            return np.asarray(xs[0], np.float64 if self.fx is not None else np.float32)
        fn = d.fn
        if d.params:                   # the parameter vectors: the weight tile [kc][params]
            p = self.read(self.buf, c.w_addr + np.arange(c.kc * d.params), 1,
                          "COMPUTE reads its parameter vectors").reshape(c.kc, d.params, 1, 1)
            if self.fx is not None:
                p = p * 2.0 ** -self.fx.layer[c.layer]["fp"]
        if fn == "batchnorm" and len(xs) == 1 and d.params == 2:
            return np.asarray(xs[0] * p[:, 0] + p[:, 1], np.float32)
        if fn in ("lrn", "softmax") and len(xs) == 1:
            return self._reducing(c, d, xs[0])
        one = _UNARY.get(fn)
        if one is not None and len(xs) == 1 and not d.params:
            return np.asarray(one(np.asarray(xs[0], np.float32), d.alpha, d.beta), np.float32)
        two = _BINARY.get(fn)
        if two is not None:
            xs = [np.asarray(x, np.float32) for x in xs]
            if fn == "add" and len(xs) > 2 and not d.params:
                return np.asarray(sum(xs[1:], xs[0]), np.float32)
            if len(xs) == 2 and not d.params:
                a, b = xs
            elif len(xs) == 1:
                a, b = xs[0], (np.asarray(p[:, 0], np.float32) if d.params == 1 else np.float32(d.alpha))
            else:
                raise self.fail(f"element function '{fn}' with {len(xs)} tiles and {d.params} parameter vectors")
            if d.swap:
                a, b = b, a
            return np.broadcast_to(np.asarray(two(a, b), np.float32), xs[0].shape).astype(np.float32)
        raise self.fail(f"element function '{fn}' with {len(xs)} operands is not simulated")

    def _reducing(self, c, d, x) -> np.ndarray:
        """softmax over the descriptor's axes, lrn over a window of R channels: from the tile
        when it spans them, else (a resident input) from the tensor in place."""
        kc, oh, ow = c.kc, c.oh, c.ow
        lo = [c.k0, c.oy, c.ox]
        hi = [c.k0 + kc, c.oy + oh, c.ox + ow]
        full = [d.K, d.P, d.Q]
        lrn = d.fn == "lrn"
        half = ((d.R - 1) // 2, -(-(d.R - 1) // 2))
        ctx_lo, ctx_hi = list(lo), list(hi)
        for bit in range(3):
            if d.axes >> bit & 1:
                if lrn:
                    ctx_lo[bit], ctx_hi[bit] = max(0, lo[bit] - half[0]), min(full[bit], hi[bit] + half[1])
                else:
                    ctx_lo[bit], ctx_hi[bit] = 0, full[bit]
        if ctx_lo != lo or ctx_hi != hi:
            if not d.in_res:
                raise self.fail(f"{d.fn}: the tile does not span the axes it reduces and its input is not "
                                "resident")
            i2, i1, i0 = np.ogrid[ctx_lo[0]:ctx_hi[0], ctx_lo[1]:ctx_hi[1], ctx_lo[2]:ctx_hi[2]]
            base = c.in_addr - (c.k0 * d.H + c.oy) * d.W - c.ox          # element (0, 0, 0) in place
            X = self.read(self.buf, base + i2 * (d.H * d.W) + i1 * d.W + i0, 1,
                          f"COMPUTE ({d.fn}) reads its input in place")
            if self.fx is not None:
                X = X * 2.0 ** -self.fx.layer[c.layer]["fin"][0]
        else:
            X = x
        X64 = np.asarray(X, np.float64)
        if lrn:
            # the window clipped at the tensor's channels (zeros past them); the context
            # holds every channel a tile channel's window reaches inside the tensor
            sq = np.pad(X64 ** 2, ((half[0], half[1]), (0, 0), (0, 0)))
            cs = np.cumsum(np.pad(sq, ((1, 0), (0, 0), (0, 0))), axis=0)
            ssum = (cs[d.R:] - cs[:-d.R])[:X64.shape[0]]
            Y = X64 / (d.lrn_k / 8 + float(d.alpha) * ssum) ** float(d.beta)
        else:
            axes = tuple(b for b in range(3) if d.axes >> b & 1)
            e = np.exp(X64 - X64.max(axis=axes, keepdims=True))
            Y = e / e.sum(axis=axes, keepdims=True)
        s0 = [a - b for a, b in zip(lo, ctx_lo)]
        return Y[s0[0]:s0[0] + kc, s0[1]:s0[1] + oh, s0[2]:s0[2] + ow].astype(np.float32)

    def _epilogue(self, c, d, y, cy, cx, conv_P, conv_Q) -> np.ndarray:
        if self.fx is not None:
            return self._epilogue_int(c, d, y, cy, cx, conv_P, conv_Q)
        kc = c.kc
        if d.kind in ("conv", "fc"):
            if d.bias:
                b = self.read(self.bias, c.k0 + np.arange(kc), 1, "COMPUTE reads the bias memory")
                y = y + b.reshape(-1, 1, 1)
            y = activate(np.asarray(y, np.float32), d.act, d.alpha, d.beta)
            if d.res:
                y = activate(np.asarray(y + self._residual(c, d), np.float32), d.post_act)
            if d.pool != "none":
                win, cnt, mx = self._pool_windows(c, d, y, cy, cx, conv_P, conv_Q)
                y = win.max(axis=(3, 4)) if mx else win.sum(axis=(3, 4)) / cnt
        elif d.kind == "add":
            y = activate(np.asarray(y, np.float32), d.post_act)
        return np.asarray(y, np.float32)

    def _residual(self, c, d) -> np.ndarray:
        if d.pool != "none":
            raise self.fail("a residual add with a fused pool is not simulated")
        kc, oh, ow = c.kc, c.oh, c.ow
        i2, i1, i0 = np.ogrid[:kc, :oh, :ow]
        if d.in2_res:
            addr = c.in2_addr + i2 * (d.P * d.Q) + i1 * d.Q + i0
        else:
            addr = c.in2_addr + (i2 * oh + i1) * ow + i0
        return self.read(self.buf, addr, 1, "COMPUTE reads its residual tile")

    def _epilogue_int(self, c, d, acc, cy, cx, conv_P, conv_Q) -> np.ndarray:
        """int16 (the tiled executor's rules, :class:`~sqnxt_compiler.reference.arith._Int16`):
        bias, activation and residual in the accumulator's scale, then requantization to
        the output's fractional bits (averages: one rounded division)."""
        ar, fx = self.fx.ar, self.fx.layer[c.layer]
        st, fa, fo = fx["st"], fx["fa"], fx["fo"]
        acc = np.asarray(acc, np.int64)
        kind = d.kind
        if kind in ("conv", "fc"):
            b = None
            if d.bias:
                b = self.read(self.bias, c.k0 + np.arange(c.kc), 1, "COMPUTE reads the bias memory").astype(np.int64)
            act = (d.act, d.alpha, d.beta)
            if d.res:
                r = self._residual(c, d)
                return ar.finish(acc, b, act, fa, fo, st, (r, fx["fr"]), (d.post_act, 0.0, 0.0)).astype(np.float64)
            if d.pool != "none":
                y = ar.pre(acc, b, act, fa, st)
                win, cnt, mx = self._pool_windows(c, d, y.astype(np.float64), cy, cx, conv_P, conv_Q)
                if mx:
                    return ar.requant(win.max(axis=(3, 4)).astype(np.int64), fa, fo, st).astype(np.float64)
                tot = win.sum(axis=(3, 4)).astype(np.int64)
                return _avg_int(tot, np.broadcast_to(cnt, tot.shape), fa, fo, st).astype(np.float64)
            return ar.finish(acc, b, act, fa, fo, st).astype(np.float64)
        if kind == "maxpool":
            return ar.requant(acc, fa, fo, st).astype(np.float64)
        if kind in ("avgpool", "gap"):
            return _avg_int(acc, self._cnt, fa, fo, st).astype(np.float64)
        if kind == "add":
            return ar.finish(acc, None, (d.post_act, 0.0, 0.0), fa, fo, st).astype(np.float64)
        return acc.astype(np.float64)             # eltwise, move: quantized by the COMPUTE

    @staticmethod
    def _pool_windows(c, d, yc, cy, cx, conv_P, conv_Q):
        """The fused pool's windows over the covered conv outputs ``yc`` (k, rows, cols,
        window rows, window cols; max: -inf past the conv's output, average: 0), the
        divisor of each pooled output, and whether it is a max."""
        kh, kw, sh, sw = d.pool_r, d.pool_s, d.pool_sh, d.pool_sw
        oh, ow = c.oh, c.ow
        a_y, a_x = c.oy * sh - d.pool_pt, c.ox * sw - d.pool_pl
        b_y, b_x = (c.oy + oh - 1) * sh - d.pool_pt + kh, (c.ox + ow - 1) * sw - d.pool_pl + kw
        mx = d.pool == "max"
        pads = ((0, 0), (cy[0] - a_y, b_y - cy[1]), (cx[0] - a_x, b_x - cx[1]))
        yp = np.pad(np.asarray(yc, np.float64), pads, constant_values=-np.inf if mx else 0.0)
        win = sliding_window_view(yp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw][:, :oh, :ow]
        if d.inc_pad:
            ly = (-d.pool_pt, conv_P + d.pool_pb - d.pool_xb)
            lx = (-d.pool_pl, conv_Q + d.pool_pr - d.pool_xr)
        else:
            ly, lx = (0, conv_P), (0, conv_Q)
        cnt = np.outer(_counts(c.oy, c.oy + oh, sh, d.pool_pt, kh, ly), _counts(c.ox, c.ox + ow, sw, d.pool_pl, kw, lx))
        return win, cnt, mx


def _counts(o0, o1, stride, pad, k, lim) -> np.ndarray:
    a = np.arange(o0, o1) * stride - pad
    return np.clip(np.minimum(a + k, lim[1]) - np.maximum(a, lim[0]), 0, None)


_UNARY = {
    "relu": lambda x, a, b: np.maximum(x, 0),
    "leaky_relu": lambda x, a, b: activate(np.array(x, np.float32), "leaky_relu", a),
    "clip": lambda x, a, b: np.clip(x, a, b),
    "hard_sigmoid": lambda x, a, b: activate(np.array(x, np.float32), "hard_sigmoid", a, b),
    "hard_swish": lambda x, a, b: activate(np.array(x, np.float32), "hard_swish"),
    "sigmoid": lambda x, a, b: sigmoid(x),
    "tanh": lambda x, a, b: np.tanh(x),
    "exp": lambda x, a, b: np.exp(x),
    "sqrt": lambda x, a, b: np.sqrt(x),
    "reciprocal": lambda x, a, b: np.float32(1) / x,
    "neg": lambda x, a, b: -x,
    "abs": lambda x, a, b: np.abs(x),
    "erf": lambda x, a, b: erf(np.asarray(x, np.float32)),
    "gelu": lambda x, a, b: gelu(np.asarray(x, np.float32)),
    "gelu_tanh": lambda x, a, b: gelu(np.asarray(x, np.float32), approximate="tanh"),
}
_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power,
           "prelu": lambda x, s: np.where(x >= 0, x, x * s)}


def _const_value(v, memo: dict):
    """The value of a constant operand (:func:`.lower.const_value`); not a constant: a
    :class:`FuncSimError`."""
    return const_value(v, memo, FuncSimError)


def _format_range(f: int) -> float:
    """max(1, the largest value an int16 of ``f`` fractional bits holds): a layer's int16
    output is checked with an absolute tolerance scaled by it, as ``check`` scales by
    max(1, max|ref|).  The two agree within 2x for a tensor at its own scale; a part of a
    concat written in place is at the concat's scale, coarser when another part's range is
    larger, and its rounding error is that scale's."""
    return max(1.0, INT16_MAX * 2.0 ** -f)


class _Fixed:
    """int16: the fixed-point formats of a run (docs/isa.md, "Functional simulation"),
    from the tiled executor's calibration and rules (:class:`~sqnxt_compiler.reference.arith._Int16`):
    every tensor's fractional bits (``frac``, by value key), and per layer the formats of
    its operands and output, its quantized weights and bias and its statistics."""

    def __init__(self, ar, lowered, graph, entries, inputs: dict):
        self.ar = ar
        self.frac: dict = {}
        # a concat's parts are written by their producers at the concat's format: its input
        # is one tensor (layout.py), its COMPUTE a copy of words
        for li, op, *_ in entries:
            if is_concat(op):
                f = ar.out_frac(op)
                for v in op.operands:
                    self.frac.setdefault(value_key(v), f)
        for op in graph.inputs:
            arr = np.asarray(inputs[op.attrs["name"]], np.float64)
            self.frac.setdefault(value_key(op.result), frac_bits(float(np.max(np.abs(arr))) if arr.size else 0.0))
        self.layer: list[dict] = []

    def of(self, v) -> int:
        key = value_key(v)
        if key not in self.frac:
            o = view_origin(v)
            self.frac[key] = self.ar.out_frac(o.owner)
        return self.frac[key]


def _layer_formats(fx: _Fixed, lowered, entry, memo: dict) -> dict:
    """int16 formats of one layer: ``fin`` (its data tiles' fractional bits), ``fo``,
    ``fa`` (the accumulator's), ``fr`` (residual), ``fp`` (parameter vectors), and the
    quantized weights ``wq`` and bias ``bq``; ``st`` its statistics, ``psum_bits``."""
    li, op, sched, plan, data, residual, w, b = entry
    L = sched.layer
    ar = fx.ar
    info = lowered.layers[li]
    st = LayerStats(L.name, op.name, op.id, L.kind, L, sched.mapping, groups=L.eff_groups)
    pb = ar.layer_psum_bits(sched) if L.kind not in ("eltwise", "move") else 64
    ar.cur_psum_bits = pb
    st.psum_bits = pb
    if is_concat(op):
        tiles = [op.result]
    elif info.element is not None:
        tiles = info.element.data
    else:
        tiles = data
    fin = [fx.of(v) for v in tiles]
    out = dict(st=st, psum_bits=pb, fin=fin, fo=fx.of(op.result), fr=None, fp=0, wq=None, bq=None)
    out["fa"] = max(fin) if L.kind == "add" else fin[0]
    if w is not None:
        wq, fw = ar.tensor(_const_value(w, memo), st, "w", fmax=ar.weight_frac_limit(op, fin[0]))
        out["wq"], out["fa"] = wq, fin[0] + fw
        if b is not None:
            out["bq"] = ar.bias(_const_value(b, memo), out["fa"])
    if residual is not None:
        out["fr"] = fx.of(residual)
    ep = info.element
    if ep is not None and ep.params:
        if ep.param_const:
            pm = param_matrix(ep, L, lambda v: _const_value(v, memo), op.result.type.shape)
            out["fp"] = frac_bits(float(np.max(np.abs(pm))) if pm.size else 0.0)
            out["pq"] = quantize(pm, out["fp"])
        else:
            out["fp"] = fx.of(ep.params[0])
    return out


class _SimInterpreter(Interpreter):
    failure = "functional simulation failed"

    def __init__(self, graph, machine: _Machine, layer_of_op: dict, tol=LAYER_TOL):
        super().__init__(graph)
        self.m = machine
        self.layer_of_op = layer_of_op
        self.layer_err: dict[int, float] = {}
        self.tol = tol

    def bind(self, op, inputs):
        arr = super().bind(op, inputs)
        fx = self.m.fx
        if fx is None or arr.dtype.kind != "f":
            return arr
        f = fx.of(op.result)            # the host's value: what the image holds
        return (quantize(arr, f).astype(np.float64) * 2.0 ** -f).astype(arr.dtype)

    def run_op(self, op, args):
        m = self.m
        fx = m.fx
        li = self.layer_of_op.get(id(op))
        if li is None:
            y = eval_op(op, args)
            o = view_origin(op.result)
            if o.owner is op and value_key(op.result) in m.low.layout.tensors:   # the host writes it
                r = m.low.layout.tensors[value_key(op.result)]
                if fx is not None and np.asarray(y).dtype.kind == "f":
                    f = fx.of(op.result)
                    q = quantize(y, f)
                    m.host_write(m.dram, r.base, q)
                    return (q.astype(np.float64) * 2.0 ** -f).astype(op.result.type.np_dtype)
                m.host_write(m.dram, r.base, np.asarray(y, np.float32))
            return y
        # the layer's instructions (its boundary SYNC included)
        m.run_until(lambda insn: insn.mnemonic == "FINISH" or insn.layer > li)
        d = m.prog.layers[li]
        n = op.result.type.numel
        if d.out_res:
            a, _n = m.low.layers[li].resident["out"]
            first = a + np.arange(n)
            mem, what = m.buf, "the resident output"
        else:
            r = m.low.layout.tensor(op.result)
            first = r.base + np.arange(n)
            mem, what = m.dram, "the output in DRAM"
        m.at = f"after layer {li} '{d.name}'"
        y = m.read(mem, first, 1, f"the host reads {what}").reshape(op.result.type.shape)
        if fx is not None:
            y = y * 2.0 ** -fx.layer[li]["fo"]
        y = np.asarray(y, np.float32)
        ref = np.asarray(eval_op(op, args), np.float32)
        rtol, atol = self.tol
        if fx is not None:      # int16: relative to the range of the format it is written at
            atol *= _format_range(fx.layer[li]["fo"]) / max(1.0, float(np.max(np.abs(ref))) if ref.size else 0.0)
        err, _rel, ok = compare(y, ref, rtol, atol)
        self.layer_err[li] = err
        if not ok:
            raise FuncSimError(f"layer {li} '{d.name}': the simulated output differs from the op's reference "
                               f"kernel (max abs error {err:.3e})")
        return y.astype(op.result.type.np_dtype)


def run_program(lowered, graph, inputs: dict, precision: str = "fp32") -> FuncRun:
    """Execute ``lowered.program`` on ``inputs`` (by input name) with the weights of
    ``graph`` (the graph it was lowered from); module doc.  ``precision`` ``int16``: 16-bit
    fixed point as ``check --tiled --precision int16`` computes (the formats of a
    calibration run, the tiled executor's rounding and saturation rules)."""
    from ..reference.tiled import PRECISIONS, TOLERANCES

    if precision not in PRECISIONS:
        raise FuncSimError(f"unknown precision '{precision}' (known: {', '.join(PRECISIONS)})")
    t0 = time.perf_counter()
    entries = scheduled_layers(graph)
    if len(entries) != len(lowered.layers) or len(lowered.program.layers) != len(entries):
        raise FuncSimError(f"the graph has {len(entries)} scheduled layers, the program "
                           f"{len(lowered.program.layers)}")
    for e in entries:
        if not e[1].result.type.dtype.startswith("f"):
            raise FuncSimError(f"layer '{e[2].layer.name}' produces {e[1].result.type.dtype}: only float networks "
                               "are simulated")
    memo: dict = {}
    fx = None
    tol = LAYER_TOL
    if precision == "int16":
        from ..reference.arith import _Fp32, _Int16
        from ..reference.tiled import TiledExecutor

        # calibration: the fp32 tiled run of the same input (as check --tiled --precision int16)
        cal = TiledExecutor(graph, _Fp32(probe=True)).execute(inputs)
        fx = _Fixed(_Int16(None, shared_scales(graph, cal.maxabs), {st.op_id: st.acc_max for st in cal.layers}),
                    lowered, graph,
                    entries, inputs)
        fx.layer = [_layer_formats(fx, lowered, e, memo) for e in entries]
        tol = TOLERANCES["int16"]
    m = _Machine(lowered, graph, [e[1] for e in entries], fx)
    lay = lowered.layout
    # ---- the initial DRAM image: network inputs, weights, biases ----
    for op in graph.inputs:
        arr = bind_input(graph, op, inputs)
        if fx is not None and arr.dtype.kind == "f":
            arr = quantize(arr, fx.of(op.result))
        m.host_write(m.dram, lay.tensor(op.result).base, arr)
    pw = lowered.target.psum_words
    for li, op, sched, plan, data, residual, w, b in entries:
        q = fx.layer[li] if fx is not None else None
        if w is not None:
            m.host_write(m.dram, lay.weights[li].base, _const_value(w, memo) if q is None else q["wq"])
        if b is not None:
            m.host_write(m.dram, lay.bias[li].base, _const_value(b, memo) if q is None else q["bq"], ew=pw)
        ep = lowered.layers[li].element
        if ep is not None and ep.params and ep.param_const:
            pm = (param_matrix(ep, sched.layer, lambda v: _const_value(v, memo), op.result.type.shape)
                  if q is None else q["pq"])
            m.host_write(m.dram, lay.weights[li].base, pm)
    interp = _SimInterpreter(graph, m, {id(e[1]): e[0] for e in entries}, tol)
    outputs = interp.run(inputs)
    m.run_until(lambda insn: False)           # FINISH
    if m.pc != len(lowered.program.insns):
        raise FuncSimError(f"the program stopped at instruction {m.pc}")
    return FuncRun(outputs, m.words, m.transfers, [interp.layer_err.get(i) for i in range(len(entries))],
                   [d.name for d in lowered.program.layers], m.pc, dict(m.pushes),
                   time.perf_counter() - t0)
