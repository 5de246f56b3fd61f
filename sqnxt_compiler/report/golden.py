"""The cycle-count golden file format: render, parse and compare (standard library only).

A golden file ``tests/goldens/<model>__<target>__<activation home>.txt``
(docs/regression.md) has three sections::

    [header]    model, target, activation home (planned / dram) and the target's
                fingerprint, pass pipeline, objective, versions
    [layers]    one aligned line per scheduled layer: index, name, kind, dataflow, tiles,
                order, total / compute / DMA cycles, energy, DRAM words
    [totals]    the network totals (NetworkSchedule.totals()), and with a memory plan its
                status and how many activations stay in the buffer

:func:`golden_of` builds a :class:`Golden` from a network schedule and a header;
:func:`format_golden` writes it and :func:`parse_golden` reads it back; :func:`compare`
lists the :class:`Difference` s: each layer whose figures moved (old -> new, per figure),
each layer added or removed, the totals that moved.  Only figures (and the model /
target / objective the file is about) are compared: a new tool or OR-Tools version,
pipeline spelling or target fingerprint alone is reported by :func:`header_notes`, never
a failure.  The runner that compiles the zoo and checks or rewrites a goldens directory
is :mod:`sqnxt_compiler.regress`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

FORMAT = 2      # 2: activation_home in the header and the file name, plan totals
#: the figures of one layer line, in column order after the index and the name
LAYER_FIGURES = ("kind", "dataflow", "tiles", "order", "total_cycles", "compute_cycles",
                 "dma_cycles", "energy", "dram_words")
_NUMERIC = {"total_cycles", "compute_cycles", "dma_cycles", "energy", "dram_words"}
#: (column title, width); numbers right-aligned, text left-aligned
_COLUMNS = (("kind", 8), ("df", 3), ("tiles x,y,c,k", 16), ("order", 5), ("total_cyc", 11),
            ("compute_cyc", 11), ("dma_cyc", 11), ("energy", 14), ("dram_words", 11))
#: header keys that say what the file is about: a mismatch is a Difference
IDENTITY = ("model", "target", "activation_home", "objective")
#: header keys that only describe how it was produced: a change is a note, not a failure
PROVENANCE = ("fingerprint", "pipeline", "sqnxtc", "ortools")
HEADER_KEYS = ("format",) + IDENTITY[:3] + ("fingerprint", "pipeline", "objective", "sqnxtc", "ortools")


class GoldenError(ValueError):
    """A golden file that cannot be parsed (message names the line)."""


@dataclass(frozen=True)
class LayerLine:
    """One scheduled layer's line."""

    index: int
    name: str
    kind: str
    dataflow: str
    tiles: str          # "x,y,c,k" tile sizes
    order: str          # tile loops, outermost first
    total_cycles: int
    compute_cycles: int
    dma_cycles: int
    energy: int
    dram_words: int

    def figures(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in LAYER_FIGURES}


@dataclass
class Golden:
    header: dict[str, str]
    layers: list[LayerLine]
    totals: dict[str, str]     # flattened keys ("energy.dram"), values as written


@dataclass(frozen=True)
class Difference:
    """One thing that moved.  ``what``: "layer" (figures of a layer present in both),
    "added", "removed" (a layer only in the actual / expected figures), "totals",
    "order" (the common layers run in another order), "header" (the files are about
    different models, targets or objectives)."""

    what: str
    name: str
    index: int | None = None
    kind: str = ""
    changes: tuple[tuple[str, Any, Any], ...] = ()   # (figure, old, new)

    def __str__(self) -> str:
        where = f"layer {self.index} '{self.name}'" + (f" ({self.kind})" if self.kind else "")
        if self.what == "added":
            return f"{where}: added ({_figs_text(self.changes, new=True)})"
        if self.what == "removed":
            return f"{where}: removed (was {_figs_text(self.changes, new=False)})"
        body = ", ".join(_change_text(f, a, b) for f, a, b in self.changes)
        if self.what == "layer":
            return f"{where}: {body}"
        if self.what == "totals":
            return f"totals: {body}"
        return f"{self.what}: {body}"


def _figs_text(changes, new: bool) -> str:
    return ", ".join(f"{f} {b if new else a}" for f, a, b in changes)


def _change_text(fig: str, old: Any, new: Any) -> str:
    s = f"{fig} {old} -> {new}"
    try:
        o, n = int(old), int(new)
    except (TypeError, ValueError):
        return s
    if o:
        pct = 100 * (n - o) / o
        s += f" ({pct:+.2f}%)" if abs(pct) >= 0.01 or pct == 0 else f" ({pct:+.1e}%)"
    return s


