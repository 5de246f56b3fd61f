"""SIGINT and SIGTERM end sqnxtc with one line and exits 130 / 143, leaving no temporary
output file (sqnxt_compiler/entry.py; README "Exit codes")."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

#: sqnxtc's entry point, which says "ready" on stderr once its handlers are installed (a
#: signal before the interpreter runs any code can only take the default action)
SCRIPT = ("import signal, sys\n"
          "_install = signal.signal\n"
          "def _announce(*a):\n"
          "    r = _install(*a)\n"
          "    sys.stderr.write('ready\\n'); sys.stderr.flush()\n"
          "    return r\n"
          "signal.signal = _announce\n"
          "from sqnxt_compiler.entry import run\n"
          "sys.argv[0] = 'sqnxtc'\n"
          "run()\n")
SIGNALS = [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]


def sigint_default() -> None:
    """In the child: SIGINT at its default action.  A suite started as a shell's background
    job inherits SIGINT ignored, and Python (rightly) keeps it ignored: the interrupt
    cases would then test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(tmp_path, *extra):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, "compile", "zoo:1.0-SqNxt-44", "-t", "pe16x16",
                             "-o", str(tmp_path / "out"), "-j", "1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            preexec_fn=sigint_default)


def _assert_clean_end(p, tmp_path, code, word, err):
    assert p.returncode == code, err
    assert err.strip().splitlines()[-1] == f"sqnxtc: {word}", err
    assert not list(tmp_path.rglob("*.tmp"))
    out = tmp_path / "out"
    assert not (out.exists() and any(out.iterdir()))


@pytest.mark.parametrize("sig,code,word", SIGNALS)
def test_a_signal_while_importing_ends_with_its_code_and_one_line(tmp_path, sig, code, word):
    p = _start(tmp_path)
    assert p.stderr.readline() == "ready\n"   # handlers in place; click, numpy, OR-Tools still loading
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    _assert_clean_end(p, tmp_path, code, word, err)
    assert err.strip().splitlines() == [f"sqnxtc: {word}"]


@pytest.mark.parametrize("sig,code,word", SIGNALS)
def test_a_signal_while_scheduling_ends_with_its_code_and_one_line(tmp_path, sig, code, word):
    p = _start(tmp_path, "--progress")
    seen = []
    for line in p.stderr:                 # wait until the solver is at work
        seen.append(line)
        if line.startswith("scheduling "):
            break
    assert p.poll() is None, seen
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    err = "".join(seen) + err
    _assert_clean_end(p, tmp_path, code, word, err)
    assert "Traceback" not in err
