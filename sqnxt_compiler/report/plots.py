"""``sqnxtc report``: plots of one model's schedule on one or more targets.

Three figures, each from schedule documents (:mod:`.schedule_json`) only:

* ``layers.{png,svg}``: cycles per layer (bars, coloured by kind) with the PE-array
  efficiency, dense MACs per cycle (``cost.macs / cost.total_cycles``, conv and fc only),
  on a second axis; one panel per target, the array's peak (its PE count) dashed;
* ``stages.{png,svg}``: total time by network stage.  A layer's stage is its output
  resolution, ``shape.P`` (output rows): SqueezeNext's conv1 is at 111, pool1 and
  stage 1 at 55, then 28, 14, 7, and global pooling and the classifier at 1.  The rule
  needs nothing model-specific, so any network splits the same way (docs/reports.md);
* ``energy.{png,svg}``: energy by level (MAC, RF, array, buffer, DRAM), per target;
* ``memory.{png,svg}``: the global buffer over the layer sequence (a memory timeline),
  one panel per target: the words of the activations resident at each step (a planned
  network, docs/memory-planning.md) under the words of that step's tiles, against the
  capacity; with every activation through DRAM only the tiles occupy it.

``report.json`` holds the plotted numbers (deterministic), for checking and for
spreadsheets.  matplotlib is an optional dependency (``pip install sqnxtc[plots]``);
figures are drawn with the Agg canvas, without pyplot's global state, and saved with
fixed metadata (no date, no software tag, a fixed SVG hash salt) so that the same
schedules give the same bytes with the same matplotlib.
"""
from __future__ import annotations

import io
import json

from .network import ENERGY_LEVELS

KIND_COLOURS = {"conv": "#4C72B0", "fc": "#8172B2", "maxpool": "#DD8452", "avgpool": "#DD8452",
                "gap": "#DD8452", "add": "#A0A0A0"}
TARGET_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B2", "#937860")
LEVEL_COLOURS = {"mac": "#4C72B0", "rf": "#55A868", "array": "#8172B2", "buffer": "#DD8452",
                 "dram": "#C44E52"}
LEVEL_NAMES = {"mac": "MAC", "rf": "RF", "array": "array", "buffer": "buffer", "dram": "DRAM"}


def need_matplotlib():
    """Import matplotlib or raise a one-line UsageError (exit 2) naming the extra."""
    from ..diagnostics import UsageError

    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise UsageError("sqnxtc report needs matplotlib, which is not installed: "
                         "pip install sqnxtc[plots]") from None


# ---------------------------------------------------------------------------------------
# the data (no matplotlib)
# ---------------------------------------------------------------------------------------
def stage_of(layer: dict) -> int:
    """A layer's stage: its output resolution (output rows, ``shape.P``)."""
    return layer["shape"]["P"]


def stages(doc: dict) -> list[dict]:
    """Cycles per stage, highest resolution first; the shares sum to 1."""
    total = doc["totals"]["total_cycles"]
    groups: dict[int, list[dict]] = {}
    for L in doc["layers"]:
        groups.setdefault(stage_of(L), []).append(L)
    out = []
    for p in sorted(groups, reverse=True):
        ls = groups[p]
        qs = sorted({L["shape"]["Q"] for L in ls})
        cyc = sum(L["cost"]["total_cycles"] for L in ls)
        out.append({"stage": f"{p}x{qs[0]}" if qs == [p] else f"{p} rows", "P": p,
                    "layers": len(ls), "first": ls[0]["layer"], "last": ls[-1]["layer"],
                    "cycles": cyc, "share": round(cyc / total, 6) if total else 0.0,
                    "energy": sum(L["cost"]["energy"]["total"] for L in ls)})
    return out


def macs_per_cycle(layer: dict) -> float | None:
    """Dense MACs per cycle of a conv/fc layer (PE-array efficiency); None otherwise."""
    c = layer["cost"]
    if layer["kind"] not in ("conv", "fc") or not c["total_cycles"]:
        return None
    return c["macs"] / c["total_cycles"]


def report_data(docs: list[dict]) -> dict:
    """Everything the figures show, per target (JSON-able, deterministic)."""
    out = {"format": "sqnxtc-report", "version": 1, "model": docs[0]["model"]["source"],
           "targets": []}
    for d in docs:
        f = d["target"]["fields"]
        out["targets"].append({
            "target": d["target"]["name"],
            "pes": f["array.pe_rows"] * f["array.pe_cols"],
            "objective": d["options"].get("objective"),
            "total_cycles": d["totals"]["total_cycles"],
            "layers": [{"layer": L["layer"], "kind": L["kind"], "P": L["shape"]["P"],
                        "cycles": L["cost"]["total_cycles"], "macs": L["cost"]["macs"],
                        "macs_per_cycle": None if macs_per_cycle(L) is None
                        else round(macs_per_cycle(L), 4)}
                       for L in d["layers"]],
            "stages": stages(d),
            "energy": {k: d["totals"]["energy"][k] for k in ENERGY_LEVELS + ("total",)},
            "buffer_words": f["buffer.global_buffer_bytes"] // d["units"]["word_bytes"],
            "memory": memory_timeline(d),
        })
    return out


