"""One task of a sweep: compile one point and turn it into one row (docs/sweep.md).

:func:`run_point` is what a Dask worker runs: a plain function of plain arguments (a
path or zoo name, a base target name or path, the overrides, the objective, the shared
schedule-cache directory), returning a plain dict.  A point that fails (a bad target
value, an infeasible target, an unsupported model) is a row with ``status = "error"``,
its exit code and its one-line message; it does not stop the sweep.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .. import __version__
from .spec import Point, TargetPoint

#: The row's columns, in order (``grid`` fields are added after ``objective``).
COLUMNS = ("model", "target", "objective", "status", "exit_code", "error", "cycles", "time_us",
           "energy", "energy_mac", "energy_rf", "energy_array", "energy_buffer", "energy_dram",
           "dram_words", "utilization", "params", "macs", "pes", "buffer_bytes", "layers",
           "layer_status", "plan_status", "graph", "key")


def model_digest(model: str) -> str:
    """What identifies a model's content: sha256 of a file's bytes; a zoo model is its
    name (the zoo is deterministic per sqnxtc version, which the key includes).  A file
    that cannot be read is its path (its task then fails with the importer's error row)."""
    if model.startswith("zoo:SqNxt:"):
        from ..zoo.generated import canonical
        return "zoo:" + canonical(model[4:])
    if model.startswith("zoo:"):
        return model
    h = hashlib.sha256()
    try:
        with open(model, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return "unreadable:" + model
    return h.hexdigest()


def base_fields(base: str) -> dict | str:
    """The base target's fields (its content), or the name itself when it cannot be
    loaded (the task will report that as its error row)."""
    from ..diagnostics import SqnxtError
    from ..targets import load_target

    try:
        return load_target(base).to_dict()
    except SqnxtError:
        return base


def point_key(point: Point, digest: str, fields: dict | str) -> str:
    """The row's content hash: sha256 over (model content, base target fields, overrides,
    objective, schedule options when any, sqnxtc version).  Equal keys are equal rows."""
    doc = {"model": digest, "target": fields, "overrides": [list(o) for o in point.target.overrides],
           "objective": point.objective, "version": __version__}
    if point.options:
        doc["options"] = [list(o) for o in point.options]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def build_target(tp: TargetPoint):
    """The base target with the overrides applied, validated like a target file (a bad
    value is a TargetError naming the field)."""
    from fractions import Fraction

    from ..targets import load_target
    from ..targets.target import SCHEMA, parse_target

    base = load_target(tp.base)
    if not tp.overrides:
        return base
    flat = base.to_dict()
    flat.update(dict(tp.overrides))
    flat["name"] = tp.label
    nested: dict[str, Any] = {}
    for f in SCHEMA:
        v = flat[f.path]
        v = str(v) if isinstance(v, Fraction) else v
        if f.section is None:
            nested[f.key] = v
        else:
            nested.setdefault(f.section, {})[f.key] = v
    return parse_target(nested, f"{tp.label}")


#: Columns of a per-layer row (``layers.csv``), after the point's model, target, objective
#: and grid fields.
LAYER_COLUMNS = ("index", "layer", "op", "kind", "dataflow", "tiles", "order", "cycles", "energy",
                 "dram_words", "macs", "utilization")


def layer_rows(doc: dict) -> list[dict]:
    """One row per scheduled layer of a schedule document (its ``layers``)."""
    out = []
    for L in doc["layers"]:
        c, m = L["cost"], L["mapping"]
        out.append({"index": L["index"], "layer": L["layer"], "op": L["op"], "kind": L["kind"],
                    "dataflow": m["dataflow"], "tiles": "x{x} y{y} c{c} k{k}".format(**m["tiles"]),
                    "order": m["order"], "cycles": c["total_cycles"], "energy": c["energy"]["total"],
                    "dram_words": c["dram"]["total"], "macs": c["macs"], "utilization": c["utilization"]})
    return out


def run_point(point: Point, key: str, cache_dir: str | None, per_layer: bool = False, *,
              jobs: int | None = 1, progress=None, raise_errors: bool = False) -> dict:
    """Compile ``point``: ``{"row": its row (module doc), "solved": layers this task
    solved, "reused": layers it found solved (the shared on-disk cache or this worker's
    memory), "notes": the compile's notes}``.  The counts depend on which task came first,
    so they are reported, never put in the (deterministic) table.  ``per_layer``: the row
    also carries ``layers_detail`` (:func:`layer_rows`), which the engine writes to
    ``layers.csv``.  ``jobs``: layers solved at once in threads (1 on a Dask worker, which
    is one core; the result is the same for any value).  ``progress``: the schedule pass's
    callback.  ``raise_errors``: let an error propagate instead of making it the row (a
    serial run that stops at the first error)."""
    from .. import driver
    from ..diagnostics import ExitCode, SqnxtError, one_line
    from ..report.network import count_params
    from ..schedule import solver

    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(model=point.model, target=point.target.label, objective=point.objective, key=key)
    for k, v in point.target.overrides:
        row[k] = v
    before = dict(solver.STATS)
    try:
        target = build_target(point.target)
        schedule = dict(point.options, objective=point.objective, cache_dir=cache_dir, jobs=jobs)
        res = driver.compile(point.model, target=target, schedule=schedule, progress=progress)
        doc = res.document
    except SqnxtError as exc:
        if raise_errors:
            raise
        row.update(status="error", exit_code=int(exc.code), error=one_line(str(exc), 400))
        return {"row": row, "solved": 0, "reused": 0, "notes": []}
    except Exception as exc:  # noqa: BLE001 - a bug in sqnxtc: the row says so, the sweep goes on
        if raise_errors:
            raise
        row.update(status="error", exit_code=int(ExitCode.INTERNAL),
                   error=one_line(f"internal error: {type(exc).__name__}: {exc}", 400))
        return {"row": row, "solved": 0, "reused": 0, "notes": []}
    t = doc["totals"]
    e = t["energy"]
    row.update(status="ok", exit_code=0, error="", cycles=t["total_cycles"], time_us=t["time_us"],
               energy=e["total"], energy_mac=e["mac"], energy_rf=e["rf"], energy_array=e["array"],
               energy_buffer=e["buffer"], energy_dram=e["dram"], dram_words=t["dram_words"]["total"],
               utilization=t["utilization"], params=count_params(res.graph), macs=t["macs"],
               pes=target.num_pes, buffer_bytes=target.global_buffer_bytes, layers=t["layers"],
               layer_status=";".join(f"{k}:{v}" for k, v in sorted(t["status"].items())),
               plan_status=doc["plan"]["status"] if isinstance(doc.get("plan"), dict) else "",
               graph=doc["model"]["graph"])
    if per_layer:
        row["layers_detail"] = layer_rows(doc)
    reused = sum(solver.STATS[k] - before.get(k, 0) for k in ("disk", "memory"))
    return {"row": row, "solved": solver.STATS["solved"] - before.get("solved", 0), "reused": reused,
            "notes": list(res.notes)}


def row_path(rows_dir: Path, key: str) -> Path:
    return rows_dir / f"{key}.json"
