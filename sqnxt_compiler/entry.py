"""The ``sqnxtc`` console script: the signal handling first, then the command line.

Installed before anything heavy is imported, so that an interrupt at any moment (even
while click, numpy or OR-Tools load) ends the same way: one line on stderr, exit 130 for
SIGINT (Ctrl-C), 143 for SIGTERM, and every temporary output file removed on the way out
(:func:`sqnxt_compiler.outputs.atomic_write` cleans up on any exception).  SIGTERM is
turned into :class:`Terminated` in the main thread, a BaseException that the command's
error guard lets through, as Python does for SIGINT with KeyboardInterrupt.
"""
from __future__ import annotations

import signal
import sys

#: Exit codes of the two signals (128 + signal number, the shell's convention).
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM arrived (raised by the handler in the main thread)."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def run(prog_name: str = "sqnxtc") -> None:
    """Run the ``sqnxtc`` command line with SIGINT and SIGTERM mapped to exits 130 / 143."""
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
        from .cli import main
        main(prog_name=prog_name)
    except KeyboardInterrupt:
        sys.stderr.write("sqnxtc: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except Terminated:
        sys.stderr.write("sqnxtc: terminated\n")
        sys.exit(EXIT_TERMINATED)
