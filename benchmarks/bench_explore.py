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
    .venv/bin/python benchmarks/bench_explore.py --every 1 --keep runs/   # keep each run's DIR

With ``--keep DIR`` each worker count runs into ``DIR/workers-N`` (which must not exist
yet) and is kept, so ``sqnxtc explore ... -o DIR/workers-N`` then ranks it at once (every
row is already there) under any budget.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time

from sqnxt_compiler.sweep.engine import run_sweep
from sqnxt_compiler.sweep.explore import PAPER, depth_splits, explore_spec, rank, variants

#: cold runs: the user's on-disk schedule cache must not answer (docs/scheduler.md, "The on-disk
#: cache"); a measurement of warm compiles gives --cache-dir or unsets this itself
os.environ.setdefault("SQNXTC_NO_CACHE", "1")


def run_dir(keep: str | None, workers: int):
    """A fresh directory for one run: a temporary one, or ``KEEP/workers-N`` (new)."""
    if keep is None:
        return tempfile.TemporaryDirectory()
    d = os.path.join(keep, f"workers-{workers}")
    if os.path.exists(d):
        sys.exit(f"bench_explore: {d} exists; --keep needs a fresh directory per run")
    os.makedirs(d)
    return contextlib.nullcontext(d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--target", default="pe16x16")
    ap.add_argument("--keep", default=None, metavar="DIR", help="run into DIR/workers-N and keep it")
    a = ap.parse_args()
    names = variants(21, (7, 5), 1.0, 1, "v5", a.every)
    full = 2 * len(depth_splits(21)) + 1
    print(f"{len(names)} networks (every {a.every}th of {len(depth_splits(21))} depth splits x conv1 7, 5, "
          f"+ the paper's v1..v5) on {a.target}; the whole search is {full} networks\n")
    print("| workers | wall s | s per network | layer solves | layers reused | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    walls = {}
    last = None
    for w in (int(x) for x in a.workers.split(",")):
        with run_dir(a.keep, w) as d:
            t0 = time.perf_counter()
            res = run_sweep(explore_spec(names, a.target, "cycles"), d, scheduler="local", workers=w)
            wall = time.perf_counter() - t0
        walls[w] = wall
        base = walls.get(1, next(iter(walls.values())))
        errors = sum(r["status"] != "ok" for r in res.rows)
        print(f"| {w} | {wall:.0f} | {wall / len(names):.2f} | {res.solved} | {res.reused_solves} | "
              f"{base / wall:.2f}x |" + (f" ({errors} error rows)" if errors else ""), flush=True)
        last = (w, wall, res)
    if 1 in walls and len(walls) > 1:
        print("speed-up against 1 worker: " + ", ".join(f"{w} workers {walls[1] / t:.2f}x"
                                                        for w, t in walls.items() if w != 1))
    w, wall, res = last
    per_task_cpu = wall * w / len(names)
    print(f"\nprojection for the whole search ({full} networks) from the {w}-worker run: "
          f"{per_task_cpu:.2f} worker-seconds per network -> {full * per_task_cpu / 3600:.2f} h on 1 worker, "
          + ", ".join(f"{full * per_task_cpu / n / 60:.1f} min on {n}" for n in (2, 8, 32, 128))
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
