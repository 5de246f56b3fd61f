"""``sqnxtc sim``: the cost model's cycles against the timing simulator's, layer by layer.

The model is compiled as ``compile`` would (the default pipeline, ``schedule``, and
``plan-memory`` on a planned target), then lowered (``lower-program``); the program runs
in memory through the event-driven timing simulator
(:func:`sqnxt_compiler.program.timing.simulate`, docs/isa.md "Timing").  Per layer: the
analytical cycles (the schedule's ``cost.total_cycles``), the simulated cycles (the
layer's ``end - start``), their ratio, and the compute engine's waits by cause, which say
where a difference comes from; then the network's totals.  docs/isa.md, "sqnxtc sim",
documents the table and the ``--json`` fields.

Everything printed or written is a function of the input (no times, no paths but the
model's as given): two runs are byte-identical.  A network the lowering does not handle
is an unsupported model (exit 4, one line); outputs are written only after everything
is computed, each all-or-nothing.
"""
from __future__ import annotations

import os
from fractions import Fraction

import click

from .. import driver
from ..diagnostics import UsageError
from ..outputs import STDOUT, echo, write_file
from ..report.progress import reporting
from .options import (activation_home_option, load_target_with, notes, progress_option, schedule_flags,
                      schedule_values)
from .paths import check_output_file

#: A layer is "within" when |simulated / analytical - 1| <= this.
WITHIN = Fraction(3, 100)
#: Layers in the table without --layers.
DEFAULT_LAYERS = 20
#: The --json document's format number (docs/isa.md, "sqnxtc sim").
JSON_FORMAT = 1


class LayerCount(click.ParamType):
    """``--layers``: a positive count or ``all``."""

    name = "N|all"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value is None:
            return value
        if str(value).strip().lower() == "all":
            return None
        try:
            n = int(value)
        except ValueError:
            self.fail(f"{value!r} is neither a positive count nor 'all'", param, ctx)
        if n < 1:
            self.fail(f"{value!r} is neither a positive count nor 'all'", param, ctx)
        return n


def compile_lowered(model, pipeline: list, target, progress, instrument=None, import_cache: bool = False):
    """Compile ``model`` through ``pipeline`` (ending in lower-program): the result and its
    :class:`~sqnxt_compiler.program.lower.Lowered`.  A network the lowering does not handle
    is an unsupported model (exit 4, one line: the driver says so).  ``import_cache``: as
    :func:`sqnxt_compiler.driver.compile` (not for ``check``, which needs the ONNX model)."""
    with reporting(progress) as prog:
        res = driver.compile(model, pipeline=pipeline, target=target, progress=prog, instrument=instrument,
                             import_cache=import_cache)
    notes(res.notes)
    return res, res.graph.attrs["program"].lowered


def _ratio(sim: Fraction, ana: int) -> Fraction | None:
    return Fraction(sim) / ana if ana else None


def _within(r: Fraction | None) -> bool:
    return r is not None and abs(r - 1) <= WITHIN


def _fmt_ratio(r: Fraction | None) -> str:
    return "-" if r is None else f"{float(r):.3f}"


def _json_ratio(r: Fraction | None):
    return None if r is None else round(float(r), 6)


def figures(lowered, timing) -> list[dict]:
    """Per layer: the figures the table and the JSON show (exact)."""
    out = []
    for info, lay in zip(lowered.layers, timing.layers):
        ana = int(info.schedule.cost.total_cycles)
        sim = lay.cycles
        out.append({"index": lay.index, "name": lay.name, "op": info.op_name, "kind": info.schedule.layer.kind,
                    "analytical": ana, "simulated": sim, "ratio": _ratio(sim, ana), "timing": lay})
    return out


def _main_cause(lay) -> str:
    """The compute engine's largest waiting cause (``-`` when it never waits)."""
    w = lay.wait["compute"]
    cause, v = max(w.items(), key=lambda kv: (kv[1], kv[0]))
    return cause if v > 0 else "-"


