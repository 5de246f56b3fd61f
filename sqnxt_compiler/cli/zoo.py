"""``sqnxtc zoo``: list and export the model zoo."""
from __future__ import annotations

import click

from ..outputs import echo


@click.group("zoo")
def zoo_group() -> None:
    """The model zoo: SqueezeNext family and comparison networks as ONNX."""


@zoo_group.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
def list_cmd(fmt: str) -> None:
    """List the zoo's models: parameters, MACs, input size and source.

    SOURCE is 'authors' (the authors' published definition), 'paper' (fully determined by
    the paper) or 'reconstructed' (a detail the sources do not publish was chosen: see
    docs/zoo.md).  MACS counts conv and fc multiply-accumulates; MACS+BIAS adds one per
    output value, the convention of the paper's figures.
    """
    from ..zoo import list_models
    from ..zoo.listing import format_csv, format_json, format_table

    infos = list_models()
    out = {"table": format_table, "csv": format_csv, "json": format_json}[fmt](infos)
    echo(out, nl=False)


@zoo_group.command("export")
@click.argument("name")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the ONNX model ('-': standard output).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the weights.")
@click.option("--weight-sparsity", type=float, default=0.0, show_default=True,
              help="Fraction of conv/fc weights set to zero, in [0, 1).")
def export_cmd(name: str, output: str, seed: int, weight_sparsity: float) -> None:
    """Build zoo model NAME with seeded weights and write it to OUTPUT (atomically)."""
    from ..outputs import atomic_write
    from ..zoo import build, get_info
    from ..zoo.serialize import write_model

    info = get_info(name)
    model = build(name, seed=seed, weight_sparsity=weight_sparsity)
    with atomic_write(output, "wb") as fh:
        size = write_model(model, fh)
    click.echo(f"wrote {output}: {info.name}, {info.params / 1e6:.3f}M params, "
               f"{info.macs / 1e6:.1f}M MACs, {size / 1e6:.1f} MB", err=True)
