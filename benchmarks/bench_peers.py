#!/usr/bin/env python3
"""sqnxtc beside ZigZag on every distinct layer of a model: figures and CPU time.

For each target, the model is compiled with every activation through DRAM (the layer-alone
schedules ``sqnxtc export`` writes by default) and exported for ZigZag; then, per distinct
layer (one per ``Layer.key()``), side by side:

* sqnxtc: total cycles, the DRAM words both tools count (inputs, weights, outputs, partial
  sums: docs/interop.md, "What each figure covers"), energy, and the CPU seconds of the
  layer's solve (cold: no schedule cache); ``c0`` is the same mapping's cycles in sqnxtc's
  model under ZigZag's assumptions (no zero-weight skip in OS, no DRAM latency);
* ZigZag evaluating sqnxtc's mapping (``pinned``: the exported ordering with sqnxtc's
  tile boundary, :mod:`sqnxt_compiler.interop.zigzag_eval`) and, for the record, with
  ZigZag's own memory allocation of the same ordering (``alloc`` words);
* ZigZag's own best mapping (``search``: mapping_search.yaml, its default search: three
  spatial mappings by utilization, LOMA with lpf_limit 6, minimal latency), with the
  spatial unrolling it chose.

Summary lines: shapes whose words agree exactly and within 5%, cycles within 5%, sqnxtc's
mapping against ZigZag's best (in ZigZag's model, and sqnxtc's own cycles against it), and
the CPU-time ratio.  Every mismatch is listed with the export's reason for it.

Needs ZigZag (``pip install 'sqnxtc[interop]'``, Python >= 3.11) in the interpreter that
runs it, with sqnxtc importable:

    python benchmarks/bench_peers.py                                 # zoo:1.0-SqNxt-23, both targets
    python benchmarks/bench_peers.py --targets pe8x8 --no-search -o peers/

Measured: docs/interop.md, "Measured".
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("SQNXTC_NO_CACHE", "1")       # cold solves: the CPU time is the solver's
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def within(a: float, b: float, tol: float = 0.05) -> bool:
    return abs(a - b) <= tol * max(abs(b), 1)


def run_target(model: str, target_name: str, out: Path, search: bool) -> dict:
    from sqnxt_compiler import driver
    from sqnxt_compiler.cli.options import load_target_with
    from sqnxt_compiler.cost import evaluate
    from sqnxt_compiler.interop import zigzag, zigzag_eval
    from sqnxt_compiler.interop.nest import compared_words
    from sqnxt_compiler.interop.yamltext import load

    target = load_target_with(target_name, "dram")
    t0 = time.process_time()
    res = driver.compile(model, pipeline=driver.build_pipeline("default", target=target, activation_home="dram"),
                         target=target)
    sq_cpu_total = time.process_time() - t0
    files = zigzag.export(res)
    d = out / target_name
    d.mkdir(parents=True, exist_ok=True)
    for n, text in files.items():
        (d / n).write_text(text, encoding="utf-8")
    man = load(files["manifest.yaml"])
    rows = res.network.scheduled
    first: dict = {}
    for i, r in enumerate(rows):
        first.setdefault(r.schedule.layer.key(), i)
    by_index = {e["index"]: e for e in man["layers"]}
    distinct = [by_index[i] for i in sorted(first.values()) if i in by_index]
    names = [e["name"] for e in distinct]
    zz_assume = replace(target, os_weight_zero_fraction=0, dram_latency_cycles=0)

    pinned = zigzag_eval.evaluate(str(d), "pinned", names)
    alloc = zigzag_eval.evaluate(str(d), "allocated", names)
    best = zigzag_eval.evaluate(str(d), "search", names) if search else {}
    out_rows = []
    for e in distinct:
        s = rows[e["index"]].schedule
        c0 = evaluate(s.layer, zz_assume, s.mapping).total_cycles
        p, a, b = pinned[e["name"]], alloc[e["name"]], best.get(e["name"])
        out_rows.append({
            "layer": e["name"], "kind": e["kind"],
            "mapping": f"{e['mapping']['dataflow']} {e['mapping']['tiles']['x']},{e['mapping']['tiles']['y']},"
                       f"{e['mapping']['tiles']['c']},{e['mapping']['tiles']['k']} {e['mapping']['order']}",
            "sq_cycles": e["sqnxtc"]["total_cycles"], "sq_c0": c0,
            "sq_words": compared_words(s.cost.dram), "sq_energy": e["sqnxtc"]["energy"],
            "sq_cpu": s.solve_time,           # wall seconds of the layer's cold solve
            "zz_cycles": round(p["cycles"]), "zz_words": p["dram_words"], "zz_energy": round(p["energy"]),
            "zz_cpu": p["cpu_s"], "alloc_words": a["dram_words"],
            "best_cycles": round(b["cycles"]) if b else None, "best_words": b["dram_words"] if b else None,
            "best_energy": round(b["energy"]) if b else None, "best_cpu": b["cpu_s"] if b else None,
            "best_mapping": b["temporal_mapping"] if b else None,
            "reasons": e["differs"] + ([] if e["words_kept"] else e["notes"]),
            "notes": e["notes"],
        })
    return {"target": target_name, "rows": out_rows, "sq_cpu_total": sq_cpu_total}


def report(result: dict, search: bool) -> str:
    rows = result["rows"]
    lines = [f"## {result['target']}: {len(rows)} distinct layers", ""]
    head = ["layer", "sqnxtc mapping", "sq cycles", "sq c0", "zz(sq) cycles", "zz best cycles", "sq words",
            "zz(sq) words", "zz alloc words", "zz best words", "sq energy", "zz(sq) energy", "zz best energy",
            "sq solve s", "zz(sq) cpu s", "zz best cpu s", "why words differ"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in rows:
        cells = [r["layer"], r["mapping"], r["sq_cycles"], r["sq_c0"], r["zz_cycles"], r["best_cycles"], r["sq_words"],
                 r["zz_words"], r["alloc_words"], r["best_words"], r["sq_energy"], r["zz_energy"],
                 r["best_energy"], f"{r['sq_cpu']:.2f}", f"{r['zz_cpu']:.3f}",
                 "" if r["best_cpu"] is None else f"{r['best_cpu']:.2f}",
                 "" if r["sq_words"] == r["zz_words"] else "; ".join(x.split(":")[0] for x in r["reasons"])
                 or "UNEXPLAINED"]
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    n = len(rows)
    exact = sum(r["sq_words"] == r["zz_words"] for r in rows)
    w5 = sum(within(r["zz_words"], r["sq_words"]) for r in rows)
    clean = [r for r in rows if not r["reasons"]]
    exact_clean = sum(r["sq_words"] == r["zz_words"] for r in clean)
    unexplained = [r["layer"] for r in rows if r["sq_words"] != r["zz_words"] and not r["reasons"]]
    alloc_exact = sum(r["sq_words"] == r["alloc_words"] for r in rows)
    c5 = sum(within(r["zz_cycles"], r["sq_cycles"]) for r in rows)
    c05 = sum(within(r["zz_cycles"], r["sq_c0"]) for r in rows)
    lines += ["",
              f"DRAM words, ZigZag on sqnxtc's mapping vs sqnxtc: {exact}/{n} exact, {w5}/{n} within 5%; "
              f"{exact_clean}/{len(clean)} exact where no assumption differs; unexplained: "
              f"{', '.join(unexplained) or 'none'}",
              f"DRAM words with ZigZag's own allocation of the same ordering: {alloc_exact}/{n} exact",
              f"cycles, ZigZag on sqnxtc's mapping vs sqnxtc: {c5}/{n} within 5% "
              f"({c05}/{n} against sqnxtc under ZigZag's assumptions, c0)"]
    if search:
        ok = [r for r in clean]
        sq_le = sum(r["sq_cycles"] <= r["best_cycles"] for r in ok)
        c0_le = sum(r["sq_c0"] <= r["best_cycles"] for r in ok)
        zz_le = sum(r["zz_cycles"] <= r["best_cycles"] for r in ok)
        sq_cpu = sum(r["sq_cpu"] for r in rows)
        zz_cpu = sum(r["best_cpu"] for r in rows)
        lines += [f"cycles vs ZigZag's own best, on the {len(ok)} shapes where no assumption differs: sqnxtc's "
                  f"<= best on {sq_le} (c0: {c0_le}); ZigZag's evaluation of sqnxtc's mapping <= its best on "
                  f"{zz_le}",
                  f"CPU seconds: sqnxtc's whole compile {result['sq_cpu_total']:.1f} (its distinct layers' solves "
                  f"{sq_cpu:.1f} s wall, in threads), ZigZag's search of the distinct layers {zz_cpu:.1f}: ratio "
                  f"{zz_cpu / max(result['sq_cpu_total'], 1e-9):.0f}x; ZigZag evaluating sqnxtc's mappings "
                  f"{sum(r['zz_cpu'] for r in rows):.1f}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="zoo:1.0-SqNxt-23")
    ap.add_argument("--targets", nargs="+", default=["pe16x16", "pe8x8"])
    ap.add_argument("-o", "--out", default=None, help="keep the exports and write peers.md / peers.json here")
    ap.add_argument("--no-search", action="store_true", help="skip ZigZag's own search (the slow part)")
    args = ap.parse_args(argv)
    try:
        import zigzag  # noqa: F401
    except ImportError:
        print("bench_peers: ZigZag is not installed here (pip install 'sqnxtc[interop]', Python >= 3.11)",
              file=sys.stderr)
        return 2
    import tempfile

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-peers-"))
    results = [run_target(args.model, t, out, not args.no_search) for t in args.targets]
    text = f"# {args.model}: sqnxtc vs ZigZag\n\n" + "\n".join(report(r, not args.no_search) for r in results)
    print(text)
    if args.out:
        (out / "peers.md").write_text(text, encoding="utf-8")
        (out / "peers.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