def _dram_wait(lay) -> Fraction:
    return lay.wait["load"]["dram"] + lay.wait["store"]["dram"]


def totals(rows: list[dict], timing) -> dict:
    ana = sum(r["analytical"] for r in rows)
    return {"analytical": ana, "simulated": timing.total_cycles, "ratio": _ratio(Fraction(timing.total_cycles), ana),
            "within": sum(_within(r["ratio"]) for r in rows), "layers": len(rows)}


def shown(rows: list[dict], limit: int | None) -> list[dict]:
    """The rows of the table: all, or the ``limit`` with the largest ``|ratio - 1|``
    (ties: program order), in program order."""
    if limit is None or limit >= len(rows):
        return rows
    dev = sorted(rows, key=lambda r: (-(abs(r["ratio"] - 1) if r["ratio"] is not None else 0), r["index"]))
    keep = {r["index"] for r in dev[:limit]}
    return [r for r in rows if r["index"] in keep]


def format_table(res, lowered, timing, rows: list[dict], limit: int | None) -> str:
    """The text report (docs/isa.md, "sqnxtc sim")."""
    from collections import Counter

    target = lowered.target
    counts = Counter(i.mnemonic for i in lowered.program.insns)
    lines = [f"sim {res.source} on {target.name} (activation home {target.activation_home}): "
             f"pipeline '{res.pipeline}'",
             f"program: {len(rows)} layers, {len(lowered.program.insns)} instructions ("
             + ", ".join(f"{k} {counts[k]}" for k in ("LOAD", "COMPUTE", "STORE", "SYNC") if counts[k])
             + f"); queue depth {timing.queue_depth}, {timing.dram_channels} DRAM "
             + ("channel" if timing.dram_channels == 1 else "channels")]
    table = shown(rows, limit)
    if len(table) < len(rows):
        lines.append(f"the {len(table)} layers of {len(rows)} with the largest |ratio - 1|, in program order "
                     "(--layers all: every layer)")
    head = ["layer", "kind", "analytical", "simulated", "ratio", "c<load", "c<store", "c<fetch", "dram wait",
            "compute waits on"]
    body = [head]
    for r in table:
        lay = r["timing"]
        w = lay.wait["compute"]
        body.append([r["name"] or str(r["index"]), r["kind"], str(r["analytical"]), str(round(r["simulated"])),
                     _fmt_ratio(r["ratio"]), str(round(w["load"])), str(round(w["store"])), str(round(w["fetch"])),
                     str(round(_dram_wait(lay))), _main_cause(lay)])
    widths = [max(len(row[j]) for row in body) for j in range(len(head))]
    left = {0, 1, len(head) - 1}
    for row in body:
        lines.append("  ".join(v.ljust(w) if j in left else v.rjust(w)
                               for j, (v, w) in enumerate(zip(row, widths))).rstrip())
    t = totals(rows, timing)
    lines.append(f"total: analytical {t['analytical']} cycles (sum of the layers), simulated {t['simulated']} "
                 f"cycles, ratio {_fmt_ratio(t['ratio'])}; {t['within']} of {t['layers']} layers within "
                 f"+/-{int(WITHIN * 100)}%")
    busy, wait = timing.busy, timing.wait
    lines.append("engines: " + "; ".join(
        f"{e} busy {round(busy[e])}, waits " + ", ".join(f"{c} {round(v)}" for c, v in wait[e].items())
        for e in ("load", "compute", "store")))
    return "\n".join(lines) + "\n"


