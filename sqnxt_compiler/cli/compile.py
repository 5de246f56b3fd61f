"""``sqnxtc compile``: parse, call the driver, write the requested formats."""
from __future__ import annotations

import click

from .. import driver, output_cache
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
    key = _cache_key(model, target, passes, emits, output, top, kw)
    hit = None if key is None else output_cache.get(key)
    if hit is not None and _replay(hit, output):
        return
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
        outputs = driver.render(res, emits, top=top)  # all computed before any is written
    else:
        outputs = driver.render_files(res, emits, top=top)
    _write(emits, outputs, output, to_file)
    if key is not None and output_cache.storable(res.notes, model):
        output_cache.put(key, emits, outputs, res.notes)


def _write(emits: tuple, outputs: dict, output, to_file: bool) -> None:
    """Write what a compile rendered: each format on stdout (no ``-o``), the one format to
    the file (or ``-``), or the files into the directory, all or none, and the summary on
    stdout."""
    if output is None:
        for e in emits:
            echo(outputs[e], nl=False)
    elif to_file:
        write_file(output, outputs[emits[0]])
    else:
        paths = publish_dir(output, outputs,  # all or none
                            owned={n for f in FORMATS.values() for n in f.filenames})
        if "summary" in emits:
            echo(outputs[FORMATS["summary"].filename], nl=False)
        click.echo(f"wrote {', '.join(paths)}", err=True)


def _cache_key(model, target, passes, emits, output, top, kw) -> str | None:
    """The output cache's key of this command (:mod:`sqnxt_compiler.output_cache`), or None
    when it is not cached: ``--no-cache``, a time limit (flag or pipeline option), pass
    instrumentation, or a model that is not keyed."""
    if kw.get("cache") is False or kw.get("time_limit") is not None or "time-limit" in passes:
        return None
    if kw["print_before"] or kw["print_ir_after_all"] or kw["print_after"] or kw["pass_timing"] \
            or kw["pass_statistics"]:
        return None
    flags = {k: v for k, v in schedule_values(kw).items() if k not in ("cache", "cache_dir", "jobs")}
    where = None if output is None else "-" if output == STDOUT else "path"
    return output_cache.key(model, target, {"passes": passes, "schedule": flags, "emits": tuple(emits),
                                            "top": top, "output": where,
                                            "activation_home": kw["activation_home"]})


def _replay(hit: dict, output) -> bool:
    """Write a cached compile's outputs and notes as the compile would (False: the entry
    does not fit this output, e.g. ``-o PATH`` is now a directory: compile instead)."""
    emits, outputs = hit["emits"], hit["outputs"]
    files = [n for e in emits for n in FORMATS[e].filenames]
    to_file = is_file_output(output, len(files))
    as_files = output is not None and not to_file
    if set(outputs) != (set(files) if as_files else set(emits)):
        return False
    if as_files:
        check_dir_target(output, files)
    notes(hit["notes"])
    _write(emits, outputs, output, to_file)
    return True
