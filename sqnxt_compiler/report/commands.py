"""``sqnxtc report`` and ``sqnxtc compare``, and the ``--progress`` option of compile/check.

``sqnxt_compiler.cli`` imports this module while it is itself being imported, so the CLI
guard (``sqnxt_compiler.cli.guard``) is looked up when a command runs, not at import time.
Both commands compute everything before writing anything, and write their files
all-or-nothing (:func:`write_all`).
"""
from __future__ import annotations

import functools
import os

import click

from ..diagnostics import write_all


def _guarded(fn):
    """Run ``fn`` inside ``sqnxt_compiler.cli.guard`` (one-line errors, exit codes)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from sqnxt_compiler.cli import guard

        return guard(fn)(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def check_output_dir(path: str) -> None:
    """Fail early (exit 7), before any compile, when ``path`` cannot become a directory:
    it is a file, or its nearest existing ancestor is not a directory or not writable."""
    from ..diagnostics import OutputError

    if os.path.exists(path):
        if not os.path.isdir(path):
            raise OutputError("exists and is not a directory", path)
        if not os.access(path, os.W_OK):
            raise OutputError("directory is not writable", path)
        return
    _check_parent(path)


def check_output_file(path: str) -> None:
    """Fail early (exit 7) when ``path`` cannot be written as a file."""
    from ..diagnostics import OutputError

    if os.path.isdir(path):
        raise OutputError("is a directory (give a file name)", path)
    _check_parent(path)


def _check_parent(path: str) -> None:
    from ..diagnostics import OutputError

    anc = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(anc):
        anc = os.path.dirname(anc)
    if not os.path.isdir(anc):
        raise OutputError(f"cannot create it: '{anc}' is not a directory", path)
    if not os.access(anc, os.W_OK):
        raise OutputError(f"cannot create it: '{anc}' is not writable", path)


def schedule_doc(spec: str, target, *, objective: str = "cycles", time_limit: float = 0.0,
                 fallback: str = "none") -> dict:
    """Compile ``spec`` (a path or zoo:NAME) for ``target`` with the default pipeline and
    return its schedule document (the same as ``sqnxtc compile --emit schedule``)."""
    from ..driver import compile_model
    from .network import collect
    from .schedule_json import schedule_dict

    options = {"objective": objective, "time_limit": time_limit, "fallback": fallback,
               "measured_sparsity": False}
    res = compile_model(spec, passes="default,schedule", target=target, options=options)
    for n in res.notes:
        click.echo(f"sqnxtc: note: {n}", err=True)
    return schedule_dict(collect(res.graph, target), pipeline=res.pipeline, options=options)


def _load_targets(names) -> list:
    from ..diagnostics import UsageError
    from ..targets import load_target

    out = []
    for n in dict.fromkeys(names):
        t = load_target(n)
        if any(o.name == t.name for o in out):
            raise UsageError(f"two targets are named '{t.name}' ({n}): give each target once")
        out.append(t)
    return out


def _schedule_options(fn):
    opts = [
        click.option("--objective", type=click.Choice(["cycles", "energy", "edp"]), default="cycles",
                     show_default=True, help="What the scheduler minimizes."),
        click.option("--time-limit", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     help="Solver time limit per layer in seconds (0: none)."),
        click.option("--fallback", type=click.Choice(["none", "heuristic"]), default="none",
                     show_default=True, help="On a solver failure use the documented heuristic mapping."),
        click.option("--progress/--no-progress", default=None,
                     help="Show scheduling progress on stderr [default: when stderr is a terminal]."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


# ---------------------------------------------------------------------------------------
# sqnxtc report
# ---------------------------------------------------------------------------------------
@click.command("report")
@click.argument("model", metavar="MODEL")
@click.option("-t", "--target", "targets", multiple=True, metavar="NAME|PATH",
              help="Target (repeatable: one panel or bar per target).")
@click.option("-o", "--output", required=True, type=click.Path(), metavar="DIR",
              help="Directory that receives layers.FMT, stages.FMT, energy.FMT and report.json.")
@click.option("--format", "fmt", type=click.Choice(["png", "svg"]), default="png", show_default=True,
              help="Image format.")
@_schedule_options
@_guarded
def report_cmd(model, targets, output, fmt, objective, time_limit, fallback, progress):
    """Plot MODEL's schedule: cycles per layer with MACs per cycle, time by network stage,
    energy by level.  MODEL is an .onnx file, zoo:NAME, or a schedule.json written by
    `sqnxtc compile` (then it carries its target: no --target).  Needs matplotlib
    (pip install sqnxtc[plots])."""
    from ..diagnostics import UsageError
    from .plots import need_matplotlib, render_report
    from .progress import reporting

    need_matplotlib()
    check_output_dir(output)
    if model.endswith(".json"):
        from .schedule_json import load_schedule

        if targets:
            raise UsageError("a schedule file carries its own target: drop --target")
        docs = [load_schedule(model)]
    else:
        if not targets:
            raise UsageError("sqnxtc report needs --target (repeatable), or a schedule.json")
        docs = []
        for t in _load_targets(targets):
            with reporting(progress, label=f"{model} on {t.name}"):
                docs.append(schedule_doc(model, t, objective=objective, time_limit=time_limit,
                                         fallback=fallback))
    files = render_report(docs, fmt)
    paths = {os.path.join(output, name): data for name, data in files.items()}
    write_all(paths)
    click.echo(f"wrote {', '.join(paths)}", err=True)


# ---------------------------------------------------------------------------------------
# sqnxtc compare
# ---------------------------------------------------------------------------------------
@click.command("compare")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("-t", "--target", "targets", multiple=True, required=True, metavar="NAME|PATH",
              help="Target (repeatable: one group of columns per target).")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "json"]), default="md",
              show_default=True, help="Table format.")
@click.option("-o", "--output", type=click.Path(), default=None, metavar="FILE",
              help="Write the table to FILE instead of stdout.")
@_schedule_options
@_guarded
def compare_cmd(models, targets, fmt, output, objective, time_limit, fallback, progress):
    """Compare MODELs (.onnx files or zoo:NAME) on each --target: params, MACs, total cycles
    and energy, each also divided by the best (smallest) model of its column."""
    from .compare import compare_data, render
    from .progress import reporting

    if output is not None:
        check_output_file(output)
    tgts = _load_targets(targets)
    docs: dict[str, dict[str, dict]] = {}
    for m in dict.fromkeys(models):
        docs[m] = {}
        for t in tgts:
            with reporting(progress, label=f"{m} on {t.name}"):
                docs[m][t.name] = schedule_doc(m, t, objective=objective, time_limit=time_limit,
                                               fallback=fallback)
    text = render(compare_data(docs, [t.name for t in tgts], objective), fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    write_all({output: text})
    click.echo(f"wrote {output}", err=True)


# ---------------------------------------------------------------------------------------
# --progress for compile and check
# ---------------------------------------------------------------------------------------
