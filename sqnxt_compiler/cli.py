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
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _compile(model, passes, print_ir_after_all, print_after, print_before, pass_statistics,
             pass_timing, target=None):
    from .driver import compile_model
    from .pipeline import parse_pipeline

    if print_before:
        parse_pipeline(passes)  # reject a bad pipeline before printing anything
        from .frontend import load
        from .ir import print_graph
        click.echo("// -----// IR Dump Before any pass //----- //", err=True)
        click.echo(print_graph(load(model).graph), err=True, nl=False)
    res = compile_model(model, passes=passes, target=target, print_after_all=print_ir_after_all,
                        print_after=tuple(print_after), timing=pass_timing,
                        statistics=pass_statistics)
    _notes(res.notes)
    return res


@main.command("compile")
@click.argument("model", metavar="MODEL")
@_pipeline_options
@click.option("--emit", type=click.Choice(["ir"]), default="ir", show_default=True,
              help="What to produce.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the output to this file (default: stdout).")
@_guard
def compile_cmd(model, passes, print_ir_after_all, print_after, print_before, pass_statistics,
                pass_timing, emit, output):
    """Compile MODEL (an .onnx file or zoo:NAME)."""
    from .diagnostics import atomic_write
    from .ir import print_graph

    res = _compile(model, passes, print_ir_after_all, print_after, print_before, pass_statistics,
                   pass_timing)
    text = print_graph(res.graph)
    if output:
        with atomic_write(output) as fh:
            fh.write(text)
    else:
        click.echo(text, nl=False)


@main.command("check")
@click.argument("model", metavar="MODEL")
@_pipeline_options
@click.option("--samples", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Number of seeded random inputs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first input.")
@click.option("--rtol", type=click.FloatRange(0, 1), default=1e-4, show_default=True,
              help="Relative tolerance.")
@click.option("--atol", type=click.FloatRange(0, 1), default=1e-5, show_default=True,
              help="Absolute tolerance, scaled by max(1, max|reference|).")
@_guard
def check_cmd(model, passes, print_ir_after_all, print_after, print_before, pass_statistics,
              pass_timing, samples, seed, rtol, atol):
    """Check the compiled MODEL against onnxruntime on the original (exit 1 on mismatch)."""
    import time

    from .diagnostics import CheckFailed
    from .reference.check import check

    t0 = time.perf_counter()
    res = _compile(model, passes, print_ir_after_all, print_after, print_before, pass_statistics,
                   pass_timing)
    report = check(res.graph, res.model, res.source, samples=samples, seed=seed, rtol=rtol, atol=atol)
    click.echo(f"check {res.source}: pipeline '{res.pipeline}' vs onnxruntime (CPU, optimizations off)")
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


_register_subcommands()

guard = _guard  # used by subcommand modules

if __name__ == "__main__":  # pragma: no cover
    main()