def flat_totals(t: dict, plan=None) -> dict[str, str]:
    """The [totals] lines: the network totals and, with a memory plan (a NetworkPlan),
    ``plan.status`` and ``plan.resident`` (activations kept in the buffer / all)."""
    keys = ("layers", "distinct_layers", "unmodelled_ops", "macs", "macs_performed",
            "total_cycles", "compute_cycles", "dma_cycles", "time_us", "utilization")
    out = {k: str(t[k]) for k in keys}
    for k in ("mac", "rf", "array", "buffer", "dram", "total"):
        out[f"energy.{k}"] = str(t["energy"][k])
    for k in ("input_reads", "weight_reads", "output_writes", "psum_writes", "psum_reads",
              "residual_reads", "bias_reads", "total"):
        out[f"dram_words.{k}"] = str(t["dram_words"][k])
    for k, n in t["status"].items():
        out[f"status.{k}"] = str(n)
    if plan is not None:
        out["plan.status"] = plan.status
        out["plan.resident"] = f"{sum(x['home'] == 'buffer' for x in plan.tensors)}/{len(plan.tensors)}"
    return out


def layer_lines(net) -> list[LayerLine]:
    """The golden's layer lines of a NetworkSchedule (scheduled rows, program order)."""
    out = []
    for i, r in enumerate(net.scheduled):
        s, m = r.schedule, r.schedule.mapping
        c = s.cost
        out.append(LayerLine(i, r.name, s.layer.kind, m.dataflow, f"{m.tx},{m.ty},{m.tc},{m.tk}",
                             "".join(m.order), c.total_cycles, c.compute_cycles, c.dma_cycles,
                             c.energy["total"], c.dram["total"]))
    return out


def _quote(name: str) -> str:
    return json.dumps(name) if (not name or re.search(r"\s", name) or name.startswith('"')) else name


def golden_filename(model: str, target_name: str, activation_home: str) -> str:
    """``<model>__<target>__<activation home>.txt``."""
    return f"{model}__{target_name}__{activation_home}.txt"


def golden_of(net, header: dict[str, str]) -> Golden:
    """The Golden of a network schedule (``net``: a NetworkSchedule) under ``header``
    (its keys in :data:`HEADER_KEYS` order; ``format`` is added)."""
    return Golden({"format": str(FORMAT), **header}, layer_lines(net),
                  flat_totals(net.totals(), net.graph.attrs.get("plan")))


