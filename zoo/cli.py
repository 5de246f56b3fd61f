"""``sqnxtc zoo``: list and export the model zoo.

``sqnxt_compiler.cli`` imports this module while it is itself being imported, so the CLI
guard (``sqnxt_compiler.cli.guard``) is looked up when a command runs, not at import time.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import sys

import click


def _guarded(fn):
    """Run ``fn`` inside ``sqnxt_compiler.cli.guard`` (one-line errors, exit codes)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from sqnxt_compiler.cli import guard

        return guard(fn)(*args, **kwargs)

    return wrapper


LIST_COLUMNS = ("name", "family", "params", "macs", "macs_with_bias", "input_size", "source",
                "published_params", "published_macs")


def _millions(n: int) -> str:
    return f"{n / 1e6:.3f}M"


def format_table(infos) -> str:
    """A fixed-width table: name, params, MACs (without / with bias MACs), input, source."""
    header = ("NAME", "PARAMS", "MACS", "MACS+BIAS", "INPUT", "SOURCE")
    rows = [(i.name, _millions(i.params), _millions(i.macs), _millions(i.macs_with_bias),
             f"{i.input_size}x{i.input_size}", i.source) for i in infos]
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    right = {1, 2, 3}
    lines = []
    for r in [header, *rows]:
        cells = [c.rjust(w) if k in right else c.ljust(w) for k, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def format_csv(infos) -> str:
    """CSV with the integer counts and published figures (millions) of every model."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LIST_COLUMNS)
    for i in infos:
        w.writerow(["" if getattr(i, c) is None else getattr(i, c) for c in LIST_COLUMNS])
    return buf.getvalue()


def format_json(infos) -> str:
    """JSON list of every :class:`~sqnxt_compiler.zoo.ModelInfo` field."""
    return json.dumps([dataclasses.asdict(i) for i in infos], indent=2) + "\n"


@click.group()
def zoo_group() -> None:
    """The model zoo: SqueezeNext family and comparison networks as ONNX."""


@zoo_group.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@_guarded
def list_cmd(fmt: str) -> None:
    """List the zoo's models: parameters, MACs, input size and source.

    SOURCE is 'authors' (the authors' published definition), 'paper' (fully determined by
    the paper) or 'reconstructed' (a detail the sources do not publish was chosen: see
    docs/zoo.md).  MACS counts conv and fc multiply-accumulates; MACS+BIAS adds one per
    output value, the convention of the paper's figures.
    """
    from . import list_models

    infos = list_models()
    out = {"table": format_table, "csv": format_csv, "json": format_json}[fmt](infos)
    click.echo(out, nl=False)


@zoo_group.command("export")
@click.argument("name")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the ONNX model.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the weights.")
@click.option("--weight-sparsity", type=float, default=0.0, show_default=True,
              help="Fraction of conv/fc weights set to zero, in [0, 1).")
@_guarded
def export_cmd(name: str, output: str, seed: int, weight_sparsity: float) -> None:
    """Build zoo model NAME with seeded weights and write it to OUTPUT (atomically)."""
    from sqnxt_compiler.diagnostics import atomic_write

    from . import build, get_info
    from .serialize import write_model

    info = get_info(name)
    model = build(name, seed=seed, weight_sparsity=weight_sparsity)
    with atomic_write(output, "wb") as fh:
        size = write_model(model, fh)
    click.echo(f"wrote {output}: {info.name}, {info.params / 1e6:.3f}M params, "
               f"{info.macs / 1e6:.1f}M MACs, {size / 1e6:.1f} MB", err=True)


__all__ = ["zoo_group"]
if __name__ == "__main__":  # pragma: no cover
    sys.exit(zoo_group())
