"""The cycle-count golden file format: render, parse and compare (standard library only).

A golden file ``tests/goldens/<model>__<target>__<activation home>.txt``
(docs/regression.md) has three sections::

    [header]    model, target, activation home (planned / dram) and the target's
                fingerprint, pass pipeline, objective, versions
    [layers]    one aligned line per scheduled layer: index, name, kind, dataflow, tiles,
                order, total cycles, (format 3: the simulated cycles), compute / DMA
                cycles, energy, DRAM words
    [totals]    the network totals (NetworkSchedule.totals()), (format 3: the program's
                simulated cycles), and with a memory plan its status and how many
                activations stay in the buffer

Format 3 is format 2 with the timing simulator's figures beside the cost model's: written
when the compile lowered the schedule to a program (``lower-program``), format 2 when it
did not; both are read.  A format-2 golden compared with a format-3 compile names every
layer's ``sim_cycles`` as moved (``- -> N``): the golden lacks figures the compile has.

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

#: 2: activation_home in the header and the file name, plan totals; 3: + the simulated
#: cycles (per layer ``sim_cycles``, in total ``simulated_cycles``), when the compile lowered.
FORMAT = 3
FORMAT_UNSIMULATED = 2
READ_FORMATS = (FORMAT_UNSIMULATED, FORMAT)
#: the figures of one layer line, in column order after the index and the name (format 3;
#: format 2 has no sim_cycles)
LAYER_FIGURES = ("kind", "dataflow", "tiles", "order", "total_cycles", "sim_cycles", "compute_cycles",
                 "dma_cycles", "energy", "dram_words")
_NUMERIC = {"total_cycles", "compute_cycles", "dma_cycles", "energy", "dram_words"}
#: exact figures: an integer or "a/b" (the simulator's cycles can be fractional)
_EXACT = {"sim_cycles"}
#: (column title, width); numbers right-aligned, text left-aligned
_COLUMNS = (("kind", 8), ("df", 3), ("tiles x,y,c,k", 16), ("order", 5), ("total_cyc", 11),
            ("sim_cyc", 13), ("compute_cyc", 11), ("dma_cyc", 11), ("energy", 14), ("dram_words", 11))
_RIGHT = {"total_cyc", "sim_cyc", "compute_cyc", "dma_cyc", "energy", "dram_words"}
#: the [totals] key of the simulated total (format 3), after ``total_cycles``
SIMULATED_TOTAL = "simulated_cycles"
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
    sim_cycles: str | None = None   # the simulated cycles, exact ("123" or "a/b"); None: not simulated

    def figures(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in LAYER_FIGURES}


def _figures_of(simulated: bool) -> tuple[str, ...]:
    return LAYER_FIGURES if simulated else tuple(f for f in LAYER_FIGURES if f not in _EXACT)


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
    return ", ".join(f"{f} {_shown(b if new else a)}" for f, a, b in changes)


def _shown(v: Any) -> str:
    return "-" if v is None else str(v)


def _change_text(fig: str, old: Any, new: Any) -> str:
    from fractions import Fraction

    s = f"{fig} {_shown(old)} -> {_shown(new)}"
    try:
        o, n = Fraction(old), Fraction(new)
    except (TypeError, ValueError, ZeroDivisionError):
        return s
    if o:
        pct = float(100 * (n - o) / o)
        s += f" ({pct:+.2f}%)" if abs(pct) >= 0.01 or pct == 0 else f" ({pct:+.1e}%)"
    return s


def flat_totals(t: dict, plan=None, simulated=None) -> dict[str, str]:
    """The [totals] lines: the network totals, with a simulation (a
    :class:`~.simulated.Simulated`) the program's ``simulated_cycles`` after
    ``total_cycles``, and with a memory plan (a NetworkPlan) ``plan.status`` and
    ``plan.resident`` (activations kept in the buffer / all)."""
    keys = ("layers", "distinct_layers", "unmodelled_ops", "macs", "macs_performed",
            "total_cycles", "compute_cycles", "dma_cycles", "time_us", "utilization")
    out = {}
    for k in keys:
        out[k] = str(t[k])
        if k == "total_cycles" and simulated is not None:
            out[SIMULATED_TOTAL] = str(simulated.total_cycles)
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


def layer_lines(net, simulated=None) -> list[LayerLine]:
    """The golden's layer lines of a NetworkSchedule (scheduled rows, program order), with
    each layer's simulated cycles when ``simulated`` (a :class:`~.simulated.Simulated`)."""
    from ..program.timing import exact

    out = []
    rows = net.scheduled
    sims = simulated.per_row(rows) if simulated is not None else [None] * len(rows)
    for i, (r, lay) in enumerate(zip(rows, sims)):
        s, m = r.schedule, r.schedule.mapping
        c = s.cost
        sim = str(exact(lay.cycles)) if lay is not None else None
        out.append(LayerLine(i, r.name, s.layer.kind, m.dataflow, f"{m.tx},{m.ty},{m.tc},{m.tk}",
                             "".join(m.order), c.total_cycles, c.compute_cycles, c.dma_cycles,
                             c.energy["total"], c.dram["total"], sim))
    return out