def format_golden(g: Golden) -> str:
    """The text of a Golden (what render_golden writes; parse_golden reads it back)."""
    h = g.header
    lines = [f"# sqnxtc cycle-count golden: {h.get('model')} on {h.get('target')} "
             f"(activations: {h.get('activation_home')}).",
             "# Regenerate deliberately with `sqnxtc regress --update` (docs/regression.md).",
             "[header]"]
    lines += [f"{k:<12} {h[k]}" for k in list(HEADER_KEYS) + [k for k in h if k not in HEADER_KEYS]
              if k in h]
    w = max([len(_quote(r.name)) for r in g.layers] + [5])
    lines += ["", "[layers]",
              "# " + f"{'idx':>3}  {'layer':<{w}}  " + " ".join(
                  f"{t:>{n}}" if t in ("total_cyc", "compute_cyc", "dma_cyc", "energy", "dram_words")
                  else f"{t:<{n}}" for t, n in _COLUMNS).rstrip()]
    for r in g.layers:
        vals = [r.kind, r.dataflow, r.tiles, r.order, r.total_cycles, r.compute_cycles,
                r.dma_cycles, r.energy, r.dram_words]
        cells = [f"{v:>{n}}" if isinstance(v, int) else f"{v:<{n}}" for v, (_, n) in zip(vals, _COLUMNS)]
        lines.append((f"  {r.index:>3}  {_quote(r.name):<{w}}  " + " ".join(cells)).rstrip())
    lines += ["", "[totals]"]
    lines += [f"{k:<24} {v}" for k, v in g.totals.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# reading and comparing
# ---------------------------------------------------------------------------------------
def _parse_layer(line: str, lineno: int) -> LayerLine:
    s = line.strip()
    m = re.match(r"(\d+)\s+", s)
    if not m:
        raise GoldenError(f"line {lineno}: expected a layer index")
    idx, rest = int(m.group(1)), s[m.end():]
    if rest.startswith('"'):
        try:
            name, end = json.JSONDecoder().raw_decode(rest)
        except ValueError:
            raise GoldenError(f"line {lineno}: bad quoted layer name") from None
        tail = rest[end:].split()
    else:
        parts = rest.split()
        name, tail = (parts[0], parts[1:]) if parts else ("", [])
    if len(tail) != len(LAYER_FIGURES):
        raise GoldenError(f"line {lineno}: expected {len(LAYER_FIGURES) + 2} columns "
                          f"(index, layer, {', '.join(LAYER_FIGURES)}), got {len(tail) + 2}")
    vals: dict[str, Any] = {}
    for f, v in zip(LAYER_FIGURES, tail):
        if f in _NUMERIC:
            try:
                v = int(v)
            except ValueError:
                raise GoldenError(f"line {lineno}: {f} must be an integer, got '{v}'") from None
        vals[f] = v
    return LayerLine(idx, name, **vals)


def parse_golden(text: str) -> Golden:
    """Read a golden file's text (raises GoldenError naming the line)."""
    section = None
    header: dict[str, str] = {}
    layers: list[LayerLine] = []
    totals: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            if section not in ("header", "layers", "totals"):
                raise GoldenError(f"line {lineno}: unknown section [{section}]")
            continue
        if section is None:
            raise GoldenError(f"line {lineno}: text before the first section")
        if section == "layers":
            layers.append(_parse_layer(line, lineno))
            continue
        key, _, value = line.partition(" ")
        (header if section == "header" else totals)[key] = value.strip()
    fmt = header.get("format")
    if fmt != str(FORMAT):
        raise GoldenError(f"golden format {fmt!r} is not {FORMAT} (regenerate with sqnxtc regress --update)")
    for k in IDENTITY:
        if k not in header:
            raise GoldenError(f"header has no '{k}'")
    return Golden(header, layers, totals)


def _as_golden(g) -> Golden:
    return parse_golden(g) if isinstance(g, str) else g


def _keyed(layers: Iterable[LayerLine]) -> dict[tuple[str, int], LayerLine]:
    """Layers keyed by (name, occurrence of that name), so repeated names still match."""
    seen: dict[str, int] = {}
    out = {}
    for L in layers:
        n = seen.get(L.name, 0)
        seen[L.name] = n + 1
        out[(L.name, n)] = L
    return out


def compare(expected, actual) -> list[Difference]:
    """What moved from ``expected`` to ``actual`` (Golden objects or golden text).

    Layers are matched by name (not index, so one added layer does not move every later
    one); a layer in both whose figures differ gives one "layer" Difference listing each
    figure old -> new.  Then "removed" and "added" layers, an "order" Difference when the
    common layers run in another order, and one "totals" Difference for the totals that
    moved.  The header is compared only for identity (model, target, objective); see
    :func:`header_notes` for the rest.  Empty list: the figures are identical."""
    e, a = _as_golden(expected), _as_golden(actual)
    diffs: list[Difference] = []
    ident = tuple((k, e.header.get(k), a.header.get(k)) for k in IDENTITY
                  if e.header.get(k) != a.header.get(k))
    if ident:
        diffs.append(Difference("header", "header", changes=ident))
    ek, ak = _keyed(e.layers), _keyed(a.layers)
    for key, old in ek.items():
        new = ak.get(key)
        if new is None:
            continue
        of, nf = old.figures(), new.figures()
        ch = tuple((f, of[f], nf[f]) for f in LAYER_FIGURES if of[f] != nf[f])
        if ch:
            diffs.append(Difference("layer", new.name, new.index, new.kind, ch))
    for key, old in ek.items():
        if key not in ak:
            diffs.append(Difference("removed", old.name, old.index, old.kind,
                                    tuple((f, v, None) for f, v in old.figures().items())))
    for key, new in ak.items():
        if key not in ek:
            diffs.append(Difference("added", new.name, new.index, new.kind,
                                    tuple((f, None, v) for f, v in new.figures().items())))
    e_common = [k for k in ek if k in ak]
    a_common = [k for k in ak if k in ek]
    if e_common != a_common:
        first = next(i for i, (x, y) in enumerate(zip(e_common, a_common)) if x != y)
        diffs.append(Difference("order", "order", changes=(
            ("layer at common position " + str(first), e_common[first][0], a_common[first][0]),)))
    keys = list(dict.fromkeys(list(e.totals) + list(a.totals)))
    ch = tuple((k, e.totals.get(k), a.totals.get(k)) for k in keys if e.totals.get(k) != a.totals.get(k))
    if ch:
        diffs.append(Difference("totals", "totals", changes=ch))
    return diffs


def header_notes(expected, actual) -> list[str]:
    """Provenance changes (fingerprint, pipeline, versions): informative, never a failure."""
    e, a = _as_golden(expected), _as_golden(actual)
    return [f"{k}: {e.header.get(k)} -> {a.header.get(k)}" for k in PROVENANCE
            if e.header.get(k) != a.header.get(k)]


def moved_layers(diffs: Iterable[Difference]) -> set[str]:
    """Names of the layers a comparison names (moved, added or removed)."""
    return {d.name for d in diffs if d.what in ("layer", "added", "removed")}
