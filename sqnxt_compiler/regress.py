"""Cycle-count regression goldens: the per-layer and total figures of the zoo's models on
the bundled targets, as reviewable text, and the comparison that names what moved.

A golden file ``tests/goldens/<model>__<target>.txt`` (docs/regression.md) has three
sections::

    [header]    model, target and its fingerprint, pass pipeline, objective, versions
    [layers]    one aligned line per scheduled layer: index, name, kind, dataflow, tiles,
                order, total / compute / DMA cycles, energy, DRAM words
    [totals]    the network totals (NetworkSchedule.totals())

:func:`render_golden` compiles a model (or takes a compiled NetworkSchedule) and renders
it; :func:`parse_golden` reads one back; :func:`compare` lists the :class:`Difference` s:
each layer whose figures moved (old -> new, per figure), each layer added or removed, the
totals that moved.  Only figures (and the model / target / objective the file is about)
are compared: a new tool or OR-Tools version, pipeline spelling or target fingerprint
alone is reported by :func:`header_notes`, never a failure.

``sqnxtc regress`` (:data:`regress_cmd`) checks every golden, or rewrites them with
``--update``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import click

FORMAT = 1
TARGETS = ("pe16x16", "pe8x8")
FAMILIES = ("squeezenext", "comparison")
PIPELINE = "default,schedule"
OBJECTIVE = "cycles"

#: the figures of one layer line, in column order after the index and the name
LAYER_FIGURES = ("kind", "dataflow", "tiles", "order", "total_cycles", "compute_cycles",
                 "dma_cycles", "energy", "dram_words")
_NUMERIC = {"total_cycles", "compute_cycles", "dma_cycles", "energy", "dram_words"}
#: (column title, width); numbers right-aligned, text left-aligned
_COLUMNS = (("kind", 8), ("df", 3), ("tiles x,y,c,k", 16), ("order", 5), ("total_cyc", 11),
            ("compute_cyc", 11), ("dma_cyc", 11), ("energy", 14), ("dram_words", 11))
#: header keys that say what the file is about: a mismatch is a Difference
IDENTITY = ("model", "target", "objective")
#: header keys that only describe how it was produced: a change is a note, not a failure
PROVENANCE = ("fingerprint", "pipeline", "sqnxtc", "ortools")
HEADER_KEYS = ("format",) + IDENTITY[:2] + ("fingerprint", "pipeline", "objective", "sqnxtc", "ortools")


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


# ---------------------------------------------------------------------------------------
# producing the figures
# ---------------------------------------------------------------------------------------
def golden_models() -> list[str]:
    """The models that have goldens: the zoo's SqueezeNext models and comparison networks."""
    from .zoo import list_models

    return [m.name for m in list_models() if m.family in FAMILIES]


def golden_filename(model: str, target_name: str) -> str:
    return f"{model}__{target_name}.txt"


def default_goldens_dir() -> Path:
    """``tests/goldens`` of the source checkout this package lives in, else of the cwd."""
    here = Path(__file__).resolve().parents[1] / "tests" / "goldens"
    return here if here.parent.is_dir() else Path("tests") / "goldens"


def _target(target):
    if isinstance(target, str):
        from .targets import load_target
        return load_target(target)
    return target


def schedule_network(model: str, target, *, proto=None, objective: str = OBJECTIVE):
    """Compile zoo model ``model`` (its real ONNX model, weights included; ``proto`` if
    already built) through ``PIPELINE`` for ``target``; returns (NetworkSchedule,
    pipeline string as run)."""
    from .frontend import import_model
    from .pipeline import PassContext, PassManager, parse_pipeline
    from .report.network import collect
    from .zoo import build
    from .zoo.registry import lookup

    target = _target(target)
    name = lookup(model).name
    if proto is None:
        proto = build(name)
    imported = import_model(proto, f"zoo:{name}")
    pm = PassManager(parse_pipeline(PIPELINE))
    ctx = PassContext(target=target, options={"objective": objective}, notes=imported.notes)
    pm.run(imported.graph, ctx)
    return collect(imported.graph, target), pm.pipeline_string()


