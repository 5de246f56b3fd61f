"""``sqnxtc zoo list`` and ``sqnxtc zoo export``."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
from click.testing import CliRunner

from sqnxt_compiler.cli import main
from sqnxt_compiler.zoo import build, list_models


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_list_table_has_every_model_with_its_counts():
    r = run("zoo", "list")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "PARAMS", "MACS", "MACS+BIAS", "INPUT", "SOURCE"]
    rows = {l.split()[0]: l.split() for l in lines[1:]}
    for info in list_models():
        row = rows[info.name]
        assert row[1] == f"{info.params / 1e6:.3f}M" and row[2] == f"{info.macs / 1e6:.3f}M"
        assert row[4] == f"{info.input_size}x{info.input_size}" and row[5] == info.source


def test_list_csv_and_json_carry_exact_integers():
    infos = list_models()
    rows = list(csv.DictReader(io.StringIO(run("zoo", "list", "--format", "csv").stdout)))
    assert [r["name"] for r in rows] == [i.name for i in infos]
    assert [int(r["params"]) for r in rows] == [i.params for i in infos]
    assert [int(r["macs"]) for r in rows] == [i.macs for i in infos]
    data = json.loads(run("zoo", "list", "--format", "json").stdout)
    assert data == [dataclasses.asdict(i) for i in infos]
    assert run("zoo", "list", "--format", "xml").exit_code == 2


def test_export_writes_the_built_model(tmp_path):
    out = tmp_path / "sub" / "m.onnx"
    r = run("zoo", "export", "1.0-SqNxt-23", "-o", out, "--seed", 3, "--weight-sparsity", 0.25)
    assert r.exit_code == 0, r.output
    assert r.stdout == ""  # the summary goes to stderr
    assert "1.0-SqNxt-23" in r.stderr
    assert out.read_bytes() == build("1.0-SqNxt-23", seed=3, weight_sparsity=0.25).SerializeToString()
    onnx.checker.check_model(str(out), full_check=True)
    assert [p.name for p in out.parent.iterdir()] == ["m.onnx"]  # no temporary left behind


def test_export_unknown_model_fails_cleanly(tmp_path):
    out = tmp_path / "x.onnx"
    r = run("zoo", "export", "nosuch", "-o", out)
    assert r.exit_code == 3
    assert r.stderr.splitlines() == ["sqnxtc: error: zoo:nosuch: unknown zoo model 'nosuch' (see 'sqnxtc zoo list')"]
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_export_bad_sparsity_is_a_usage_error(tmp_path):
    out = tmp_path / "x.onnx"
    r = run("zoo", "export", "1.0-SqNxt-23", "-o", out, "--weight-sparsity", "1.5")
    assert r.exit_code == 2 and r.stderr.startswith("sqnxtc: error: ") and len(r.stderr.splitlines()) == 1
    assert not out.exists()
    assert run("zoo", "export", "1.0-SqNxt-23", "-o", out, "--seed", "-4").exit_code == 2
    assert not out.exists()


def test_real_command_line_reports_one_line_and_exit_3(tmp_path):
    exe = Path(sys.executable).with_name("sqnxtc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sqnxt_compiler"]
    p = subprocess.run(cmd + ["zoo", "export", "nosuch", "-o", "x.onnx"], cwd=tmp_path,
                       capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert p.returncode == 3
    assert p.stderr.splitlines() == ["sqnxtc: error: zoo:nosuch: unknown zoo model 'nosuch' (see 'sqnxtc zoo list')"]
    assert p.stdout == "" and not (tmp_path / "x.onnx").exists()
