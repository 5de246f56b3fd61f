"""``schedule.json``: the machine-readable schedule of a compiled network.

Versioned (``format``/``version``); deterministic: the same model, target, options and
tool versions give byte-identical text (no timings, no paths other than the model spec).
Per layer it carries everything the cost model computed (``cost``), the mapping, the
solver's status, bound and gap; then the ops that are not modelled; then network totals.
"""
from __future__ import annotations

import json

from .. import __version__
from .network import NetworkSchedule

FORMAT = "sqnxtc-schedule"
VERSION = 1


def tool_versions() -> dict:
    import onnx
    import ortools

    return {"sqnxtc": __version__, "ortools": ortools.__version__, "onnx": onnx.__version__}


def schedule_dict(net: NetworkSchedule, *, pipeline: str, options: dict) -> dict:
    """The document (see module docstring)."""
    t = net.target
    layers = []
    for i, row in enumerate(net.rows):
        if row.schedule is None:
            continue
        d = {"index": i, "op": row.op.name, "act": row.op.attrs.get("act", "none")}
        d.update(row.schedule.to_dict())
        layers.append(d)
    return {
        "format": FORMAT,
        "version": VERSION,
        "tool": tool_versions(),
        "model": {"source": net.graph.source, "graph": net.graph.name},
        "target": {"name": t.name, "fingerprint": t.fingerprint(), "fields": t.to_dict()},
        "pipeline": pipeline,
        "options": dict(sorted(options.items())),
        "layers": layers,
        "unmodelled": [{"index": i, "layer": r.name, "op": r.op.name}
                       for i, r in enumerate(net.rows) if r.schedule is None],
        "totals": net.totals(),
    }


def schedule_json(net: NetworkSchedule, *, pipeline: str, options: dict) -> str:
    return json.dumps(schedule_dict(net, pipeline=pipeline, options=options), indent=1) + "\n"
