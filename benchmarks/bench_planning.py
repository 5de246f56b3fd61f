#!/usr/bin/env python3
"""Memory planning against every activation through DRAM: figures and compile times.

For each zoo model (or the ones given) and each target it runs ``sqnxtc compile zoo:M -t
T --emit schedule`` twice in fresh processes, with ``--activation-home dram`` and
``--activation-home planned``, and prints per row: total cycles, energy and DRAM words in
both modes (and the planned change), the number of activations kept in the buffer, and
the wall time of each whole process (imports included).

    .venv/bin/python benchmarks/bench_planning.py                       # every zoo model
    .venv/bin/python benchmarks/bench_planning.py --models 1.0-SqNxt-23 --targets pe16x16
    .venv/bin/python benchmarks/bench_planning.py --json out.json
    .venv/bin/python benchmarks/bench_planning.py --models 1.0-SqNxt-23 --targets pe16x16 --repeat 5

``--repeat N`` runs each compile N times (alternating the modes) and reports the median
wall time (the machine's noise is often +-20%); the figures are those of the last run
(every run gives the same bytes).  ``--jobs`` is passed to sqnxtc (default: its own, one
per CPU).

Goal (issue 10): the planned compile of 1.0-SqNxt-23 for pe16x16 within 1.5x of the
all-DRAM one, every layer and the network plan proven optimal.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def compile_doc(model: str, target: str, home: str, jobs: int | None = None) -> tuple[dict | None, float, str]:
    """(schedule document or None, wall seconds, error line) of one fresh compile."""
    cmd = [sys.executable, "-c", "from sqnxt_compiler.cli import main; main()", "compile",
           f"zoo:{model}", "-t", target, "--activation-home", home, "--emit", "schedule"]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return None, wall, (p.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(p.stdout), wall, ""


def pct(new: int, old: int) -> str:
    return f"{100 * (new - old) / old:+.1f}%" if old else "n/a"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", help="zoo model names (default: all)")
    ap.add_argument("--targets", nargs="*", default=["pe16x16", "pe8x8"])
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--repeat", type=int, default=1, help="runs per compile; the median wall time")
    ap.add_argument("--jobs", type=int, help="sqnxtc --jobs (default: sqnxtc's)")
    a = ap.parse_args(argv)
    if a.models:
        models = a.models
    else:
        from sqnxt_compiler.zoo import list_models
        models = [m.name for m in list_models()]
    hdr = (f"{'model':<20} {'target':<8} {'cycles dram':>12} {'planned':>12} {'chg':>7} "
           f"{'energy dram':>12} {'planned':>12} {'chg':>7} {'DRAM w dram':>12} {'planned':>11} {'chg':>7} "
           f"{'stay':>8} {'t dram':>6} {'t plan':>6} {'x':>5}")
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for m in models:
        for t in a.targets:
            walls = {"dram": [], "planned": []}
            for _ in range(max(1, a.repeat)):
                d, td, ed = compile_doc(m, t, "dram", a.jobs)
                p, tp, ep = compile_doc(m, t, "planned", a.jobs)
                walls["dram"].append(td)
                walls["planned"].append(tp)
            td, tp = statistics.median(walls["dram"]), statistics.median(walls["planned"])
            if d is None or p is None:
                print(f"{m[:20]:<20} {t:<8} FAILED: {ed or ep}")
                rows.append({"model": m, "target": t, "error": ed or ep})
                continue
            dt, pt = d["totals"], p["totals"]
            stay = sum(1 for x in p["plan"]["tensors"] if x["home"] == "buffer")
            r = {"model": m, "target": t,
                 "cycles": [dt["total_cycles"], pt["total_cycles"]],
                 "energy": [dt["energy"]["total"], pt["energy"]["total"]],
                 "dram_words": [dt["dram_words"]["total"], pt["dram_words"]["total"]],
                 "resident": stay, "tensors": len(p["plan"]["tensors"]),
                 "plan_status": p["plan"]["status"], "layer_status": pt["status"],
                 "wall_s": [round(td, 2), round(tp, 2)]}
            rows.append(r)
            print(f"{m[:20]:<20} {t:<8} {r['cycles'][0]:>12,} {r['cycles'][1]:>12,} "
                  f"{pct(*r['cycles'][::-1]):>7} {r['energy'][0]:>12.4g} {r['energy'][1]:>12.4g} "
                  f"{pct(*r['energy'][::-1]):>7} {r['dram_words'][0]:>12,} {r['dram_words'][1]:>11,} "
                  f"{pct(*r['dram_words'][::-1]):>7} {stay:>3}/{r['tensors']:<4} {td:>6.2f} {tp:>6.2f} "
                  f"{tp / td:>5.2f}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
