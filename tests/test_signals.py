"""SIGINT and SIGTERM end sqnxtc with one line and exits 130 / 143, leaving no temporary
output file (sqnxt_compiler/entry.py; README "Exit codes")."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

SCRIPT = "import sys; from sqnxt_compiler.entry import run; sys.argv[0] = 'sqnxtc'; run()"


@pytest.mark.parametrize("sig,code,word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
@pytest.mark.parametrize("delay", [0.05, 3.0], ids=["while-importing", "while-compiling"])
def test_a_signal_ends_the_run_with_its_code_and_one_line(tmp_path, sig, code, word, delay):
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-c", SCRIPT, "compile", "zoo:1.0-SqNxt-44", "-t", "pe16x16",
                          "-o", str(out), "-j", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=tmp_path)
    time.sleep(delay)
    if p.poll() is not None:
        pytest.fail(f"finished before the signal: {p.returncode} {p.stderr.read()}")
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert err.strip().splitlines() == [f"sqnxtc: {word}"], err
    assert not list(tmp_path.rglob("*.tmp")) and not (out.exists() and any(out.iterdir()))