def memory_timeline(doc: dict) -> list[dict]:
    """Per step (scheduled layer, in order): the words of the resident activations live
    there (``plan.tensors`` with home buffer and first <= step <= last), of a fused stack's
    band windows and kept weights (``bands``: ``plan.stacks``' ``windows + kept_weights`` at
    its members' steps) and of its tiles (``cost.footprint.total``, less the bands)."""
    plan = doc["plan"] or {}
    tensors = [t for t in plan.get("tensors", []) if t["home"] == "buffer"]
    stacks = plan.get("stacks", [])
    out = []
    for i, L in enumerate(doc["layers"]):
        st = L.get("stack")
        bands = 0 if st is None else stacks[st["index"]]["windows"] + stacks[st["index"]]["kept_weights"]
        out.append({"layer": L["layer"],
                    "resident": sum(t["words"] for t in tensors if t["first"] <= i <= t["last"]),
                    "bands": bands, "tiles": L["cost"]["footprint"]["total"] - bands})
    return out


# ---------------------------------------------------------------------------------------
# the figures
# ---------------------------------------------------------------------------------------
def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _title(data: dict) -> str:
    return data["model"]


def _kind_group(kind: str) -> str:
    return "pool/gap" if kind in ("maxpool", "avgpool", "gap") else kind


def fig_layers(data: dict):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    ts = data["targets"]
    n = len(ts[0]["layers"])
    fig = _figure(max(10.0, 0.13 * n + 2.5), 3.8 * len(ts) + 1.8)
    axes = fig.subplots(len(ts), 1, sharex=True, squeeze=False)[:, 0]
    xs = list(range(n))
    fmt = FuncFormatter(lambda v, _: _si(v))
    for ax, t in zip(axes, ts):
        ls = t["layers"]
        ax.bar(xs, [L["cycles"] for L in ls], width=0.8,
               color=[KIND_COLOURS.get(L["kind"], "#777777") for L in ls], zorder=2)
        ax.set_yscale("log")
        ax.set_ylabel("cycles (log scale)")
        ax.yaxis.set_major_formatter(fmt)
        ax.grid(axis="y", color="#dddddd", zorder=0)
        ax.set_title(f"{t['target']}: {t['total_cycles']:,} cycles in total, {t['pes']} PEs",
                     fontsize=10, loc="left")
        ax2 = ax.twinx()
        pts = [(x, L["macs_per_cycle"]) for x, L in zip(xs, ls) if L["macs_per_cycle"] is not None]
        if pts:
            ax2.plot([p[0] for p in pts], [p[1] for p in pts], "o", color="#222222", markersize=3,
                     zorder=3)
        ax2.axhline(t["pes"], color="#C44E52", linestyle="--", linewidth=1)
        ax2.annotate(f"{t['pes']} PEs", (n - 0.5, t["pes"]), ha="right", va="bottom", fontsize=8,
                     color="#C44E52")
        top = max([p[1] for p in pts] + [t["pes"]])
        ax2.set_ylim(0, top * 1.1)
        ax2.set_ylabel("dense MACs per cycle")
        ax.set_xlim(-0.8, n - 0.2)
    axes[-1].set_xticks(xs)
    axes[-1].set_xticklabels([L["layer"] for L in ts[0]["layers"]], rotation=90,
                             fontsize=6 if n > 60 else 8)
    kinds = list(dict.fromkeys(_kind_group(L["kind"]) for L in ts[0]["layers"]))
    colour = {_kind_group(k): c for k, c in KIND_COLOURS.items()}
    handles = [Patch(color=colour.get(k, "#777777"), label=f"{k} cycles") for k in kinds]
    handles += [Line2D([], [], marker="o", linestyle="", color="#222222", markersize=4,
                       label="dense MACs / cycle (conv, fc; right axis)"),
                Line2D([], [], linestyle="--", color="#C44E52",
                       label="PE count (above it: zero weights skipped in OS)")]
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"{_title(data)}: cycles per layer and PE-array efficiency", x=0.01, ha="left",
                 fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.965))
    return fig


