"""Pareto-optimal rows of a table (a sweep's, docs/sweep.md): smaller is better in every
metric; rows are compared only with rows of the same objective."""
from __future__ import annotations


def pareto_flags(rows: list[dict], metrics: tuple[str, ...]) -> list[bool | None]:
    """For each row: True when no other ok row of the same objective is at least as good
    in every metric and better in one (smaller is better); None for an error row."""
    out: list[bool | None] = []
    for r in rows:
        if r["status"] != "ok":
            out.append(None)
            continue
        v = [r[m] for m in metrics]
        dominated = any(o is not r and o["status"] == "ok" and o["objective"] == r["objective"]
                        and all(o[m] <= x for m, x in zip(metrics, v))
                        and any(o[m] < x for m, x in zip(metrics, v)) for o in rows)
        out.append(not dominated)
    return out
