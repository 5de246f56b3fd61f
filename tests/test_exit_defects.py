"""Three exit-code defects (issue 21, item 5), each through real processes where it matters:

1. a Gather whose constant index is out of range is a bad model at import (exit 3, the
   node named), on the data path (``sqnxt.take``) and the constant / shape path
   (``sqnxt.gather``); negative indices in ``[-n, n)`` are valid; the IR verifier rejects
   such a take too;
2. ``-o`` onto one of the process's descriptors (``/dev/stdout``, ``/dev/stderr``,
   ``/proc/self/fd/N``) writes into it, whatever it is open on (pipe, socket, terminal,
   ``/dev/null``, a file: as ``-o -``); a symlink to a FIFO is written into, a symlink to a
   regular file still replaces the target whole; a closed stdout or a broken pipe is exit 7;
3. ``check`` on a model whose activations cannot fit in the memory the process may use is
   refused before any allocation (exit 4, the sizes named), and a MemoryError that still
   happens is exit 4, not 70.
"""
from __future__ import annotations

import os
import pty
import resource
import socket
import subprocess
import sys

import numpy as np
import pytest
from onnx import helper

from report_support import tiny_path
from sqnxt_compiler.diagnostics import ExitCode, Location, UnsupportedError
from support import ROOT, make_model

N = helper.make_node


def sqnxtc(*args, timeout=300, **kw):
    """Run the installed ``sqnxtc`` (or ``python -m sqnxt_compiler``) in a real process."""
    exe = ROOT / ".venv" / "bin" / "sqnxtc"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sqnxt_compiler"]
    return subprocess.Popen(cmd + [str(a) for a in args], **kw)


def finish(p, timeout=300) -> tuple[int, str]:
    """Wait for ``p``; (exit code, its stderr as text)."""
    _, err = p.communicate(timeout=timeout)
    return p.returncode, (err or b"").decode()


