#!/usr/bin/env python3
"""Hostile inputs in real processes: how many runs end in anything but the contract.

Each run is ``python -m sqnxt_compiler compile MODEL -t TARGET -o OUT`` (or ``check``) in
a fresh process on a hostile input:

* **mutants**: seeded byte-level mutations (set, insert, delete, truncate, duplicate) of
  the real exports in ``tests/fixtures/modern``;
* **hostile targets**: the bundled pe8x8 with one field set to an extreme (huge, tiny,
  negative, NaN, wrong type) on a real export;
* **hostile cache entries**: a schedule cache whose every entry is edited (tiles 0 /
  10^12 / -3, objective, status, cost, not JSON);
* **faults**: SIGINT / SIGTERM at a random moment of a compile, stdout closed or a full
  device.

A run keeps the contract when it ends with exit 0 and every output, or with a documented
non-zero exit (the README's table; 70 excluded) and exactly one ``sqnxtc: error:`` line
(or the signal's line) on stderr, no traceback, and nothing left in the work directory
but the model.  The script prints the counts per kind and every breach.

    .venv/bin/python benchmarks/bench_robustness.py            # ~300 runs, a few minutes
    .venv/bin/python benchmarks/bench_robustness.py --mutants 1000 --seed 7
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

#: cold runs: the user's on-disk schedule cache must not answer (docs/scheduler.md, "The on-disk
#: cache"); a measurement of warm compiles gives --cache-dir or unsets this itself
os.environ.setdefault("SQNXTC_NO_CACHE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fuzz_nets import mutate  # noqa: E402  (the suite's byte mutator)
SQNXTC = [sys.executable, "-m", "sqnxt_compiler"]
DOCUMENTED = {1, 2, 3, 4, 5, 6, 7, 130, 143}
OUTPUTS = ["ir.txt", "layers.csv", "loopnest.txt", "schedule.json", "summary.txt"]


def mutate_seeded(data: bytes, rng: random.Random) -> bytes:
    """1-4 random byte edits (tests/fuzz_nets.py's mutator, the suite's)."""
    kinds = ("set", "set", "set", "insert", "delete", "truncate", "duplicate")
    return mutate(data, [(rng.choice(kinds), rng.random(), rng.randrange(256)) for _ in range(rng.randint(1, 4))])


def verdict(code: int, stderr: str, work: Path, keep: set[str], outdir: Path | None) -> str | None:
    """None when the run kept the contract, else why not.  Death by a signal (a negative
    code: it came after Python's shutdown restored the default action) is the shell's
    128 + N, the documented 130 / 143; a signal run may then hold complete outputs (they
    were published before the signal) but never partial ones."""
    if code < 0:
        code = 128 - code
        if outdir is not None and outdir.exists() and sorted(os.listdir(outdir)) != OUTPUTS:
            return f"killed by a signal with partial outputs {sorted(os.listdir(outdir))}"
        return None if code in DOCUMENTED else f"killed by signal {code - 128}"
    lines = [ln for ln in stderr.strip().splitlines() if not ln.startswith("sqnxtc: note: ")]
    if "Traceback" in stderr:
        return "traceback"
    if code == 0:
        if outdir is not None and sorted(os.listdir(outdir)) != OUTPUTS:
            return f"exit 0 but outputs {sorted(os.listdir(outdir))}"
        return None
    if code not in DOCUMENTED:
        return f"exit {code}: {lines[-1][:160] if lines else ''}"
    if code in (130, 143):
        if not lines or lines[-1] not in ("sqnxtc: interrupted", "sqnxtc: terminated"):
            return f"exit {code} without the signal's line"
        if outdir is not None and outdir.exists() and sorted(os.listdir(outdir)) != OUTPUTS:
            return f"exit {code} with partial outputs {sorted(os.listdir(outdir))}"
        left = sorted(set(os.listdir(work)) - keep - {"out"})
        return f"exit {code} left {left}" if left else None
    if len(lines) != 1 or not lines[0].startswith("sqnxtc: "):
        return f"exit {code} with {len(lines)} stderr lines"
    left = sorted(set(os.listdir(work)) - keep)
    if left:
        return f"exit {code} left {left}"
    return None


def run(args: list[str], work: Path, keep: set[str], outdir: Path | None, sig: tuple[int, float] | None = None,
        **kw) -> tuple[int, str | None]:
    # SIGINT at its default in the child: a shell's background job (this script run with
    # `&`) would otherwise pass it down ignored, and the interrupt runs would test nothing
    kw.setdefault("preexec_fn", lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    p = subprocess.Popen(SQNXTC + args, cwd=work, stderr=subprocess.PIPE, text=True,
                         stdout=kw.pop("stdout", subprocess.DEVNULL), **kw)
    if sig is not None:
        time.sleep(sig[1])
        p.send_signal(sig[0])
    _, err = p.communicate(timeout=600)
    return p.returncode, verdict(p.returncode, err, work, keep, outdir)


def fresh(base: Path, model: bytes) -> Path:
    w = Path(tempfile.mkdtemp(dir=base))
    (w / "m.onnx").write_bytes(model)
    return w


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mutants", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    sources = sorted((ROOT / "tests" / "fixtures" / "modern").glob("*.onnx"))
    counts: Counter = Counter()
    breaches: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="sqnxtc-robust-"))
    t0 = time.perf_counter()

    def record(kind: str, code: int, why: str | None, what: str) -> None:
        counts[(kind, "ok" if why is None else "BREACH")] += 1
        counts[(kind, f"exit {code}")] += 1
        if why is not None:
            breaches.append(f"{kind}: {what}: {why}")

    for i in range(a.mutants):
        src = rng.choice(sources)
        data = mutate_seeded(src.read_bytes(), rng)
        w = fresh(base, data)
        code, why = run(["compile", "m.onnx", "-t", "pe8x8", "-o", "out"], w, {"m.onnx"}, w / "out")
        if why is not None:
            shutil.copy(w / "m.onnx", base / f"breach-{i}.onnx")
        record("mutant", code, why, f"{src.name} #{i} (kept as {base}/breach-{i}.onnx)")
        shutil.rmtree(w)

    good = (ROOT / "tests" / "fixtures" / "modern" / "mixnet_ts13.onnx").read_bytes()
    target = (ROOT / "targets" / "pe8x8.toml").read_text()
    for key, value in [("pe_rows", "4611686018427387904"), ("pe_rows", "0"), ("pe_rows", "-3"),
                       ("latency_cycles", "4611686018427387904"), ("bandwidth_gb_per_s", "1e-300"),
                       ("bandwidth_gb_per_s", "nan"), ("bandwidth_gb_per_s", "inf"), ("frequency_mhz", "1e300"),
                       ("global_buffer_bytes", "4611686018427387904"), ("global_buffer_bytes", "1"),
                       ("dram", "4611686018427387904"), ("word_bits", "\"16\""), ("double_buffering", "2"),
                       ("os_weight_zero_fraction", "1"), ("psum_bits", "8"), ("rf_words_per_pe", "1")]:
        w = fresh(base, good)
        lines = [f"{key} = {value}" if ln.split("=")[0].strip() == key else ln for ln in target.splitlines()]
        (w / "t.toml").write_text("\n".join(lines) + "\n")
        code, why = run(["compile", "m.onnx", "-t", "t.toml", "-o", "out"], w, {"m.onnx", "t.toml"}, w / "out")
        record("target", code, why, f"{key} = {value}")
        shutil.rmtree(w)

    w = fresh(base, good)
    code, _ = run(["compile", "m.onnx", "-t", "pe8x8", "--cache-dir", "cache", "-o", "out"], w,
                  {"m.onnx", "cache", "out"}, w / "out")
    entries = sorted((w / "cache").glob("*.json"))
    edits = [("tile 0", lambda d: d["mapping"]["tiles"].__setitem__("x", 0)),
             ("tile 1e12", lambda d: d["mapping"]["tiles"].__setitem__("y", 10 ** 12)),
             ("tile -3", lambda d: d["mapping"]["tiles"].__setitem__("k", -3)),
             ("objective", lambda d: d["objective"].__setitem__("value", 1)),
             ("status", lambda d: d.__setitem__("status", "feasible")),
             ("solver", lambda d: d.__setitem__("solver", "oracle")),
             ("cost", lambda d: d["cost"].__setitem__("total_cycles", 1))]
    reference = (w / "out" / "schedule.json").read_bytes()
    for name, edit in edits + [("not json", None)]:
        for e in entries:
            if edit is None:
                e.write_text("{")
            else:
                d = json.loads(e.read_text())
                edit(d)
                e.write_text(json.dumps(d))
        shutil.rmtree(w / "out")
        code, why = run(["compile", "m.onnx", "-t", "pe8x8", "--cache-dir", "cache", "-o", "out"], w,
                        {"m.onnx", "cache", "out"}, w / "out")
        if why is None and (w / "out" / "schedule.json").read_bytes() != reference:
            why = "schedule.json differs from the uncached compile"
        record("cache", code, why, name)
    shutil.rmtree(w)

    for i in range(20):
        w = fresh(base, good)
        sig = (rng.choice((signal.SIGINT, signal.SIGTERM)), rng.uniform(0.05, 3.0))
        code, why = run(["compile", "m.onnx", "-t", "pe8x8", "-o", "out"], w, {"m.onnx"}, w / "out", sig=sig)
        record("signal", code, why, f"{signal.Signals(sig[0]).name} after {sig[1]:.2f} s")
        shutil.rmtree(w)
    for how in ("closed", "full"):
        w = fresh(base, good)
        if how == "closed":
            def close_stdout():
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.close(1)
            code, why = run(["compile", "m.onnx", "-t", "pe8x8"], w, {"m.onnx"}, None, preexec_fn=close_stdout)
        else:
            with open("/dev/full", "w") as full:
                code, why = run(["compile", "m.onnx", "-t", "pe8x8"], w, {"m.onnx"}, None, stdout=full)
        if code == 0:
            why = "exit 0 with stdout " + how
        record("stdout", code, why, how)
        shutil.rmtree(w)

    kinds = sorted({k for k, _ in counts})
    print(f"{sum(v for (k, o), v in counts.items() if o in ('ok', 'BREACH'))} runs in "
          f"{time.perf_counter() - t0:.0f} s (seed {a.seed})\n")
    print("| input | runs | kept the contract | breaches | exits |")
    print("| --- | --- | --- | --- | --- |")
    for k in kinds:
        exits = ", ".join(f"{o.split()[1]}: {v}" for (kk, o), v in sorted(counts.items())
                          if kk == k and o.startswith("exit"))
        n = counts[(k, "ok")] + counts[(k, "BREACH")]
        print(f"| {k} | {n} | {counts[(k, 'ok')]} | {counts[(k, 'BREACH')]} | {exits} |")
    for b in breaches:
        print("BREACH", b)
    if not breaches:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
