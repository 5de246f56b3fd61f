"""``schedule.json``: the machine-readable schedule of a compiled network.

Versioned (``format``/``version``) and documented field by field in
``docs/schedule-format.md``, with a JSON Schema shipped as package data
(``sqnxt_compiler/report/schedule.schema.json``, :func:`schema`).  Deterministic: the same
model, target, options and tool versions give byte-identical text (no timings, no paths
other than the model spec).  Per layer it carries the op, its tensors, the mapping and its
tile loops, everything the cost model computed (``cost``), the solver's status, bound and
gap; then the ops that are not modelled; then the host's work (the ``host`` ops); then
the network totals.

Every other output (``layers.csv``, ``loopnest.txt``, the plots, ``sqnxtc compare``) is
derived from this document (:func:`schedule_dict`), so their numbers agree by
construction; ``tests/test_schedule_format.py`` checks it.

:func:`load_schedule` reads a file back and rejects one of another format or version with
a one-line :class:`~sqnxt_compiler.diagnostics.InputError`.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import __version__
from ..cost.features import x_feat, y_feat
from ..diagnostics import InputError
from .network import NetworkSchedule, count_params

FORMAT = "sqnxtc-schedule"
#: 1: the first form (5d2a0c6, undocumented); 2: + tensors, loops, units, model.params,
#: totals.mac_layers/element_ops/max_gap; 3: + layers[].homes, plan (the network memory
#: plan; docs/schedule-format.md, "Versions"); ...; 9: + layers[].simulated, totals.simulated
#: (the timing simulation of the lowered program, null when the pipeline did not lower);
#: 10: + host (the ops the host CPU runs, docs/ir.md "The host partition"), totals.host_ops,
#: host_words_in, host_words_out, host_elements, host_splits; unmodelled no longer lists them;
#: ...; 12: + host_tail (a model cut before its dynamic-shape ops, docs/ir.md "The host tail");
#: 13: + layers[].stack, plan.stacks, the home "band" and the status "derived" (fused stacks,
#: docs/memory-planning.md "Fused stacks").
VERSION = 13
REQUIRED = ("tool", "model", "target", "pipeline", "options", "units", "layers", "unmodelled",
            "host", "host_tail", "totals", "plan")


def tool_versions() -> dict:
    """The versions of sqnxtc, OR-Tools and onnx, from the installed distributions' metadata
    (importing onnx to read ``onnx.__version__`` costs a warm compile half a second)."""
    from importlib.metadata import version

    return {"sqnxtc": __version__, "ortools": version("ortools"), "onnx": version("onnx")}


def _tensors(L) -> dict:
    """The layer's tensors (batch 1, words of ``buffer.word_bits``)."""
    inp = {"shape": [L.C, L.H, L.W], "count": L.n_inputs, "words": L.C * L.H * L.W * L.n_inputs}
    w = None
    if L.is_mac:
        w = {"shape": [L.K, L.C // L.groups, L.R, L.S], "words": L.weight_words}
    elif L.element is not None and L.element.params:   # an eltwise layer's per-channel parameter vectors
        w = {"shape": [L.K, L.element.params, 1, 1], "words": L.weight_words}
    return {"input": inp, "weights": w, "output": {"shape": [L.K, L.P, L.Q], "words": L.K * L.P * L.Q}}


def _loops(s, target) -> list[dict]:
    """The tile loops, outermost first, with their tiles (the last one may be ragged) and,
    for x and y, the input extent the cost model charges and the outputs computed, which a
    fused pool's windows make more than the bound (cost.features)."""
    L, m = s.layer, s.mapping
    bounds = {"x": L.Q, "y": L.P, "c": L.Cg, "k": L.Kg}
    tiles = {"x": m.tx, "y": m.ty, "c": m.tc, "k": m.tk}
    feats = {"x": x_feat(L, target, m.tx), "y": y_feat(L, target, m.ty)}
    out = []
    for name in m.order:
        n, t = bounds[name], tiles[name]
        count = s.cost.tiles_n[name]
        d = {"loop": name, "bound": n, "tile": t, "count": count, "last": n - (count - 1) * t}
        if name in feats:
            d["input_extent_max"] = feats[name].Im
            d["input_extent_sum"] = feats[name].I
            d["computed_max"] = feats[name].Cm
            d["computed_sum"] = feats[name].C
        out.append(d)
    return out


def layer_dict(index: int, row, target, sim=None, into: dict | None = None) -> dict:
    """One scheduled op as it appears in ``layers`` (docs/schedule-format.md); ``sim``: its
    :class:`~sqnxt_compiler.program.timing.LayerTiming` when the pipeline lowered, else None;
    ``into``: :func:`written_into` of the graph."""
    s = row.schedule
    base = s.to_dict()
    stack = row.op.attrs.get("stack")       # a fused stack's member: the loops of its largest band
    d = {"index": index, "layer": base["layer"], "op": row.op.name,
         "act": row.op.attrs.get("act", "none"), "residual": bool(row.op.attrs.get("residual")),
         "post_act": row.op.attrs.get("post_act", "none"), "kind": base["kind"], "shape": base["shape"],
         "tensors": _tensors(s.layer), "mapping": base["mapping"],
         "loops": _loops(s if stack is None else stack.largest_band(), target),
         "status": base["status"], "solver": base["solver"], "objective": base["objective"],
         "tie_break": base["tie_break"], "note": base.get("note", ""),
         "homes": {**_homes(row), "output_into": (into or {}).get(row.op.id)},
         "cost": base["cost"], "simulated": None, "stack": None if stack is None else stack.to_json()}
    if sim is not None:
        from .simulated import simulated_dict
        d["simulated"] = simulated_dict(sim)
    return d


def written_into(graph) -> dict[int, dict]:
    """Per op whose result is a part of a concat written in place (``in_place_parts``; the
    ``concat-in-place`` pass): ``{"concat", "offset", "words"}``, the concat's name, the word
    offset of the part's slice in it and the concat's words (docs/memory-planning.md,
    "Concats in place"); a concat nested in another: the outermost one, the offset in it."""
    from ..ir.core import view_origin
    from ..ir.storage import storage

    out = {}
    for op in graph.ops():
        if op.has_trait("in_place_parts"):
            for v in op.operands:
                src = view_origin(v).owner
                if src is not None and not src.has_trait("in_place_parts"):
                    root, off = storage(graph, v)
                    name = root.owner.loc.node or f"%{root.name}"
                    out[src.id] = {"concat": name, "offset": off, "words": root.type.numel}
    return out


def _homes(row) -> dict:
    """Where the layer's operands live (docs/memory-planning.md): each data input and the
    output in "dram" or the "buffer" (with word offsets), the capacity its mapping had."""
    s, plan = row.schedule, row.op.attrs.get("plan")
    L = s.layer
    if plan is None:
        return {"inputs": ["dram"] * L.n_inputs, "residual": "dram" if L.epilogue.residual else None,
                "output": "dram", "output_at": None, "tiles_at": None,
                "capacity": s.cost.footprint["capacity"]}
    return {"inputs": list(plan.inputs), "residual": plan.residual, "output": plan.output,
            "output_at": plan.offset, "tiles_at": plan.tiles, "capacity": s.cost.footprint["capacity"]}


def units(target) -> dict:
    return {"word_bits": target.word_bits, "word_bytes": target.word_bytes,
            "data": "words of word_bits bits (bytes = words * word_bytes)",
            "cycles": f"clock cycles at {float(target.clock_mhz):g} MHz",
            "energy": "normalized: one 16-bit MAC = target energy.mac"}


def schedule_dict(net: NetworkSchedule, *, pipeline: str, options: dict, simulated=None) -> dict:
    """The document (see module docstring).  ``simulated``: the timing simulation's figures
    (:class:`~.simulated.Simulated`) when the pipeline lowered the schedule to a program,
    else None (``layers[].simulated`` and ``totals.simulated`` are then ``null``)."""
    t = net.target
    sims = iter(simulated.per_row(net.scheduled)) if simulated is not None else None
    into = written_into(net.graph)
    layers = [layer_dict(i, row, t, next(sims) if sims is not None else None, into)
              for i, row in enumerate(net.rows) if row.schedule is not None]
    totals = net.report_totals()
    totals["simulated"] = simulated.totals_dict() if simulated is not None else None
    return {
        "format": FORMAT,
        "version": VERSION,
        "tool": tool_versions(),
        "model": {"source": net.graph.source, "graph": net.graph.name,
                  "params": count_params(net.graph)},
        "target": {"name": t.name, "fingerprint": t.fingerprint(), "fields": t.to_dict()},
        "pipeline": pipeline,
        "options": dict(sorted(options.items())),
        "units": units(t),
        "layers": layers,
        "unmodelled": [{"index": i, "layer": r.name, "op": r.op.name}
                       for i, r in enumerate(net.rows) if r.schedule is None and not r.op.has_trait("host")],
        "host": net.host_work(),
        "host_tail": net.host_tail(),
        "totals": totals,
        "plan": _plan(net),
    }


def _plan(net: NetworkSchedule) -> dict | None:
    """The network memory plan with its all-DRAM reference and what it saves, or None
    (every activation through DRAM)."""
    p = net.graph.attrs.get("plan")
    if p is None:
        return None
    d = p.to_dict()
    t = net.totals()
    d["saved"] = {"total_cycles": d["all_dram"]["total_cycles"] - t["total_cycles"],
                  "energy": d["all_dram"]["energy"] - t["energy"]["total"],
                  "dram_words": d["all_dram"]["dram_words"] - t["dram_words"]["total"]}
    return d


def dumps(doc: dict) -> str:
    """The canonical text of a document (what ``schedule.json`` holds)."""
    return json.dumps(doc, indent=1) + "\n"


def schema() -> dict:
    """The JSON Schema (draft 2020-12) of the current version, from the package data."""
    from importlib.resources import files

    return json.loads(files("sqnxt_compiler.report").joinpath("schedule.schema.json").read_text())


def load_schedule(path: str | Path) -> dict:
    """Read a ``schedule.json`` back.  A file that is missing, not JSON, not a sqnxtc
    schedule, of another version, or missing a top-level section raises a one-line
    InputError naming the file (exit code 3)."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such schedule file", where) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a schedule file", where) from None
    except UnicodeDecodeError:
        raise InputError("not a schedule file (not UTF-8 text)", where) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", where) from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InputError(f"not a schedule file: invalid JSON ({exc.msg} at line {exc.lineno})",
                         where) from None
    found = doc.get("format") if isinstance(doc, dict) else None
    if found != FORMAT:
        raise InputError(f"not a sqnxtc schedule (format {found!r}, expected {FORMAT!r})", where)
    v = doc.get("version")
    if v != VERSION:
        raise InputError(f"schedule format version {v!r} is not supported: sqnxtc {__version__} "
                         f"reads version {VERSION} only (recompile the model to regenerate it)", where)
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise InputError(f"incomplete schedule: missing {', '.join(repr(k) for k in missing)}", where)
    if not isinstance(doc["layers"], list) or not isinstance(doc["totals"], dict):
        raise InputError("incomplete schedule: 'layers' must be a list and 'totals' an object", where)
    return doc
