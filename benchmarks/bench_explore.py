#!/usr/bin/env python3
"""The SqueezeNext depth search on Dask: wall time, layer solves saved by sharing, the
speed-up from 1 to 2 workers, and the projected time of the whole search on N workers.

The family is `sqnxtc explore`'s: every split of 21 blocks over 4 stages (1140) x conv1 7
and 5 = 2280 variants, plus the paper's v1 (2281 networks), on pe16x16.  ``--every K``
takes every K-th split (the default 20: 57 splits x 2 + the paper's five = 119 networks)
so that one run fits in minutes; the projection scales the measured per-network time.
Each worker count runs into a fresh directory (no rows, no schedule cache carried over).

    .venv/bin/python benchmarks/bench_explore.py                 # --every 20, workers 1 and 2
    .venv/bin/python benchmarks/bench_explore.py --every 1       # the whole search
"""
from __future__ import annotations

import argparse
import tempfile
import time

from sqnxt_compiler.sweep.engine import run_sweep
from sqnxt_compiler.sweep.explore import PAPER, depth_splits, explore_spec, rank, variants


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--target", default="pe16x16")
    a = ap.parse_args()
    names = variants(21, (7, 5), 1.0, 1, "v5", a.every)
    full = 2 * len(depth_splits(21)) + 1
    print(f"{len(names)} networks (every {a.every}th of {len(depth_splits(21))} depth splits x conv1 7, 5, "
          f"+ the paper's v1..v5) on {a.target}; the whole search is {full} networks\n")
    print("| workers | wall s | s per network | layer solves | layers reused | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    base = None
    last = None
    for w in (int(x) for x in a.workers.split(",")):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            res = run_sweep(explore_spec(names, a.target, "cycles"), d, scheduler="local", workers=w)
            wall = time.perf_counter() - t0
        base = base or wall
        errors = sum(r["status"] != "ok" for r in res.rows)
        print(f"| {w} | {wall:.0f} | {wall / len(names):.2f} | {res.solved} | {res.reused_solves} | "
              f"{base / wall:.2f}x |" + (f" ({errors} error rows)" if errors else ""))
        last = (w, wall, res)
    w, wall, res = last
    per_task_cpu = wall * w / len(names)
    print(f"\nprojection for the whole search ({full} networks) from the {w}-worker run: "
          f"{per_task_cpu:.2f} worker-seconds per network -> {full * per_task_cpu / 3600:.2f} h on 1 worker, "
          + ", ".join(f"{full * per_task_cpu / n / 60:.0f} min on {n}" for n in (2, 8, 32, 128))
          + " (per-network time measured with sharing: later networks reuse most layers)")
    ranked = rank(res.rows, "cycles")
    print("\nbest 5 by cycles:")
    for r in ranked[:5]:
        print(f"  {r['rank']:>4}  {r['model'][4:]:<32} {r['cycles']:>12,} cycles  {r['params']:>9,} params")
    pos = {f"zoo:{n}": v for v, n in PAPER.items()}
    print("the paper's variants: " + ", ".join(f"{pos[r['model']]} rank {r['rank']}" for r in ranked
                                                if r["model"] in pos) + f" of {len(ranked)}")


if __name__ == "__main__":
    main()