def assert_one_error_line(stderr: str, *parts: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqnxtc: error: "), stderr
    assert "Traceback" not in stderr
    for p in parts:
        assert p in lines[0], (p, lines[0])


# ---------------------------------------------------------------- 1. Gather index range
def gather_model(indices, *, data=True):
    """x -> conv (3 channels) -> Gather(axis 1, constant indices): the IR's ``sqnxt.take``;
    with ``data`` False the Gather reads a float constant table (3x4) on axis 0 instead
    (the IR's ``sqnxt.gather``), added to x."""
    idx = np.asarray(indices, dtype=np.int64)
    w = np.full((3, 3, 1, 1), 0.1, np.float32)
    if data:
        return make_model([N("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
                           N("Gather", ["c", "idx"], ["y"], name="pick", axis=1)],
                          [("x", [1, 3, 4, 4])], [("y", [1, *idx.shape, 4, 4])], [("w", w), ("idx", idx)])
    table = np.arange(12, dtype=np.float32).reshape(3, 4)
    return make_model([N("Gather", ["table", "idx"], ["row"], name="pick", axis=0),
                       N("Add", ["x", "row"], ["y"], name="add")],
                      [("x", [1, 3, 4, 4])], [("y", [1, 3, 4, 4])], [("table", table), ("idx", idx)])


@pytest.mark.parametrize("indices, bad", [([99], 99), ([-4], -4), ([[0, 99]], 99), ([3], 3)])
def test_a_data_gather_out_of_range_is_a_bad_model_at_import(cli, save, indices, bad):
    r = cli("compile", save(gather_model(indices), "gather.onnx"), "--emit", "ir")
    assert r.exit_code == int(ExitCode.BAD_INPUT) and r.stdout == ""
    assert_one_error_line(r.stderr, "gather.onnx: node 'pick' (Gather): ",
                          f"index {bad} out of range for axis 1 of size 3")


def test_a_constant_gather_out_of_range_is_a_bad_model_at_import(cli, save):
    r = cli("compile", save(gather_model([5], data=False), "table.onnx"), "--emit", "ir")
    assert r.exit_code == int(ExitCode.BAD_INPUT)
    assert_one_error_line(r.stderr, "table.onnx: node 'pick' (Gather): index 5 out of range for axis 0 of size 3")


@pytest.mark.parametrize("indices, data", [([-3], True), ([-1, 0, 2], True), ([[2, -2]], True),
                                           (-1, False), ([-3], False)])
def test_negative_indices_within_the_axis_are_valid(cli, save, indices, data):
    path = save(gather_model(indices, data=data))
    r = cli("compile", path, "--emit", "ir")
    assert r.exit_code == 0, r.stderr
    assert ("sqnxt.take" in r.stdout) == data
    r = cli("check", path, "--samples", "1")
    assert r.exit_code == 0, r.stderr


def test_the_ir_verifier_rejects_a_take_of_a_constant_index_out_of_range():
    from sqnxt_compiler.ir.graph import Graph
    from sqnxt_compiler.ir.types import TensorType
    from sqnxt_compiler.ir.verifier import IRVerificationError, verify

    def graph(index):
        g = Graph(name="g", source="m.onnx")
        x = g.add_op("sqnxt.input", (), {"name": "x", "type": TensorType((1, 3, 4, 4), "f32")},
                     result_names=["x"]).result
        idx = g.constant(np.array([index], np.int64), "idx")
        y = g.add_op("sqnxt.take", [x, idx], {"axis": 1}, result_names=["y"]).result
        g.add_op("sqnxt.output", [y], {"names": ("y",)})
        return g

    verify(graph(-3))
    verify(graph(2))
    with pytest.raises(IRVerificationError, match="index 99 out of range for axis 1 of size 3"):
        verify(graph(99))
    with pytest.raises(IRVerificationError, match="index -4 out of range"):
        verify(graph(-4))


# ---------------------------------------------------------------- 2. -o onto descriptors
@pytest.fixture(scope="module")
def tiny():
    return tiny_path()


@pytest.fixture(scope="module")
def expected_ir(tiny):
    """What ``-o -`` writes for the tiny model's IR."""
    p = sqnxtc("compile", tiny, "--emit", "ir", "-o", "-", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert out.startswith(b"sqnxt.graph")
    return out


@pytest.mark.parametrize("path", ["/dev/stdout", "/proc/self/fd/1", "/dev/fd/1", "-"])
def test_o_onto_stdout_into_a_pipe_writes_into_it(tiny, expected_ir, path):
    p = sqnxtc("compile", tiny, "--emit", "ir", "-o", path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=300)
    assert (p.returncode, err) == (0, b"")
    assert out == expected_ir


def test_o_dev_stderr_into_a_pipe_writes_into_it(tiny, expected_ir):
    p = sqnxtc("compile", tiny, "--emit", "ir", "-o", "/dev/stderr", stdout=subprocess.PIPE,
               stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=300)
    assert (p.returncode, out) == (0, b"")
    assert err == expected_ir


def test_o_onto_a_passed_descriptor_writes_into_it(tiny, expected_ir):
    r, w = os.pipe()
    with os.fdopen(r, "rb") as reader:
        try:
            p = sqnxtc("compile", tiny, "--emit", "ir", "-o", f"/proc/self/fd/{w}", pass_fds=(w,),
                       stderr=subprocess.PIPE)
        finally:
            os.close(w)
        out = reader.read()
    assert finish(p) == (0, "")
    assert out == expected_ir


@pytest.mark.parametrize("path", ["/dev/stdout", "/proc/self/fd/1"])
def test_o_onto_stdout_into_a_socket_writes_into_it(tiny, expected_ir, path):
    ours, theirs = socket.socketpair()
    with ours, theirs:
        p = sqnxtc("compile", tiny, "--emit", "ir", "-o", path, stdout=theirs.fileno(), stderr=subprocess.PIPE)
        theirs.close()
        chunks = []
        while chunk := ours.recv(1 << 16):
            chunks.append(chunk)
    assert finish(p) == (0, "")
    assert b"".join(chunks) == expected_ir


def test_o_onto_stdout_into_a_terminal_writes_into_it(tiny, expected_ir):
    master, slave = pty.openpty()
    try:
        p = sqnxtc("compile", tiny, "--emit", "ir", "-o", "/dev/stdout", stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        slave = None
        chunks = []
        while True:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    assert finish(p) == (0, "")
    assert b"".join(chunks).replace(b"\r\n", b"\n") == expected_ir  # the tty's ONLCR


@pytest.mark.parametrize("path", ["/dev/stdout", "/proc/self/fd/1", "/dev/null"])
def test_o_onto_dev_null_succeeds(tiny, path):
    p = sqnxtc("compile", tiny, "--emit", "ir", "-o", path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert finish(p) == (0, "")


def test_o_dev_stdout_onto_a_file_writes_as_dash_does(tiny, expected_ir, tmp_path):
    """stdout redirected to a file (``>> log``): the output lands at stdout's offset, as
    with ``-o -``; the file is neither replaced nor truncated (the shell's later writes
    through the same descriptor still reach it)."""
    log = tmp_path / "log.txt"
    log.write_bytes(b"head\n")
    inode = log.stat().st_ino
    with open(log, "ab") as fh:
        p = sqnxtc("compile", tiny, "--emit", "ir", "-o", "/dev/stdout", stdout=fh, stderr=subprocess.PIPE)
        assert finish(p) == (0, "")
        fh.write(b"tail\n")
    assert log.read_bytes() == b"head\n" + expected_ir + b"tail\n"
    assert log.stat().st_ino == inode and sorted(os.listdir(tmp_path)) == ["log.txt"]


def test_o_onto_a_symlink_to_a_fifo_writes_into_it(tiny, expected_ir, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "link").symlink_to("fifo")
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    p = sqnxtc("compile", tiny, "--emit", "ir", "-o", tmp_path / "link", stderr=subprocess.PIPE)
    assert finish(p) == (0, "")
    assert reader.communicate(timeout=60)[0] == expected_ir
    assert fifo.is_fifo() and (tmp_path / "link").is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["fifo", "link"]


def test_o_onto_a_symlink_to_a_regular_file_replaces_the_target_whole(tiny, expected_ir, tmp_path):
    target = tmp_path / "real.ir"
    target.write_bytes(b"old\n")
    inode = target.stat().st_ino
    (tmp_path / "link.ir").symlink_to("real.ir")
    p = sqnxtc("compile", tiny, "--emit", "ir", "-o", tmp_path / "link.ir", stderr=subprocess.PIPE)
    assert finish(p) == (0, "")
    assert target.read_bytes() == expected_ir and (tmp_path / "link.ir").is_symlink()
    assert target.stat().st_ino != inode  # a new file renamed over the old one: temp + rename
    assert sorted(os.listdir(tmp_path)) == ["link.ir", "real.ir"]


@pytest.mark.parametrize("path, message", [("/dev/stdout", "/dev/stdout: standard output is closed"),
                                           ("-", "<stdout>: standard output is closed")])
def test_o_onto_a_closed_stdout_is_exit_7(tiny, path, message):
    p = sqnxtc("compile", tiny, "--emit", "ir", "-o", path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
               preexec_fn=lambda: os.close(1))
    code, err = finish(p)
    assert code == int(ExitCode.OUTPUT)
    assert_one_error_line(err, message)


@pytest.mark.parametrize("path, message", [("/dev/stdout", "/dev/stdout: cannot write output: Broken pipe"),
                                           ("-", "<stdout>: cannot write: Broken pipe")])
def test_a_reader_closing_early_is_exit_7_as_with_dash(path, message):
    """``... | head -c 4``: the reader takes a few bytes and goes; the rest (5 MB, more than
    a pipe holds) cannot be written: a broken pipe, exit 7 (README), for ``-o -`` and
    ``-o /dev/stdout`` alike."""
    p = sqnxtc("zoo", "export", "SqueezeNet-1.1", "-o", path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(p.stdout.read(4)) == 4
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == int(ExitCode.OUTPUT)
    assert_one_error_line(err, message)


def test_descriptor_of_follows_links_to_this_process_descriptors(tmp_path):
    from sqnxt_compiler.outputs import descriptor_of, writes_in_place

    (tmp_path / "err").symlink_to("/dev/stderr")
    (tmp_path / "file").write_text("x")
    (tmp_path / "to-file").symlink_to("file")
    assert descriptor_of("/dev/stdout") == 1 and descriptor_of("/proc/self/fd/1") == 1
    assert descriptor_of(tmp_path / "err") == 2 and descriptor_of(f"/proc/{os.getpid()}/fd/0") == 0
    assert descriptor_of(tmp_path / "file") is None and descriptor_of(tmp_path / "to-file") is None
    assert descriptor_of(tmp_path / "missing") is None
    assert descriptor_of(f"/proc/{os.getppid()}/fd/1") is None  # another process's
    assert writes_in_place("/dev/null") and writes_in_place("/dev/stdout")
    assert not writes_in_place(tmp_path / "to-file") and not writes_in_place(tmp_path / "missing")


# ---------------------------------------------------------------- 3. check's memory
HUGE = 20000


def huge_input_model(size: int = HUGE):
    """A tiny net (241 bytes on disk: a 1x1 conv, relu, global average pool) on a 1x3xSxS
    input: valid, and its activations are ``3 S^2`` floats each."""
    w = np.full((3, 3, 1, 1), 0.1, np.float32)
    return make_model([N("Conv", ["input", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
                       N("Relu", ["c"], ["r"], name="relu"),
                       N("GlobalAveragePool", ["r"], ["out"], name="gap")],
                      [("input", [1, 3, size, size])], [("out", [1, 3, 1, 1])], [("w", w)], name="big")


def _limit_address_space(nbytes: int):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))
    return set_limit


def test_check_refuses_activations_beyond_the_address_space_limit(save):
    """The issue's case: 1x3x20000x20000 (4.8 GB a tensor) under a 6 GB address-space
    limit: exit 4, the sizes named, before anything is allocated (quickly)."""
    path = save(huge_input_model(), "big.onnx")
    p = sqnxtc("check", path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
               preexec_fn=_limit_address_space(6_000_000 * 1024))
    out, err = p.communicate(timeout=300)
    assert p.returncode == int(ExitCode.UNSUPPORTED), err
    assert out == b""
    assert_one_error_line(err.decode(), "big.onnx: check needs ~14.4 GB for activations",
                          "largest tensor 'input' 1x3x20000x20000 f32, 4.8 GB",
                          "this process may use (the address-space limit, ulimit -v)")


def test_memory_need_is_computed_from_static_shapes():
    from sqnxt_compiler import driver
    from sqnxt_compiler.reference.host_memory import live_peak, memory_need

    g = driver.compile((huge_input_model(), "big.onnx"), pipeline="default").graph
    n = 3 * HUGE * HUGE
    assert live_peak(g) == 4 * n + 12  # the conv's output, then it and the pooled output
    need = memory_need(g)
    # max(the float64 draw and its cast, inputs + 2 x live peak + outputs)
    assert need.total == max(12 * n, 4 * n + 2 * (4 * n + 12) + 12)
    assert (need.largest, need.largest_type.shape, need.largest_bytes) == ("input", (1, 3, HUGE, HUGE), 4 * n)


def test_memory_refusal_names_the_tightest_limit():
    from sqnxt_compiler.ir.types import TensorType
    from sqnxt_compiler.reference.host_memory import MemoryNeed, memory_refusal

    need = MemoryNeed(14_400_000_012, "input", TensorType((1, 3, HUGE, HUGE), "f32"), 4_800_000_000)
    assert memory_refusal(need, {}) is None
    assert memory_refusal(need, {"the memory available": 20e9}) is None
    why = memory_refusal(need, {"the memory available": 20e9, "the address-space limit, ulimit -v": 5.9e9})
    assert why.startswith("check needs ~14.4 GB for activations (largest tensor 'input' 1x3x20000x20000 f32, "
                          "4.8 GB), more than the 5.9 GB this process may use (the address-space limit, ulimit -v)")


def test_small_checks_are_not_refused():
    from sqnxt_compiler import driver
    from sqnxt_compiler.reference.host_memory import memory_limits, memory_need

    g = driver.compile(tiny_path(), pipeline="default").graph
    assert 0 < memory_need(g).total < 100e6
    assert all(v >= 0 for v in memory_limits().values())


def test_a_memory_error_while_executing_is_exit_4_located():
    """Past the estimate (which leaves out kernel temporaries), numpy's MemoryError in a
    kernel is an unsupported size at that node, not an internal error."""
    from sqnxt_compiler.ir.graph import Graph
    from sqnxt_compiler.ir.types import TensorType
    from sqnxt_compiler.reference.executor import run

    g = Graph(name="g", source="m.onnx")
    x = g.add_op("sqnxt.input", (), {"name": "x", "type": TensorType((1, 1), "f32")}, result_names=["x"]).result
    y = g.add_op("sqnxt.expand", [x], {"shape": (1 << 20, 1 << 20)}, loc=Location(file="m.onnx", node="grow"),
                 result_names=["y"]).result  # 4 TiB
    g.add_op("sqnxt.output", [y], {"names": ("y",)})
    with pytest.raises(UnsupportedError) as e:
        run(g, {"x": np.ones((1, 1), np.float32)})
    assert e.value.code == ExitCode.UNSUPPORTED
    assert str(e.value).startswith("m.onnx: node 'grow' (sqnxt.expand): out of memory executing it (")


def test_a_memory_error_during_check_is_exit_4():
    from sqnxt_compiler import driver
    from sqnxt_compiler.reference.check import check

    res = driver.compile(tiny_path(), pipeline="default")

    def executor(graph, feeds):
        return {"y": np.empty(1 << 62, np.uint8)}  # 4 EiB: numpy raises MemoryError

    with pytest.raises(UnsupportedError, match="check ran out of memory") as e:
        check(res.graph, res.model, res.source, samples=1, executor=executor)
    assert e.value.code == ExitCode.UNSUPPORTED


def test_the_cli_guard_maps_a_memory_error_to_exit_4(capsys):
    from sqnxt_compiler.cli import run_guarded

    with pytest.raises(SystemExit) as e:
        run_guarded(lambda: np.empty(1 << 62, np.uint8), debug=False)
    assert e.value.code == int(ExitCode.UNSUPPORTED)
    err = capsys.readouterr().err
    assert_one_error_line(err, "sqnxtc: error: out of memory (", "too large for the memory this process may use")
