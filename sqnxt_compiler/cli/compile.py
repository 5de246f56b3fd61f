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


def default_emits(has_target: bool, has_output: bool, lowered: bool = False) -> tuple[str, ...]:
    """Without --emit: the IR without a target; with one, the summary on stdout, or every
    format with ``-o DIR`` (the program's files when the pipeline lowers)."""
    if not has_target:
        return ("ir",)
    if not has_output:
        return ("summary",)
    return tuple(n for n, f in FORMATS.items() if (f.needs_target or n == "ir") and (lowered or not f.needs_program))


def _lowers(pipeline) -> bool:
    return any(p.name == driver.LOWER_PROGRAM for p in pipeline)


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
                   + ", ".join(n for f in FORMATS.values() for n in f.filenames)
                   + "). --emit program is two files: -o names a directory, or '-' for the text.")
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
    emits = tuple(dict.fromkeys(emits)) or default_emits(target is not None, output is not None,
                                                         _lowers(pipeline))
    if target is None and any(FORMATS[e].needs_target for e in emits):
        need = ",".join(e for e in emits if FORMATS[e].needs_target)
        raise UsageError(f"--emit {need} needs --target")
    if any(FORMATS[e].needs_program for e in emits) and not _lowers(pipeline):
        # lower after schedule (and plan-memory), as sqnxtc sim does
        pipeline = driver.lowered_pipeline(passes, target, schedule_values(kw), kw["activation_home"])
    if output == STDOUT and len(emits) != 1:
        raise UsageError("-o - (standard output) takes exactly one --emit format")
    files = [n for e in emits for n in FORMATS[e].filenames]
    to_file = is_file_output(output, len(files))
    if output is not None and not to_file:
        check_dir_target(output, files)  # before any work

    with reporting(progress) as prog:
        res = driver.compile(model, pipeline=pipeline, target=target, progress=prog,
                             instrument=instrumentation(kw), import_cache=kw.get("cache") is not False)
    notes(res.notes)
    if output is None or to_file:
        rendered = driver.render(res, emits, top=top)  # all computed before any is written
        if output is None:
            for e in emits:
                echo(rendered[e], nl=False)
        else:
            write_file(output, rendered[emits[0]])
        return
    written = driver.render_files(res, emits, top=top)  # all computed before any is written
    paths = publish_dir(output, written,  # all or none
                        owned={n for f in FORMATS.values() for n in f.filenames})
    if "summary" in emits:
        echo(written[FORMATS["summary"].filename], nl=False)
    click.echo(f"wrote {', '.join(paths)}", err=True)
