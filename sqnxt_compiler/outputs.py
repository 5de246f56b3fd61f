"""Publishing outputs all-or-nothing: one file, a directory of files, standard output.

The rules (README "Outputs"):

* **A file** (``-o FILE``) is written into a temporary file beside it and renamed over it
  on success (:func:`atomic_write`): a failed or interrupted run leaves the old file as it
  was and no temporary behind.  ``-o`` onto a symbolic link writes the file the link points
  to (the link stays a link); onto something that is not a regular file (``/dev/stdout``, a
  FIFO) it writes there directly; ``-o -`` is standard output.
* **A directory** (``-o DIR``, :func:`publish_dir`) is built complete in a fresh temporary
  directory beside it, then published with one rename: a new directory appears whole or not
  at all; an existing one that holds nothing but this command's outputs is swapped with the
  new one in one atomic exchange (``renameat2(RENAME_EXCHANGE)``; where the system lacks it,
  two renames with a roll-back); an existing one that also holds other files keeps them and
  receives the new files one rename each, rolled back if one fails.  Publishers hold an
  exclusive lock on the parent directory (``flock``), so concurrent runs writing one
  directory publish one after the other and never leave a mix; SIGINT / SIGTERM arriving
  during the renames are held until they are done.
* **Standard output** (:func:`echo`): a closed stdout or one that cannot be written (a full
  device, a closed pipe) is an output error (exit 7), not silently lost output.

Every failure is an :class:`~sqnxt_compiler.diagnostics.OutputError` naming the path, and
leaves nothing it created: temporary files and directories are removed, and so are the
parent directories the run created for its output.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import stat
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from .diagnostics import OutputError

#: The ``-o`` value that means standard output, and how errors name it.
STDOUT = "-"
STDOUT_NAME = "<stdout>"


def _fail(exc: OSError, path) -> OutputError:
    """An OSError as the one-line output error (exit 7) naming ``path``."""
    return OutputError(f"cannot write output: {exc.strerror or exc}", str(path))


def echo(text: str = "", nl: bool = True) -> None:
    """Write ``text`` (and a newline) to standard output and flush it; a closed or failing
    stdout raises :class:`OutputError` (the output would otherwise be lost with exit 0)."""
    with atomic_write(STDOUT) as fh:
        fh.write(text + ("\n" if nl else ""))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _resolve(path: str | os.PathLike) -> Path:
    """The path to write for ``path``: a symbolic link is followed (so that it stays a
    link), anything else is taken as given (absolute)."""
    p = Path(os.path.abspath(path))
    return Path(os.path.realpath(p)) if os.path.islink(p) else p


def _make_parents(d: Path, path) -> list[Path]:
    """Create ``d`` and its missing ancestors (for output ``path``); return the ones
    created, deepest first."""
    made = []
    cur = d
    while not cur.exists():
        made.append(cur)
        cur = cur.parent
    for m in reversed(made):
        try:
            m.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            _remove_dirs(made)
            raise OutputError(f"cannot write output: cannot create directory '{m}': "
                              f"{exc.strerror or exc}", str(path)) from None
    return made


def _remove_dirs(dirs: list[Path]) -> None:
    """Remove the (empty) directories a failed run created, deepest first."""
    for d in dirs:
        with contextlib.suppress(OSError):
            d.rmdir()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """Write ``path`` all-or-nothing: into a temporary file beside it, renamed on success.

    A symbolic link is followed (the file it points to is replaced, the link stays); a path
    that exists and is not a regular file or directory (a device, a FIFO) is written in
    place; ``-`` is standard output.  If the body raises, the temporary file (and any parent directory this call
    created) is removed and ``path`` is left as it was.
    """
    if str(path) == STDOUT:
        out = sys.stdout
        if out is None or getattr(out, "closed", False):
            raise OutputError("standard output is closed", STDOUT_NAME)
        try:
            fh = out.buffer if "b" in mode else out
            yield fh
            fh.flush()
        except (OSError, ValueError) as exc:
            if isinstance(exc, ValueError) and not out.closed:
                raise  # not an I/O error
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the pending bytes would fail again at exit
            raise OutputError(f"cannot write: {getattr(exc, 'strerror', None) or exc}", STDOUT_NAME) from None
        return
    real = _resolve(path)
    if real.exists() and not real.is_dir() and not stat.S_ISREG(real.stat().st_mode):
        try:
            with open(real, mode) as fh:
                yield fh
        except OSError as exc:
            raise _fail(exc, path) from None
        return
    made = _make_parents(real.parent, path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    except OSError as exc:
        _remove_dirs(made)
        raise _fail(exc, path) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        with os.fdopen(fd, mode) as fh:
            yield fh
        with deferred_signals():
            os.replace(tmp, real)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _remove_dirs(made)
        if isinstance(exc, OSError):
            raise _fail(exc, path) from None
        raise


def write_file(path: str, data: str | bytes) -> None:
    """Write one output all-or-nothing (:func:`atomic_write`; ``-`` is standard output)."""
    with atomic_write(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the body (a handful of renames that must all happen or
    be rolled back), then deliver them.  Outside the main thread: no effect."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    old = {s: signal.signal(s, lambda n, f: pending.append(n)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for s in pending[:1]:
            signal.raise_signal(s)


@contextlib.contextmanager
def _locked(d: Path) -> Iterator[None]:
    """An exclusive ``flock`` on directory ``d`` for the body (publishers of one directory
    take turns); where directories cannot be locked, no lock."""
    import fcntl

    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap directories ``a`` and ``b`` in one step (Linux ``renameat2`` with
    ``RENAME_EXCHANGE``); False where the system or file system cannot."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    rc = fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap(new: Path, target: Path) -> None:
    """Put directory ``new`` in ``target``'s place; the old directory ends up at ``new``.
    Atomic with :func:`_exchange`; otherwise two renames, the first undone if the second
    fails."""
    if _exchange(new, target):
        return
    aside = new.with_name(new.name + ".old")
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(aside, target)
        raise
    os.rename(aside, new)


def _merge(new: Path, target: Path, names: list[str]) -> None:
    """Move files ``names`` from ``new`` into ``target`` one rename each, keeping the old
    files in ``new`` until all are in; if a rename fails, every earlier one is undone."""
    done: list[tuple[str, bool]] = []
    try:
        for n in names:
            had = os.path.lexists(target / n)
            if had:
                os.rename(target / n, new / f"{n}.old")
            try:
                os.rename(new / n, target / n)
            except OSError:
                if had:
                    os.rename(new / f"{n}.old", target / n)
                raise
            done.append((n, had))
    except OSError:
        for n, had in reversed(done):
            with contextlib.suppress(OSError):
                os.rename(target / n, new / n)
                if had:
                    os.rename(new / f"{n}.old", target / n)
        raise


def _holds_cwd(d: Path) -> bool:
    """Whether the working directory is ``d`` or inside it (such a directory is never
    swapped: the shell in it would be left in a deleted directory)."""
    try:
        cwd = Path(os.getcwd()).resolve()
    except OSError:
        return False
    return cwd == d.resolve() or d.resolve() in cwd.parents


def _only(d: Path, names: set[str]) -> bool:
    """Whether directory ``d`` holds nothing but regular files named in ``names``."""
    return all(e.is_file(follow_symlinks=False) and e.name in names for e in os.scandir(d))


def check_dir_target(path: str | os.PathLike, names) -> None:
    """Fail (exit 7, naming the path) when ``path`` cannot receive files ``names``: it is
    not a directory, or one of the names is a directory in it.  Called before any work and
    again when publishing."""
    target = _resolve(path)
    if target.exists() and not target.is_dir():
        raise OutputError("exists and is not a directory", str(path))
    for n in names:
        if (target / n).is_dir():
            raise OutputError("exists and is a directory", os.path.join(str(path), n))


def publish_dir(path: str | os.PathLike, files: dict[str, str | bytes],
                owned: set[str] | None = None) -> list[str]:
    """Write ``files`` (name -> text or bytes) as directory ``path``, all or nothing (module
    doc).  ``owned``: the file names this command writes (default: those of ``files``); an
    existing directory holding only regular files of those names is replaced whole, one
    holding anything else keeps it.  Returns the paths written, in order."""
    owned = set(files) if owned is None else set(owned) | set(files)
    target = _resolve(path)
    check_dir_target(path, files)
    # staged beside the target; inside it when only the target (not its parent) is writable
    inside = target.is_dir() and not os.access(target.parent, os.W_OK)
    made = [] if inside else _make_parents(target.parent, path)
    try:
        new = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp",
                                    dir=target if inside else target.parent))
    except OSError as exc:
        _remove_dirs(made)
        raise _fail(exc, path) from None
    try:
        os.chmod(new, 0o777 & ~_umask())
        for n, data in files.items():
            with open(new / n, "wb" if isinstance(data, bytes) else "w") as fh:
                fh.write(data)
            os.chmod(new / n, 0o666 & ~_umask())
        with deferred_signals(), _locked(target.parent):
            check_dir_target(path, files)  # again: another run may have changed it meanwhile
            if not target.exists():
                os.rename(new, target)
            elif not inside and not _holds_cwd(target) and _only(target, owned):
                _swap(new, target)
            else:
                _merge(new, target, list(files))
    except BaseException as exc:
        shutil.rmtree(new, ignore_errors=True)
        _remove_dirs(made)
        if isinstance(exc, OSError):
            raise _fail(exc, path) from None
        raise
    shutil.rmtree(new, ignore_errors=True)  # the old directory (swap) or old files (merge)
    return [os.path.join(str(path), n) for n in files]
