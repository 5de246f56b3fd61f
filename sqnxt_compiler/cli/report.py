"""``sqnxtc report`` (plots) and ``sqnxtc compare`` (tables): both compile through the
driver, compute everything before writing anything, and write all-or-nothing."""
from __future__ import annotations


import click

from .. import driver
from ..diagnostics import UsageError
from ..outputs import STDOUT, echo, publish_dir, write_file
from ..report.progress import make_progress, wanted
from .options import (activation_home_option, load_targets, notes, progress_option, schedule_flags, schedule_values,
                      scheduler_options)
from .paths import check_output_dir, check_output_file


def schedule_docs(model: str, targets: list, schedule: dict, progress: bool | None) -> list[dict]:
    """The schedule document of ``model`` on each target, compiled with the default
    pipeline (what ``sqnxtc compile --emit schedule`` writes for each): one import, one
    schedule per target (:func:`sqnxt_compiler.driver.compile_for_targets`)."""
    shown: list = []

    def progress_for(t):
        shown.append(make_progress(progress, label=f"{model} on {t.name}"))
        return shown[-1]

    docs = []
    try:
        for res in driver.compile_for_targets(model, targets, schedule=schedule,
                                              progress_for=progress_for):
            if shown[-1] is not None:
                shown[-1].close()
            if not docs:
                notes(res.notes)
            docs.append(res.document)
    finally:
        for p in shown:
            if p is not None:
                p.close()
    return docs


@click.command("report")
@click.argument("model", metavar="MODEL")
@click.option("-t", "--target", "targets", multiple=True, metavar="NAME|PATH",
              help="Target (repeatable: one panel or bar per target).")
@click.option("-o", "--output", required=True, type=click.Path(), metavar="DIR",
              help="Directory that receives layers.FMT, stages.FMT, energy.FMT, memory.FMT and report.json.")
@click.option("--format", "fmt", type=click.Choice(["png", "svg"]), default="png", show_default=True,
              help="Image format.")
@schedule_flags
@activation_home_option
@progress_option
def report_cmd(model, targets, output, fmt, progress, **kw):
    """Plot MODEL's schedule: cycles per layer with MACs per cycle, time by network stage,
    energy by level.  MODEL is an .onnx file, zoo:NAME, or a schedule.json written by
    `sqnxtc compile` (then it carries its target: no --target); a sweep.csv written by
    `sqnxtc sweep` gives the sweep's plots (cycles vs energy with the Pareto front, a
    heatmap over two grid fields).  Needs matplotlib
    (pip install sqnxtc[plots])."""
    from ..report.plots import need_matplotlib, render_report

    need_matplotlib()
    check_output_dir(output)
    schedule = schedule_values(kw)
    if model.endswith(".csv"):   # a sweep's table: its plots (docs/sweep.md)
        from ..diagnostics import InputError
        from ..report.sweep_plots import render_sweep

        if targets or kw["activation_home"] is not None:
            raise UsageError("a sweep table carries its targets: drop --target and --activation-home")
        try:
            text = open(model, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the sweep table: {getattr(exc, 'strerror', None) or exc}", model) from None
        paths = publish_dir(output, render_sweep(text, model, fmt))
        click.echo(f"wrote {', '.join(paths)}", err=True)
        return
    if model.endswith(".json"):
        from ..report.schedule_json import load_schedule

        if targets or kw["activation_home"] is not None:
            raise UsageError("a schedule file carries its own target: drop --target and --activation-home")
        docs = [load_schedule(model)]
    else:
        if not targets:
            raise UsageError("sqnxtc report needs --target (repeatable), or a schedule.json")
        tgts = load_targets(targets, kw["activation_home"])
        driver.build_pipeline("default", target=tgts[0], schedule=schedule)  # bad flags: before work
        docs = schedule_docs(model, tgts, schedule, progress)
    files = render_report(docs, fmt)
    paths = publish_dir(output, files)
    click.echo(f"wrote {', '.join(paths)}", err=True)


@click.command("compare")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("-t", "--target", "targets", multiple=True, required=True, metavar="NAME|PATH",
              help="Target (repeatable: one group of columns per target).")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "json"]), default="md",
              show_default=True, help="Table format.")
@click.option("-o", "--output", type=click.Path(), default=None, metavar="FILE",
              help="Write the table to FILE instead of stdout ('-': stdout).")
@schedule_flags
@activation_home_option
@scheduler_options("serial")
@progress_option
def compare_cmd(models, targets, fmt, output, progress, scheduler, workers, **kw):
    """Compare MODELs (.onnx files or zoo:NAME) on each --target: params, MACs, total cycles
    and energy, each also divided by the best (smallest) model of its column.  A small
    sweep (docs/sweep.md) of MODELs x targets at one objective, run by the sweep's engine:
    serially by default, on Dask with --scheduler."""
    from ..report.compare import compare_data, render
    from ..report.schedule_json import tool_versions
    from ..sweep.engine import Runner, run_points, stderr_progress

    if output is not None and output != STDOUT:
        check_output_file(output)
    runner = Runner(scheduler, workers)
    tgts = load_targets(targets, kw["activation_home"])
    schedule = schedule_values(kw)
    driver.build_pipeline("default", target=tgts[0], schedule=schedule)  # bad flags: before work
    spec, given = compare_spec(models, targets, schedule, kw["activation_home"])
    names = dict(zip(spec.bases, (t.name for t in tgts)))

    def progress_for(point):
        return make_progress(progress, label=f"{given[point.model]} on {names[point.target.base]}")

    got = run_points(spec, runner, schedule["cache_dir"], jobs=schedule["jobs"], progress_for=progress_for,
                     progress=stderr_progress if wanted(progress) else None, what="compare")
    notes(got.notes)
    table: dict[str, dict[str, dict]] = {}
    for row, point in zip(got.rows, spec.points()):
        table.setdefault(given[point.model], {})[names[point.target.base]] = row
    text = render(compare_data(table, [t.name for t in tgts], spec.objectives[0], tool_versions()), fmt)
    if output is None or output == STDOUT:
        echo(text, nl=False)
        return
    write_file(output, text)
    click.echo(f"wrote {output}", err=True)


def compare_spec(models, targets, schedule: dict, activation_home: str | None):
    """compare's sweep: MODELs x targets (as given, each once; a target file by its absolute
    path, so that a Dask worker elsewhere finds it) at the one objective, the schedule flags
    that change a result as the points' options, ``--activation-home`` as a one-value grid.
    Returns (spec, {point's model: the model as the user gave it})."""
    import os

    from ..sweep.spec import AXIS, SCHEDULE_OPTIONS, SweepSpec, schedule_options

    given = {}
    for m in dict.fromkeys(models):
        given[m if m.startswith("zoo:") or not os.path.exists(m) else os.path.abspath(m)] = m
    bases = tuple(os.path.abspath(t) if t.endswith(".toml") else t for t in dict.fromkeys(targets))
    options = schedule_options({k: schedule[k] for k in SCHEDULE_OPTIONS})
    grid = (("dram.activation_home", (activation_home,)),) if activation_home is not None else ()
    spec = SweepSpec(tuple(given), bases, grid, (schedule[AXIS.name] or AXIS.default,),
                     "<compare>", options)
    return spec, given
