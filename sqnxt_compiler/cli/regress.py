"""``sqnxtc regress``: check the cycle-count goldens of the zoo, or rewrite them."""
from __future__ import annotations

from pathlib import Path

import click

from ..diagnostics import CheckFailed, InputError
from ..outputs import echo
from ..regress import HOMES, TARGETS, default_goldens_dir, golden_models, golden_points, run_goldens
from ..report.golden import moved_layers


@click.command("regress")
@click.option("--update", is_flag=True, help="Rewrite the goldens from the current compiler (deliberately).")
@click.option("--model", "models", multiple=True, metavar="NAME",
              help="Zoo model (repeatable) [default: every SqueezeNext and comparison model].")
@click.option("--target", "targets", multiple=True, metavar="NAME|PATH",
              help="Target (repeatable; a bundled name or a .toml path) [default: pe16x16, pe8x8].")
@click.option("--activation-home", "homes", multiple=True, type=click.Choice(HOMES),
              help="Activation home to check (repeatable) [default: both, planned and dram].")
@click.option("--goldens", type=click.Path(file_okay=False), default=None,
              help="Goldens directory [default: tests/goldens of the source checkout].")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
def regress_cmd(update, models, targets, homes, goldens, quiet):
    """Check the cycle-count goldens (exit 1 naming every layer whose figures moved), or
    rewrite them with --update."""
    import time

    from ..targets import load_target
    from ..zoo.registry import lookup

    t0 = time.perf_counter()
    names = [lookup(m).name for m in models] or golden_models()
    tgts = golden_points([load_target(t) for t in (targets or TARGETS)],
                         [h for h in HOMES if h in homes] or HOMES)
    gdir = Path(goldens) if goldens is not None else default_goldens_dir()
    if not update and not gdir.is_dir():
        raise InputError("no goldens directory (create the goldens with sqnxtc regress --update)", str(gdir))
    progress = None if quiet else (lambda msg: click.echo(f"sqnxtc: {msg}", err=True))
    outcomes = run_goldens(names, tgts, gdir, update=update, progress=progress)
    bad = 0
    for o in outcomes:
        head = f"{o.model} on {o.target}"
        if o.status in ("ok", "unchanged"):
            echo(f"{head}: {o.status} ({o.layers} layers)")
        elif o.status == "missing":
            echo(f"{head}: no golden {o.path}")
        elif o.status == "unreadable":
            echo(f"{head}: golden {o.path} unreadable: {o.error}")
        elif o.status == "created":
            echo(f"{head}: created {o.path} ({o.layers} layers)")
        else:
            n = len(moved_layers(o.diffs))
            other = [d.what for d in o.diffs if d.what in ("totals", "order", "header")]
            what = f"{n} layer(s)" + "".join(f", {w}" for w in other)
            echo(f"{head}: updated {o.path}: {what} moved" if o.status == "updated"
                       else f"{head}: moved: {what}")
            for d in o.diffs:
                echo(f"  {d}")
        for note in o.notes:
            echo(f"  note: {note}")
        if o.status in ("moved", "missing", "unreadable"):
            bad += 1
    click.echo(f"{len(outcomes)} golden(s), {bad} failing, "
               f"{time.perf_counter() - t0:.1f} s", err=True)
    if bad:
        raise CheckFailed(f"{bad} of {len(outcomes)} golden(s) differ (sqnxtc regress --update "
                          "rewrites them, deliberately)", str(gdir))
