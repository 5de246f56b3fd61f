#!/usr/bin/env python3
"""The cross-check of the cost model by the timing simulator, over the zoo: figures.

For each zoo model (or the ones given), each target and each activation home, the model
is compiled as ``sqnxtc sim`` compiles it (the default pipeline, ``schedule``,
``plan-memory`` on a planned target, ``lower-program``), its program is run by the
event-driven timing simulator (:func:`sqnxt_compiler.program.timing.simulate`), and each
layer's simulated cycles (``end - start``) are compared with the cost model's
``total_cycles``.  Printed per row: the layers and the *distinct* layers (one per shape
and mapping: :meth:`Layer.key` and the mapping) within +-3%, the network's simulated and
analytical totals and their ratio, and the seconds of the compile, the lowering and the
simulation.  Then, over every row, the distinct layers outside the band, grouped by the
compute engine's largest waiting cause (what the closed form did not see), with the worst
ones listed.

    .venv/bin/python benchmarks/bench_crosscheck.py                     # every zoo model (~20 min)
    .venv/bin/python benchmarks/bench_crosscheck.py --models 1.0-SqNxt-23 --targets pe16x16
    .venv/bin/python benchmarks/bench_crosscheck.py --homes planned --json out.json

A model the lowering does not handle is reported as such and left out of the counts.
Goal (issue 23): 95% of the distinct layers of the zoo within +-3% on both targets, and
the network totals within +-3%.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = ("pe16x16", "pe8x8")
HOMES = ("planned", "dram")
BAND = Fraction(3, 100)


def main_cause(lay) -> str:
    """The compute engine's largest waiting cause in this layer, ``-`` when it never waits."""
    cause, v = max(lay.wait["compute"].items(), key=lambda kv: (kv[1], kv[0]))
    return cause if v > 0 else "-"


def run_row(model: str, target_name: str, home: str) -> dict:
    """Compile, lower and simulate one model on one target: the row's figures."""
    from sqnxt_compiler import driver
    from sqnxt_compiler.cli.options import load_target_with
    from sqnxt_compiler.diagnostics import SqnxtError
    from sqnxt_compiler.program.timing import simulate

    target = load_target_with(target_name, home)
    t0 = time.perf_counter()
    try:
        res = driver.compile(f"zoo:{model}", pipeline=driver.lowered_pipeline("default", target, None, home),
                             target=target)
    except SqnxtError as exc:
        return {"model": model, "target": target_name, "home": home, "error": str(exc).splitlines()[0]}
    t1 = time.perf_counter()
    low = res.graph.attrs["program"].lowered
    timing = simulate(low.program, target)
    t2 = time.perf_counter()
    layers = []
    for info, lay in zip(low.layers, timing.layers):
        s = info.schedule
        ana = int(s.cost.total_cycles)
        ratio = Fraction(lay.cycles) / ana if ana else Fraction(1)
        layers.append({"name": info.name, "key": repr((s.layer.key(), s.mapping)), "kind": s.layer.kind,
                       "mapping": str(s.mapping), "analytical": ana, "simulated": float(lay.cycles),
                       "ratio": float(ratio), "within": abs(ratio - 1) <= BAND, "cause": main_cause(lay)})
    distinct = {}
    for lay in layers:
        distinct.setdefault(lay["key"], lay)
    ana = sum(lay["analytical"] for lay in layers)
    return {"model": model, "target": target_name, "home": home, "layers": layers,
            "n": len(layers), "within": sum(lay["within"] for lay in layers),
            "distinct": len(distinct), "distinct_within": sum(lay["within"] for lay in distinct.values()),
            "analytical": ana, "simulated": timing.total_cycles, "ratio": timing.total_cycles / ana,
            "instructions": len(low.program.insns), "compile_s": t1 - t0, "simulate_s": t2 - t1}


def main(argv=None) -> int:
    from sqnxt_compiler.zoo import list_models

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", default=None, help="zoo models (default: all)")
    ap.add_argument("--targets", nargs="*", default=list(TARGETS))
    ap.add_argument("--homes", nargs="*", default=list(HOMES), choices=HOMES)
    ap.add_argument("--worst", type=int, default=15, help="distinct out-of-band layers listed")
    ap.add_argument("--json", default=None, help="write every row (and layer) as JSON")
    a = ap.parse_args(argv)
    models = a.models or [m.name for m in list_models()]
    rows = []
    print(f"{'model':20} {'target':8} {'home':7} {'layers in band':>15} {'distinct in band':>17} "
          f"{'analytical':>11} {'simulated':>11} {'ratio':>6} {'insns':>8} {'compile s':>9} {'sim s':>6}")
    for model in models:
        for t in a.targets:
            for h in a.homes:
                r = run_row(model, t, h)
                rows.append(r)
                if "error" in r:
                    print(f"{model:20} {t:8} {h:7} not lowered: {r['error']}")
                    continue
                print(f"{model:20} {t:8} {h:7} {r['within']:>7}/{r['n']:<7} {r['distinct_within']:>8}/"
                      f"{r['distinct']:<8} {r['analytical']:>11} {r['simulated']:>11} {r['ratio']:>6.3f} "
                      f"{r['instructions']:>8} {r['compile_s']:>9.1f} {r['simulate_s']:>6.2f}", flush=True)
    ok = [r for r in rows if "error" not in r]
    print()
    for t in a.targets:
        seen, totals = {}, []
        for r in ok:
            if r["target"] != t:
                continue
            totals.append(abs(r["ratio"] - 1) <= float(BAND))
            for lay in r["layers"]:
                seen.setdefault(lay["key"], lay)
        within = sum(lay["within"] for lay in seen.values())
        share = within / len(seen) if seen else 0.0
        print(f"{t}: distinct layers of the zoo within +-3%: {within} of {len(seen)} ({share:.1%}); "
              f"network totals within +-3%: {sum(totals)} of {len(totals)}")
        causes = Counter(lay["cause"] for lay in seen.values() if not lay["within"])
        print(f"  out of band by the compute engine's main wait: {dict(sorted(causes.items()))}")
        worst = sorted((lay for lay in seen.values() if not lay["within"]), key=lambda x: -abs(x["ratio"] - 1))
        for lay in worst[:a.worst]:
            print(f"    {lay['name'][:28]:28} {lay['kind']:7} {lay['mapping'][:44]:44} ratio {lay['ratio']:.3f} "
                  f"(compute waits on {lay['cause']})")
    print(f"not lowered: {len(rows) - len(ok)} of {len(rows)} rows")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