def json_document(res, lowered, timing, rows: list[dict]) -> dict:
    """The ``--json`` document (docs/isa.md, "sqnxtc sim"): exact cycles (ints, or "a/b"
    strings), ratios as floats rounded to 6 digits."""
    from ..program.timing import exact

    target = lowered.target
    t = totals(rows, timing)
    layers = []
    for r in rows:
        lay = r["timing"]
        layers.append({"index": r["index"], "name": r["name"], "op": r["op"], "kind": r["kind"],
                       "analytical_cycles": r["analytical"], "simulated_cycles": exact(r["simulated"]),
                       "ratio": _json_ratio(r["ratio"]), "within": _within(r["ratio"]),
                       "start": exact(lay.start), "end": exact(lay.end), "instructions": lay.instructions,
                       "busy": {e: exact(v) for e, v in lay.busy.items()},
                       "wait": {e: {c: exact(v) for c, v in w.items()} for e, w in lay.wait.items()}})
    return {"format": JSON_FORMAT, "model": res.source, "target": target.name,
            "fingerprint": f"sha256:{target.fingerprint()}", "activation_home": target.activation_home,
            "pipeline": res.pipeline, "queue_depth": timing.queue_depth, "dram_channels": timing.dram_channels,
            "instructions": len(lowered.program.insns), "tolerance": float(WITHIN),
            "layers": layers,
            "total": {"analytical_cycles": t["analytical"], "simulated_cycles": t["simulated"],
                      "ratio": _json_ratio(t["ratio"]), "layers": t["layers"], "within": t["within"],
                      "busy": {e: exact(v) for e, v in timing.busy.items()},
                      "wait": {e: {c: exact(v) for c, v in w.items()} for e, w in timing.wait.items()}}}


@click.command("sim")
@click.argument("model", metavar="MODEL")
@click.option("-t", "--target", "target_name", required=True, metavar="NAME|PATH",
              help="Target to compile and simulate for (bundled name, e.g. pe16x16, or a .toml path).")
@activation_home_option
@schedule_flags
@progress_option
@click.option("--trace", type=click.Path(), default=None, metavar="FILE",
              help="Write the simulated timeline as Chrome trace-event JSON (Perfetto, chrome://tracing).")
@click.option("--json", "json_path", type=click.Path(), default=None, metavar="FILE",
              help="Write the per-layer figures as JSON (fields: docs/isa.md, 'sqnxtc sim').")
@click.option("--layers", "limit", type=LayerCount(), default=str(DEFAULT_LAYERS), show_default=True,
              help="Rows of the table: the N layers with the largest |ratio - 1| (in program order), "
                   "or 'all'. The totals always cover every layer.")
def sim_cmd(model, target_name, progress, trace, json_path, limit, **kw):
    """Compile MODEL, lower it to a program and simulate its timing on --target: per layer the
    cost model's cycles against the simulator's, and the waits that explain the difference."""
    import json

    from ..program.timeline import dumps, trace_events

    outs = [(o, p) for o, p in (("--trace", trace), ("--json", json_path)) if p is not None]
    for opt, p in outs:
        if p == STDOUT:
            raise UsageError(f"{opt} -: standard output carries the table; give a file")
    if trace is not None and json_path is not None and os.path.abspath(trace) == os.path.abspath(json_path):
        raise UsageError("--trace and --json name the same file")
    for _opt, p in outs:
        check_output_file(p)                    # before any work
    target = load_target_with(target_name, kw["activation_home"])
    pipeline = driver.lowered_pipeline("default", target, schedule_values(kw), kw["activation_home"])
    res, low = compile_lowered(model, pipeline, target, progress, import_cache=kw.get("cache") is not False)
    timing = res.timing                          # the compile's one simulation
    rows = figures(low, timing)
    text = format_table(res, low, timing, rows, limit)
    files = {}
    if trace is not None:
        files[trace] = dumps(trace_events(low.program, timing, name=f"{res.source} on {target.name}"))
    if json_path is not None:
        files[json_path] = json.dumps(json_document(res, low, timing, rows), indent=1, sort_keys=True) + "\n"
    for path, data in files.items():             # everything computed first
        write_file(path, data)
    echo(text, nl=False)
