"""The ``sqnxtc`` command line (click): every command, one error guard.

The command line parses, calls the driver (:mod:`sqnxt_compiler.driver`) and writes; it
holds no compile flow of its own.  One module per command group:

=============  ==========================================================
module         commands
=============  ==========================================================
compile.py     ``compile``
check.py       ``check`` (compiled IR, its tiled execution or its program vs onnxruntime)
sim.py         ``sim`` (the cost model's cycles vs the program's timing simulation)
report.py      ``report`` (plots), ``compare`` (tables)
regress.py     ``regress`` (cycle-count goldens)
zoo.py         ``zoo list``, ``zoo export``
targets.py     ``targets list``, ``targets show``
ops.py         ``ops`` (the importable ONNX ops)
sweep.py       ``sweep`` (design-space sweeps on Dask), ``explore`` (SqueezeNext search)
disasm.py      ``disasm``, ``asm`` (a program's binary and text forms: docs/isa.md)
export.py      ``export`` (the schedule as ZigZag's or Timeloop's inputs: docs/interop.md)
options.py     options shared by several commands, target loading
paths.py       output path checks made before any work
=============  ==========================================================

:class:`GuardedGroup` applies the error guard once, around every subcommand: a
:class:`~sqnxt_compiler.diagnostics.SqnxtError` becomes one line on stderr and its exit
code; a MemoryError is an unsupported size (exit 4: the model does not fit in the memory
the process may use); any other exception is an internal error (exit 70) in one line,
unless ``--debug`` asks for the traceback.
"""
from __future__ import annotations

import sys
import traceback

import click

from .. import __version__
from ..diagnostics import MAX_NAME, ExitCode, SqnxtError, one_line
from .check import check_cmd
from .compile import compile_cmd
from .disasm import asm_cmd, disasm_cmd
from .export import export_cmd
from .ops import ops_cmd
from .regress import regress_cmd
from .report import compare_cmd, report_cmd
from .sim import sim_cmd
from .sweep import explore_cmd, sweep_cmd
from .targets import targets_group
from .zoo import zoo_group


def out_of_memory(exc: MemoryError) -> str:
    """The one line for a MemoryError no command caught: the model is too large (exit 4)."""
    detail = one_line(str(exc), 4 * MAX_NAME) or "MemoryError"
    return (f"out of memory ({detail}): the model's tensors are too large for the memory "
            "this process may use")


def run_guarded(fn, debug: bool):
    """Call ``fn()``; map errors to one line on stderr and an exit code (module doc)."""
    try:
        return fn()
    except SqnxtError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"sqnxtc: error: {exc}", err=True)
        sys.exit(int(exc.code))
    except KeyboardInterrupt:
        click.echo("sqnxtc: interrupted", err=True)
        sys.exit(130)
    except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, SystemExit):
        raise
    except MemoryError as exc:  # the model is too large for this process: exit 4, not a bug
        if debug:
            traceback.print_exc()
        click.echo(f"sqnxtc: error: {out_of_memory(exc)}", err=True)
        sys.exit(int(ExitCode.UNSUPPORTED))
    except Exception as exc:  # noqa: BLE001 - last line of defence: no tracebacks
        if debug:
            traceback.print_exc()
        click.echo(f"sqnxtc: internal error: {type(exc).__name__}: {one_line(str(exc), 4 * MAX_NAME)} "
                   "(run with --debug for a traceback)", err=True)
        sys.exit(int(ExitCode.INTERNAL))


class GuardedGroup(click.Group):
    """A click group whose subcommands (and theirs) all run inside :func:`run_guarded`, and
    whose command-line errors (click's usage errors: a bad option value, an unknown option
    or command) are one line too, exit 2: ``sqnxtc: error: Invalid value for '--rtol':
    'nan' is not a finite number (try 'sqnxtc check --help')``."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.UsageError as exc:
            if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
                exc.show()         # `sqnxtc` alone: the help, as click prints it
                sys.exit(exc.exit_code)
            where = exc.ctx.command_path if exc.ctx is not None else (prog_name or "sqnxtc")
            click.echo(f"sqnxtc: error: {one_line(exc.format_message(), 4 * MAX_NAME)} "
                       f"(try '{where} --help')", err=True)
            sys.exit(int(ExitCode.USAGE))
        except click.exceptions.ClickException as exc:
            click.echo(f"sqnxtc: error: {one_line(exc.format_message(), 4 * MAX_NAME)}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("sqnxtc: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context):
        debug = bool(ctx.find_root().params.get("debug"))
        return run_guarded(lambda: super(GuardedGroup, self).invoke(ctx), debug)


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sqnxtc")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
def main(debug: bool) -> None:
    """sqnxtc: compile ONNX CNNs for the SqueezeNext reference accelerator."""


for _cmd in (compile_cmd, check_cmd, report_cmd, compare_cmd, regress_cmd, zoo_group, targets_group,
             ops_cmd, sweep_cmd, explore_cmd, disasm_cmd, asm_cmd, sim_cmd, export_cmd):
    main.add_command(_cmd)

__all__ = ["main", "run_guarded"]

if __name__ == "__main__":  # pragma: no cover
    main()
