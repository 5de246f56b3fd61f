"""A program's simulated timeline in the Chrome trace-event JSON format (opens in Perfetto,
ui.perfetto.dev, and chrome://tracing; ``docs/isa.md``, "Timing", "Timeline").

:func:`trace_events` turns a program and its :class:`~.timing.Timing` into the JSON object
format of the trace-event spec: ``{"traceEvents": [...], "otherData": {...}}``.  One
process (``pid`` 1), one track (``tid``) per engine (load 1, compute 2, store 3), one per
DRAM channel (``4 + k``) and one or more for the layers
(``100 + lane``: a layer whose span overlaps an earlier one's goes to the next lane);
metadata events (``"ph": "M"``) name and order the tracks.  Every instruction is one
complete event (``"ph": "X"``, ``ts``, ``dur``) on its engine's track, and every transfer
also one on its DRAM channel's track; a layer is a labelled span (``name`` = the layer's
name) from its first start to its last end.

Above ``max_slices`` instructions, consecutive instructions of one mnemonic and one layer
on one engine track become one slice (a *run*, ``name`` "LOAD x12", ``args`` ``first``,
``last``, ``count``, ``busy``), and consecutive transfers of one layer on a DRAM track one
slice ("DMA x40"), so a whole network stays small; every instruction is in exactly one run
of its engine track.

Times are integers: 1 cycle is ``otherData.us_per_cycle`` microseconds of the trace, the
smallest integer scale at which every start and end is a whole number of microseconds
(1 when they are all whole cycles; transfers can end on fractions of a cycle).  The JSON
is deterministic (:func:`dumps`: sorted keys, fixed separators).
"""
from __future__ import annotations

import json
import math
from fractions import Fraction

from .timing import ENGINES, Timing

PID = 1
#: Track ids: the engines, the DRAM channels from DRAM_TID, the layer lanes from LAYER_TID.
ENGINE_TID = {"load": 1, "compute": 2, "store": 3}
DRAM_TID = 4
LAYER_TID = 100
#: Above this many instructions, runs of like instructions share one slice.
MAX_SLICES = 20000


def _label(insn) -> str:
    kind = getattr(insn, "kind", None)
    m = insn.RECORD.mnemonic
    if m == "SYNC":
        return f"SYNC {insn.q}"
    return f"{m} {kind}" if kind else m


def _scale(timing: Timing) -> int:
    """Ticks per microsecond of the trace: the gcd of ticks_per_cycle and every time."""
    g = timing.ticks_per_cycle
    for arr in (timing.start, timing.end):
        for t in arr:
            if g == 1:
                return 1
            g = math.gcd(g, t)
    return g


def _num(v: Fraction):
    return int(v) if v.denominator == 1 else str(v)


def trace_events(program, timing: Timing, *, max_slices: int = MAX_SLICES, name: str = "sqnxtc program") -> dict:
    """The trace-event JSON object of ``program``'s ``timing`` (module doc)."""
    insns = program.insns
    n = len(insns)
    g = _scale(timing)
    us_per_cycle = timing.ticks_per_cycle // g
    start, end, engine, channel = timing.start, timing.end, timing.engine, timing.channel
    layer_of = []
    last = 0
    for insn in insns:
        li = getattr(insn, "layer", None)
        last = last if li is None else li
        layer_of.append(last)

    events: list[dict] = []

    def meta(tid: int, label: str, order: int) -> None:
        events.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name", "args": {"name": label}})
        events.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": order}})

    events.append({"ph": "M", "pid": PID, "tid": 0, "name": "process_name", "args": {"name": name}})

    # layers: greedy lanes so that spans on one track never overlap
    lanes: list[int] = []       # end of the last span on each lane
    layer_events = []
    for lay in sorted(timing.layers, key=lambda l: (l.start, l.index)):
        if lay.instructions == 0:
            continue
        s = lay.start * timing.ticks_per_cycle
        e = lay.end * timing.ticks_per_cycle
        lane = next((k for k, t in enumerate(lanes) if t <= s), len(lanes))
        if lane == len(lanes):
            lanes.append(e)
        else:
            lanes[lane] = e
        layer_events.append({"ph": "X", "pid": PID, "tid": LAYER_TID + lane, "name": lay.name or f"layer {lay.index}",
                             "cat": "layer", "ts": int(s) // g, "dur": int(e - s) // g,
                             "args": {"layer": lay.index, "cycles": _num(lay.cycles),
                                      "instructions": lay.instructions}})
    for k in range(len(lanes)):
        meta(LAYER_TID + k, "layers" if k == 0 else f"layers ({k + 1})", k)
    for k, e in enumerate(ENGINES):
        meta(ENGINE_TID[e], e, 10 + k)
    n_ch = max(timing.dram_channels, 1)
    for k in range(n_ch):
        meta(DRAM_TID + k, "DRAM" if n_ch == 1 else f"DRAM {k}", 20 + k)
    events.extend(layer_events)

    def slices(order: list[int], tid: int, cat: str, by_mnemonic: bool = True) -> None:
        if n <= max_slices:
            for i in order:
                events.append({"ph": "X", "pid": PID, "tid": tid, "name": _label(insns[i]), "cat": cat,
                               "ts": start[i] // g, "dur": (end[i] - start[i]) // g,
                               "args": {"insn": i, "layer": layer_of[i]}})
            return
        j = 0
        while j < len(order):
            i0 = order[j]
            key = (insns[i0].RECORD.mnemonic if by_mnemonic else "DMA", layer_of[i0])
            k = j
            busy = 0
            while k < len(order) and layer_of[order[k]] == key[1] and (
                    not by_mnemonic or insns[order[k]].RECORD.mnemonic == key[0]):
                busy += end[order[k]] - start[order[k]]
                k += 1
            i1 = order[k - 1]
            events.append({"ph": "X", "pid": PID, "tid": tid, "name": f"{key[0]} x{k - j}", "cat": cat,
                           "ts": start[i0] // g, "dur": (end[i1] - start[i0]) // g,
                           "args": {"first": i0, "last": i1, "count": k - j, "layer": key[1],
                                    "busy": _num(Fraction(busy, timing.ticks_per_cycle))}})
            j = k

    for k, e in enumerate(ENGINES):
        slices([i for i in range(n) if engine[i] == k], ENGINE_TID[e], e)
    for k in range(n_ch):
        on = sorted((i for i in range(n) if channel[i] == k), key=lambda i: (start[i], i))
        slices(on, DRAM_TID + k, "dram", by_mnemonic=False)

    return {"traceEvents": events,
            "otherData": {"us_per_cycle": us_per_cycle, "total_cycles": timing.total_cycles,
                          "instructions": n, "queue_depth": timing.queue_depth,
                          "dram_channels": timing.dram_channels,
                          "grouped": n > max_slices}}


def dumps(trace: dict) -> str:
    """The trace as deterministic JSON text (sorted keys, compact separators, final newline)."""
    return json.dumps(trace, sort_keys=True, separators=(",", ":")) + "\n"
