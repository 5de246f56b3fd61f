#!/usr/bin/env python3
"""Turnaround: whole-process seconds of the commands a user waits for, cold and warm.

Every figure is the median of ``--runs`` whole processes (``python -m sqnxt_compiler
...``, start-up and imports included), beside the yardstick, the median of as many
``python -c "sum(i*i for i in range(10**7))"`` (pure-Python speed of this machine, now),
and their ratio, so figures from a loaded machine can still be compared:

* ``--help`` and ``targets list`` (no model read);
* ``compile zoo:MODEL -t TARGET -o DIR`` **cold**: an empty sqnxtc cache (a fresh
  ``SQNXTC_CACHE_DIR`` per run: the zoo model is built and every layer and the memory plan
  solved) and **warm**: the same command again over a cache the first run filled (its
  outputs replayed by the compile-output cache), and warm **without the output cache**
  (``SQNXTC_NO_OUTPUT_CACHE``: the built model, the imported IR, the layer schedules and
  the plan read back; docs/scheduler.md, "The on-disk cache"); the outputs of all three
  are checked byte-identical;
* ``check zoo:1.0-SqNxt-23 -t pe16x16 --tiled`` warm (issue 27's tiled check).

Python's own bytecode cache is left on for the children (``PYTHONDONTWRITEBYTECODE``
removed from their environment: a user's install has its ``.pyc`` files; with it set every
process compiles sqnxtc's sources again, about 0.3 s).

    .venv/bin/python benchmarks/bench_turnaround.py                              # 1.0-SqNxt-23, both targets
    .venv/bin/python benchmarks/bench_turnaround.py --models all --runs 3        # every zoo model
    .venv/bin/python benchmarks/bench_turnaround.py --json out.json

Goals (issue 27, quiet 2-core machine): cold compile of 1.0-SqNxt-23 for pe16x16 at most
1.0 s (about 1.7x the yardstick), warm at most 0.3 s, the tiled check at most 3 s.
Measured (2026-12-07, load ~2, yardstick 0.895 s): warm 0.98 s (1.09x; 2.58x before the
imported-IR cache), cold 5.48 s (6.12x), pe8x8 warm 0.92 s (1.03x).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
YARDSTICK = "sum(i*i for i in range(10**7))"


def _env(cache: Path | None, outputs: bool = True) -> dict:
    """The children's environment: no cache, or ``cache`` as the root (``outputs``: the
    compile-output cache on; off, the imported IR, the zoo and the schedules only)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "SQNXTC_NO_CACHE", "SQNXTC_NO_OUTPUT_CACHE")}
    if cache is None:
        env["SQNXTC_NO_CACHE"] = "1"
    else:
        env["SQNXTC_CACHE_DIR"] = str(cache)
        if not outputs:
            env["SQNXTC_NO_OUTPUT_CACHE"] = "1"
    return env


def timed(args: list[str], env: dict) -> float:
    """Seconds of one whole process; a failure stops the benchmark with its stderr."""
    t0 = time.perf_counter()
    p = subprocess.run(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.strip()[-500:]}")
    return dt


def sqnxtc(*args: str) -> list[str]:
    return [sys.executable, "-m", "sqnxt_compiler", *args]


def yardstick(runs: int) -> float:
    return statistics.median(timed([sys.executable, "-c", YARDSTICK], _env(None)) for _ in range(runs))


def _outputs(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def compile_times(model: str, target: str, runs: int, work: Path) -> dict:
    """Cold, warm and warm-without-the-output-cache medians of ``compile zoo:MODEL -t
    TARGET``, outputs compared."""
    cold, warm, lower = [], [], []
    for i in range(runs):
        cache = work / f"cache-{model}-{target}-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        outs = [work / f"{what}-{i}" for what in ("cold", "warm", "lower")]
        for d in outs:
            shutil.rmtree(d, ignore_errors=True)
        args = lambda d: sqnxtc("compile", f"zoo:{model}", "-t", target, "-o", str(d))  # noqa: E731
        cold.append(timed(args(outs[0]), _env(cache)))
        warm.append(timed(args(outs[1]), _env(cache)))
        lower.append(timed(args(outs[2]), _env(cache, outputs=False)))
        if not _outputs(outs[0]) == _outputs(outs[1]) == _outputs(outs[2]):
            raise SystemExit(f"{model} {target}: a warm compile's outputs differ from the cold one's")
        shutil.rmtree(cache, ignore_errors=True)
    return {"model": model, "target": target, "cold_s": round(statistics.median(cold), 3),
            "warm_s": round(statistics.median(warm), 3), "warm_no_output_cache_s": round(statistics.median(lower), 3),
            "runs": runs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", default=["1.0-SqNxt-23"], help="zoo models, or 'all'")
    ap.add_argument("--targets", nargs="*", default=["pe16x16", "pe8x8"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-check", action="store_true", help="leave out the tiled check")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    models = a.models
    if models == ["all"]:
        from sqnxt_compiler.zoo import list_models
        models = [m.name for m in list_models()]
    y = yardstick(a.runs)
    print(f"yardstick ({YARDSTICK}): {y:.3f} s (median of {a.runs})")
    doc = {"yardstick_s": round(y, 3), "runs": a.runs, "commands": [], "compiles": []}
    with tempfile.TemporaryDirectory(prefix="sqnxtc-turnaround-") as tmp:
        work = Path(tmp)
        for name, args in (("--help", ["--help"]), ("targets list", ["targets", "list"])):
            s = statistics.median(timed(sqnxtc(*args), _env(None)) for _ in range(a.runs))
            doc["commands"].append({"command": name, "s": round(s, 3), "x_yardstick": round(s / y, 2)})
            print(f"sqnxtc {name:<40} {s:6.2f} s  {s / y:5.2f}x")
        print(f"{'model':<24} {'target':<8} {'cold s':>7} {'x yard':>7} {'warm s':>7} {'x yard':>7} "
              f"{'warm, no output cache':>22}")
        for m in models:
            for t in a.targets:
                r = compile_times(m, t, a.runs, work)
                r.update(cold_x=round(r["cold_s"] / y, 2), warm_x=round(r["warm_s"] / y, 2),
                         warm_no_output_cache_x=round(r["warm_no_output_cache_s"] / y, 2))
                doc["compiles"].append(r)
                print(f"{m[:24]:<24} {t:<8} {r['cold_s']:>7.2f} {r['cold_x']:>6.2f}x {r['warm_s']:>7.2f} "
                      f"{r['warm_x']:>6.2f}x {r['warm_no_output_cache_s']:>13.2f} s {r['warm_no_output_cache_x']:>5.2f}x",
                      flush=True)
        if not a.no_check:
            cache = work / "check-cache"
            args = sqnxtc("check", "zoo:1.0-SqNxt-23", "-t", "pe16x16", "--tiled")
            timed(args, _env(cache))                                   # fills the cache
            s = statistics.median(timed(args, _env(cache)) for _ in range(a.runs))
            doc["commands"].append({"command": "check zoo:1.0-SqNxt-23 -t pe16x16 --tiled (warm)", "s": round(s, 3),
                                    "x_yardstick": round(s / y, 2)})
            print(f"sqnxtc check zoo:1.0-SqNxt-23 -t pe16x16 --tiled (warm) {s:6.2f} s  {s / y:5.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
