"""sqnxtc report (plots), the --progress display, and bad input through the CLI: one-line
errors, the documented exit codes, nothing half-written."""
import io
import json
import struct
import sys
import xml.etree.ElementTree as ET

import pytest

from report_support import fresh_solves, outputs, small_target, tiny_path
from sqnxt_compiler.diagnostics import ExitCode
from sqnxt_compiler.report.plots import report_data, stages
from sqnxt_compiler.report.progress import Progress
from sqnxt_compiler.report.schedule_json import VERSION


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def one_line_error(r, code):
    assert r.exit_code == int(code), (r.exit_code, r.output)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqnxtc: error: "), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    return lines[0]


# ---- the report ------------------------------------------------------------------------
def test_report_on_two_targets_writes_the_plots_and_their_data(cli, tmp_path):
    d = tmp_path / "rep"
    r = cli("report", tiny_path(), "-t", "pe16x16", "-t", "pe8x8", "-o", d)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in d.iterdir()) == ["energy.png", "layers.png", "memory.png", "report.json",
                                                  "stages.png"]
    for name in ("layers.png", "stages.png", "energy.png"):
        w, h = png_size((d / name).read_bytes())
        assert w >= 700 and h >= 300, (name, w, h)
    data = json.loads((d / "report.json").read_text())
    assert [t["target"] for t in data["targets"]] == ["pe16x16", "pe8x8"]
    docs = [outputs(tiny_path(), t, "cycles")[1] for t in ("pe16x16", "pe8x8")]
    assert data == report_data(docs)


def test_report_data_of_squeezenext_follows_the_stage_rule():
    docs = [outputs("zoo:1.0-SqNxt-23", t, "cycles")[1] for t in ("pe16x16", "pe8x8")]
    data = report_data(docs)
    for t, doc in zip(data["targets"], docs):
        assert t["total_cycles"] == doc["totals"]["total_cycles"]
        assert [L["cycles"] for L in t["layers"]] == [L["cost"]["total_cycles"] for L in doc["layers"]]
        # the stage rule: group by output rows; SqueezeNext's resolution steps
        # conv1 carries pool1 (fuse-pool): its output is 55x55
        assert [s["stage"] for s in t["stages"]] == ["55x55", "28x28", "14x14", "7x7", "1x1"]
        assert sum(s["cycles"] for s in t["stages"]) == t["total_cycles"]
        assert abs(sum(s["share"] for s in t["stages"]) - 1) < 1e-5
        first = {s["stage"]: s["first"] for s in t["stages"]}
        assert first["55x55"] == "conv1" and first["1x1"] == "pool5"
        assert t["energy"] == {k: doc["totals"]["energy"][k] for k in t["energy"]}
        conv1 = t["layers"][0]
        assert conv1["macs_per_cycle"] == round(conv1["macs"] / conv1["cycles"], 4)
        assert all(L["macs_per_cycle"] is None for L in t["layers"] if L["kind"] not in ("conv", "fc"))


def test_report_svg_is_deterministic_and_has_no_date(cli, tmp_path):
    outs = []
    for name in ("a", "b"):
        r, solved = fresh_solves(lambda: cli("report", tiny_path(), "-t", "pe8x8", "-o", tmp_path / name,
                                             "--format", "svg"))
        assert r.exit_code == 0, r.output
        assert solved >= 7   # each run really schedules (no cache answers the second): 7 layers, the
                             # plan's candidates
        outs.append({p.name: p.read_bytes() for p in (tmp_path / name).iterdir()})
    assert outs[0] == outs[1]
    assert sorted(outs[0]) == ["energy.svg", "layers.svg", "memory.svg", "report.json", "stages.svg"]
    for name in ("energy.svg", "layers.svg", "memory.svg", "stages.svg"):
        root = ET.fromstring(outs[0][name])
        assert root.tag.endswith("svg")
        assert b"<dc:date>" not in outs[0][name]


def test_report_png_is_deterministic(tmp_path):
    from sqnxt_compiler.report.plots import render_report

    doc = outputs(tiny_path(), "pe16x16", "edp")[1]
    assert render_report([doc], "png") == render_report([doc], "png")


def test_report_from_a_schedule_file_equals_report_from_the_model(cli, tmp_path):
    s = tmp_path / "s.json"
    assert cli("compile", tiny_path(), "-t", "pe8x8", "--emit", "schedule", "-o", s).exit_code == 0
    assert cli("report", s, "-o", tmp_path / "a").exit_code == 0
    r, solved = fresh_solves(lambda: cli("report", tiny_path(), "-t", "pe8x8", "-o", tmp_path / "b"))
    assert r.exit_code == 0 and solved >= 7
    assert (tmp_path / "a" / "report.json").read_bytes() == (tmp_path / "b" / "report.json").read_bytes()
    r = cli("report", s, "-t", "pe8x8", "-o", tmp_path / "c")
    assert "drop --target" in one_line_error(r, ExitCode.USAGE)


def test_stage_rule_generalizes_by_output_rows():
    doc = outputs(tiny_path(), "pe8x8", "cycles")[1]
    st = stages(doc)
    # conv1, dw, gconv (the add fused into it) at 12; pool and conv2 at 6; gap, fc and
    # softmax (an eltwise layer) at 1
    assert [(s["P"], s["layers"]) for s in st] == [(12, 3), (6, 2), (1, 3)]
    assert report_data([doc])["targets"][0]["stages"] == st


