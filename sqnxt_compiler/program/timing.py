"""The event-driven timing simulator of a program (``docs/isa.md``, sections "Durations"
and "Timing").

:func:`simulate` runs a :class:`~.isa.Program` on the machine ``docs/isa.md`` describes:
fetch dispatches the instruction stream in order into the load, compute and store queues
(``queue_depth`` each, fetch stalls while the queue of the next instruction is full); each
engine executes its queue in order, one instruction at a time; an instruction *issues*
(leaves its queue and takes its tokens) when its engine is free and every token it pops
is available, a LOAD or STORE then waits for the DRAM channel, and every instruction
pushes its tokens when it completes.  Time jumps from event to event (a heap of
completion times): the cost is per instruction, never per cycle.

It is an independent witness of the cost model: every duration comes from the
instruction's own fields, its layer descriptor and the target's parameters, by the small
pure functions below (one formula each, the formulas of ``docs/isa.md``), and all waiting
comes from the queues, the tokens and the DRAM channel.  It never calls the cost model.

Time is exact and integer: a transfer takes ``lat + words / bw`` cycles with ``bw`` =
``p / q`` DRAM words per cycle (an exact fraction in lowest terms), so the simulator
counts *ticks* of ``1 / p`` cycle (``Timing.ticks_per_cycle = p``): ``lat * p + words * q``
ticks for a transfer, ``cycles * p`` for a COMPUTE.  Reports are in cycles: exact
fractions (:class:`fractions.Fraction`) per layer and instruction, and the program's
total rounded up to a whole cycle.
"""
from __future__ import annotations

import heapq
from array import array
from dataclasses import dataclass, field
from fractions import Fraction

from ..diagnostics import InputError
from .isa import NEXT_QUEUE, PREV_QUEUE, TOKEN_COUNTERS, Program, verify_program

ENGINES = ("load", "compute", "store")
#: The token counters (the ring of docs/isa.md, "Dependency tokens"), indexed as the
#: simulator keeps them.
COUNTERS = TOKEN_COUNTERS
#: Why an engine waits before an instruction: a token from the load, compute or store
#: engine, the DRAM channel, or fetch (the instruction is not in its queue yet because
#: fetch is stalled behind a full queue).
CAUSES = ("load", "compute", "store", "dram", "fetch")
#: The causes that can occur on each engine (the report lists these): the producers of
#: the counters it pops, the DRAM channel for the transfer engines, fetch.
ENGINE_CAUSES = {
    e: tuple(c.split("->")[0] for c in COUNTERS if c.split("->")[1] == e)
    + (("dram",) if e != "compute" else ()) + ("fetch",)
    for e in ENGINES
}
#: docs/isa.md, "The machine": the instruction queue depth when the target gives none.
DEFAULT_QUEUE_DEPTH = 256
#: One DRAM channel serves every transfer (the cost model's serialized DMA).
DEFAULT_DRAM_CHANNELS = 1
#: A token counter is 8 bits: pushing past this is a machine fault.
COUNTER_MAX = 255

_ENGINE_OF = {"LOAD": 0, "COMPUTE": 1, "FINISH": 1, "STORE": 2}
# counter index of (from engine, to engine), and each engine's prev and next (isa's ring)
_COUNTER = {tuple(ENGINES.index(q) for q in c.split("->")): i for i, c in enumerate(COUNTERS)}
_PREV_E = [ENGINES.index(PREV_QUEUE[e]) for e in ENGINES]
_NEXT_E = [ENGINES.index(NEXT_QUEUE[e]) for e in ENGINES]
_DRAM, _FETCH = 3, 4


class SimulationError(InputError):
    """A program the machine cannot run to its end (a one-line message naming the
    instruction): a deadlock, a token counter overflow, a malformed stream."""


class DeadlockError(SimulationError):
    """An engine waits for a token that can never come."""


# ----------------------------------------------------------------------------- durations
def box_words(n0: int, n1: int, n2: int, ew: int) -> int:
    """DRAM words a LOAD or STORE moves: ``n0 * n1 * n2 * ew`` (its padding costs DRAM
    nothing)."""
    return n0 * n1 * n2 * ew


