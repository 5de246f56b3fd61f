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


def _register_subcommands() -> None:
    from .zoo.cli import zoo_group
    from .targets.cli import targets_group

    main.add_command(zoo_group, "zoo")
    main.add_command(targets_group, "targets")


_register_subcommands()

guard = _guard  # used by subcommand modules

if __name__ == "__main__":  # pragma: no cover
    main()