def _flat_totals(t: dict) -> dict[str, str]:
    keys = ("layers", "distinct_layers", "unmodelled_ops", "macs", "macs_performed",
            "total_cycles", "compute_cycles", "dma_cycles", "time_us", "utilization")
    out = {k: str(t[k]) for k in keys}
    for k in ("mac", "rf", "array", "buffer", "dram", "total"):
        out[f"energy.{k}"] = str(t["energy"][k])
    for k in ("input_reads", "weight_reads", "output_writes", "psum_writes", "psum_reads", "total"):
        out[f"dram_words.{k}"] = str(t["dram_words"][k])
    for k, n in t["status"].items():
        out[f"status.{k}"] = str(n)
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


def render_golden(model: str, target, *, net=None, pipeline: str | None = None,
                  proto=None, objective: str = OBJECTIVE) -> str:
    """The golden text of zoo model ``model`` on ``target`` (a Target or its name).

    Compiles the model unless ``net`` (its NetworkSchedule, with ``pipeline`` the pipeline
    string it ran) is given."""
    import ortools

    from . import __version__
    from .zoo.registry import lookup

    target = _target(target)
    model = lookup(model).name
    if net is None:
        net, pipeline = schedule_network(model, target, proto=proto, objective=objective)
    header = {"format": str(FORMAT), "model": model, "target": target.name,
              "fingerprint": f"sha256:{target.fingerprint()}", "pipeline": pipeline or PIPELINE,
              "objective": objective, "sqnxtc": __version__, "ortools": ortools.__version__}
    return format_golden(Golden(header, layer_lines(net), _flat_totals(net.totals())))


