"""The zoo's model list as a table, CSV or JSON (``sqnxtc zoo list``)."""
from __future__ import annotations

import csv
import dataclasses
import io
import json


LIST_COLUMNS = ("name", "family", "params", "macs", "macs_with_bias", "input_size", "source",
                "published_params", "published_macs")


def _millions(n: int) -> str:
    return f"{n / 1e6:.3f}M"


def format_table(infos) -> str:
    """A fixed-width table: name, params, MACs (without / with bias MACs), input, source."""
    header = ("NAME", "PARAMS", "MACS", "MACS+BIAS", "INPUT", "SOURCE")
    rows = [(i.name, _millions(i.params), _millions(i.macs), _millions(i.macs_with_bias),
             f"{i.input_size}x{i.input_size}", i.source) for i in infos]
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    right = {1, 2, 3}
    lines = []
    for r in [header, *rows]:
        cells = [c.rjust(w) if k in right else c.ljust(w) for k, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def format_csv(infos) -> str:
    """CSV with the integer counts and published figures (millions) of every model."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LIST_COLUMNS)
    for i in infos:
        w.writerow(["" if getattr(i, c) is None else getattr(i, c) for c in LIST_COLUMNS])
    return buf.getvalue()


def format_json(infos) -> str:
    """JSON list of every :class:`~sqnxt_compiler.zoo.ModelInfo` field."""
    return json.dumps([dataclasses.asdict(i) for i in infos], indent=2) + "\n"
