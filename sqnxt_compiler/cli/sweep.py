"""``sqnxtc sweep``: models x target points x objectives on Dask, one table."""
from __future__ import annotations

import tomllib
from pathlib import Path

import click

from ..diagnostics import UsageError
from ..sweep.spec import AXIS, OPTIONS, SCHEDULE_OPTIONS
from .options import flag, scheduler_options


def _grid_value(text: str):
    """A --grid value as TOML reads it (``8``, ``0.5``, ``true``, ``"planned"``); a bare
    word is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def spec_from_flags(models, targets, objectives, grids, options: dict | None = None) -> dict:
    """The spec document the flags describe (the same structure as a spec file);
    ``options``: the schedule options given (None: not given)."""
    doc: dict = {"models": {"zoo": [m[4:] for m in models if m.startswith("zoo:")],
                            "files": [m for m in models if not m.startswith("zoo:")]},
                 "targets": {"base": list(targets) or ["pe16x16"], "grid": {}}, "sweep": {}}
    if objectives:
        doc["sweep"]["objectives"] = list(objectives)
    doc["sweep"].update({k: v for k, v in (options or {}).items() if v is not None})
    for g in grids:
        field, sep, values = g.partition("=")
        if not sep or not values:
            raise UsageError(f"--grid {g!r}: expected FIELD=V1,V2,... (e.g. array.pe_rows=8,16)")
        doc["targets"]["grid"][field.strip()] = [_grid_value(v.strip()) for v in values.split(",")]
    return doc


def _spec_option_flags(fn):
    """The schedule options a spec's ``[sweep]`` table sets for every point, as flags
    (their declarations: passes/schedule.py)."""
    for name in reversed(SCHEDULE_OPTIONS):
        fn = flag(OPTIONS[name], prefix="Without SPEC: ")(fn)
    return fn


@click.command("sweep")
@click.argument("spec", required=False, metavar="[SPEC]")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Directory of the sweep: sweep.csv (and sweep.parquet with pyarrow), rows/ (finished "
                   "points: a rerun skips them), cache/ (solved layers shared by the tasks).")
@click.option("-m", "--model", "models", multiple=True, metavar="MODEL",
              help="Without SPEC: a model (.onnx or zoo:NAME), repeatable.")
@click.option("-t", "--target", "targets", multiple=True, metavar="NAME|PATH",
              help="Without SPEC: a base target, repeatable (default pe16x16).")
@flag(AXIS, dest=AXIS.axis, multiple=True, default=(),
      help=f"Without SPEC: an {AXIS.name}, repeatable (default {AXIS.default}).")
@click.option("--grid", "grids", multiple=True, metavar="FIELD=V1,V2",
              help="Without SPEC: a target field and its values, repeatable (every combination).")
@_spec_option_flags
@scheduler_options("local")
@click.option("--pareto", default=None, metavar="COL,COL",
              help="Add a 'pareto' column: true where no row of the same objective is at least as "
                   "small in every column and smaller in one (e.g. cycles,energy).")
@click.option("--per-layer", is_flag=True, help="Also write layers.csv: a row per scheduled layer of every point.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress lines on stderr.")
def sweep_cmd(spec, output, models, targets, objectives, grids, scheduler, workers, pareto, per_layer, progress,
              **kw):
    """Compile every (model, target point, objective) of SPEC (a TOML file, docs/sweep.md) or
    of the flags, on Dask, into one table.  Needs the sweep extra (pip install 'sqnxtc[sweep]'),
    except with --scheduler serial (one task after another in this process)."""
    from ..sweep import load_spec, parse_spec, run_sweep
    from ..sweep.engine import check_scheduler, stderr_progress, summary

    options = {k: kw[k] for k in SCHEDULE_OPTIONS}
    if spec is not None and (models or targets or objectives or grids or any(v is not None for v in options.values())):
        raise UsageError("give a SPEC file or --model/--target/--objective/--grid/... flags, not both")
    if spec is None:
        if not models:
            raise UsageError("sqnxtc sweep needs a SPEC file or at least one --model")
        s = parse_spec(spec_from_flags(models, targets, objectives, grids, options), "<flags>", Path.cwd())
    else:
        s = load_spec(spec)
    check_scheduler(scheduler)
    metrics = tuple(m.strip() for m in pareto.split(",")) if pareto else ()
    res = run_sweep(s, output, scheduler=scheduler, workers=workers, pareto=metrics, per_layer=per_layer,
                    progress=stderr_progress if progress else None)
    click.echo(summary(res), err=True)
    click.echo(f"wrote {', '.join(res.files)}", err=True)


@click.command("explore")
@click.option("-t", "--target", default="pe16x16", show_default=True, metavar="NAME|PATH", help="Target.")
@click.option("--blocks", type=click.IntRange(4, 200), default=21, show_default=True,
              help="Blocks to split over the four stages (1.0-SqNxt-23 has 21).")
@click.option("--conv1", default="7,5", show_default=True, metavar="K,K", help="conv1 kernels (5 and/or 7).")
@click.option("--width", type=click.FloatRange(0.25, 4.0), default=1.0, show_default=True, help="Width multiplier.")
@click.option("--groups", type=click.IntRange(1, 64), default=1, show_default=True, help="Groups (G-SqNxt: 2).")
@click.option("--first-block", type=click.Choice(["base", "v5"]), default="v5", show_default=True,
              help="First-block style of every variant (the paper's v2-v5 use v5).")
@click.option("--every", type=click.IntRange(1, 10**6), default=1, show_default=True,
              help="Take every N-th depth split only (a quick look at a large family).")
@flag(AXIS, default=AXIS.default, show_default=True, help="What each network's layers are scheduled for.")
@click.option("--rank", "rank_by", type=click.Choice(["cycles", "energy", "dram_words"]), default="cycles",
              show_default=True, help="What the variants are ranked by.")
@click.option("--max-params", type=click.FloatRange(0, None), default=None, help="Budget: parameters at most this.")
@click.option("--max-macs", type=click.FloatRange(0, None), default=None, help="Budget: MACs at most this.")
@click.option("--top", type=click.IntRange(1, 100000), default=10, show_default=True, help="Rows shown.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="The sweep's directory (resumable: a rerun skips the variants done).")
@scheduler_options("local")
@click.option("--progress/--no-progress", default=True, show_default=True)
def explore_cmd(target, blocks, conv1, width, groups, first_block, every, objective, rank_by, max_params,
                max_macs, top, output, scheduler, workers, progress):
    """Search SqueezeNext depth distributions (and conv1 sizes) for a target: every split of
    --blocks over the four stages, compiled as a sweep on Dask, ranked by cost within a
    parameter/MAC budget, with the paper's v1-v5 placed among them.  Ranks cost only, not
    accuracy.  Needs the sweep extra (except with --scheduler serial)."""
    from ..sweep.engine import run_sweep, stderr_progress, summary
    from ..sweep.explore import explore_spec, rank, render, variants

    try:
        kernels = tuple(int(k) for k in conv1.split(","))
    except ValueError:
        raise UsageError(f"--conv1 {conv1!r}: expected kernels like 7,5") from None
    if any(k not in (5, 7) for k in kernels):
        raise UsageError(f"--conv1 {conv1!r}: the kernels are 5 and/or 7")
    names = variants(blocks, kernels, width, groups, first_block, every)
    res = run_sweep(explore_spec(names, target, objective), output, scheduler=scheduler, workers=workers,
                    progress=stderr_progress if progress else None)
    click.echo(summary(res), err=True)
    ranked = rank(res.rows, rank_by, max_params, max_macs)
    from ..outputs import echo
    echo(render(ranked, len(res.rows), rank_by, top, res.rows[0]["target"] if res.rows else target), nl=False)
