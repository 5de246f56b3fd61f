"""``sqnxtc compare``: params, MACs, total cycles and energy of several models on one or
more targets, each also normalized to the best model of its column (the smallest: every
column is lower-is-better), as markdown, CSV or JSON.

Rules (docs/reports.md, "Params and MACs"):

* **params**: elements of the weight and bias operands of every conv and fc op of the
  compiled IR (``network.count_params``; a folded BatchNormalization adds its conv's bias,
  K, not its 4K statistics);
* **MACs**: the cost model's dense MACs summed over the conv and fc layers
  (``totals.macs`` of schedule.json: every kernel tap, padded ones included, no bias MAC);
* **cycles**, **energy**: ``totals.total_cycles`` and ``totals.energy.total`` of the
  model's schedule on each target.

The figures are the rows of a sweep (:mod:`sqnxt_compiler.sweep`): ``sqnxtc compare`` is a
sweep of its models x targets at one objective, run by the sweep's engine
(:func:`sqnxt_compiler.sweep.engine.run_points`), and each row's figures are read from the
point's schedule document (:func:`sqnxt_compiler.sweep.task.run_point`), the same numbers
as ``schedule.json``.
"""
from __future__ import annotations

import csv
import io
import json

FORMAT = "sqnxtc-compare"
VERSION = 1


def _norm(v: int, best: int) -> float:
    return round(v / best, 4) if best else 0.0


def compare_data(sweep: dict[str, dict[str, dict]], targets: list[str], objective: str, tool: dict) -> dict:
    """``sweep[model][target]``: the sweep row (:data:`sqnxt_compiler.sweep.task.COLUMNS`)
    of each model on each target; ``tool``: the versions (schedule.json's ``tool``)."""
    models = list(sweep)
    rows = []
    for m in models:
        first = sweep[m][targets[0]]
        row = {"model": m, "graph": first["graph"], "params": first["params"], "macs": first["macs"],
               "targets": {}}
        for t in targets:
            x = sweep[m][t]
            row["targets"][t] = {"total_cycles": x["cycles"], "time_us": x["time_us"], "energy": x["energy"],
                                 "utilization": x["utilization"], "dram_words": x["dram_words"]}
        rows.append(row)
    def argmin(key):
        return min(rows, key=lambda r: key(r))  # first of the smallest: models in given order

    best = {"params": argmin(lambda r: r["params"]), "macs": argmin(lambda r: r["macs"]),
            "targets": {t: {"total_cycles": argmin(lambda r, t=t: r["targets"][t]["total_cycles"]),
                            "energy": argmin(lambda r, t=t: r["targets"][t]["energy"])}
                        for t in targets}}
    for r in rows:
        r["params_norm"] = _norm(r["params"], best["params"]["params"])
        r["macs_norm"] = _norm(r["macs"], best["macs"]["macs"])
        for t in targets:
            x = r["targets"][t]
            b = best["targets"][t]
            x["cycles_norm"] = _norm(x["total_cycles"], b["total_cycles"]["targets"][t]["total_cycles"])
            x["energy_norm"] = _norm(x["energy"], b["energy"]["targets"][t]["energy"])
    return {"format": FORMAT, "version": VERSION, "tool": tool, "objective": objective,
            "targets": targets, "models": rows,
            "best": {"params": best["params"]["model"], "macs": best["macs"]["model"],
                     "targets": {t: {k: best["targets"][t][k]["model"] for k in ("total_cycles", "energy")}
                                 for t in targets}}}


def csv_header(targets: list[str]) -> list[str]:
    h = ["model", "params", "params_norm", "macs", "macs_norm"]
    for t in targets:
        h += [f"{t}_cycles", f"{t}_cycles_norm", f"{t}_energy", f"{t}_energy_norm"]
    return h


def to_csv(data: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(csv_header(data["targets"]))
    for r in data["models"]:
        line = [r["model"], r["params"], r["params_norm"], r["macs"], r["macs_norm"]]
        for t in data["targets"]:
            x = r["targets"][t]
            line += [x["total_cycles"], x["cycles_norm"], x["energy"], x["energy_norm"]]
        w.writerow(line)
    return buf.getvalue()


def _m(n: int) -> str:
    return f"{n / 1e6:.3f}M"


def _x(v: float) -> str:
    return f"{v:.2f}x"


def to_markdown(data: dict) -> str:
    ts = data["targets"]
    head = ["model", "params", "x best", "MACs", "x best"]
    align = ["---", "---:", "---:", "---:", "---:"]
    for t in ts:
        head += [f"{t} cycles", "x best", f"{t} energy", "x best"]
        align += ["---:"] * 4
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for r in data["models"]:
        cells = [r["model"], _m(r["params"]), _x(r["params_norm"]), _m(r["macs"]), _x(r["macs_norm"])]
        for t in ts:
            x = r["targets"][t]
            cells += [f"{x['total_cycles']:,}", _x(x["cycles_norm"]), f"{x['energy'] / 1e9:.3f}G",
                      _x(x["energy_norm"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["",
              f"Objective {data['objective']}. Unlabelled columns: the value divided by the best "
              "(smallest) of its column. Params: conv/fc weights + biases of the compiled IR; "
              "MACs: dense conv/fc MACs, no bias; energy in units of one 16-bit MAC "
              "(docs/reports.md)."]
    return "\n".join(lines) + "\n"


def render(data: dict, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(data)
    if fmt == "csv":
        return to_csv(data)
    if fmt == "json":
        return json.dumps(data, indent=1) + "\n"
    raise ValueError(fmt)
