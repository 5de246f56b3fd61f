"""The cycle-count regression runner: compile the zoo's models for the bundled targets and
check (or rewrite) their goldens.  The file format, parsing and comparison are
:mod:`sqnxt_compiler.report.golden`; the ``sqnxtc regress`` command is
:mod:`sqnxt_compiler.cli.regress`.

Each model is built (weights included) and imported once, runs the target-free part of
the pipeline once, and is scheduled for each target on its own copy of that graph
(:func:`sqnxt_compiler.driver.compile_for_targets`): the same figures as a fresh compile
per target (tests/test_regress.py checks it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import driver
from .report.golden import (Difference, GoldenError, compare, format_golden, golden_filename,
                            golden_of, header_notes, parse_golden)

TARGETS = ("pe16x16", "pe8x8")
#: Both activation homes (target field ``dram.activation_home``) have goldens.
HOMES = ("planned", "dram")
FAMILIES = ("squeezenext", "comparison")
PIPELINE = "default"
OBJECTIVE = "cycles"


def golden_models() -> list[str]:
    """The models that have goldens: the zoo's SqueezeNext models and comparison networks."""
    from .zoo import list_models

    return [m.name for m in list_models() if m.family in FAMILIES]


def source_checkout() -> Path | None:
    """The root of the sqnxtc source checkout this package runs from (an editable
    install), or None: the parent of the package directory, when it holds sqnxtc's
    ``pyproject.toml`` (an installed copy in site-packages has none)."""
    root = Path(__file__).resolve().parents[1]
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return root if 'name = "sqnxtc"' in text else None


def default_goldens_dir() -> Path:
    """``tests/goldens`` of the source checkout this package runs from, else of the current
    directory (never a folder inside an installed package)."""
    root = source_checkout()
    return (root if root is not None else Path.cwd()) / "tests" / "goldens"


def golden_points(targets: list, homes=HOMES) -> list:
    """Every target with every activation home: the (target, home) points that have
    goldens (``homes`` overrides the target's ``dram.activation_home``)."""
    from dataclasses import replace

    from .targets import load_target

    targets = [load_target(t) if isinstance(t, str) else t for t in targets]
    return [replace(t, activation_home=h) for t in targets for h in homes]


def header(model: str, target, pipeline: str, objective: str) -> dict[str, str]:
    """A golden's header: what it is about and how it was produced."""
    import ortools

    from . import __version__

    return {"model": model, "target": target.name, "activation_home": target.activation_home,
            "fingerprint": f"sha256:{target.fingerprint()}",
            "pipeline": pipeline, "objective": objective, "sqnxtc": __version__,
            "ortools": ortools.__version__}


def golden_text(result: driver.CompileResult, model: str) -> str:
    """The golden text of a compile of zoo model ``model`` (a result with a target): with
    the simulated cycles (format 3) when its pipeline lowered the schedule to a program."""
    opts = result.schedule_options or {}
    return format_golden(golden_of(result.network, header(
        model, result.target, result.pipeline, opts.get("objective", OBJECTIVE)), result.simulated))


def render_all(models: list[str], targets: list, progress: Callable[[str], None] | None = None,
               *, objective: str = OBJECTIVE) -> Iterator[tuple[str, object, str]]:
    """Yield (model, Target, golden text) for every model x target (module doc); a target
    is scheduled with its own ``activation_home`` (:func:`golden_points` makes both)."""
    from .targets import load_target
    from .zoo import build
    from .zoo.registry import lookup

    targets = [load_target(t) if isinstance(t, str) else t for t in targets]
    for model in models:
        name = lookup(model).name
        if progress:
            progress(f"building {name}")
        proto = build(name)
        if progress:
            progress(f"scheduling {name} on {', '.join(t.name for t in targets)}")
        for res in driver.compile_for_targets((proto, f"zoo:{name}"), targets, pipeline=PIPELINE,
                                              schedule={"objective": objective}):
            yield name, res.target, golden_text(res, name)
        del proto


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


def run_goldens(models: list[str], targets: list, goldens: Path, *, update: bool,
                progress=None) -> list[Outcome]:
    """Check (or with ``update`` rewrite, atomically) the goldens of models x targets
    (each target with its own activation home: see :func:`golden_points`)."""
    from .outputs import atomic_write

    out = []
    for model, t, text in render_all(models, targets, progress):
        path = Path(goldens) / golden_filename(model, t.name, t.activation_home)
        actual = parse_golden(text)
        o = Outcome(model, f"{t.name} ({t.activation_home})", path, "ok", layers=len(actual.layers))
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
