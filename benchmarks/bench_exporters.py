#!/usr/bin/env python3
"""Exporters: the same network must cost the same.  Every Keras export (tf2onnx) of the
fixtures in ``tests/fixtures/keras`` against its PyTorch twin, on both targets.

For every architecture of the directory's ``manifest.json`` (written by
``tests/fixtures/make_keras.py`` and ``make_keras_twins.py``) it compiles each tf2onnx
file (every opset, raw and simplified) and the architecture's torch twin
(``*_torch_op13.onnx``: the same convs, one to one) with the driver, as ``sqnxtc compile
FILE -t TARGET`` does (default pipeline, objective cycles), and prints one row per file
and target: the network's cycles, the ratio to the twin's on the same target, the number
of scheduled layers, and the layers the Keras export schedules beyond the twin's, by op
(``clip +27 (+31.6k)``: 27 clip layers more than the twin, 31.6k cycles more; ``mul ±0
(+6.0k)``: as many, costing more; a negative entry is what the twin has more of).  The
last line counts the Keras exports within 3% of their twin.

    .venv/bin/python benchmarks/bench_exporters.py
    .venv/bin/python benchmarks/bench_exporters.py --dir /work/keras_full --targets pe16x16
    .venv/bin/python benchmarks/bench_exporters.py --json out.json

Only sqnxtc's own dependencies are needed (the fixtures are already ONNX files).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

#: cold runs: the user's on-disk schedule cache must not answer (docs/scheduler.md, "The on-disk
#: cache"); a measurement of warm compiles gives --cache-dir or unsets this itself
os.environ.setdefault("SQNXTC_NO_CACHE", "1")

from sqnxt_compiler import driver  # noqa: E402
from sqnxt_compiler.targets import load_target  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / "tests" / "fixtures" / "keras"
WITHIN = 0.03
#: Layer kinds that are the network's work in both exports (their count is the
#: architecture's); the others are what an exporter's spelling adds.
MAC_KINDS = {"conv", "fc"}


def export_label(entry: dict) -> str:
    if entry["exporter"] == "tf2onnx":
        return f"tf2onnx op{entry['opset']}" + (f" +{entry['simplified_by']}" if entry["simplified_by"] else "")
    return f"torch op{entry['opset']} (twin)"


def measure(path: Path, targets: dict) -> dict:
    """Compile ``path`` for every target: per target the totals and the per-op layer counts
    and cycles (from the schedule document, the numbers schedule.json carries)."""
    out = {}
    t0 = time.perf_counter()
    try:
        results = list(driver.compile_for_targets(str(path), list(targets.values())))
    except Exception as exc:  # noqa: BLE001 - a file that fails is a row, not the end of the run
        msg = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        return {name: {"error": msg} for name in targets}
    wall = time.perf_counter() - t0
    for name, res in zip(targets, results):
        doc = res.document
        layers = doc["layers"]
        ops, cyc = Counter(), Counter()
        for L in layers:
            if L["kind"] in MAC_KINDS:
                continue
            op = L["op"].removeprefix("sqnxt.")
            ops[op] += 1
            cyc[op] += L["cost"]["total_cycles"]
        out[name] = {"cycles": doc["totals"]["total_cycles"], "layers": len(layers),
                     "mac_layers": doc["totals"]["mac_layers"], "macs": doc["totals"]["macs"],
                     "unmodelled": len(doc["unmodelled"]), "other_layers": dict(ops), "other_cycles": dict(cyc),
                     "compile_s": round(wall / len(targets), 2)}
    return out


def extra_layers(keras: dict, twin: dict) -> dict:
    """op -> (count, cycles) the Keras export schedules beyond the twin (negative: fewer)."""
    ops = set(keras["other_layers"]) | set(twin["other_layers"])
    diff = {}
    for op in sorted(ops):
        n = keras["other_layers"].get(op, 0) - twin["other_layers"].get(op, 0)
        c = keras["other_cycles"].get(op, 0) - twin["other_cycles"].get(op, 0)
        if n or c:
            diff[op] = {"count": n, "cycles": c}
    return diff


def fmt_cycles(c: int) -> str:
    a = abs(c)
    s = f"{a / 1e6:.2f}M" if a >= 1e6 else f"{a / 1e3:.1f}k" if a >= 1e3 else str(a)
    return ("-" if c < 0 else "") + s


def fmt_extra(diff: dict) -> str:
    """``clip +27 (+31.6k)``: 27 more clip layers than the twin, costing 31.6k cycles more;
    ``mul ±0 (+6.0k)``: as many as the twin's, costing more."""
    items = sorted(diff.items(), key=lambda kv: -kv[1]["cycles"])
    return ", ".join(f"{op} {'±0' if d['count'] == 0 else format(d['count'], '+d')} "
                     f"({'+' if d['cycles'] >= 0 else ''}{fmt_cycles(d['cycles'])})" for op, d in items) or "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=str(DEFAULT_DIR), help="fixtures directory with manifest.json")
    ap.add_argument("--targets", nargs="+", default=["pe16x16", "pe8x8"])
    ap.add_argument("--archs", nargs="*", help="only these architectures")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--label", default="", help="a note kept in the JSON (e.g. which sqnxtc revision)")
    a = ap.parse_args(argv)
    d = Path(a.dir)
    manifest = json.loads((d / "manifest.json").read_text())
    targets = {t: load_target(t) for t in a.targets}
    by_arch: dict[str, list[dict]] = {}
    for e in manifest["fixtures"]:
        if (d / e["file"]).exists() and (not a.archs or e["architecture"] in a.archs):
            by_arch.setdefault(e["architecture"], []).append(e)

    rows = []
    print("| architecture | export | target | cycles | x twin | layers | layers beyond the twin's (count, cycles) |")
    print("| --- | --- | --- | ---: | ---: | ---: | --- |")
    for arch, entries in by_arch.items():
        twin_e = next((e for e in entries if e["exporter"] != "tf2onnx"), None)
        if twin_e is None:
            print(f"| {arch} | (no twin in {d}) | | | | | |")
            continue
        twin = measure(d / twin_e["file"], targets)
        keras = [(e, measure(d / e["file"], targets)) for e in entries if e["exporter"] == "tf2onnx"]
        for tname in targets:
            tw = twin[tname]
            for e, m in [(twin_e, twin)] + keras:
                r = m[tname]
                row = {"architecture": arch, "file": e["file"], "export": export_label(e), "exporter": e["exporter"],
                       "opset": e["opset"], "simplified_by": e.get("simplified_by"), "target": tname, **r}
                if "error" in r or "error" in tw:
                    row["ratio"] = None
                    print(f"| {arch} | {row['export']} | {tname} | error | | | {r.get('error') or tw.get('error')} |")
                    rows.append(row)
                    continue
                row["ratio"] = r["cycles"] / tw["cycles"]
                row["beyond_twin"] = extra_layers(r, tw) if e is not twin_e else {}
                extra = fmt_extra(row["beyond_twin"]) if e is not twin_e else ""
                print(f"| {arch} | {row['export']} | {tname} | {r['cycles']:,} | {row['ratio']:.3f} | {r['layers']} "
                      f"| {extra} |", flush=True)
                rows.append(row)
    ks = [r for r in rows if r["exporter"] == "tf2onnx"]
    ok = [r for r in ks if r.get("ratio") is not None and abs(r["ratio"] - 1) <= WITHIN]
    worst = max((r for r in ks if r.get("ratio") is not None), key=lambda r: r["ratio"], default=None)
    errors = sum(1 for r in ks if r.get("ratio") is None)
    print(f"\n{len(ok)} of {len(ks)} within {WITHIN:.0%}" + (f" ({errors} not compiled)" if errors else "") + (
        f" (worst: {worst['architecture']} {worst['export']} on {worst['target']}, x{worst['ratio']:.3f})"
        if worst else ""))
    if a.json:
        import sqnxt_compiler

        Path(a.json).write_text(json.dumps({"label": a.label, "sqnxt_compiler": str(Path(sqnxt_compiler.__file__).parent),
                                            "dir": str(d), "targets": a.targets, "within": WITHIN,
                                            "within_count": len(ok), "keras_exports": len(ks), "rows": rows},
                                           indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