def format_golden(g: Golden) -> str:
    """The text of a Golden (what render_golden writes; parse_golden reads it back)."""
    h = g.header
    lines = [f"# sqnxtc cycle-count golden: {h.get('model')} on {h.get('target')}.",
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


# ---------------------------------------------------------------------------------------
# check / update a goldens directory
# ---------------------------------------------------------------------------------------
@dataclass
class Outcome:
    model: str
    target: str
    path: Path
    status: str                   # "ok" | "moved" | "missing" | "unreadable" | "created" | "updated" | "unchanged"
    diffs: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    layers: int = 0
    error: str = ""


def render_all(models: list[str], targets: list, progress=None):
    """Yield (model, Target, golden text) for every model x target.

    Each model is built (weights included), imported and run through the target-free
    part of ``PIPELINE`` once; then the ``schedule`` pass runs on that graph for each
    target in turn (the pass only reads the graph and attaches its answer to the ops, so
    this equals a fresh compile per target: tests/test_regress.py checks it), and the
    text is rendered before the next target's pass replaces the answers."""
    from .frontend import import_model
    from .pipeline import PassContext, PassManager, parse_pipeline
    from .report.network import collect
    from .zoo import build
    from .zoo.registry import lookup

    front, _, last = PIPELINE.rpartition(",")
    assert last == "schedule"
    targets = [_target(t) for t in targets]
    for model in models:
        name = lookup(model).name
        if progress:
            progress(f"building {name}")
        imported = import_model(build(name), f"zoo:{name}")
        graph = imported.graph
        del imported
        pm = PassManager(parse_pipeline(front))
        pm.run(graph, PassContext(options={"objective": OBJECTIVE}))
        for t in targets:
            if progress:
                progress(f"scheduling {name} on {t.name}")
            spm = PassManager(parse_pipeline(last))
            spm.run(graph, PassContext(target=t, options={"objective": OBJECTIVE}))
            yield name, t, render_golden(name, t, net=collect(graph, t),
                                         pipeline=f"{pm.pipeline_string()},{spm.pipeline_string()}")
        del graph


def run_goldens(models: list[str], targets: list, goldens: Path, *, update: bool,
                progress=None) -> list[Outcome]:
    """Check (or with ``update`` rewrite, atomically) the goldens of models x targets."""
    from .diagnostics import atomic_write

    out = []
    for model, t, text in render_all(models, targets, progress):
        path = Path(goldens) / golden_filename(model, t.name)
        actual = parse_golden(text)
        o = Outcome(model, t.name, path, "ok", layers=len(actual.layers))
        old_text = None
        try:
            old_text = path.read_text()
            old = parse_golden(old_text)
        except FileNotFoundError:
            old = None
            o.status = "missing"
        except (OSError, GoldenError) as exc:
            old = None
            o.status, o.error = "unreadable", str(exc)
        if old is not None:
            o.diffs = compare(old, actual)
            o.notes = header_notes(old, actual)
            o.status = "moved" if o.diffs else "ok"
        if update:
            if old_text == text:
                o.status = "unchanged"
            else:
                with atomic_write(path) as fh:
                    fh.write(text)
                o.status = "created" if o.status == "missing" else "updated"
        out.append(o)
    return out


# ---------------------------------------------------------------------------------------
# sqnxtc regress
# ---------------------------------------------------------------------------------------
def _guard(fn):
    """The CLI's error guard, imported lazily (``sqnxt_compiler.cli`` imports this module)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from sqnxt_compiler.cli import guard
        return guard(fn)(*args, **kwargs)

    return wrapper


@click.command("regress")
@click.option("--update", is_flag=True, help="Rewrite the goldens from the current compiler (deliberately).")
@click.option("--model", "models", multiple=True, metavar="NAME",
              help="Zoo model (repeatable) [default: every SqueezeNext and comparison model].")
@click.option("--target", "targets", multiple=True, metavar="NAME|PATH",
              help="Target (repeatable; a bundled name or a .toml path) [default: pe16x16, pe8x8].")
@click.option("--goldens", type=click.Path(file_okay=False), default=None,
              help="Goldens directory [default: tests/goldens of the source checkout].")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
@_guard
def regress_cmd(update, models, targets, goldens, quiet):
    """Check the cycle-count goldens (exit 1 naming every layer whose figures moved), or
    rewrite them with --update."""
    import time

    from .diagnostics import CheckFailed, InputError
    from .targets import load_target
    from .zoo.registry import lookup

    t0 = time.perf_counter()
    names = [lookup(m).name for m in models] or golden_models()
    tgts = [load_target(t) for t in (targets or TARGETS)]
    gdir = Path(goldens) if goldens is not None else default_goldens_dir()
    if not update and not gdir.is_dir():
        raise InputError("no goldens directory (create the goldens with sqnxtc regress --update)", str(gdir))
    progress = None if quiet else (lambda msg: click.echo(f"sqnxtc: {msg}", err=True))
    outcomes = run_goldens(names, tgts, gdir, update=update, progress=progress)
    bad = 0
    for o in outcomes:
        head = f"{o.model} on {o.target}"
        if o.status in ("ok", "unchanged"):
            click.echo(f"{head}: {o.status} ({o.layers} layers)")
        elif o.status == "missing":
            click.echo(f"{head}: no golden {o.path}")
        elif o.status == "unreadable":
            click.echo(f"{head}: golden {o.path} unreadable: {o.error}")
        elif o.status == "created":
            click.echo(f"{head}: created {o.path} ({o.layers} layers)")
        else:
            n = len(moved_layers(o.diffs))
            other = [d.what for d in o.diffs if d.what in ("totals", "order", "header")]
            what = f"{n} layer(s)" + "".join(f", {w}" for w in other)
            click.echo(f"{head}: updated {o.path}: {what} moved" if o.status == "updated"
                       else f"{head}: moved: {what}")
            for d in o.diffs:
                click.echo(f"  {d}")
        for note in o.notes:
            click.echo(f"  note: {note}")
        if o.status in ("moved", "missing", "unreadable"):
            bad += 1
    click.echo(f"{len(outcomes)} golden(s), {bad} failing, "
               f"{time.perf_counter() - t0:.1f} s", err=True)
    if bad:
        raise CheckFailed(f"{bad} of {len(outcomes)} golden(s) differ (sqnxtc regress --update "
                          "rewrites them, deliberately)", str(gdir))
