#!/usr/bin/env python3
"""Compile-time benchmark: every zoo model (or the paper's Table 4 layers) on both targets.

For each (model, target) it runs, in a fresh subprocess (so that peak memory is per model
and no cache is shared), the driver's compile of ``zoo:MODEL`` for the target (frontend,
default pass pipeline, schedule pass: CP-SAT, objective cycles).  It prints per model: wall time end to end (imports included), the schedule
part, peak resident memory (and the peak before scheduling: imports and frontend),
layers, distinct layers solved, per-layer solve time (median, max), and the network's
total cycles.

    .venv/bin/python benchmarks/bench_compile.py                      # every zoo model
    .venv/bin/python benchmarks/bench_compile.py --models 1.0-SqNxt-23 --targets pe16x16
    .venv/bin/python benchmarks/bench_compile.py --source table4       # Table 4 CSV layers
    .venv/bin/python benchmarks/bench_compile.py --json out.json

Goals on a 2-core machine: 1.0-SqNxt-23 for pe16x16 under 5 s end to end, no layer over
2 s, peak memory under 1 GB.
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

#: cold runs: the user's on-disk schedule cache must not answer (docs/scheduler.md, "The on-disk
#: cache"); a measurement of warm compiles gives --cache-dir or unsets this itself
os.environ.setdefault("SQNXTC_NO_CACHE", "1")

ROOT = Path(__file__).resolve().parents[1]
TABLE4 = ROOT / "docs" / "spec" / "sqnxt23_table4.csv"


def run_one(model: str, target_name: str, objective: str, source: str) -> dict:
    """Body of one measurement (runs in the child process): the driver's compile of
    ``zoo:MODEL`` for the target (or the Table 4 layers through ``schedule_layers``).
    The schedule pass's progress callback marks when scheduling starts (its first call),
    which splits the wall time and the memory peak into frontend and schedule parts."""
    import resource

    t0 = time.perf_counter()
    from sqnxt_compiler import driver
    from sqnxt_compiler.schedule import schedule_layers
    from sqnxt_compiler.targets import load_target

    target = load_target(target_name)
    mark: dict = {}

    def progress(done, total, layer):
        if "t" not in mark:
            mark["t"] = time.perf_counter()
            mark["kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    if source == "table4":
        from sqnxt_compiler.cost.reference_layers import table4_layers

        layers = []
        for L, rep in table4_layers(TABLE4):
            layers.extend([L] * rep)
        scheds = schedule_layers(layers, target, objective=objective, progress=progress)
    else:
        res = driver.compile(f"zoo:{model}", target=target, schedule={"objective": objective},
                             progress=progress)
        scheds = [r.schedule for r in res.network.scheduled]
    t_end = time.perf_counter()
    t_front, front_kb = mark.get("t", t_end), mark.get("kb", 0)
    solved = [s for s in scheds if not s.cached]
    # first occurrence of each distinct key carries the solve time
    seen, times, layer_times = set(), [], []
    for s in scheds:
        k = s.layer.key()
        if k in seen:
            continue
        seen.add(k)
        times.append(s.solve_time)
        layer_times.append((s.solve_time, s.layer.name, s.solver))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    slowest = max(layer_times)
    return {
        "model": model if source != "table4" else "table4:1.0-SqNxt-23",
        "target": target_name,
        "wall_s": round(t_end - t0, 3),
        "frontend_s": round(t_front - t0, 3),
        "schedule_s": round(t_end - t_front, 3),
        "peak_mb": round(peak_kb / 1024, 1),
        "frontend_peak_mb": round(front_kb / 1024, 1),   # peak before scheduling: imports + frontend
        "layers": len(scheds),
        "distinct": len(seen),
        "median_layer_s": round(statistics.median(times), 4),
        "max_layer_s": round(slowest[0], 4),
        "slowest_layer": slowest[1],
        "statuses": sorted({s.status for s in scheds}),
        "total_cycles": sum(s.cost.total_cycles for s in scheds),
        "total_energy": sum(s.cost.energy_total for s in scheds),
        "_solved_in_process": len(solved),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", help="zoo model names (default: all)")
    ap.add_argument("--targets", nargs="*", default=["pe16x16", "pe8x8"])
    ap.add_argument("--objective", default="cycles", choices=["cycles", "energy", "edp"])
    ap.add_argument("--source", default="zoo", choices=["zoo", "table4"])
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "TARGET"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(run_one(a.one[0], a.one[1], a.objective, a.source)))
        return 0
    if a.source == "table4":
        models = ["1.0-SqNxt-23"]
    elif a.models:
        models = a.models
    else:
        from sqnxt_compiler.zoo import list_models

        models = [m.name for m in list_models()]
    rows = []
    hdr = (f"{'model':<24} {'target':<8} {'wall s':>7} {'sched s':>8} {'peak MB':>8} {'front MB':>8} {'layers':>6} "
           f"{'distinct':>8} {'med ms':>7} {'max ms':>7}  {'slowest':<16} {'total cycles':>14}")
    print(hdr)
    print("-" * len(hdr))
    for model in models:
        for t in a.targets:
            cmd = [sys.executable, __file__, "--one", model, t, "--objective", a.objective, "--source", a.source]
            p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
            if p.returncode != 0:
                err = (p.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{model:<24} {t:<8} FAILED: {err}")
                rows.append({"model": model, "target": t, "error": err})
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"{r['model'][:24]:<24} {t:<8} {r['wall_s']:>7.2f} {r['schedule_s']:>8.2f} {r['peak_mb']:>8.0f} "
                  f"{r['frontend_peak_mb']:>8.0f} "
                  f"{r['layers']:>6} {r['distinct']:>8} {1000 * r['median_layer_s']:>7.0f} "
                  f"{1000 * r['max_layer_s']:>7.0f}  {r['slowest_layer'][:16]:<16} {r['total_cycles']:>14,}",
                  flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
