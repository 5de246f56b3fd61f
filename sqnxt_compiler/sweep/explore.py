"""The SqueezeNext network search the paper did by hand, as a sweep (docs/sweep.md,
"sqnxtc explore").

The family: every split of ``blocks`` blocks over the four stages (each stage >= 1 block,
as the builder requires; the paper's v1..v5 all keep 1 block in stage 4), for each conv1
kernel asked (7, 5), at one width, group count and first-block style, at the paper's
input size (227).  The paper's v1..v5 are always added as reference points (v1 has
baseline first blocks, v2..v5 the v5 style), so the ranking says where each falls.

Every variant is a generated zoo name (:mod:`sqnxt_compiler.zoo.generated`), so the
search is a plain sweep (:func:`.engine.run_sweep`: Dask, resumable, shared solves);
:func:`rank` then keeps the ok rows within the budget (parameters, MACs) and orders them
by the chosen figure.  It ranks cost, not accuracy: params and MACs are printed beside
each row for the user's own accuracy proxy.
"""
from __future__ import annotations

from itertools import combinations

from ..diagnostics import UsageError
from .spec import SweepSpec

#: The paper's five 1.0-SqNxt-23 variants (Gholami et al., 2018, Section 6), as generated names.
PAPER = {
    "v1": "SqNxt:d6-6-8-1:k7:w1:g1:base",
    "v2": "SqNxt:d6-6-8-1:k5:w1:g1:v5",
    "v3": "SqNxt:d4-8-8-1:k5:w1:g1:v5",
    "v4": "SqNxt:d2-10-8-1:k5:w1:g1:v5",
    "v5": "SqNxt:d2-4-14-1:k5:w1:g1:v5",
}


def depth_splits(blocks: int, stages: int = 4) -> list[tuple[int, ...]]:
    """Every composition of ``blocks`` into ``stages`` positive parts, in lexicographic
    order: C(blocks - 1, stages - 1) of them (21 blocks: 1140)."""
    if blocks < stages:
        raise UsageError(f"--blocks {blocks}: need at least one block per stage ({stages})")
    out = []
    for cuts in combinations(range(1, blocks), stages - 1):
        bounds = (0, *cuts, blocks)
        out.append(tuple(b - a for a, b in zip(bounds, bounds[1:])))
    return out


def variants(blocks: int, conv1: tuple[int, ...] = (7, 5), width: float = 1.0, groups: int = 1,
             first_block: str = "v5", every: int = 1) -> list[str]:
    """The family's generated names (module doc), every ``every``-th depth split, then the
    paper's v1..v5 that are not already in it."""
    from ..zoo.generated import canonical

    style = "base" if first_block in ("base", "baseline") else first_block
    names = [canonical(f"SqNxt:d{'-'.join(map(str, d))}:k{k}:w{width:g}:g{groups}:{style}")
             for d in depth_splits(blocks)[::every] for k in conv1]
    names += [canonical(n) for n in PAPER.values()]
    return list(dict.fromkeys(names))


def explore_spec(names: list[str], target: str, objective: str) -> SweepSpec:
    return SweepSpec(tuple(f"zoo:{n}" for n in names), (target,), (), (objective,), "<explore>")


def rank(rows: list[dict], by: str, max_params: float | None = None, max_macs: float | None = None
         ) -> list[dict]:
    """The ok rows within the budget, best (smallest ``by``) first; ties by energy, then
    name.  Each row gets ``rank`` (1-based)."""
    ok = [r for r in rows if r["status"] == "ok"
          and (max_params is None or r["params"] <= max_params) and (max_macs is None or r["macs"] <= max_macs)]
    ok.sort(key=lambda r: (r[by], r["energy"], r["model"]))
    return [dict(r, rank=i + 1) for i, r in enumerate(ok)]


def paper_positions(ranked: list[dict]) -> dict[str, dict | None]:
    """Where each of the paper's v1..v5 fell (its ranked row, or None: over budget or failed)."""
    by_model = {r["model"]: r for r in ranked}
    return {v: by_model.get(f"zoo:{n}") for v, n in PAPER.items()}


def depth_of(model: str) -> str:
    """``zoo:SqNxt:d2-4-14-1:k5:...`` -> ``[2, 4, 14, 1] k5``."""
    parts = model.split(":")
    d = next(p for p in parts if p.startswith("d"))[1:].split("-")
    k = next(p for p in parts if p.startswith("k"))
    return f"[{', '.join(d)}] {k}"


def render(ranked: list[dict], total: int, by: str, top: int, target: str) -> str:
    """A Markdown table of the best ``top`` variants and the paper's five."""
    lines = [f"{len(ranked)} of {total} variants within the budget on {target}, ranked by {by}:", "",
             "| rank | depth, conv1 | model | cycles | energy | DRAM words | params | MACs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    paper = {f"zoo:{n}": v for v, n in PAPER.items()}
    shown = ranked[:top] + [r for r in ranked[top:] if r["model"] in paper]
    for r in shown:
        tag = f" (paper {paper[r['model']]})" if r["model"] in paper else ""
        lines.append(f"| {r['rank']} | {depth_of(r['model'])}{tag} | {r['model'][4:]} | {r['cycles']:,} | "
                     f"{r['energy']:,} | {r['dram_words']:,} | {r['params']:,} | {r['macs']:,} |")
    missing = [v for v, r in paper_positions(ranked).items() if r is None]
    if missing:
        lines.append("")
        lines.append(f"not ranked (over the budget or failed): paper {', '.join(missing)}")
    return "\n".join(lines) + "\n"
