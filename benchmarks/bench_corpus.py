#!/usr/bin/env python3
"""The corpus table: every ONNX file of a directory compiled and checked, one row per file.

For each file (default: the real exports in ``tests/fixtures/modern``) and target it runs
``sqnxtc compile FILE -t TARGET -o DIR`` in a fresh process (wall time and peak resident
memory of that process), reads the schedule (network cycles, ops not modelled, the share
of cycles in the layers of the ops issue 11 added: element-wise, data-movement, reduction
and constant-matmul layers, ``ELEMENT_LAYER_OPS``), and runs ``sqnxtc check FILE`` (plain
executor against onnxruntime, one seeded input: the largest error over the outputs).  It
prints a Markdown table.

    .venv/bin/python benchmarks/bench_corpus.py
    .venv/bin/python benchmarks/bench_corpus.py --dir my_models --targets pe16x16
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqnxt_compiler.ir.core import OPS, RunsOnArray
from sqnxt_compiler.layers import RULES

#: cold runs: the user's on-disk schedule cache must not answer (docs/scheduler.md, "The on-disk
#: cache"); a measurement of warm compiles gives --cache-dir or unsets this itself
os.environ.setdefault("SQNXTC_NO_CACHE", "1")

#: The ops issue 11 added: those whose layer stands for their cost (element-wise, data
#: movement, reductions, a matmul by constant weights), not the conv / fc / pool / add it is.
ELEMENT_LAYER_OPS = {name for name, d in OPS.items()
                     if d.get_trait(RunsOnArray) and not RULES[d.get_trait(RunsOnArray).layer].native}

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = ("import resource, subprocess, sys\n"
           "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
           "sys.stderr.write(r.stderr[-2000:])\n"
           "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
SQNXTC = [sys.executable, "-m", "sqnxt_compiler"]


def compile_row(path: Path, target: str, work: Path) -> dict:
    """Compile ``path`` for ``target`` in a fresh process: exit, wall, peak, schedule figures."""
    out = work / f"{path.stem}-{target}"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", WRAPPER] + SQNXTC + ["compile", str(path), "-t", target, "-o", str(out)],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    code, kib = (int(v) for v in r.stdout.split())
    row = {"file": path.name, "target": target, "exit": code, "wall_s": round(wall, 2), "peak_mb": round(kib / 1024)}
    if code == 0:
        doc = json.loads((out / "schedule.json").read_text())
        total = doc["totals"]["total_cycles"]
        new = sum(L["cost"]["total_cycles"] for L in doc["layers"] if L["op"] in ELEMENT_LAYER_OPS)
        row.update(cycles=total, unmodelled=len(doc["unmodelled"]), new_share=new / total if total else 0.0)
    else:
        row["error"] = r.stderr.strip().splitlines()[-1][:200] if r.stderr.strip() else ""
    return row


def check_error(path: Path) -> str:
    """``sqnxtc check FILE --samples 1``: PASS/FAIL and the largest absolute error."""
    r = subprocess.run(SQNXTC + ["check", str(path), "--samples", "1"], capture_output=True, text=True)
    errs = [float(m.group(1)) for m in re.finditer(r"^\S+\s+\S+\s+([0-9.e+-]+)\s+[0-9.e+-]+\s+\w+$", r.stdout, re.M)]
    verdict = "PASS" if r.returncode == 0 else f"exit {r.returncode}"
    return f"{verdict} {max(errs):.1e}" if errs else verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=str(ROOT / "tests" / "fixtures" / "modern"))
    ap.add_argument("--targets", nargs="+", default=["pe16x16", "pe8x8"])
    ap.add_argument("--json", help="also write the rows to this file")
    a = ap.parse_args()
    files = sorted(Path(a.dir).glob("*.onnx"))
    rows = []
    print("| model | exporter | compile | check (max abs err) | " + " | ".join(
        f"cycles {t} | new ops {t}" for t in a.targets) + " | compile s | peak MB |")
    print("|" + " --- |" * (6 + 2 * len(a.targets)))
    with tempfile.TemporaryDirectory(prefix="sqnxtc-corpus-") as tmp:
        for f in files:
            per = [compile_row(f, t, Path(tmp)) for t in a.targets]
            chk = check_error(f)
            rows.append({"file": f.name, "check": chk, "targets": per})
            model, _, exporter = f.stem.rpartition("_")
            ok = "ok" if all(p["exit"] == 0 and p.get("unmodelled") == 0 for p in per) else \
                "; ".join(p.get("error", f"{p.get('unmodelled')} unmodelled") for p in per)
            cells = " | ".join(f"{p.get('cycles', '-'):,} | {100 * p.get('new_share', 0):.0f}%"
                               if p["exit"] == 0 else "- | -" for p in per)
            print(f"| {model} | {exporter} | {ok} | {chk} | {cells} | {per[0]['wall_s']:.1f} | {per[0]['peak_mb']} |",
                  flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
