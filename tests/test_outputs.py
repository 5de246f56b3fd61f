"""Outputs all-or-nothing (sqnxt_compiler/outputs.py): fault injection into the publisher
(a failing rename, a full disk, a signal mid-write), concurrent writers, symbolic links,
standard output closed or full, ``-o -``."""
import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from report_support import tiny_path
from sqnxt_compiler import outputs
from sqnxt_compiler.diagnostics import ExitCode, OutputError

ROOT = Path(__file__).resolve().parents[1]
FILES = {"a.txt": "new a\n", "b.bin": b"new b", "c.txt": "new c\n"}


def tree(d: Path) -> dict:
    """Every entry under ``d`` (hidden ones too) with its content."""
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else "<dir>")
            for p in sorted(d.rglob("*"))}


def old_dir(tmp_path, extra=False) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    for n in FILES:
        (d / n).write_text(f"old {n}\n")
    if extra:
        (d / "notes.md").write_text("mine\n")
    return d


def fail_nth(monkeypatch, name, n, err=errno.EIO, action=None):
    """Make the n-th call (1-based) of ``os.<name>`` fail with ``err`` (or run ``action``)."""
    real = getattr(os, name)
    calls = []

    def fake(*a, **k):
        calls.append(a)
        if len(calls) == n:
            if action:
                action()
            else:
                raise OSError(err, os.strerror(err), str(a[0]))
        return real(*a, **k)
    monkeypatch.setattr(os, name, fake)
    return calls


def test_new_directory_appears_whole(tmp_path):
    paths = outputs.publish_dir(tmp_path / "x" / "out", FILES)
    assert [Path(p).name for p in paths] == list(FILES)
    assert tree(tmp_path) == {"x": "<dir>", "x/out": "<dir>", "x/out/a.txt": b"new a\n",
                              "x/out/b.bin": b"new b", "x/out/c.txt": b"new c\n"}


def test_a_failing_rename_leaves_nothing_it_created(tmp_path, monkeypatch):
    calls = fail_nth(monkeypatch, "rename", 1)  # the one rename that publishes a new directory
    with pytest.raises(OutputError, match="cannot write output: Input/output error") as e:
        outputs.publish_dir(tmp_path / "new" / "out", FILES)
    assert str(e.value).startswith(str(tmp_path / "new" / "out") + ":") and len(calls) == 1
    assert tree(tmp_path) == {}  # not even the parent it made


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_merge_rolls_back_every_rename_before_a_failing_one(tmp_path, monkeypatch, n):
    d = old_dir(tmp_path, extra=True)  # a file of the user's: merged one rename at a time
    before = tree(tmp_path)
    calls = fail_nth(monkeypatch, "rename", n)
    with pytest.raises(OutputError):
        outputs.publish_dir(d, FILES)
    assert len(calls) >= n
    assert tree(tmp_path) == before


def test_merge_keeps_the_users_files(tmp_path):
    d = old_dir(tmp_path, extra=True)
    outputs.publish_dir(d, FILES)
    assert tree(d) == {"a.txt": b"new a\n", "b.bin": b"new b", "c.txt": b"new c\n", "notes.md": b"mine\n"}


def test_a_directory_of_old_outputs_is_swapped_whole(tmp_path):
    d = old_dir(tmp_path)
    (d / "stale.txt").write_text("from an earlier run with more formats\n")
    inode = d.stat().st_ino
    outputs.publish_dir(d, {"a.txt": "new a\n"}, owned={"a.txt", "b.bin", "c.txt", "stale.txt"})
    assert tree(tmp_path) == {"out": "<dir>", "out/a.txt": b"new a\n"}
    assert d.stat().st_ino != inode  # a new directory took its place


def test_a_failing_swap_leaves_the_old_directory(tmp_path, monkeypatch):
    d = old_dir(tmp_path)
    before = tree(tmp_path)
    monkeypatch.setattr(outputs, "_exchange", lambda a, b: False)  # the two-rename fallback
    fail_nth(monkeypatch, "rename", 2)
    with pytest.raises(OutputError):
        outputs.publish_dir(d, FILES)
    assert tree(tmp_path) == before