def transfer_cycles(words: int, lat: int, bw: Fraction) -> Fraction:
    """Cycles a LOAD or STORE holds the DRAM channel: ``lat + words / bw`` (``bw`` DRAM
    words per cycle, an exact fraction; the result is exact, a fraction in general)."""
    return lat + Fraction(words) / bw


def conv_extent(n_in: int, pad_a: int, pad_b: int, kernel: int, dilation: int, stride: int) -> int:
    """Conv outputs along one axis: ``(n_in + pad_a + pad_b - ((kernel - 1) * dilation + 1))
    // stride + 1`` (the descriptor's pads include a ceil-mode overhang).  With a fused pool
    the descriptor's ``P`` / ``Q`` are the pooled outputs; this is ``conv_P`` / ``conv_Q``."""
    return (n_in + pad_a + pad_b - ((kernel - 1) * dilation + 1)) // stride + 1


def pool_cover(a: int, b: int, window: int, stride: int, pad: int, n_conv: int) -> int:
    """Conv outputs a fused pool's outputs ``[a, b)`` read along one axis (the rows or
    columns the COMPUTE computes): ``min((b-1)*stride - pad + window, n_conv) -
    max(a*stride - pad, 0)``."""
    return min((b - 1) * stride - pad + window, n_conv) - max(a * stride - pad, 0)


def computed_outputs(insn, layer) -> tuple[int, int]:
    """``(rows, cols)`` a COMPUTE computes: its tile ``oh x ow``, or with a fused pool
    (descriptor ``pool`` not ``none``) the conv outputs the tile's windows cover
    (:func:`pool_cover` along each axis, with ``conv_P``, ``conv_Q`` from
    :func:`conv_extent`)."""
    if layer.pool == "none":
        return insn.oh, insn.ow
    conv_p = conv_extent(layer.H, layer.pt, layer.pb, layer.R, layer.dh, layer.sh)
    conv_q = conv_extent(layer.W, layer.pl, layer.pr, layer.S, layer.dw, layer.sw)
    rows = pool_cover(insn.oy, insn.oy + insn.oh, layer.pool_r, layer.pool_sh, layer.pool_pt, conv_p)
    cols = pool_cover(insn.ox, insn.ox + insn.ow, layer.pool_s, layer.pool_sw, layer.pool_pl, conv_q)
    return rows, cols


