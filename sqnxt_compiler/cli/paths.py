"""Output path checks made before any work, so that a compile is not wasted on a path that
cannot be written (exit 7, naming the path)."""
from __future__ import annotations

import os

from ..diagnostics import OutputError
from ..outputs import writes_in_place


def check_output_dir(path: str) -> None:
    """Fail early when ``path`` cannot become a directory: it is a file, or its nearest
    existing ancestor is not a directory or not writable."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise OutputError("exists and is not a directory", path)
        if not os.access(path, os.W_OK):
            raise OutputError("directory is not writable", path)
        return
    _check_parent(path)


def check_output_file(path: str) -> None:
    """Fail early when ``path`` cannot be written as a file.  A path written into rather
    than replaced (``/dev/stdout``, a device, a FIFO: :func:`..outputs.writes_in_place`)
    needs no writable parent directory."""
    if os.path.isdir(path):
        raise OutputError("is a directory (give a file name)", path)
    if writes_in_place(path):
        return
    _check_parent(path)


def _check_parent(path: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable directory."""
    anc = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(anc):
        anc = os.path.dirname(anc)
    if not os.path.isdir(anc):
        raise OutputError(f"cannot create it: '{anc}' is not a directory", path)
    if not os.access(anc, os.W_OK):
        raise OutputError(f"cannot create it: '{anc}' is not writable", path)


def is_file_output(output: str | None, n_formats: int) -> bool:
    """``-o PATH`` is a file when exactly one format is asked and PATH is ``-`` (standard
    output) or not a directory (nor ends in a path separator); otherwise a directory."""
    if output == "-":
        return True
    return (output is not None and n_formats == 1 and not output.endswith(("/", os.sep))
            and not os.path.isdir(output))
