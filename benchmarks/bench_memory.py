#!/usr/bin/env python3
"""Peak memory of ``sqnxtc compile`` on large models, against the model file's size.

For each model (zoo names are exported to an ONNX file first with ``sqnxtc zoo export``;
paths are used as they are) it runs ``sqnxtc compile FILE --target T -o DIR`` in a fresh
process and reads that process's peak resident set size (``ru_maxrss`` of the waited
child, measured by a small wrapper process so that each figure is one compile's own).
It prints the file size, the peak, their ratio, the wall time and the exit code.

    .venv/bin/python benchmarks/bench_memory.py                       # VGG-19, AlexNet
    .venv/bin/python benchmarks/bench_memory.py --models VGG-19 path/to/big.onnx --targets pe8x8

Goal (issue 11): peak under 1.5x the file's size for models over 100 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: cold runs: the user's on-disk schedule cache must not answer (docs/scheduler.md, "The on-disk
#: cache"); a measurement of warm compiles gives --cache-dir or unsets this itself
os.environ.setdefault("SQNXTC_NO_CACHE", "1")

#: Runs the command given as its arguments and prints the child's peak RSS (KiB on Linux).
WRAPPER = ("import resource, subprocess, sys\n"
           "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
           "sys.stderr.write(r.stderr[-2000:])\n"
           "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def sqnxtc() -> list[str]:
    """The command line of the installed sqnxtc (this interpreter's module)."""
    return [sys.executable, "-m", "sqnxt_compiler"]


def model_file(name: str, work: Path) -> Path:
    """``name`` as an ONNX file: an existing path, else the zoo model exported into ``work``."""
    p = Path(name)
    if p.exists():
        return p
    out = work / f"{name}.onnx"
    subprocess.run(sqnxtc() + ["zoo", "export", name, "-o", str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


def measure(path: Path, target: str, work: Path) -> dict:
    """One compile of ``path`` for ``target`` in a fresh process: peak RSS, wall time, exit."""
    out = work / f"out-{path.stem}-{target}"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", WRAPPER] + sqnxtc()
                       + ["compile", str(path), "--target", target, "-o", str(out)],
                       capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    code, kib = (int(v) for v in r.stdout.split())
    shutil.rmtree(out, ignore_errors=True)
    size = path.stat().st_size
    return {"model": path.stem, "target": target, "file_mb": round(size / 1e6, 1),
            "peak_mb": round(kib * 1024 / 1e6, 1), "ratio": round(kib * 1024 / size, 2),
            "wall_s": round(wall, 2), "exit": code, "stderr": r.stderr.strip()[-300:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["VGG-19", "AlexNet"],
                    help="zoo names or .onnx paths [default: VGG-19 AlexNet]")
    ap.add_argument("--targets", nargs="+", default=["pe16x16"])
    ap.add_argument("--json", help="also write the rows to this file")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sqnxtc-bench-memory-") as tmp:
        work = Path(tmp)
        print(f"{'model':24} {'target':8} {'file MB':>8} {'peak MB':>8} {'peak/file':>9} {'wall s':>7} exit")
        for name in a.models:
            path = model_file(name, work)
            for t in a.targets:
                r = measure(path, t, work)
                rows.append(r)
                print(f"{r['model']:24} {t:8} {r['file_mb']:8.1f} {r['peak_mb']:8.1f} {r['ratio']:9.2f} "
                      f"{r['wall_s']:7.2f} {r['exit']}", flush=True)
                if r["exit"]:
                    print(f"  {r['stderr']}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
