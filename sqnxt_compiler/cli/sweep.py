"""``sqnxtc sweep``: models x target points x objectives on Dask, one table."""
from __future__ import annotations

import tomllib
from pathlib import Path

import click

from ..diagnostics import UsageError


def _grid_value(text: str):
    """A --grid value as TOML reads it (``8``, ``0.5``, ``true``, ``"planned"``); a bare
    word is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def spec_from_flags(models, targets, objectives, grids) -> dict:
    """The spec document the flags describe (the same structure as a spec file)."""
    doc: dict = {"models": {"zoo": [m[4:] for m in models if m.startswith("zoo:")],
                            "files": [m for m in models if not m.startswith("zoo:")]},
                 "targets": {"base": list(targets) or ["pe16x16"], "grid": {}}}
    if objectives:
        doc["sweep"] = {"objectives": list(objectives)}
    for g in grids:
        field, sep, values = g.partition("=")
        if not sep or not values:
            raise UsageError(f"--grid {g!r}: expected FIELD=V1,V2,... (e.g. array.pe_rows=8,16)")
        doc["targets"]["grid"][field.strip()] = [_grid_value(v.strip()) for v in values.split(",")]
    return doc


@click.command("sweep")
@click.argument("spec", required=False, metavar="[SPEC]")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Directory of the sweep: sweep.csv (and sweep.parquet with pyarrow), rows/ (finished "
                   "points: a rerun skips them), cache/ (solved layers shared by the tasks).")
@click.option("-m", "--model", "models", multiple=True, metavar="MODEL",
              help="Without SPEC: a model (.onnx or zoo:NAME), repeatable.")
@click.option("-t", "--target", "targets", multiple=True, metavar="NAME|PATH",
              help="Without SPEC: a base target, repeatable (default pe16x16).")
@click.option("--objective", "objectives", multiple=True, type=click.Choice(["cycles", "energy", "edp"]),
              help="Without SPEC: an objective, repeatable (default cycles).")
@click.option("--grid", "grids", multiple=True, metavar="FIELD=V1,V2",
              help="Without SPEC: a target field and its values, repeatable (every combination).")
@click.option("--scheduler", default="local", show_default=True, metavar="local|inprocess|tcp://HOST:PORT",
              help="Where the tasks run: a LocalCluster of worker processes, threads of this process, "
                   "or a running Dask cluster.")
@click.option("--workers", type=click.IntRange(1, 1024), default=None,
              help="Workers of the LocalCluster (default: one per core).")
@click.option("--pareto", default=None, metavar="COL,COL",
              help="Add a 'pareto' column: true where no row of the same objective is at least as "
                   "small in every column and smaller in one (e.g. cycles,energy).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress lines on stderr.")
def sweep_cmd(spec, output, models, targets, objectives, grids, scheduler, workers, pareto, progress):
    """Compile every (model, target point, objective) of SPEC (a TOML file, docs/sweep.md) or
    of the flags, on Dask, into one table.  Needs the sweep extra (pip install 'sqnxtc[sweep]')."""
    from ..sweep import load_spec, parse_spec, run_sweep
    from ..sweep.engine import stderr_progress, summary

    if spec is not None and (models or targets or objectives or grids):
        raise UsageError("give a SPEC file or --model/--target/--objective/--grid flags, not both")
    if spec is None:
        if not models:
            raise UsageError("sqnxtc sweep needs a SPEC file or at least one --model")
        s = parse_spec(spec_from_flags(models, targets, objectives, grids), "<flags>", Path.cwd())
    else:
        s = load_spec(spec)
    if not (scheduler in ("local", "inprocess") or scheduler.startswith("tcp://")):
        raise UsageError(f"--scheduler {scheduler!r}: expected local, inprocess or tcp://HOST:PORT")
    metrics = tuple(m.strip() for m in pareto.split(",")) if pareto else ()
    res = run_sweep(s, output, scheduler=scheduler, workers=workers, pareto=metrics,
                    progress=stderr_progress if progress else None)
    click.echo(summary(res), err=True)
    click.echo(f"wrote {', '.join(res.files)}", err=True)
