#!/usr/bin/env python3
"""Every network lowered to a program and run in the functional simulator.

For each model (the zoo, ``zoo:NAME``, and the external fixtures
``tests/fixtures/external/*.onnx``), each target (pe16x16, pe8x8) and each activation
home (``planned``, ``dram``) it does what ``sqnxtc check MODEL -t T --activation-home H
--program`` does, in process: compile (the default pipeline, ``schedule``, ``plan-memory``
when planned), lower (``lower-program``: :func:`sqnxt_compiler.program.lower.lower` and the
verifier), run the program in the functional simulator (:func:`run_program`) on one seeded
input and compare its outputs with onnxruntime's.  One row per (model, target, home):

* ``lowered``: yes, or no and the one-line reason;
* ``insns``: the program's instructions;
* ``words``: ``=`` when, on every layer, the DRAM words the simulated LOADs and STOREs
  moved equal the cost model's (``CostReport.dram``, per category), else the first layer
  that differs;
* ``max err``: the largest absolute difference to onnxruntime over the outputs, and
  whether it is within ``sqnxtc check``'s tolerance;
* ``compile``, ``sim``: seconds.

A network sqnxtc does not compile at all (an unsupported op, a dynamic dimension: ``n/a``)
has no cost and no program; the summary line that ends the table counts the compiled
rows lowered, with equal words and passing numerics, and the total seconds.  The exit
status is 0 when every compiled row passes.  ``--precision int16`` runs the simulator in
16-bit fixed point (tolerance of ``check --tiled --precision int16``).

    .venv/bin/python benchmarks/bench_funcsim.py                          # everything
    .venv/bin/python benchmarks/bench_funcsim.py --models 1.0-SqNxt-23,AlexNet --targets pe8x8 --homes dram
    .venv/bin/python benchmarks/bench_funcsim.py --models external --cache-dir /tmp/sqnxt-cache
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import numpy as np

#: cold runs: the user's on-disk schedule cache must not answer (docs/scheduler.md, "The on-disk
#: cache"); a measurement of warm compiles gives --cache-dir or unsets this itself
os.environ.setdefault("SQNXTC_NO_CACHE", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def zoo_names() -> list[str]:
    from sqnxt_compiler.zoo import list_models    # noqa: PLC0415
    return [m if isinstance(m, str) else m.name for m in list_models()]


def external_models() -> list[str]:
    return sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "external", "*.onnx")))


def pick_models(spec: str | None) -> list[str]:
    """``--models``: comma-separated zoo names, paths, ``zoo`` (all of the zoo) or
    ``external`` (every external fixture); default both."""
    if not spec:
        return [f"zoo:{n}" for n in zoo_names()] + external_models()
    out = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part == "zoo":
            out += [f"zoo:{n}" for n in zoo_names()]
        elif part == "external":
            out += external_models()
        elif part.endswith(".onnx") or os.path.sep in part:
            out.append(part)
        else:
            out.append(part if part.startswith("zoo:") else f"zoo:{part}")
    return out


def short(model: str) -> str:
    return model[4:] if model.startswith("zoo:") else os.path.basename(model)


def one_row(model: str, tname: str, home: str, precision: str, cache_dir: str | None, seed: int) -> dict:
    from sqnxt_compiler import driver
    from sqnxt_compiler.cli.options import load_target_with
    from sqnxt_compiler.diagnostics import SqnxtError
    from sqnxt_compiler.program.funcsim import run_program
    from sqnxt_compiler.program.lower import lower
    from sqnxt_compiler.program.verify import verify_lowered
    from sqnxt_compiler.reference.check import DEFAULT_ATOL, DEFAULT_RTOL, compare, random_inputs
    from sqnxt_compiler.reference.ort import ort_session, run_ort
    from sqnxt_compiler.reference.tiled import TOLERANCES

    row = {"model": short(model), "target": tname, "home": home, "compiled": False, "lowered": False, "reason": "",
           "insns": 0, "words": "", "err": None, "ok": False, "compile": 0.0, "sim": 0.0}
    t0 = time.perf_counter()
    try:
        tgt = load_target_with(tname, home)
        sched = {"jobs": 1}
        if cache_dir:
            sched["cache_dir"] = cache_dir
        res = driver.compile(model, target=tgt, schedule=sched)
    except SqnxtError as exc:          # not a network sqnxtc compiles: nothing is costed
        row["reason"] = "not compiled: " + str(getattr(exc, "message", exc)).splitlines()[0]
        row["compile"] = time.perf_counter() - t0
        return row
    row["compiled"] = True
    try:
        low = lower(res.graph, tgt)
        verify_lowered(low)
    except SqnxtError as exc:
        row["reason"] = str(getattr(exc, "message", exc)).splitlines()[0]
        row["compile"] = time.perf_counter() - t0
        return row
    row["compile"] = time.perf_counter() - t0
    row["lowered"] = True
    row["insns"] = len(low.program.insns)
    rtol, atol = (DEFAULT_RTOL, DEFAULT_ATOL) if precision == "fp32" else TOLERANCES[precision]
    t1 = time.perf_counter()
    try:
        feeds = random_inputs(res.graph, seed)
        run = run_program(low, res.graph, feeds, precision=precision)
        ref = run_ort(ort_session(res.model, res.source), feeds)
    except SqnxtError as exc:
        row["reason"] = "simulation: " + str(getattr(exc, "message", exc)).splitlines()[0]
        row["sim"] = time.perf_counter() - t1
        return row
    row["sim"] = time.perf_counter() - t1
    scheduled = [op for op in res.graph.ops() if "schedule" in op.attrs]
    bad = None
    for li, op in enumerate(scheduled):
        cost = op.attrs["schedule"].schedule.cost
        got = run.dram(li)
        for key, words in got.items():
            if words != cost.dram[key]:
                bad = f"layer {li} {key} {words} != {cost.dram[key]}"
                break
        if bad:
            break
    row["words"] = "=" if bad is None else bad
    worst, ok = 0.0, True
    for name, r in ref.items():
        err, _rel, good = compare(np.asarray(run.outputs[name]), r, rtol, atol)
        worst = max(worst, float(err))
        ok = ok and bool(good)
    row["err"], row["ok"] = worst, ok
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None,
                    help="comma-separated: zoo names, .onnx paths, 'zoo', 'external' (default: zoo,external)")
    ap.add_argument("--targets", default="pe16x16,pe8x8")
    ap.add_argument("--homes", default="planned,dram")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "int16"))
    ap.add_argument("--cache-dir", default=None, help="schedule cache (faster reruns)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", default="", help="comma-separated model names to leave out")
    a = ap.parse_args(argv)
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    models = [m for m in pick_models(a.models) if short(m) not in skip]
    targets = [t for t in a.targets.split(",") if t]
    homes = [h for h in a.homes.split(",") if h]
    hdr = (f"{'model':<44} {'target':<8} {'home':<7} {'lowered':<7} {'insns':>8} {'words':<6} "
           f"{'max err':>10} {'check':<5} {'compile':>8} {'sim':>8}")
    print(f"bench_funcsim: {len(models)} models x {len(targets)} targets x {len(homes)} homes, "
          f"{a.precision}, seed {a.seed}")
    print(hdr)
    print("-" * len(hdr))
    rows = []
    t0 = time.perf_counter()
    for model in models:
        for tname in targets:
            for home in homes:
                r = one_row(model, tname, home, a.precision, a.cache_dir, a.seed)
                rows.append(r)
                err = "-" if r["err"] is None else f"{r['err']:.2e}"
                words = r["words"] if len(r["words"]) <= 6 else "DIFF"
                low = "yes" if r["lowered"] else ("no" if r["compiled"] else "n/a")
                chk = "pass" if r["ok"] else ("FAIL" if r["compiled"] else "-")
                print(f"{r['model'][:44]:<44} {tname:<8} {home:<7} {low:<7} "
                      f"{r['insns']:>8} {words:<6} {err:>10} {chk:<5} "
                      f"{r['compile']:8.2f} {r['sim']:8.2f}", flush=True)
                if r["reason"]:
                    print(f"    reason: {r['reason']}", flush=True)
                elif r["words"] not in ("=", ""):
                    print(f"    words: {r['words']}", flush=True)
    n = sum(r["compiled"] for r in rows)
    lowered = sum(r["lowered"] for r in rows)
    words = sum(r["words"] == "=" for r in rows)
    ok = sum(r["ok"] for r in rows)
    worst = max((r["err"] for r in rows if r["err"] is not None), default=0.0)
    print(f"summary: {len(rows)} rows, {len(rows) - n} not compiled by sqnxtc (n/a); of the {n} compiled: "
          f"lowered {lowered}/{n}, words equal on every layer {words}/{n}, "
          f"numerics pass {ok}/{n} (max error {worst:.2e}), "
          f"{sum(r['insns'] for r in rows)} instructions, {time.perf_counter() - t0:.1f} s")
    return 0 if ok == n else 1


if __name__ == "__main__":
    sys.exit(main())
