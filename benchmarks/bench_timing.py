#!/usr/bin/env python3
"""Speed of the event-driven timing simulator (``sqnxt_compiler.program.timing``).

Builds a synthetic program of N instructions with the lowering's protocol
(``docs/isa.md``, "Programs"): layers of double-buffered steps, each step an input LOAD
and a weight LOAD (the last pushes ``load->compute``; from the third step on the first
pops ``compute->load``), one COMPUTE (pops the step's token and, from the third output
tile on, the ``store->compute`` token of the output slot it reuses) and one STORE; a
compute SYNC between layers.  Tile shapes and dataflows vary from layer to layer so that
both compute- and DMA-bound stretches occur.  It times ``simulate`` (preparation of the
per-instruction durations included) and the trace export, and prints instructions,
seconds and instructions per second for each size.

    .venv/bin/python benchmarks/bench_timing.py                  # 10k, 100k instructions
    .venv/bin/python benchmarks/bench_timing.py --sizes 300000 --target pe8x8

Goal (issue 23): 1.0-SqNxt-23 on pe16x16 (10^4 - 10^5 instructions) in well under 10 s.
"""
from __future__ import annotations

import argparse
import json
import os
import time

from sqnxt_compiler.program import Compute, Finish, Layer, Load, Program, Store, Sync
from sqnxt_compiler.program.timeline import dumps, trace_events
from sqnxt_compiler.program.timing import simulate
from sqnxt_compiler.targets.target import load_target

#: cold runs: the user's on-disk schedule cache must not answer (docs/scheduler.md, "The on-disk
#: cache"); a measurement of warm compiles gives --cache-dir or unsets this itself
os.environ.setdefault("SQNXTC_NO_CACHE", "1")

#: (kind, df, C, K, HW, R, tile hw, tc, tk) of the synthetic layers, cycled.
SHAPES = (
    ("conv", "OS", 64, 64, 56, 3, 14, 16, 16),
    ("conv", "WS", 32, 128, 28, 1, 28, 32, 16),
    ("conv", "OS", 128, 32, 28, 1, 7, 64, 8),
    ("conv", "WS", 16, 16, 112, 3, 16, 16, 16),
)


def synthetic(n_insns: int, steps_per_layer: int = 1000) -> Program:
    """A well-formed program of about ``n_insns`` instructions (module doc)."""
    layers, insns = [], []
    li = 0
    while len(insns) < n_insns - 1:
        kind, df, C, K, hw, R, t, tc, tk = SHAPES[li % len(SHAPES)]
        layers.append(Layer(name=f"L{li}", kind=kind, df=df, C=C, K=K, H=hw, W=hw, P=hw, Q=hw, R=R, S=R,
                            pt=R // 2, pb=R // 2, pl=R // 2, pr=R // 2, nz_num=3, nz_den=5))
        steps = min(steps_per_layer, (n_insns - 1 - len(insns)) // 4 or 1)
        if li:
            insns.append(Sync(layer=li, q="compute", pop_next=1, push_prev=1))

        def loads(i):
            first_pop = 1 if (i >= 2 or (i == 0 and li > 0)) else 0
            insns.append(Load(layer=li, kind="input", pop_next=first_pop, n0=t + R - 1, n1=t + R - 1, n2=tc))
            insns.append(Load(layer=li, kind="weight", push_next=1, n0=R * R, n1=tc, n2=tk))

        loads(0)
        for i in range(steps):
            insns.append(Compute(layer=li, acc=0, fin=1, oh=t, ow=t, kc=tk, cc=tc, pop_prev=1,
                                 pop_next=1 if i >= 2 else 0, push_next=1,
                                 push_prev=1 if i + 2 < steps else 0))
            if i + 1 < steps:
                loads(i + 1)
            insns.append(Store(layer=li, kind="output", pop_prev=1, n0=t, n1=t, n2=tk,
                               push_prev=1 if (i + 2 < steps or i == steps - 1) else 0))
        li += 1
    insns.append(Finish(pop_next=1))
    return Program(tuple(layers), tuple(insns))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--target", default="pe16x16")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = ap.parse_args()
    target = load_target(args.target)
    print(f"{'instructions':>12} {'simulate s':>11} {'insns/s':>10} {'trace s':>8} {'trace MB':>9} {'cycles':>12}")
    for size in args.sizes:
        prog = synthetic(size)
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            timing = simulate(prog, target)
            best = min(best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        text = dumps(trace_events(prog, timing))
        tt = time.perf_counter() - t0
        json.loads(text)
        n = len(prog.insns)
        print(f"{n:>12} {best:>11.3f} {n / best:>10.0f} {tt:>8.3f} {len(text) / 1e6:>9.2f} {timing.total_cycles:>12}")


if __name__ == "__main__":
    main()
