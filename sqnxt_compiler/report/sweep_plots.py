"""``sqnxtc report SWEEP.csv``: the plots of a sweep (docs/sweep.md, "Plots").

* ``pareto.{png,svg}``: cycles against energy, one point per ok row, one marker colour per
  model, one panel per objective; the Pareto-optimal rows (no row of that objective at
  least as small in both and smaller in one) joined by a step line;
* ``heatmap.{png,svg}``: with two or more grid fields, cycles over the first two (rows:
  the first field's values, columns: the second's), one panel per model (first objective,
  the other grid fields at their first value); a cell with an error row is blank;
* ``sweep.json``: the plotted numbers.

Drawn like :mod:`.plots` (Agg canvas, fixed metadata: the same table gives the same bytes).
"""
from __future__ import annotations

import csv
import io
import json

from ..diagnostics import InputError
from .pareto import pareto_flags
from .plots import TARGET_COLOURS, _figure, _si, need_matplotlib, render

NUMERIC = ("cycles", "energy", "dram_words", "params", "macs", "pes", "buffer_bytes", "layers", "exit_code")
FIXED = {"model", "target", "objective", "status", "exit_code", "error", "cycles", "time_us", "energy",
         "energy_mac", "energy_rf", "energy_array", "energy_buffer", "energy_dram", "dram_words",
         "utilization", "params", "macs", "pes", "buffer_bytes", "layers", "layer_status", "plan_status",
         "key", "pareto"}


def read_sweep(text: str, where: str) -> tuple[list[dict], list[str]]:
    """The rows of a sweep table (numbers as ints) and its grid fields, in order."""
    reader = csv.DictReader(io.StringIO(text))
    cols = reader.fieldnames or []
    if not {"model", "target", "objective", "status", "cycles", "energy"} <= set(cols):
        raise InputError("not a sweep table (sqnxtc sweep's sweep.csv)", where)
    rows = []
    for r in reader:
        for c in NUMERIC:
            if r.get(c):
                r[c] = int(r[c])
        rows.append(r)
    return rows, [c for c in cols if c not in FIXED]


def sweep_data(rows: list[dict], grid: list[str]) -> dict:
    ok = [r for r in rows if r["status"] == "ok"]
    flags = pareto_flags(rows, ("cycles", "energy"))
    models = list(dict.fromkeys(r["model"] for r in rows))
    objectives = list(dict.fromkeys(r["objective"] for r in rows))
    points = [{"model": r["model"], "target": r["target"], "objective": r["objective"], "cycles": r["cycles"],
               "energy": r["energy"], "pareto": bool(f)} for r, f in zip(rows, flags) if r["status"] == "ok"]
    data = {"models": models, "objectives": objectives, "points": points, "grid": grid, "heatmaps": []}
    if len(grid) >= 2 and ok:
        a, b = grid[:2]
        first = {g: rows[0][g] for g in grid[2:]}
        av = list(dict.fromkeys(r[a] for r in rows))
        bv = list(dict.fromkeys(r[b] for r in rows))
        for m in models:
            cell = {(r[a], r[b]): (r["cycles"] if r["status"] == "ok" else None) for r in rows
                    if r["model"] == m and r["objective"] == objectives[0] and all(r[g] == v for g, v in first.items())}
            data["heatmaps"].append({"model": m, "objective": objectives[0], "rows": a, "row_values": av,
                                     "cols": b, "col_values": bv, "fixed": first,
                                     "cycles": [[cell.get((x, y)) for y in bv] for x in av]})
    return data


def fig_pareto(data: dict):
    objs = data["objectives"]
    fig = _figure(5.5 * len(objs), 4.5)
    colour = {m: TARGET_COLOURS[i % len(TARGET_COLOURS)] for i, m in enumerate(data["models"])}
    for i, o in enumerate(objs):
        ax = fig.add_subplot(1, len(objs), i + 1)
        pts = [p for p in data["points"] if p["objective"] == o]
        for m in data["models"]:
            mine = [p for p in pts if p["model"] == m]
            if mine:
                ax.scatter([p["cycles"] for p in mine], [p["energy"] for p in mine], s=18, color=colour[m],
                           label=m.removeprefix("zoo:"), alpha=0.8)
        front = sorted((p["cycles"], p["energy"]) for p in pts if p["pareto"])
        if front:
            ax.step([c for c, _ in front], [e for _, e in front], where="post", color="black", lw=1)
            ax.scatter([c for c, _ in front], [e for _, e in front], s=70, facecolors="none",
                       edgecolors="black", linewidths=1.2, label="Pareto-optimal")
        ax.set_xlabel("cycles")
        ax.set_ylabel("energy (normalized)")
        ax.set_title(f"objective: {o}")
        ax.xaxis.set_major_formatter(lambda v, _: _si(v))
        ax.yaxis.set_major_formatter(lambda v, _: _si(v))
        if len(data["models"]) <= 8:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_heatmap(data: dict):
    maps = data["heatmaps"][:6]
    fig = _figure(5.0 * len(maps), 4.2)
    for i, h in enumerate(maps):
        ax = fig.add_subplot(1, len(maps), i + 1)
        grid = [[float("nan") if v is None else v for v in row] for row in h["cycles"]]
        im = ax.imshow(grid, cmap="viridis_r", aspect="auto")
        ax.set_xticks(range(len(h["col_values"])), [str(v) for v in h["col_values"]], fontsize=7)
        ax.set_yticks(range(len(h["row_values"])), [str(v) for v in h["row_values"]], fontsize=7)
        ax.set_xlabel(h["cols"])
        ax.set_ylabel(h["rows"])
        vals = [v for row in h["cycles"] for v in row if v is not None]
        mid = (min(vals) + max(vals)) / 2 if vals else 0
        for r, row in enumerate(h["cycles"]):
            for c, v in enumerate(row):   # viridis_r: small (light) cells get dark text
                ax.text(c, r, "error" if v is None else _si(v), ha="center", va="center", fontsize=7,
                        color="black" if v is None or v <= mid else "white")
        ax.set_title(f"{h['model'].removeprefix('zoo:')}: cycles", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def render_sweep(text: str, where: str, fmt: str = "png") -> dict[str, bytes]:
    """Every file of a sweep's report, by name, rendered in memory."""
    need_matplotlib()
    rows, grid = read_sweep(text, where)
    data = sweep_data(rows, grid)
    files = {f"pareto.{fmt}": render(fig_pareto(data), fmt)}
    if data["heatmaps"]:
        files[f"heatmap.{fmt}"] = render(fig_heatmap(data), fmt)
    files["sweep.json"] = (json.dumps(data, indent=1, default=str) + "\n").encode()
    return files
