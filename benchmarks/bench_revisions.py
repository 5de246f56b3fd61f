#!/usr/bin/env python3
"""Compile time of two revisions of sqnxtc, measured in one run: whole processes,
interleaved, so that a change's effect is not confused with the machine's load.

Each revision (a git revision, or ``.`` for the working tree) is laid out as an importable
package in a temporary directory (``git worktree``; ``sqnxt_compiler`` with its
``passes``, ``targets`` and ``zoo`` inside, as the installed package has them) and run
with that directory first on ``PYTHONPATH``: the same interpreter and dependencies, only
sqnxtc differs.  Each run is a fresh ``python -m sqnxt_compiler compile MODEL -t TARGET
-j 1 -o DIR`` (no schedule cache: nothing is shared between runs); the runs alternate
A, B, A, B, ...  Printed per revision: the median and min wall seconds, the median CPU
seconds of the child (user + system), and the ratio B / A of the medians; and which of
the two revisions' outputs (the files of ``-o DIR``) differ, if any.

    .venv/bin/python benchmarks/bench_revisions.py HEAD .            # HEAD vs working tree
    .venv/bin/python benchmarks/bench_revisions.py HEAD~3 HEAD --runs 7 \\
        --model zoo:1.0-SqNxt-23 --target pe8x8 --extra=--objective=edp
"""
from __future__ import annotations

import argparse
import filecmp
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: cold runs: the user's on-disk schedule cache must not answer (docs/scheduler.md, "The on-disk
#: cache"); a measurement of warm compiles gives --cache-dir or unsets this itself
os.environ.setdefault("SQNXTC_NO_CACHE", "1")

ROOT = Path(__file__).resolve().parents[1]


def layout(rev: str, tmp: Path) -> Path:
    """An importable copy of revision ``rev`` (``.``: the working tree) under ``tmp``:
    returns the directory to put first on PYTHONPATH."""
    if rev == ".":
        src = ROOT
    else:
        src = tmp / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(src), rev],
                       check=True, capture_output=True)
    pkg = tmp / "pkg" / "sqnxt_compiler"
    pkg.mkdir(parents=True)
    for entry in (src / "sqnxt_compiler").iterdir():
        (pkg / entry.name).symlink_to(entry)
    for sub in ("passes", "targets", "zoo"):
        if not (pkg / sub).exists():
            (pkg / sub).symlink_to(src / sub)
    return tmp / "pkg"


def run_once(pypath: Path, args: list[str], out: Path) -> tuple[float, float]:
    """One compile in a fresh process: (wall seconds, child CPU seconds)."""
    env = dict(os.environ, PYTHONPATH=str(pypath))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "sqnxt_compiler", "compile", *args, "-o", str(out)],
                       env=env, capture_output=True, text=True, cwd=str(out.parent))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"bench_revisions: the compile failed (exit {r.returncode}): {r.stderr.strip()[-400:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def differing_outputs(a: Path, b: Path) -> list[str]:
    """The files of the two output directories that differ or exist in one only (none:
    byte-identical)."""
    cmp = filecmp.dircmp(a, b)
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return sorted(cmp.left_only + cmp.right_only + mismatch + errors)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="the first revision (git rev, or . for the working tree)")
    ap.add_argument("b", help="the second revision")
    ap.add_argument("--model", default="zoo:1.0-SqNxt-23")
    ap.add_argument("--target", default="pe16x16")
    ap.add_argument("--runs", type=int, default=5, help="runs per revision [5]")
    ap.add_argument("--extra", action="append", default=[], help="more compile arguments")
    o = ap.parse_args(argv)
    args = [o.model, "-t", o.target, "-j", "1", "--no-progress", *o.extra]
    with tempfile.TemporaryDirectory(prefix="sqnxtc-revs-") as tmpdir:
        tmp = Path(tmpdir)
        trees = []
        try:
            paths = {}
            for name in ("a", "b"):
                (tmp / name).mkdir()
                paths[name] = layout(getattr(o, name), tmp / name)
                if getattr(o, name) != ".":
                    trees.append(tmp / name / "tree")
            walls = {"a": [], "b": []}
            cpus = {"a": [], "b": []}
            for i in range(o.runs):
                for name in ("a", "b"):
                    out = tmp / name / f"out{i}"
                    w, c = run_once(paths[name], args, out)
                    walls[name].append(w)
                    cpus[name].append(c)
            differ = differing_outputs(tmp / "a" / "out0", tmp / "b" / "out0")
        finally:
            for t in trees:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(t)],
                               capture_output=True)
    print(f"compile {' '.join(args)}: {o.runs} runs each, interleaved")
    for name in ("a", "b"):
        print(f"  {name} = {getattr(o, name):<12} wall median {statistics.median(walls[name]):6.2f} s, "
              f"min {min(walls[name]):6.2f} s; CPU median {statistics.median(cpus[name]):6.2f} s")
    print(f"  b / a: wall {statistics.median(walls['b']) / statistics.median(walls['a']):.3f}, "
          f"CPU {statistics.median(cpus['b']) / statistics.median(cpus['a']):.3f}")
    print(f"  outputs byte-identical: {'yes' if not differ else 'no, these differ: ' + ', '.join(differ)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
