"""Located diagnostics and the exit codes of the ``sqnxtc`` command.

Every error a user can cause is a :class:`SqnxtError`: one line that names the problem
and the place (``model.onnx: node 'Conv_12' (sqnxt.conv): ...``).  The CLI prints it to
stderr and exits with the error's code; it never shows a traceback unless ``--debug``.

Exit codes (documented in the README):

====  ==========================================================================
code  meaning
====  ==========================================================================
0     success
1     numerical check failed (outputs differ from onnxruntime beyond tolerance)
2     bad command line (unknown option, unknown pass, bad pass option)
3     bad input model (missing file, not ONNX, truncated, invalid graph, empty, index out of range)
4     unsupported model (unsupported op or attribute, dynamic dimension, absurd size, out of memory)
5     bad target description
6     the model cannot be scheduled on the target (no mapping fits, solver error)
7     an output cannot be written (a file, a directory, stdout closed or full, broken pipe)
70    internal error (a bug in sqnxtc: please report it, with ``--debug``)
130   interrupted (SIGINT); 143 terminated (SIGTERM): :mod:`sqnxt_compiler.entry`
====  ==========================================================================
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    BAD_INPUT = 3
    UNSUPPORTED = 4
    BAD_TARGET = 5
    UNSCHEDULABLE = 6
    OUTPUT = 7
    INTERNAL = 70


#: The longest name (node, file, op) a diagnostic prints whole; longer ones keep their
#: start and end around an ellipsis, so that an error stays one short line.
MAX_NAME = 200


def one_line(text: str, limit: int | None = MAX_NAME) -> str:
    """``text`` as one printable line: line breaks, tabs and other control characters
    escaped (``\\n``, ``\\x07``); longer than ``limit`` characters: the first and last
    parts around an ellipsis (``limit`` None: no truncation)."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))
    if limit is not None and len(out) > limit:
        keep = limit - 1
        out = out[: keep - keep // 4] + "…" + out[len(out) - keep // 4:]
    return out


@dataclass(frozen=True)
class Location:
    """Where a diagnostic points: a file, and optionally a node and the op it became."""

    file: str | None = None
    node: str | None = None
    op: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(one_line(self.file))
        if self.node is not None:
            tail = f"node '{one_line(self.node)}'"
            if self.op:
                tail += f" ({one_line(self.op)})"
            parts.append(tail)
        return ": ".join(parts)


class SqnxtError(Exception):
    """A user-facing error: one line, a location, an exit code."""

    code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, location: Location | str | None = None,
                 code: ExitCode | None = None):
        super().__init__(message)
        self.message = message
        if isinstance(location, str):
            location = Location(file=location)
        self.location = location
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        loc = str(self.location) if self.location else ""
        msg = one_line(self.message.replace("\n", " "), limit=4 * MAX_NAME)
        return f"{loc}: {msg}" if loc else msg


# One class per exit code: alike by design (the `duplicates` tool pairs them by shape).
class UsageError(SqnxtError):
    code = ExitCode.USAGE


class InputError(SqnxtError):
    code = ExitCode.BAD_INPUT


class UnsupportedError(SqnxtError):
    code = ExitCode.UNSUPPORTED


class TargetError(SqnxtError):
    code = ExitCode.BAD_TARGET


class ScheduleError(SqnxtError):
    code = ExitCode.UNSCHEDULABLE


class CheckFailed(SqnxtError):
    code = ExitCode.CHECK_FAILED


class OutputError(SqnxtError):
    code = ExitCode.OUTPUT
