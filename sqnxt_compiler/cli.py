"""The ``sqnxtc`` command line (click).

Every subcommand runs inside :func:`_guard`, which turns a :class:`SqnxtError` into one
line on stderr and the error's exit code (see :mod:`sqnxt_compiler.diagnostics`); any
other exception is reported as an internal error (exit 70) in one line, unless
``--debug`` asks for the traceback.
"""
from __future__ import annotations

import functools
import sys
import traceback

import click

from . import __version__
from .diagnostics import ExitCode, SqnxtError


def _guard(fn):
    """Run a command body; map errors to one line + exit code (traceback only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return fn(*args, **kwargs)
        except SqnxtError as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"sqnxtc: error: {exc}", err=True)
            sys.exit(int(exc.code))
        except KeyboardInterrupt:
            click.echo("sqnxtc: interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - last line of defence: no tracebacks
            if debug:
                traceback.print_exc()
            click.echo(f"sqnxtc: internal error: {type(exc).__name__}: {exc} "
                       "(run with --debug for a traceback)", err=True)
            sys.exit(int(ExitCode.INTERNAL))

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sqnxtc")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
def main(debug: bool) -> None:
    """sqnxtc: compile ONNX CNNs for the SqueezeNext reference accelerator."""


def _notes(notes) -> None:
    for n in notes:
        click.echo(f"sqnxtc: note: {n}", err=True)


def _pipeline_options(fn):
    """Options shared by compile and check: the pass pipeline and its instrumentation."""
    opts = [
        click.option("--passes", "passes", default="default", show_default=True, metavar="PIPELINE",
                     help="Pass pipeline, e.g. 'canonicalize,fold-bn' or a named one ('default', 'none')."),
        click.option("--print-ir-after-all", is_flag=True, help="Print the IR after every pass (stderr)."),
        click.option("--print-ir-after", "print_after", multiple=True, metavar="PASS",
                     help="Print the IR after the named pass (repeatable; stderr)."),
        click.option("--print-ir-before-passes", "print_before", is_flag=True,
                     help="Print the IR as imported, before any pass (stderr)."),
        click.option("--pass-statistics", is_flag=True, help="Per-pass counts of rewrites (stderr)."),
        click.option("--pass-timing", is_flag=True, help="Per-pass wall time (stderr)."),
        click.option("--progress/--no-progress", default=None,
                     help="Show scheduling progress on stderr [default: when stderr is a terminal]."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _compile(model, passes, print_ir_after_all, print_after, print_before, pass_statistics,
             pass_timing, target=None, options=None, progress=None):
    from .driver import compile_model
    from .pipeline import parse_pipeline
    from .report.progress import reporting

    if print_before:
        parse_pipeline(passes)  # reject a bad pipeline before printing anything
        from .frontend import load
        from .ir import print_graph
        click.echo("// -----// IR Dump Before any pass //----- //", err=True)
        click.echo(print_graph(load(model).graph), err=True, nl=False)
    with reporting(progress):
        res = compile_model(model, passes=passes, target=target, options=options,
                            print_after_all=print_ir_after_all, print_after=tuple(print_after),
                            timing=pass_timing, statistics=pass_statistics)
    _notes(res.notes)
    return res


def _with_schedule(passes: str, target) -> str:
    """With a target, the pipeline ends in ``schedule`` unless it already has it; without
    one, a pipeline that schedules is an error (before the model is read)."""
    from .diagnostics import UsageError
    from .pipeline import parse_pipeline

    names = [p.name for p in parse_pipeline(passes)]
    if target is None:
        if "schedule" in names:
            raise UsageError("the pipeline schedules but no --target was given")
        return passes
    if "schedule" in names:
        return passes
    return f"{passes},schedule" if passes.strip() else "schedule"


def _formats():
    from .report.formats import FORMATS
    return FORMATS


@main.command("compile")
@click.argument("model", metavar="MODEL")
@click.option("-t", "--target", "target_name", default=None, metavar="NAME|PATH",
              help="Target to schedule for (bundled name, e.g. pe16x16, or a .toml path). "
                   "Without it, sqnxtc only runs the graph passes.")
@_pipeline_options
@click.option("--objective", type=click.Choice(["cycles", "energy", "edp"]), default="cycles",
              show_default=True, help="What the scheduler minimizes (ties: energy, then cycles).")
@click.option("--time-limit", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Solver time limit per layer in seconds (0: none; on expiry the bound and gap are recorded).")
@click.option("--fallback", type=click.Choice(["none", "heuristic"]), default="none", show_default=True,
              help="On a solver failure use the documented heuristic mapping (marked as such).")
@click.option("--measured-sparsity", is_flag=True,
              help="Use the zeros in each layer's weights instead of the target's assumed sparsity.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="On-disk schedule cache (keyed by layer, target, options and versions).")
@click.option("--emit", "emits", multiple=True, type=click.Choice(list(_formats())),
              help="What to produce (repeatable): " + "; ".join(
                  f"{f.name}: {f.help}" for f in _formats().values())
              + ". Default: ir without a target; summary on stdout and every format with -o DIR "
                "when a target is given.")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="A file when exactly one --emit format is asked and the path is not a directory "
                   "(nor ends in '/'); otherwise a directory that receives one file per format ("
                   + ", ".join(f.filename for f in _formats().values()) + ").")
@click.option("--top", type=click.IntRange(1, 10000), default=10, show_default=True,
              help="Layers shown in the summary.")
@_guard
def compile_cmd(model, target_name, passes, print_ir_after_all, print_after, print_before,
                pass_statistics, pass_timing, progress, objective, time_limit, fallback, measured_sparsity,
                cache_dir, emits, output, top):
    """Compile MODEL (an .onnx file or zoo:NAME), and schedule it with --target."""
    import os

    from .diagnostics import OutputError, atomic_write, write_all

    target = None
    if target_name is not None:
        from .targets import load_target
        target = load_target(target_name)
    passes = _with_schedule(passes, target)
    options = {"objective": objective, "time_limit": time_limit, "fallback": fallback,
               "measured_sparsity": measured_sparsity, "cache_dir": cache_dir or ""}
    formats = _formats()
    emits = tuple(dict.fromkeys(emits))
    if not emits:
        emits = ("ir",) if target is None else (("summary",) if output is None else tuple(
            n for n, f in formats.items() if f.needs_target or n == "ir"))
    if target is None and any(formats[e].needs_target for e in emits):
        from .diagnostics import UsageError
        need = ",".join(e for e in emits if formats[e].needs_target)
        raise UsageError(f"--emit {need} needs --target")
    to_file = (output is not None and len(emits) == 1 and not output.endswith(("/", os.sep))
               and not os.path.isdir(output))
    if output is not None and not to_file and os.path.exists(output) and not os.path.isdir(output):
        raise OutputError("exists and is not a directory", output)

    res = _compile(model, passes, print_ir_after_all, print_after, print_before, pass_statistics,
                   pass_timing, target=target, options=options, progress=progress)
    from .report.formats import EmitContext
    net = None
    if target is not None:
        from .report.network import collect
        net = collect(res.graph, target)
    ctx = EmitContext(res, net, {k: v for k, v in options.items() if k != "cache_dir"}, top)
    rendered = {e: formats[e].render(ctx) for e in emits}  # all computed before any is written
    if output is None:
        for e in emits:
            click.echo(rendered[e], nl=False)
        return
    if to_file:
        with atomic_write(output) as fh:
            fh.write(rendered[emits[0]])
        return
    paths = [os.path.join(output, formats[e].filename) for e in emits]
    write_all(dict(zip(paths, (rendered[e] for e in emits))))  # all files or none
    if "summary" in rendered:
        click.echo(rendered["summary"], nl=False)
    click.echo(f"wrote {', '.join(paths)}", err=True)


@main.command("check")
@click.argument("model", metavar="MODEL")
@_pipeline_options
@click.option("-t", "--target", "target_name", default=None, metavar="NAME|PATH",
              help="Schedule for this target first (needed by --tiled).")
@click.option("--tiled", is_flag=True,
              help="Execute every scheduled layer tile by tile in its chosen loop order.")
@click.option("--precision", type=click.Choice(["fp32", "int16"]), default="fp32", show_default=True,
              help="Arithmetic of the tiled execution: float32, or 16-bit fixed point with wide "
                   "accumulators as the accelerator computes (needs --tiled).")
@click.option("--samples", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Number of seeded random inputs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first input.")
@click.option("--rtol", type=click.FloatRange(0, 1), default=None,
              help="Relative tolerance [default: 1e-4; int16: see docs].")
@click.option("--atol", type=click.FloatRange(0, 1), default=None,
              help="Absolute tolerance, scaled by max(1, max|reference|) [default: 1e-5; int16: see docs].")
@_guard
def check_cmd(model, passes, print_ir_after_all, print_after, print_before, pass_statistics,
              pass_timing, progress, target_name, tiled, precision, samples, seed, rtol, atol):
    """Check the compiled MODEL against onnxruntime on the original (exit 1 on mismatch)."""
    import time

    from .diagnostics import CheckFailed, UsageError
    from .reference.check import DEFAULT_ATOL, DEFAULT_RTOL, check

    t0 = time.perf_counter()
    if tiled and target_name is None:
        raise UsageError("--tiled needs --target (the tiles are the schedule's)")
    if precision != "fp32" and not tiled:
        raise UsageError("--precision int16 needs --tiled")
    target = None
    if target_name is not None:
        from .targets import load_target
        target = load_target(target_name)
    passes = _with_schedule(passes, target)
    executor = None
    d_rtol, d_atol = DEFAULT_RTOL, DEFAULT_ATOL
    if tiled:
        from .reference.tiled import TOLERANCES, run_tiled
        d_rtol, d_atol = TOLERANCES[precision]
        executor = lambda g, feeds: run_tiled(g, feeds, precision=precision)  # noqa: E731
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    res = _compile(model, passes, print_ir_after_all, print_after, print_before, pass_statistics,
                   pass_timing, target=target, progress=progress)
    kwargs = {"executor": executor} if executor is not None else {}
    report = check(res.graph, res.model, res.source, samples=samples, seed=seed, rtol=rtol,
                   atol=atol, **kwargs)
    how = f"tiled {precision} execution on {target.name}" if tiled else "numpy executor"
    click.echo(f"check {res.source}: pipeline '{res.pipeline}', {how} vs onnxruntime "
               "(CPU, optimizations off)")
    click.echo(report.format())
    click.echo(f"wall time {time.perf_counter() - t0:.2f} s")
    if not report.ok:
        bad = ", ".join(o.name for o in report.outputs if not o.ok)
        raise CheckFailed(f"outputs differ from onnxruntime beyond tolerance: {bad}", res.source)


def _register_subcommands() -> None:
    from .zoo.cli import zoo_group
    from .targets.cli import targets_group

    main.add_command(zoo_group, "zoo")
    main.add_command(targets_group, "targets")
    from .report.commands import compare_cmd, report_cmd
    main.add_command(report_cmd, "report")
    main.add_command(compare_cmd, "compare")
    from .regress import regress_cmd
    main.add_command(regress_cmd, "regress")


_register_subcommands()

guard = _guard  # used by subcommand modules

if __name__ == "__main__":  # pragma: no cover
    main()
