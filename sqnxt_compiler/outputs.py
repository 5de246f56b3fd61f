"""Publishing outputs all-or-nothing: one file, a directory of files, standard output.

The rules (README "Outputs"):

* **A file** (``-o FILE``) is written into a temporary file beside it and renamed over it
  on success (:func:`atomic_write`): a failed or interrupted run leaves the old file as it
  was and no temporary behind.  ``-o`` onto a symbolic link writes the file the link points
  to (the link stays a link); onto something that is not a regular file (a device, a FIFO,
  a socket, through any links) it writes there directly; ``-o -`` is standard output.
* **One of the process's open descriptors** (``/dev/stdout``, ``/dev/stderr``,
  ``/dev/fd/N``, ``/proc/self/fd/N``: :func:`descriptor_of`) is written through that
  descriptor, whatever it is open on (a pipe, a socket, a terminal, ``/dev/null``, a
  file): ``-o /dev/stdout`` is ``-o -``.  Such a path is the kernel's link to an open file,
  not a name of it (a pipe's reads ``pipe:[1234]``), so it can be neither resolved nor
  replaced.
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
import io
import os
import re
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


#: Where the kernel shows a process's open descriptors: ``/proc/<pid>/fd/N`` (also under
#: ``task/<tid>``; ``/proc/self`` and ``/dev/fd`` lead there on Linux), ``/dev/fd/N`` (BSD, macOS).
_FD_PATH = re.compile(r"/proc/(?P<pid>\d+)(?:/task/\d+)?/fd/(?P<fd>\d+)|/dev/fd/(?P<devfd>\d+)")
#: How many links a path may go through (Linux's limit).
_MAX_LINKS = 40
#: The standard descriptors: how errors name them, the ``sys`` attribute of the stream
#: Python opened on each at start (None when the descriptor was closed then).
_STD = {0: ("standard input", "__stdin__"), 1: ("standard output", "__stdout__"),
        2: ("standard error", "__stderr__")}


def descriptor_of(path: str | os.PathLike) -> int | None:
    """The descriptor N of this process that ``path`` names, or None.

    The rule: follow ``path`` link by link (directories resolved, each link's own target
    read); if it reaches ``/proc/<this process>/fd/N`` or ``/dev/fd/N`` it names descriptor
    N (``/dev/stdout`` -> ``/proc/self/fd/1`` -> 1).  Those entries are the kernel's links
    to open files, which may have no name at all (``pipe:[1234]``, ``socket:[5678]``)."""
    p = os.path.abspath(path)
    for _ in range(_MAX_LINKS):
        p = os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
        m = _FD_PATH.fullmatch(p)
        if m:
            mine = m["pid"] is None or int(m["pid"]) == os.getpid()
            return int(m["fd"] or m["devfd"]) if mine else None
        try:
            target = os.readlink(p)
        except OSError:  # not a link, or not there
            return None
        p = os.path.join(os.path.dirname(p), target)
    return None


def _is_given(fd: int) -> bool:
    """Whether descriptor ``fd`` is open and was handed to sqnxtc when it started (inherited:
    not close-on-exec; a standard one Python found open), rather than closed or opened by
    sqnxtc itself (a file it reads that took a closed stdout's number)."""
    if fd in _STD and getattr(sys, _STD[fd][1]) is None:
        return False
    try:
        return os.get_inheritable(fd)
    except OSError:
        return False


def _std_stream(fd: int):
    """``sys.stdout`` or ``sys.stderr`` when it writes descriptor ``fd`` (writing through
    it keeps the order with what was echoed before), else None."""
    for s in (sys.stdout, sys.stderr):
        try:
            if s is not None and not s.closed and s.fileno() == fd:
                return s
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            continue
    return None


def _is_special(path: str | os.PathLike) -> bool:
    """Whether ``path`` exists (through any links) and is neither a regular file nor a
    directory: a device, a FIFO, a socket."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def writes_in_place(path: str | os.PathLike) -> bool:
    """Whether ``-o path`` is written into rather than replaced: standard output, one of
    the process's descriptors (:func:`descriptor_of`), a device, FIFO or socket."""
    return str(path) == STDOUT or descriptor_of(path) is not None or _is_special(path)


@contextlib.contextmanager
def _into_stream(out, mode: str, name: str, closed: str, failed: str) -> Iterator:
    """Write into the open text stream ``out`` (``sys.stdout``): its buffer for a binary
    ``mode``; flushed at the end.  A closed stream or a failing write (full, broken pipe)
    is an :class:`OutputError` naming ``name``."""
    if out is None or getattr(out, "closed", False):
        raise OutputError(closed, name)
    try:
        fh = out.buffer if "b" in mode else out
        yield fh
        fh.flush()
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError) and not out.closed:
            raise  # not an I/O error
        if out is sys.stdout:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the pending bytes would fail again at exit
        raise OutputError(f"{failed}: {getattr(exc, 'strerror', None) or exc}", name) from None


@contextlib.contextmanager
def _into_descriptor(fd: int, path, mode: str) -> Iterator:
    """Write into this process's descriptor ``fd`` (``-o /dev/stdout``): through
    ``sys.stdout`` / ``sys.stderr`` when one writes it (as ``-o -`` does), else through a
    duplicate of it, at its current offset.  Errors name ``path``."""
    name = str(path)
    if not _is_given(fd):
        raise OutputError(f"{_STD[fd][0] if fd in _STD else f'descriptor {fd}'} is closed", name)
    stream = _std_stream(fd)
    if stream is not None:
        with _into_stream(stream, mode, name, "is closed", "cannot write output") as fh:
            yield fh
        return
    try:
        fh = os.fdopen(os.dup(fd), mode)
    except OSError as exc:
        raise _fail(exc, path) from None
    try:
        with fh:
            yield fh
    except OSError as exc:
        raise _fail(exc, path) from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """Write ``path`` all-or-nothing: into a temporary file beside it, renamed on success.

    A symbolic link is followed (the file it points to is replaced, the link stays); one of
    the process's descriptors (``/dev/stdout``: :func:`descriptor_of`) is written through
    it, as ``-`` (standard output) is; any other path that exists and is not a regular file
    or directory (a device, a FIFO) is written in place (:func:`_is_special`).  If the
    body raises, the temporary file (and any parent directory this call created) is removed
    and ``path`` is left as it was.
    """
    if str(path) == STDOUT:
        with _into_stream(sys.stdout, mode, STDOUT_NAME, "standard output is closed", "cannot write") as fh:
            yield fh
        return
    fd = descriptor_of(path)
    if fd is not None:
        with _into_descriptor(fd, path, mode) as fh:
            yield fh
        return
    if _is_special(path):
        try:
            with open(path, mode) as fh:  # the kernel follows the links
                yield fh
        except OSError as exc:
            raise _fail(exc, path) from None
        return
    real = _resolve(path)
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