def test_disk_full_while_writing_leaves_nothing(tmp_path, monkeypatch):
    d = old_dir(tmp_path)
    before = tree(tmp_path)
    real_open = open
    n = []

    def full_open(path, mode="r", *a, **k):
        fh = real_open(path, mode, *a, **k)
        n.append(path)
        if len(n) == 2 and "w" in mode:
            def write(_data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            fh.write = write
        return fh
    monkeypatch.setattr(outputs, "open", full_open, raising=False)
    with pytest.raises(OutputError, match="No space left on device"):
        outputs.publish_dir(d, FILES)
    assert tree(tmp_path) == before
    with pytest.raises(OutputError, match="No space left on device"):
        with outputs.atomic_write(tmp_path / "f.txt") as fh:
            fh.write("x")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert tree(tmp_path) == before


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt in this process for the test (a suite run as a
    shell's background job inherits it ignored)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.mark.usefixtures("sigint_raises")
def test_a_signal_while_writing_leaves_nothing(tmp_path, monkeypatch):
    d = old_dir(tmp_path)
    before = tree(tmp_path)
    real_open = open

    def open_and_interrupt(path, mode="r", *a, **k):
        os.kill(os.getpid(), signal.SIGINT)  # Python raises KeyboardInterrupt right here
        return real_open(path, mode, *a, **k)
    monkeypatch.setattr(outputs, "open", open_and_interrupt, raising=False)
    with pytest.raises(KeyboardInterrupt):
        outputs.publish_dir(d, FILES)
    assert tree(tmp_path) == before


@pytest.mark.usefixtures("sigint_raises")
@pytest.mark.parametrize("extra", [False, True])
def test_a_signal_during_the_renames_waits_for_them(tmp_path, monkeypatch, extra):
    d = old_dir(tmp_path, extra=extra)
    monkeypatch.setattr(outputs, "_exchange", lambda a, b: False)  # renames in both modes
    fail_nth(monkeypatch, "rename", 1, action=lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        outputs.publish_dir(d, FILES)
    want = {"a.txt": b"new a\n", "b.bin": b"new b", "c.txt": b"new c\n"}
    if extra:
        want["notes.md"] = b"mine\n"
    assert tree(d) == want  # the set went in whole, then the interrupt was delivered
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_file_output_follows_a_symlink_and_replaces_atomically(tmp_path, monkeypatch):
    (tmp_path / "real.txt").write_text("old\n")
    (tmp_path / "link.txt").symlink_to("real.txt")
    outputs.write_file(str(tmp_path / "link.txt"), "new\n")
    assert (tmp_path / "link.txt").is_symlink() and (tmp_path / "real.txt").read_text() == "new\n"
    fail_nth(monkeypatch, "replace", 1)
    with pytest.raises(OutputError):
        outputs.write_file(str(tmp_path / "link.txt"), "newer\n")
    assert sorted(os.listdir(tmp_path)) == ["link.txt", "real.txt"]
    assert (tmp_path / "real.txt").read_text() == "new\n"


def test_a_file_output_onto_a_fifo_writes_into_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    outputs.write_file(str(fifo), "through the pipe\n")
    assert reader.communicate(timeout=30)[0] == b"through the pipe\n"
    assert fifo.is_fifo()


WRITER = textwrap.dedent("""
    import sys
    from sqnxt_compiler.outputs import publish_dir
    me, out = sys.argv[1], sys.argv[2]
    for i in range(40):
        publish_dir(out, {f"f{k}.txt": f"{me} {i}\\n" * 2000 for k in range(6)}, owned={f"f{k}.txt" for k in range(6)})
""")


@pytest.mark.parametrize("extra", [False, True])
def test_concurrent_writers_never_leave_a_mix(tmp_path, extra):
    out = tmp_path / "out"
    if extra:
        out.mkdir()
        (out / "notes.md").write_text("mine\n")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, w, str(out)], stderr=subprocess.PIPE)
             for w in ("A", "B", "C")]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    contents = {(out / f"f{k}.txt").read_text() for k in range(6)}
    assert len(contents) == 1 and contents.pop().split("\n")[0] in {"A 39", "B 39", "C 39"}
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert sorted(os.listdir(out)) == sorted([f"f{k}.txt" for k in range(6)] + (["notes.md"] if extra else []))


# ---- the command line ------------------------------------------------------------------
def sqnxtc(*args, cwd, **kw):
    exe = ROOT / ".venv" / "bin" / "sqnxtc"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sqnxt_compiler"]
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, timeout=300, **kw)


def test_stdout_closed_or_full_is_an_output_error(tmp_path):
    args = ("compile", tiny_path(), "-t", "pe8x8")
    closed = sqnxtc(*args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                    preexec_fn=lambda: os.close(1))
    assert closed.returncode == int(ExitCode.OUTPUT)
    assert closed.stderr == "sqnxtc: error: <stdout>: standard output is closed\n"
    with open("/dev/full", "w") as full:
        p = sqnxtc(*args, cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True)
    assert p.returncode == int(ExitCode.OUTPUT)
    assert p.stderr == "sqnxtc: error: <stdout>: cannot write: No space left on device\n"
    with open("/dev/full", "w") as full:  # -o onto a device: written in place, the error names it
        p = sqnxtc(*args, "--emit", "summary", "-o", "/dev/full", cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    assert p.returncode == int(ExitCode.OUTPUT)
    assert p.stderr == "sqnxtc: error: /dev/full: cannot write output: No space left on device\n"
    assert os.listdir(tmp_path) == []


def test_dash_is_stdout(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = cli("compile", tiny_path(), "-t", "pe8x8", "--emit", "csv", "-o", "-")
    b = cli("compile", tiny_path(), "-t", "pe8x8", "--emit", "csv", "-o", "t.csv")
    assert a.exit_code == b.exit_code == 0
    assert a.stdout == (tmp_path / "t.csv").read_text() and a.stdout.startswith("index,layer,")
    both = cli("compile", tiny_path(), "-t", "pe8x8", "--emit", "csv", "--emit", "ir", "-o", "-")
    assert both.exit_code == int(ExitCode.USAGE) and "-o - (standard output)" in both.stderr
    assert os.listdir(tmp_path) == ["t.csv"]


def test_a_directory_in_the_way_fails_before_any_work(cli, tmp_path):
    (tmp_path / "out" / "ir.txt").mkdir(parents=True)
    r = cli("compile", tiny_path(), "-t", "pe8x8", "--progress", "-o", tmp_path / "out")
    assert r.exit_code == int(ExitCode.OUTPUT)
    assert r.stderr.strip().splitlines()[-1] == f"sqnxtc: error: {tmp_path / 'out' / 'ir.txt'}: exists and is a directory"
    assert "scheduling" not in r.stderr  # checked before the compile
    assert tree(tmp_path) == {"out": "<dir>", "out/ir.txt": "<dir>"}
