"""``sqnxtc export``: a compiled network's schedule as another tool's inputs
(docs/interop.md): ZigZag's workload, accelerator and fixed mapping, or Timeloop v4 specs."""
from __future__ import annotations

import click

from .. import driver
from ..diagnostics import UnsupportedError, UsageError
from ..outputs import check_dir_target, publish_dir
from ..report.progress import reporting
from .options import load_target_with, notes, progress_option, schedule_flags, schedule_values
from .paths import check_output_dir

TOOLS = ("zigzag", "timeloop")


def _exporter(tool: str):
    """The exporter module of ``tool`` (imported here: ``sqnxtc --help`` loads none)."""
    if tool == "zigzag":
        from ..interop import zigzag
        return zigzag
    from ..interop import timeloop
    return timeloop


@click.command("export")
@click.argument("model", metavar="MODEL")
@click.option("-t", "--target", "target_name", required=True, metavar="NAME|PATH",
              help="Target to schedule for (bundled name, e.g. pe16x16, or a .toml path).")
@click.option("--to", "tool", required=True, type=click.Choice(TOOLS),
              help="The tool whose inputs to write: zigzag (workload, accelerator, fixed mapping) or "
                   "timeloop (v4 specs: architecture, per-layer problem and mapping).")
@click.option("-o", "--output", required=True, type=click.Path(), metavar="DIR",
              help="Directory that receives the files (docs/interop.md lists them); written whole or not at all.")
@click.option("--activation-home", type=click.Choice(["dram", "planned"]), default="dram", show_default=True,
              help="dram: every layer alone, its activations through DRAM (the figures the other tool "
                   "can reproduce); planned: the memory planner's schedules (resident operands are noted, "
                   "the other tool still moves them through DRAM).")
@click.option("--passes", "passes", default="default", show_default=True, metavar="PIPELINE",
              help="Pass pipeline before scheduling, as for compile.")
@progress_option
@schedule_flags
def export_cmd(model, target_name, tool, output, activation_home, passes, progress, **kw):
    """Schedule MODEL (an .onnx file or zoo:NAME) on the target and write the schedule as
    another tool's inputs, every layer's mapping fixed (docs/interop.md)."""
    exporter = _exporter(tool)
    if output == "-":
        raise UsageError("-o - is not possible: the export is several files; give a directory")
    target = load_target_with(target_name, activation_home)
    pipeline = driver.build_pipeline(passes, target=target, schedule=schedule_values(kw),
                                     activation_home=activation_home)
    check_output_dir(output)                  # before any work: a file, an unwritable place
    check_dir_target(output, exporter.FILES)
    with reporting(progress) as prog:
        res = driver.compile(model, pipeline=pipeline, target=target, progress=prog)
    notes(res.notes)
    stacked = next((op for op in res.graph.ops() if "stack" in op.attrs), None)
    if stacked is not None:       # a member's mapping is one band's: no whole-layer mapping to fix
        raise UnsupportedError(f"the plan runs fused stacks (target field dram.depth_first = true; layer "
                               f"'{stacked.loc.node or stacked.result.name}'), which other tools' formats cannot "
                               f"express: export with depth_first = false", res.graph.source)
    files = exporter.export(res)        # every file computed before any is written
    paths = publish_dir(output, files, owned=set(exporter.FILES) | set(files))
    click.echo(f"wrote {', '.join(paths)}", err=True)