def test_report_without_matplotlib_says_how_to_install_it(cli, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    r = cli("report", tiny_path(), "-t", "pe8x8", "-o", tmp_path / "r")
    line = one_line_error(r, ExitCode.USAGE)
    assert "pip install sqnxtc[plots]" in line
    assert not (tmp_path / "r").exists()


# ---- bad input -------------------------------------------------------------------------
def test_output_directory_under_a_file(cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = cli("report", tiny_path(), "-t", "pe8x8", "-o", f / "sub")
    assert "is not a directory" in one_line_error(r, ExitCode.OUTPUT)
    r = cli("compile", tiny_path(), "-t", "pe8x8", "-o", f"{f}/sub/")
    one_line_error(r, ExitCode.OUTPUT)
    r = cli("compare", tiny_path(), "-t", "pe8x8", "-o", f / "t.md")
    one_line_error(r, ExitCode.OUTPUT)
    r = cli("report", tiny_path(), "-t", "pe8x8", "-o", f)   # the directory is a file
    assert "exists and is not a directory" in one_line_error(r, ExitCode.OUTPUT)
    assert f.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_schedule_file_of_another_version(cli, tmp_path):
    doc = json.loads(json.dumps(outputs(tiny_path(), "pe8x8", "cycles")[1]))
    doc["version"] = 1
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    r = cli("report", old, "-o", tmp_path / "r")
    line = one_line_error(r, ExitCode.BAD_INPUT)
    assert str(old) in line and "version 1 is not supported" in line and f"reads version {VERSION}" in line
    assert not (tmp_path / "r").exists()


def test_model_and_target_that_cannot_be_scheduled(cli, tmp_path):
    tgt = small_target(64, "pe8x8-64b")
    for args in (("compile", tiny_path(), "-t", tgt, "-o", tmp_path / "c"),
                 ("report", tiny_path(), "-t", "pe8x8", "-t", tgt, "-o", tmp_path / "r"),
                 ("compare", tiny_path(), "-t", tgt, "-o", tmp_path / "t.md")):
        line = one_line_error(cli(*args), ExitCode.UNSCHEDULABLE)
        assert "layer 'conv1'" in line and "64-byte global buffer" in line
    assert list(tmp_path.iterdir()) == []


# ---- progress --------------------------------------------------------------------------
def test_progress_goes_to_stderr_only_and_changes_nothing(cli, tmp_path):
    # all-DRAM: progress counts the distinct layers, which is every solve
    a = cli("compile", tiny_path(), "-t", "pe8x8", "--activation-home", "dram", "-o", tmp_path / "a",
            "--progress")
    b, solved = fresh_solves(lambda: cli("compile", tiny_path(), "-t", "pe8x8", "--activation-home", "dram",
                                         "-o", tmp_path / "b"))
    assert a.exit_code == b.exit_code == 0 and solved == 8
    assert a.stdout == b.stdout and "scheduling" not in a.stdout
    lines = [ln for ln in a.stderr.splitlines() if "scheduling" in ln]
    assert lines[0].startswith("scheduling 0/8 distinct layers (conv1)")
    assert lines[-1].startswith("scheduling 8/8 distinct layers")
    assert "scheduling" not in b.stderr   # stderr is not a terminal here
    for f in (tmp_path / "a").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


def test_schedules_solved_with_progress_are_identical():
    """The schedule pass tells the progress callback before each distinct shape; the
    schedules and the document must be those of a compile nobody watches (solved again)."""
    from sqnxt_compiler import driver
    from sqnxt_compiler.targets import load_target

    from dataclasses import replace

    spec = "zoo:1.0-SqNxt-23"
    t = replace(load_target("pe8x8"), activation_home="dram")   # each distinct shape: one solve
    quiet = driver.compile(spec, target=t)
    calls = []
    res, solved = fresh_solves(lambda: driver.compile(spec, target=t, progress=lambda *a: calls.append(a)))
    got = res.network
    n = got.totals()["distinct_layers"]
    assert solved == n
    assert [r.schedule for r in got.rows] == [r.schedule for r in quiet.network.rows]
    assert driver.render(res, ["schedule"])["schedule"] == driver.render(quiet, ["schedule"])["schedule"]
    assert [c[:2] for c in calls] == [(i, n) for i in range(n + 1)] and calls[-1][2] is None


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_rewrites_one_line_and_erases_it():
    s = FakeTTY()
    p = Progress(s, interval=0.0)

    class L:
        name = "stage1/block1/conv"

    for i in range(3):
        p(i, 3, L)
    p(3, 3, None)
    out = s.getvalue()
    assert "\n" not in out and out.count("\r") >= 4
    assert "scheduling 2/3 distinct layers (stage1/block1/conv)" in out
    assert out.endswith("\r") and out.rsplit("\r", 2)[-2].strip() == ""   # erased at the end


def test_report_and_compare_schedule_exactly_as_compile_does():
    from sqnxt_compiler.cli.report import schedule_docs
    from sqnxt_compiler.report.schedule_json import dumps
    from sqnxt_compiler.targets import load_target

    texts = outputs(tiny_path(), "pe16x16", "edp")[0]
    docs, solved = fresh_solves(lambda: schedule_docs(tiny_path(), [load_target("pe16x16")],
                                                      {"objective": "edp"}, False))
    assert solved > 0 and dumps(docs[0]) == texts["schedule"]