def stream_length(layer, c1: int, nonlinear_cycles: int) -> int:
    """``z``, the cycles of work one OS pass streams: ``ceil(c1 * R * S * nz_num / nz_den)``
    for conv and fc (nonzero weights only), ``R * S * n_in`` for pools, gap and add,
    ``e_ops + e_funcs * nonlinear_cycles`` for eltwise and move."""
    if layer.kind in ("conv", "fc"):
        return -(-(c1 * layer.R * layer.S * layer.nz_num) // layer.nz_den)
    if layer.kind in ("eltwise", "move"):
        return layer.e_ops + layer.e_funcs * nonlinear_cycles
    return layer.R * layer.S * layer.n_in


def os_pass_cycles(z: int, drain: int, double_buffered: bool) -> int:
    """One OS pass: ``max(z, D)`` with double-buffered accumulators (the drain overlaps
    the next pass), else ``z + D``."""
    return max(z, drain) if double_buffered else z + drain


def ws_tile_cycles(rows: int, cols: int, kc: int, c1: int, R: int, S: int, chanwise: bool,
                   pr: int, pc: int, lw: int) -> int:
    """A WS tile: ``R*S * ceil(c1/Pr) * ceil(kc/Pc) * (rows*cols + Lw)``; channel-wise
    (depthwise: a diagonal weight block): ``R*S * ceil(kc/min(Pr, Pc)) * (rows*cols + Lw)``."""
    if chanwise:
        return R * S * -(-kc // min(pr, pc)) * (rows * cols + lw)
    return R * S * -(-c1 // pr) * -(-kc // pc) * (rows * cols + lw)


def os_tile_cycles(rows: int, cols: int, kc: int, pass_cycles: int, pr: int, pc: int) -> int:
    """An OS tile: ``kc * ceil(rows/Pr) * ceil(cols/Pc) * pass(z)`` (one pass per output
    channel and ``Pr x Pc`` block of output pixels)."""
    return kc * -(-rows // pr) * -(-cols // pc) * pass_cycles


def layer_edge_cycles(df: str, first: bool, last: bool, fill: int, drain: int, double_buffered: bool) -> int:
    """What a layer's first and last COMPUTE add: ``fill`` on the first; on the last, ``D``
    for OS with double-buffered accumulators (the final drain no later pass hides)."""
    extra = fill if first else 0
    if last and df == "OS" and double_buffered:
        extra += drain
    return extra


def compute_cycles(insn, layer, target, first: bool = False, last: bool = False) -> int:
    """Cycles of one COMPUTE ``insn`` of ``layer`` (its descriptor) on ``target``: the tile
    (:func:`ws_tile_cycles` or :func:`os_tile_cycles` on :func:`computed_outputs`, ``c1 =
    1`` for channel-wise layers, else ``cc``) plus :func:`layer_edge_cycles` (``first`` /
    ``last``: the layer's first / last COMPUTE in program order)."""
    rows, cols = computed_outputs(insn, layer)
    c1 = 1 if layer.chanwise else insn.cc
    drain, dbl = target.os_drain_cycles, target.os_double_buffered_accumulators
    if layer.df == "WS":
        tile = ws_tile_cycles(rows, cols, insn.kc, c1, layer.R, layer.S, bool(layer.chanwise),
                              target.pe_rows, target.pe_cols, target.weight_load_cycles)
    else:
        z = stream_length(layer, c1, target.nonlinear_cycles)
        tile = os_tile_cycles(rows, cols, insn.kc, os_pass_cycles(z, drain, dbl), target.pe_rows, target.pe_cols)
    return tile + layer_edge_cycles(layer.df, first, last, target.pipeline_fill_cycles, drain, dbl)


def instruction_cycles(insn, layer, target, first: bool = False, last: bool = False) -> Fraction:
    """The duration of any instruction in cycles (exact): a transfer's
    :func:`transfer_cycles` of its :func:`box_words`, a COMPUTE's :func:`compute_cycles`,
    0 for SYNC and FINISH."""
    m = insn.RECORD.mnemonic
    if m in ("LOAD", "STORE"):
        return transfer_cycles(box_words(insn.n0, insn.n1, insn.n2, insn.ew),
                               target.dram_latency_cycles, target.dram_words_per_cycle)
    if m == "COMPUTE":
        return Fraction(compute_cycles(insn, layer, target, first, last))
    return Fraction(0)


# ----------------------------------------------------------------------------- report
@dataclass(frozen=True)
class LayerTiming:
    """One layer's figures, in cycles (exact fractions): ``start`` / ``end`` (the first
    start and the last end of its instructions; ``cycles = end - start``), each engine's
    busy cycles and its waiting cycles by cause (``wait[engine][cause]``, the causes of
    :data:`ENGINE_CAUSES`), and its instruction count.  A wait is charged to the layer of
    the instruction that waits."""

    index: int
    name: str
    start: Fraction
    end: Fraction
    instructions: int
    busy: dict
    wait: dict

    @property
    def cycles(self) -> Fraction:
        return self.end - self.start

    def waiting(self, engine: str) -> Fraction:
        return sum(self.wait[engine].values(), Fraction(0))

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "start": exact(self.start), "end": exact(self.end),
                "cycles": exact(self.cycles), "instructions": self.instructions,
                "busy": {e: exact(v) for e, v in self.busy.items()},
                "wait": {e: {c: exact(v) for c, v in w.items()} for e, w in self.wait.items()}}


def exact(v: Fraction | int) -> int | str:
    """An exact figure for JSON: an int when whole, else the fraction as a string "7/2"
    (the form of ``sqnxtc sim --json``, ``schedule.json`` and the goldens)."""
    v = Fraction(v)
    return int(v) if v.denominator == 1 else str(v)


@dataclass(frozen=True)
class Timing:
    """The result of :func:`simulate`.

    Per instruction (arrays indexed by program order, in ticks of ``1 / ticks_per_cycle``
    cycle): ``engine`` (0 load, 1 compute, 2 store), ``issue`` (left its queue and took
    its tokens), ``start``, ``end`` (``start > issue`` only for a transfer waiting for the
    DRAM channel), ``channel`` (the DRAM channel of a transfer, else -1).  ``total_cycles``
    is FINISH's completion rounded up to a whole cycle; ``after_finish`` counts the
    instructions completing after FINISH (0 in a well-formed program)."""

    ticks_per_cycle: int
    total_ticks: int
    total_cycles: int
    queue_depth: int
    dram_channels: int
    engine: array
    issue: array
    start: array
    end: array
    channel: array
    layers: tuple
    after_finish: int
    counters: dict = field(default_factory=dict)

    def cycles(self, ticks: int) -> Fraction:
        """``ticks`` in cycles, exact."""
        return Fraction(ticks, self.ticks_per_cycle)

    def insn_start(self, i: int) -> Fraction:
        return self.cycles(self.start[i])

    def insn_end(self, i: int) -> Fraction:
        return self.cycles(self.end[i])

    @property
    def busy(self) -> dict:
        """Busy cycles of each engine over the program."""
        return {e: sum((lay.busy[e] for lay in self.layers), Fraction(0)) for e in ENGINES}

    @property
    def wait(self) -> dict:
        """Waiting cycles of each engine by cause over the program."""
        return {e: {c: sum((lay.wait[e][c] for lay in self.layers), Fraction(0)) for c in ENGINE_CAUSES[e]}
                for e in ENGINES}

    def to_dict(self) -> dict:
        """JSON-able summary (no per-instruction arrays): cycles as ints, or "a/b" strings
        when fractional."""
        return {"total_cycles": self.total_cycles, "ticks_per_cycle": self.ticks_per_cycle,
                "queue_depth": self.queue_depth, "dram_channels": self.dram_channels,
                "instructions": len(self.start), "after_finish": self.after_finish,
                "busy": {e: exact(v) for e, v in self.busy.items()},
                "wait": {e: {c: exact(v) for c, v in w.items()} for e, w in self.wait.items()},
                "layers": [lay.to_dict() for lay in self.layers]}


def format_timing(timing: Timing) -> str:
    """A text table: one line per layer (cycles, engines busy, waiting by cause) and the
    total (cycles rounded to whole numbers for reading; :meth:`Timing.to_dict` is exact)."""
    def r(v: Fraction) -> str:
        return str(round(v))
    head = ["layer", "start", "cycles", "load busy", "compute busy", "store busy"]
    waits = [(e, c) for e in ENGINES for c in ENGINE_CAUSES[e]]
    head += [f"{e[0]}<{c}" for e, c in waits]
    rows = [head]
    for lay in timing.layers:
        rows.append([lay.name or str(lay.index), r(lay.start), r(lay.cycles)]
                    + [r(lay.busy[e]) for e in ENGINES] + [r(lay.wait[e][c]) for e, c in waits])
    busy, wait = timing.busy, timing.wait
    rows.append(["total", "0", str(timing.total_cycles)] + [r(busy[e]) for e in ENGINES]
                + [r(wait[e][c]) for e, c in waits])
    widths = [max(len(row[j]) for row in rows) for j in range(len(head))]
    return "\n".join("  ".join(v.rjust(w) if j else v.ljust(w) for j, (v, w) in enumerate(zip(row, widths)))
                     for row in rows) + "\n"


# ----------------------------------------------------------------------------- simulation
def _describe(prog: Program, i: int) -> str:
    insn = prog.insns[i]
    layer = getattr(insn, "layer", None)
    if layer is None:
        return f"instruction {i} ({insn.RECORD.mnemonic})"
    name = prog.layers[layer].name if layer < len(prog.layers) else ""
    return f"instruction {i} ({insn.RECORD.mnemonic}, layer {layer} {name!r})"


def _prepare(prog: Program, target, tpc: int):
    """Per-instruction arrays: engine, layer, duration in ticks, is-transfer, the counters
    popped (prev, next) and pushed (prev, next), -1 for none."""
    insns = prog.insns
    n = len(insns)
    eng = [0] * n
    lay = [0] * n
    dur = [0] * n
    dma = [False] * n
    pop_a = [-1] * n
    pop_b = [-1] * n
    push_a = [-1] * n
    push_b = [-1] * n
    first_c: dict[int, int] = {}
    last_c: dict[int, int] = {}
    for i, insn in enumerate(insns):
        if insn.RECORD.mnemonic == "COMPUTE":
            first_c.setdefault(insn.layer, i)
            last_c[insn.layer] = i
    lat, bw = target.dram_latency_cycles, target.dram_words_per_cycle
    xfer: dict[int, int] = {}
    comp: dict[tuple, int] = {}
    last_layer = 0
    for i, insn in enumerate(insns):
        m = insn.RECORD.mnemonic
        e = _ENGINE_OF[m] if m != "SYNC" else ENGINES.index(insn.q)
        eng[i] = e
        li = getattr(insn, "layer", None)
        if li is None:
            li = last_layer
        last_layer = li
        lay[i] = li
        if m == "LOAD" or m == "STORE":
            words = insn.n0 * insn.n1 * insn.n2 * insn.ew
            t = xfer.get(words)
            if t is None:
                c = transfer_cycles(box_words(insn.n0, insn.n1, insn.n2, insn.ew), lat, bw) * tpc
                assert c.denominator == 1
                t = xfer[words] = int(c)
            dur[i] = t
            dma[i] = True
        elif m == "COMPUTE":
            layer = prog.layers[li]
            key = (li, insn.kc, insn.cc, insn.oy, insn.oh, insn.ox, insn.ow, first_c[li] == i, last_c[li] == i)
            t = comp.get(key)
            if t is None:
                t = comp[key] = compute_cycles(insn, layer, target, key[7], key[8]) * tpc
            dur[i] = t
        prv, nxt = _PREV_E[e], _NEXT_E[e]
        if insn.pop_prev:
            pop_a[i] = _COUNTER[(prv, e)]
        if insn.pop_next:
            pop_b[i] = _COUNTER[(nxt, e)]
        if getattr(insn, "push_prev", 0):
            push_a[i] = _COUNTER[(e, prv)]
        if getattr(insn, "push_next", 0):
            push_b[i] = _COUNTER[(e, nxt)]
    return eng, lay, dur, dma, pop_a, pop_b, push_a, push_b


def simulate(program: Program, target, *, queue_depth: int | None = None,
             dram_channels: int | None = None) -> Timing:
    """Run ``program`` on ``target`` (module doc; ``docs/isa.md``, "Timing") and return its
    :class:`Timing`.  ``queue_depth`` (instructions per queue) and ``dram_channels``
    default to the target's ``queue_depth`` / ``dram_channels`` when it has them, else
    :data:`DEFAULT_QUEUE_DEPTH` and :data:`DEFAULT_DRAM_CHANNELS`.

    Raises :class:`SimulationError` (one line naming the instruction) for a program the
    machine cannot finish: a structural problem (``verify_program``), a token counter
    pushed past 255, or a deadlock (:class:`DeadlockError`)."""
    problems = verify_program(program)
    if problems:
        i, msg = problems[0]
        raise SimulationError(f"instruction {i}: {msg}")
    depth = queue_depth if queue_depth is not None else getattr(target, "queue_depth", DEFAULT_QUEUE_DEPTH)
    nch = dram_channels if dram_channels is not None else getattr(target, "dram_channels", DEFAULT_DRAM_CHANNELS)
    if depth < 1 or nch < 1:
        raise SimulationError(f"queue depth {depth} and DRAM channels {nch} must be at least 1")
    bw = Fraction(target.dram_words_per_cycle)
    tpc = bw.numerator
    eng, lay, dur, dma, pop_a, pop_b, push_a, push_b = _prepare(program, target, tpc)
    n = len(eng)
    n_layers = max(len(program.layers), 1)

    elist: list[list[int]] = [[], [], []]
    for i in range(n):
        elist[eng[i]].append(i)
    el0, el1, el2 = elist
    elists = (el0, el1, el2)
    head = [0, 0, 0]          # instructions of each engine issued so far
    fetched = [0, 0, 0]       # instructions of each engine fetched so far
    cur = [-1, -1, -1]        # the instruction each engine executes (issued, not completed)
    efree = [0, 0, 0]         # when each engine last became free
    nctr = len(COUNTERS)
    cnt = [0] * nctr          # token counters
    pushed: list[list[int]] = [[] for _ in range(nctr)]   # completion time of every push, per counter
    popped = [0] * nctr
    chan = [0] * nch          # when each DRAM channel is free
    fetch_t = [0] * n
    issue = [0] * n
    start = [0] * n
    end = [0] * n
    channel = [-1] * n
    busy = [0] * (n_layers * 3)
    wait = [0] * (n_layers * 15)
    heap: list[tuple[int, int]] = []
    pending: list[int] = []
    heappush, heappop = heapq.heappush, heapq.heappop
    now = 0
    f = 0
    done = 0

    while True:
        # every completion at `now`: push its tokens, free its engine
        while heap and heap[0][0] == now:
            i = heappop(heap)[1]
            e = eng[i]
            cur[e] = -1
            efree[e] = now
            done += 1
            for c in (push_a[i], push_b[i]):
                if c >= 0:
                    cnt[c] += 1
                    pushed[c].append(now)
                    if cnt[c] > COUNTER_MAX:
                        raise SimulationError(
                            f"{_describe(program, i)} pushes a {COUNTERS[c]} token at cycle "
                            f"{_fmt(Fraction(now, tpc))} with {COUNTER_MAX} already pending: counter overflow "
                            f"(a machine fault: an engine runs more than {COUNTER_MAX} tokens ahead)")
        # fetch and issue everything that can go at `now`
        progress = True
        while progress:
            progress = False
            while f < n:
                e = eng[f]
                if fetched[e] - head[e] >= depth:
                    break
                fetch_t[f] = now
                fetched[e] += 1
                f += 1
            for e in (0, 1, 2):
                h = head[e]
                if cur[e] >= 0 or h >= fetched[e]:
                    continue
                i = elists[e][h]
                a = pop_a[i]
                b = pop_b[i]
                if (a >= 0 and cnt[a] == 0) or (b >= 0 and cnt[b] == 0):
                    continue
                # issue: attribute the wait since the engine was free, cause by cause
                li = lay[i] * 3 + e
                w = li * 5
                c = efree[e]
                ft = fetch_t[i]
                if ft > c:
                    wait[w + _FETCH] += ft - c
                    c = ft
                if a >= 0:
                    cnt[a] -= 1
                    tt = pushed[a][popped[a]]
                    popped[a] += 1
                    if tt > c:
                        wait[w + _PREV_E[e]] += tt - c       # the cause: the prev engine
                        c = tt
                if b >= 0:
                    cnt[b] -= 1
                    tt = pushed[b][popped[b]]
                    popped[b] += 1
                    if tt > c:
                        wait[w + _NEXT_E[e]] += tt - c       # the cause: the next engine
                        c = tt
                head[e] = h + 1
                cur[e] = i
                issue[i] = now
                progress = True
                if dma[i]:
                    pending.append(i)
                else:
                    start[i] = now
                    d = dur[i]
                    end[i] = now + d
                    busy[li] += d
                    heappush(heap, (now + d, i))
        # zero-duration completions at `now` come before the channel is granted
        if heap and heap[0][0] == now:
            continue
        if pending:
            # transfers that asked for the channel at `now` are served in program order
            pending.sort()
            for i in pending:
                k = 0
                if nch > 1:
                    k = min(range(nch), key=chan.__getitem__)
                s = chan[k] if chan[k] > now else now
                d = dur[i]
                chan[k] = s + d
                channel[i] = k
                start[i] = s
                end[i] = s + d
                li = lay[i] * 3 + eng[i]
                busy[li] += d
                wait[li * 5 + _DRAM] += s - now
                heappush(heap, (s + d, i))
            pending.clear()
        if not heap:
            break
        now = heap[0][0]

    finish_t = end[n - 1] if done == n else -1
    if done < n:
        raise DeadlockError(_deadlock_message(program, tpc, now, eng, elists, head, fetched, cur, cnt,
                                              pop_a, pop_b, push_a, push_b, f, depth))

    layers = _layer_report(program, tpc, lay, start, end, busy, wait, n_layers)
    return Timing(ticks_per_cycle=tpc, total_ticks=finish_t, total_cycles=-(-finish_t // tpc),
                  queue_depth=depth, dram_channels=nch,
                  engine=array("b", eng), issue=array("q", issue), start=array("q", start),
                  end=array("q", end), channel=array("b", channel), layers=layers,
                  after_finish=sum(1 for t in end if t > finish_t),
                  counters={COUNTERS[c]: cnt[c] for c in range(nctr)})


def _fmt(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{float(v):.6g}"


def _deadlock_message(prog, tpc, now, eng, elists, head, fetched, cur, cnt, pop_a, pop_b, push_a, push_b,
                      f, depth) -> str:
    """One line: the earliest blocked instruction at the head of its queue, the token it
    waits for, and why that token cannot come."""
    blocked = []
    for e in range(3):
        if cur[e] < 0 and head[e] < fetched[e]:
            i = elists[e][head[e]]
            missing = [c for c in (pop_a[i], pop_b[i]) if c >= 0 and cnt[c] == 0]
            blocked.append((i, missing))
    when = f"deadlock at cycle {_fmt(Fraction(now, tpc))}"
    if not blocked:   # cannot happen: an idle machine with work left has a blocked head
        return f"{when}: no instruction can issue (fetch at instruction {f})"
    i, missing = min(blocked)
    c = missing[0]
    name = COUNTERS[c]
    issued = [False] * len(eng)
    for e in range(3):
        for j in elists[e][:head[e]]:
            issued[j] = True
    # the next push of the counter: the first instruction pushing it that has not issued
    pusher = next((j for j in range(len(eng)) if not issued[j] and c in (push_a[j], push_b[j])), None)
    msg = f"{when}: {_describe(prog, i)} waits for a {name} token"
    if pusher is None:
        return msg + " that no remaining instruction pushes"
    if pusher >= f:
        return (msg + f" that only instruction {pusher} would push, which is never fetched: fetch is "
                f"stalled at instruction {f} by the full {ENGINES[eng[f]]} queue (depth {depth})")
    return (msg + f" that only instruction {pusher} would push, which is itself stuck in the "
            f"{ENGINES[eng[pusher]]} queue")


def _layer_report(prog, tpc, lay, start, end, busy, wait, n_layers) -> tuple:
    first = [None] * n_layers
    last = [0] * n_layers
    count = [0] * n_layers
    for i in range(len(lay)):
        li = lay[i]
        s = start[i]
        if first[li] is None or s < first[li]:
            first[li] = s
        if end[i] > last[li]:
            last[li] = end[i]
        count[li] += 1
    out = []
    for li in range(len(prog.layers)):
        b = {e: Fraction(busy[li * 3 + k], tpc) for k, e in enumerate(ENGINES)}
        w = {e: {c: Fraction(wait[(li * 3 + k) * 5 + CAUSES.index(c)], tpc) for c in ENGINE_CAUSES[e]}
             for k, e in enumerate(ENGINES)}
        s = first[li] if first[li] is not None else 0
        out.append(LayerTiming(index=li, name=prog.layers[li].name, start=Fraction(s, tpc),
                               end=Fraction(max(last[li], s), tpc), instructions=count[li], busy=b, wait=w))
    return tuple(out)
