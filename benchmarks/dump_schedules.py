#!/usr/bin/env python3
"""Dump (and compare) the schedule of every distinct layer of every zoo model, both targets.

Used to prove that a change of the solver leaves every answer unchanged: dump before,
dump after, compare.  For each target the zoo's distinct layer shapes (``layer.key()``)
are solved once each, in zoo order, with ``schedule_layer`` (objective cycles, no time
limit, no cache), timed one by one; the JSON file holds, per target and model, the
``to_dict()`` of the schedule of every distinct layer of that model (the layer named as
its first occurrence in the model), and per target the solve time of every distinct
shape (seconds, not compared).

    .venv/bin/python benchmarks/dump_schedules.py --out /tmp/sched_before.json
    .venv/bin/python benchmarks/dump_schedules.py --out /tmp/sched_after.json \\
        --compare /tmp/sched_before.json
    .venv/bin/python benchmarks/dump_schedules.py --compare-only A.json B.json

Building the zoo's layers (the frontend) takes a while for the large models, so the
layers are cached in a pickle (``--layers``, default /tmp/sqnxtc_zoo_layers.pkl; built
one model per subprocess so that no process holds two models' weights).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

#: cold runs: the user's on-disk schedule cache must not answer (docs/scheduler.md, "The on-disk
#: cache"); a measurement of warm compiles gives --cache-dir or unsets this itself
os.environ.setdefault("SQNXTC_NO_CACHE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _model_layers(model: str) -> list:
    from sqnxt_compiler import driver
    from sqnxt_compiler.layers import network_layers

    res = driver.compile(f"zoo:{model}")
    return [L for _, L in network_layers(res.graph) if L is not None]


def zoo_layers(cache: Path, models: list[str] | None = None) -> dict:
    """{model: [Layer, ...]} for every zoo model (cached in ``cache``)."""
    if cache.exists():
        data = pickle.loads(cache.read_bytes())
        if models is None or all(m in data for m in models):
            return data if models is None else {m: data[m] for m in models}
    from sqnxt_compiler.zoo import list_models

    names = models or [m.name for m in list_models()]
    data = {}
    for name in names:
        p = subprocess.run([sys.executable, __file__, "--one-model", name, "--layers", str(cache) + ".part"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"{name}: {p.stderr.strip().splitlines()[-1:]}")
        data[name] = pickle.loads(Path(str(cache) + ".part").read_bytes())
    Path(str(cache) + ".part").unlink(missing_ok=True)
    if models is None:
        cache.write_bytes(pickle.dumps(data))
    return data


def dump(layers_by_model: dict, targets: list[str]) -> dict:
    from sqnxt_compiler.schedule.solver import schedule_layer
    from sqnxt_compiler.targets import load_target

    out = {"schedules": {}, "times": {}}
    for tname in targets:
        target = load_target(tname)
        solved: dict = {}           # key -> LayerSchedule
        times: dict = {}
        per_model = {}
        for model, layers in layers_by_model.items():
            seen, rows = set(), []
            for L in layers:
                k = L.key()
                if k in seen:
                    continue
                seen.add(k)
                s = solved.get(k)
                if s is None:
                    t0, c0 = time.perf_counter(), time.process_time()
                    s = solved[k] = schedule_layer(L, target)
                    times[repr(k)] = {"layer": f"{model}/{L.name}", "s": round(time.perf_counter() - t0, 4),
                                      "cpu_s": round(time.process_time() - c0, 4), "solver": s.solver}
                d = s.to_dict()
                d["layer"] = L.name
                rows.append(d)
            per_model[model] = rows
            print(f"{tname} {model}: {len(rows)} distinct", file=sys.stderr, flush=True)
        out["schedules"][tname] = per_model
        out["times"][tname] = times
    return out


def summary(data: dict) -> None:
    for tname, times in data["times"].items():
        rows = sorted(times.values(), key=lambda r: -r["s"])
        tot = sum(r["s"] for r in rows)
        cpu = sum(r.get("cpu_s", 0) for r in rows)
        print(f"{tname}: {len(rows)} distinct layers, total {tot:.2f} s wall, {cpu:.2f} s cpu; slowest (wall):")
        for r in rows[:6]:
            print(f"  {r['s']:8.3f} s  (cpu {r.get('cpu_s', 0):.3f} s)  {r['layer']} ({r['solver']})")


def compare(a: dict, b: dict) -> int:
    sa, sb = a["schedules"], b["schedules"]
    bad = 0
    n = 0
    for tname in sorted(set(sa) | set(sb)):
        for model in sorted(set(sa.get(tname, {})) | set(sb.get(tname, {}))):
            ra, rb = sa.get(tname, {}).get(model), sb.get(tname, {}).get(model)
            if ra is None or rb is None or len(ra) != len(rb):
                print(f"DIFF {tname} {model}: missing or different layer count")
                bad += 1
                continue
            for x, y in zip(ra, rb):
                n += 1
                if json.dumps(x, sort_keys=True) != json.dumps(y, sort_keys=True):
                    bad += 1
                    print(f"DIFF {tname} {model} {x['layer']}: {x['mapping']} / {y['mapping']}")
    print(f"compared {n} schedules: {'IDENTICAL' if not bad else f'{bad} differ'}")
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the dump here")
    ap.add_argument("--compare", help="compare the new dump with this one")
    ap.add_argument("--compare-only", nargs=2, metavar=("A", "B"))
    ap.add_argument("--models", nargs="*")
    ap.add_argument("--targets", nargs="*", default=["pe16x16", "pe8x8"])
    ap.add_argument("--layers", default="/tmp/sqnxtc_zoo_layers.pkl")
    ap.add_argument("--one-model", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one_model:
        Path(a.layers).write_bytes(pickle.dumps(_model_layers(a.one_model)))
        return 0
    if a.compare_only:
        x, y = (json.loads(Path(p).read_text()) for p in a.compare_only)
        return compare(x, y)
    data = dump(zoo_layers(Path(a.layers), a.models), a.targets)
    if a.out:
        Path(a.out).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    summary(data)
    import resource

    print(f"peak memory of this process (imports, the zoo's layers, every solve): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if a.compare:
        return compare(json.loads(Path(a.compare).read_text()), data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