def fig_stages(data: dict):
    from matplotlib.ticker import FuncFormatter

    ts = data["targets"]
    names = []
    for t in ts:
        for s in t["stages"]:
            if s["stage"] not in names:
                names.append(s["stage"])
    fig = _figure(max(7.0, 1.3 * len(names) * max(1, len(ts)) / 1.5 + 2), 4.8)
    ax = fig.subplots()
    w = 0.8 / len(ts)
    for i, t in enumerate(ts):
        by = {s["stage"]: s for s in t["stages"]}
        xs = [j - 0.4 + w * (i + 0.5) for j in range(len(names))]
        ys = [by[nm]["cycles"] if nm in by else 0 for nm in names]
        bars = ax.bar(xs, ys, width=w * 0.95, color=TARGET_COLOURS[i % len(TARGET_COLOURS)],
                      label=f"{t['target']} ({t['total_cycles']:,} cycles)", zorder=2)
        for b, nm in zip(bars, names):
            if nm in by:
                ax.annotate(f"{100 * by[nm]['share']:.0f}%", (b.get_x() + b.get_width() / 2, b.get_height()),
                            ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                            textcoords="offset points")
    ax.set_xticks(range(len(names)))
    counts = {s["stage"]: s["layers"] for s in ts[0]["stages"]}
    ax.set_xticklabels([f"{nm}\n({counts.get(nm, 0)} layer{'s' if counts.get(nm, 0) != 1 else ''})"
                        for nm in names], fontsize=9)
    ax.set_xlabel("stage = output resolution of the layer (output rows x columns)")
    ax.set_ylabel("cycles")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _si(v)))
    ax.grid(axis="y", color="#dddddd", zorder=0)
    ax.margins(y=0.12)
    ax.legend(fontsize=9, frameon=False)
    ax.set_title(f"{_title(data)}: total time by network stage (% of each target's total)",
                 fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def fig_energy(data: dict):
    from matplotlib.ticker import FuncFormatter

    ts = data["targets"]
    fig = _figure(9.0, 1.2 * len(ts) + 2.2)
    ax = fig.subplots()
    ys = list(range(len(ts)))[::-1]
    left = [0] * len(ts)
    for lv in ENERGY_LEVELS:
        vals = [t["energy"][lv] for t in ts]
        ax.barh(ys, vals, left=left, height=0.6, color=LEVEL_COLOURS[lv], label=LEVEL_NAMES[lv], zorder=2)
        for y, v, lft, t in zip(ys, vals, left, ts):
            share = v / t["energy"]["total"] if t["energy"]["total"] else 0
            label = (f"{LEVEL_NAMES[lv]}\n{100 * share:.0f}%" if share >= 0.06
                     else f"{100 * share:.0f}%" if share >= 0.025 else "")
            if label:
                ax.text(lft + v / 2, y, label, ha="center", va="center", fontsize=8, color="white")
        left = [a + b for a, b in zip(left, vals)]
    for y, t in zip(ys, ts):
        ax.text(t["energy"]["total"], y, f"  {_si(t['energy']['total'])}", va="center", fontsize=9)
    ax.set_yticks(ys)
    ax.set_yticklabels([t["target"] for t in ts])
    ax.set_xlabel("energy (normalized: one 16-bit MAC = 1)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _si(v)))
    ax.grid(axis="x", color="#dddddd", zorder=0)
    ax.margins(x=0.1)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=5, fontsize=9, frameon=False)
    ax.set_title(f"{_title(data)}: energy by level", fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def fig_memory(data: dict):
    from matplotlib.ticker import FuncFormatter

    ts = data["targets"]
    fig = _figure(12.0, 2.6 * len(ts) + 0.8)
    axes = fig.subplots(len(ts), 1, squeeze=False)[:, 0]
    for ax, t in zip(axes, ts):
        xs = list(range(len(t["memory"])))
        res = [m["resident"] for m in t["memory"]]
        tiles = [m["tiles"] for m in t["memory"]]
        bands = [m.get("bands", 0) for m in t["memory"]]
        ax.bar(xs, res, width=1.0, color="#4C72B0", label="resident activations", zorder=2)
        if any(bands):      # fused stacks: their band windows and kept weights
            ax.bar(xs, bands, width=1.0, bottom=res, color="#55A868", label="stack bands and weights", zorder=2)
            res = [r + b for r, b in zip(res, bands)]
        ax.bar(xs, tiles, width=1.0, bottom=res, color="#DD8452", label="layer tiles", zorder=2)
        ax.axhline(t["buffer_words"], color="#333333", linestyle="--", linewidth=1,
                   label=f"capacity {_si(t['buffer_words'])} words", zorder=3)
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.set_ylabel(f"{t['target']}\nbuffer words")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _si(v)))
        ax.grid(axis="y", color="#dddddd", zorder=0)
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, fontsize=8, frameon=False)
    axes[-1].set_xlabel("layer (program order)")
    axes[0].set_title(f"{_title(data)}: global buffer over the layers", fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def render(fig, fmt: str) -> bytes:
    """The figure's bytes, with fixed metadata (see module doc)."""
    import matplotlib

    buf = io.BytesIO()
    meta = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context({"svg.hashsalt": "sqnxtc", "svg.fonttype": "path"}):
        fig.savefig(buf, format=fmt, metadata=meta)
    return buf.getvalue()


def render_report(docs: list[dict], fmt: str = "png") -> dict[str, bytes]:
    """Every file of a report, by name, rendered in memory (nothing is written here)."""
    need_matplotlib()
    data = report_data(docs)
    files = {}
    for name, build in (("layers", fig_layers), ("stages", fig_stages), ("energy", fig_energy),
                        ("memory", fig_memory)):
        files[f"{name}.{fmt}"] = render(build(data), fmt)
    files["report.json"] = (json.dumps(data, indent=1) + "\n").encode()
    return files