def _quote(name: str) -> str:
    return json.dumps(name) if (not name or re.search(r"\s", name) or name.startswith('"')) else name


def golden_filename(model: str, target_name: str, activation_home: str) -> str:
    """``<model>__<target>__<activation home>.txt``."""
    return f"{model}__{target_name}__{activation_home}.txt"


def golden_of(net, header: dict[str, str], simulated=None) -> Golden:
    """The Golden of a network schedule (``net``: a NetworkSchedule) under ``header``
    (its keys in :data:`HEADER_KEYS` order; ``format`` is added: 3 with ``simulated``, the
    timing simulation's figures (:class:`~.simulated.Simulated`), else 2)."""
    fmt = FORMAT if simulated is not None else FORMAT_UNSIMULATED
    return Golden({"format": str(fmt), **header}, layer_lines(net, simulated),
                  flat_totals(net.totals(), net.graph.attrs.get("plan"), simulated))


def _simulated(g: Golden) -> bool:
    """Whether a Golden carries simulated figures (format 3): its header says so, or (one
    built in memory without a format) a layer has them."""
    fmt = g.header.get("format")
    if fmt is not None:
        return fmt == str(FORMAT)
    return any(L.sim_cycles is not None for L in g.layers)


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
    sim = _simulated(g)
    cols = [c for c in _COLUMNS if sim or c[0] != "sim_cyc"]
    lines += ["", "[layers]",
              "# " + f"{'idx':>3}  {'layer':<{w}}  " + " ".join(
                  f"{t:>{n}}" if t in _RIGHT else f"{t:<{n}}" for t, n in cols).rstrip()]
    for r in g.layers:
        vals = [getattr(r, f) for f in _figures_of(sim)]
        cells = [f"{v:>{n}}" if t in _RIGHT else f"{v:<{n}}" for v, (t, n) in zip(vals, cols)]
        lines.append((f"  {r.index:>3}  {_quote(r.name):<{w}}  " + " ".join(cells)).rstrip())
    lines += ["", "[totals]"]
    lines += [f"{k:<24} {v}" for k, v in g.totals.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# reading and comparing
# ---------------------------------------------------------------------------------------
def _parse_layer(line: str, lineno: int, simulated: bool) -> LayerLine:
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
    figs = _figures_of(simulated)
    if len(tail) != len(figs):
        raise GoldenError(f"line {lineno}: expected {len(figs) + 2} columns "
                          f"(index, layer, {', '.join(figs)}), got {len(tail) + 2}")
    vals: dict[str, Any] = {}
    for f, v in zip(figs, tail):
        if f in _NUMERIC:
            try:
                v = int(v)
            except ValueError:
                raise GoldenError(f"line {lineno}: {f} must be an integer, got '{v}'") from None
        elif f in _EXACT and not re.fullmatch(r"\d+(/[1-9]\d*)?", v):
            raise GoldenError(f"line {lineno}: {f} must be an integer or a fraction a/b, got '{v}'")
        vals[f] = v
    return LayerLine(idx, name, **vals)


def parse_golden(text: str) -> Golden:
    """Read a golden file's text (raises GoldenError naming the line)."""
    section = None
    simulated = False
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
            layers.append(_parse_layer(line, lineno, simulated))
            continue
        key, _, value = line.partition(" ")
        (header if section == "header" else totals)[key] = value.strip()
        if section == "header" and key == "format":
            if value.strip() not in map(str, READ_FORMATS):
                raise GoldenError(f"golden format {value.strip()!r} is not {FORMAT_UNSIMULATED} or {FORMAT} "
                                  "(regenerate with sqnxtc regress --update)")
            simulated = value.strip() == str(FORMAT)
    if header.get("format") is None:
        raise GoldenError(f"golden format None is not {FORMAT_UNSIMULATED} or {FORMAT} "
                          "(regenerate with sqnxtc regress --update)")
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
                                    tuple((f, v, None) for f, v in old.figures().items() if v is not None)))
    for key, new in ak.items():
        if key not in ek:
            diffs.append(Difference("added", new.name, new.index, new.kind,
                                    tuple((f, None, v) for f, v in new.figures().items() if v is not None)))
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
