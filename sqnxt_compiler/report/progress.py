"""The progress display of long compiles, on stderr only (never in an output file or on
stdout): ``scheduling 17/42 distinct layers (stage2/block1/conv3) 3.1 s``.

On a terminal the line is rewritten in place (``\\r``) at most ten times a second and
erased at the end; otherwise (``--progress`` with stderr redirected) one line per update is
written, so a log shows every step.  A :class:`Progress` is the ``progress`` callback the
driver hands to the schedule pass (``PassContext.progress``).
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import IO


class Progress:
    """A callable ``progress(done, total, layer)`` (the schedule pass's protocol)."""

    def __init__(self, stream: IO[str] | None = None, *, label: str = "", interval: float = 0.1):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = label
        self.interval = interval
        self.t0 = time.perf_counter()
        self.last = -1.0
        self.width = 0

    def line(self, done: int, total: int, layer) -> str:
        what = f" ({layer.name})" if layer is not None else ""
        head = f"{self.label}: " if self.label else ""
        return (f"{head}scheduling {done}/{total} distinct layers{what} "
                f"{time.perf_counter() - self.t0:.1f} s")

    def __call__(self, done: int, total: int, layer) -> None:
        now = time.perf_counter()
        final = layer is None
        if self.tty:
            if not final and done and now - self.last < self.interval:
                return
            self.last = now
            if final:  # erase the line: the summary follows
                self.close()
                return
            text = self.line(done, total, layer)
            pad = max(0, self.width - len(text))
            self.width = len(text)
            self.stream.write("\r" + text + " " * pad)
        else:
            self.stream.write(self.line(done, total, layer) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Erase the in-place line (at the end, or before an error message)."""
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def wanted(flag: bool | None, stream: IO[str] | None = None) -> bool:
    """``--progress`` / ``--no-progress`` win; by default only when stderr is a terminal."""
    if flag is not None:
        return flag
    s = stream or sys.stderr
    return bool(getattr(s, "isatty", lambda: False)())


def make_progress(flag: bool | None, label: str = "") -> Progress | None:
    """A :class:`Progress` on stderr when :func:`wanted`, else None."""
    return Progress(label=label) if wanted(flag) else None


@contextmanager
def reporting(flag: bool | None, label: str = ""):
    """Yield :func:`make_progress`'s answer, to be given to the driver as its ``progress``
    callback; its in-place line is erased when the block ends, normally or by an error."""
    p = make_progress(flag, label)
    try:
        yield p
    finally:
        if p is not None:
            p.close()
