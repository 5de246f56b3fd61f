"""``sqnxtc compile``: parse, call the driver, write the requested formats."""
from __future__ import annotations

import click

from .. import driver
from ..diagnostics import UsageError
from ..outputs import STDOUT, check_dir_target, echo, publish_dir, write_file
from ..report.formats import FORMATS
from ..report.progress import reporting
from .options import (activation_home_option, instrumentation, load_target_with, notes, pipeline_options,
                      schedule_flags, schedule_values)
from .paths import is_file_output


def default_emits(has_target: bool, has_output: bool) -> tuple[str, ...]:
    """Without --emit: the IR without a target; with one, the summary on stdout, or every
    format with ``-o DIR``."""
    if not has_target:
        return ("ir",)
    if not has_output:
        return ("summary",)
    return tuple(n for n, f in FORMATS.items() if f.needs_target or n == "ir")


@click.command("compile")
@click.argument("model", metavar="MODEL")
@click.option("-t", "--target", "target_name", default=None, metavar="NAME|PATH",
              help="Target to schedule for (bundled name, e.g. pe16x16, or a .toml path). "
                   "Without it, sqnxtc only runs the graph passes.")
@activation_home_option
@pipeline_options
@schedule_flags
@click.option("--emit", "emits", multiple=True, type=click.Choice(list(FORMATS)),
              help="What to produce (repeatable): " + "; ".join(
                  f"{f.name}: {f.help}" for f in FORMATS.values())
              + ". Default: ir without a target; summary on stdout and every format with -o DIR "
                "when a target is given.")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="'-' (standard output) or a file when exactly one --emit format is asked and the path is not a directory "
                   "(nor ends in '/'); otherwise a directory that receives one file per format ("
                   + ", ".join(f.filename for f in FORMATS.values()) + ").")
@click.option("--top", type=click.IntRange(1, 10000), default=10, show_default=True,
              help="Layers shown in the summary.")
def compile_cmd(model, target_name, passes, progress, emits, output, top, **kw):
    """Compile MODEL (an .onnx file or zoo:NAME), and schedule it with --target."""
    target = None
    if target_name is not None:
        target = load_target_with(target_name, kw["activation_home"])
    elif kw["activation_home"] is not None:
        raise UsageError("--activation-home needs --target")
    pipeline = driver.build_pipeline(passes, target=target, schedule=schedule_values(kw),
                                      activation_home=kw["activation_home"])
    emits = tuple(dict.fromkeys(emits)) or default_emits(target is not None, output is not None)
    if target is None and any(FORMATS[e].needs_target for e in emits):
        need = ",".join(e for e in emits if FORMATS[e].needs_target)
        raise UsageError(f"--emit {need} needs --target")
    if output == STDOUT and len(emits) != 1:
        raise UsageError("-o - (standard output) takes exactly one --emit format")
    to_file = is_file_output(output, len(emits))
    if output is not None and not to_file:
        check_dir_target(output, [FORMATS[e].filename for e in emits])  # before any work

    with reporting(progress) as prog:
        res = driver.compile(model, pipeline=pipeline, target=target, progress=prog,
                             instrument=instrumentation(kw))
    notes(res.notes)
    rendered = driver.render(res, emits, top=top)  # all computed before any is written
    if output is None:
        for e in emits:
            echo(rendered[e], nl=False)
        return
    if to_file:
        write_file(output, rendered[emits[0]])
        return
    paths = publish_dir(output, {FORMATS[e].filename: rendered[e] for e in emits},  # all or none
                        owned={f.filename for f in FORMATS.values()})
    if "summary" in rendered:
        echo(rendered["summary"], nl=False)
    click.echo(f"wrote {', '.join(paths)}", err=True)
