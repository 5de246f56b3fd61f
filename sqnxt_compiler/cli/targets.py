"""``sqnxtc targets``: list and show target descriptions."""
from __future__ import annotations

import click

from ..outputs import echo


@click.group("targets")
def targets_group() -> None:
    """Target descriptions (accelerator configurations)."""


@targets_group.command("list")
def list_cmd() -> None:
    """List the bundled targets."""
    from ..targets.target import list_targets, load_target

    for name in list_targets():
        t = load_target(name)
        echo(f"{name:<10} {t.description}")


@targets_group.command("show")
@click.argument("name")
def show_cmd(name: str) -> None:
    """Show every field of target NAME (a bundled name or a path to a .toml file),
    with its unit, then the constants the cost model derives from it."""
    from ..targets.target import SCHEMA, load_target

    t = load_target(name)
    echo(f"target {t.name}: {t.description}")
    echo(f"  source: {t.source}")
    section = object()
    for f in SCHEMA[2:]:
        if f.section != section:
            section = f.section
            echo(f"[{section}]")
        v = getattr(t, f.attr)
        if isinstance(v, bool):
            v = "true" if v else "false"
        unit = f" {f.unit}" if f.unit else ""
        echo(f"  {f.key:<28} {str(v) + unit:<22} # {f.doc}")
    echo("[derived]")
    derived = [
        ("num_pes", t.num_pes, "PEs", "pe_rows * pe_cols"),
        ("buffer_words", t.buffer_words, "words", "global_buffer_bytes / word bytes"),
        ("psum_words", t.psum_words, "words", "ceil(psum_bits / word_bits)"),
        ("dram_words_per_cycle", t.dram_words_per_cycle, "words/cycle", "bandwidth / clock / word bytes"),
        ("weight_load_cycles", t.weight_load_cycles, "cycles", "WS: ceil(rows*cols / port)"),
        ("os_drain_cycles", t.os_drain_cycles, "cycles", "OS: ceil(rows*cols*psum_words / port)"),
        ("os_double_buffered_accumulators", "true" if t.os_double_buffered_accumulators else "false",
         "", "rf_words_per_pe >= 2 * psum_words"),
    ]
    for key, v, unit, doc in derived:
        unit = f" {unit}" if unit else ""
        echo(f"  {key:<28} {str(v) + unit:<22} # {doc}")
