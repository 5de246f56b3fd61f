"""The driver owns the flow: one channel for pass options, the recorded pipeline reproduces
the run, flags that contradict the pipeline are usage errors, import-once-schedule-per-target
equals a compile per target."""
from __future__ import annotations

import json

import pytest

from report_support import fresh_solves, renderable, tiny_path
from sqnxt_compiler import driver
from sqnxt_compiler.diagnostics import ExitCode, UsageError
from sqnxt_compiler.passes.schedule import ScheduleOptions
from sqnxt_compiler.report.formats import FORMATS
from sqnxt_compiler.targets import load_target


def _one_line(r, code):
    assert r.exit_code == int(code), (r.exit_code, r.output)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqnxtc: error: ") and "Traceback" not in r.stderr
    return lines[0]


# ---- building the pipeline ---------------------------------------------------------------
def test_a_target_appends_schedule_and_flags_set_its_options():
    t = load_target("pe8x8")
    passes = driver.build_pipeline("default", target=t, schedule={"objective": "energy", "time_limit": 2,
                                                                  "fallback": None})
    lower = ["lower-program"] if driver.lowers_by_default() else []     # the driver's switch
    assert [p.name for p in passes] == ["canonicalize", "fold-bn", "fuse-relu", "fuse-add", "fuse-pool",
                                        "concat-in-place", "schedule", "plan-memory"] + lower    # pe8x8 plans
    assert passes[6].options == ScheduleOptions(objective="energy", time_limit=2.0)
    assert driver.build_pipeline("default", target=None) and all(
        not p.needs_target for p in driver.build_pipeline("default"))


def test_a_pass_that_needs_a_target_without_one_is_a_usage_error():
    with pytest.raises(UsageError, match="pass 'schedule' needs a target"):
        driver.build_pipeline("canonicalize,schedule")


@pytest.mark.parametrize("pipeline,flags,ok", [
    ("default,schedule{objective=edp}", {"objective": "cycles"}, False),
    ("default,schedule{objective=edp}", {"objective": "edp"}, True),       # the same value twice
    ("default,schedule{time-limit=5}", {"time_limit": 5.0}, True),
    ("default,schedule{time-limit=5}", {"time_limit": 7.0}, False),
    ("default,schedule{fallback=heuristic}", {"objective": "energy"}, True),  # other fields
    ("default,schedule", {"objective": "energy"}, True),                      # default, not spelled out
])
def test_a_flag_may_not_contradict_the_pipeline_string(pipeline, flags, ok):
    t = load_target("pe8x8")
    if ok:
        (p,) = [p for p in driver.build_pipeline(pipeline, target=t, schedule=flags) if p.name == "schedule"]
        for k, v in flags.items():
            assert getattr(p.options, k) == v
    else:
        with pytest.raises(UsageError, match="contradicts the pipeline's schedule"):
            driver.build_pipeline(pipeline, target=t, schedule=flags)


def test_the_objective_contradiction_from_the_issue_is_exit_2_and_writes_nothing(cli, tmp_path):
    r = cli("compile", tiny_path(), "-t", "pe8x8", "--passes", "default,schedule{objective=edp}",
            "--objective", "cycles", "-o", tmp_path / "out")
    line = _one_line(r, ExitCode.USAGE)
    assert "--objective cycles" in line and "objective=edp" in line
    assert not (tmp_path / "out").exists()


def test_the_pipeline_option_is_what_runs_and_what_is_recorded(cli, tmp_path):
    """Before: schedule{objective=edp} solved for edp but schedule.json said cycles."""
    out = tmp_path / "s.json"
    r = cli("compile", tiny_path(), "-t", "pe8x8", "--passes", "default,schedule{objective=edp}",
            "--emit", "schedule", "-o", out)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["options"]["objective"] == "edp"
    assert "schedule{objective=edp," in doc["pipeline"]
    assert {L["objective"]["name"] for L in doc["layers"]} == {"edp"}   # solved for edp
    loops = cli("compile", tiny_path(), "-t", "pe8x8", "--passes", "default,schedule{objective=edp}",
                "--emit", "loops").stdout
    assert loops.splitlines()[1].endswith(", objective edp")


def test_the_recorded_pipeline_fed_back_reproduces_the_run_byte_for_byte(cli, tmp_path):
    args = ("-t", "pe8x8", "--objective", "energy", "--time-limit", "30", "--fallback", "heuristic")
    first, solved = fresh_solves(lambda: cli("compile", tiny_path(), *args, "-o", tmp_path / "a/"))
    assert first.exit_code == 0 and solved > 0, first.output
    recorded = json.loads((tmp_path / "a" / "schedule.json").read_text())["pipeline"]
    assert recorded == ("canonicalize,fold-bn,fuse-relu,fuse-add,fuse-pool,concat-in-place,schedule{objective=energy,time-limit=30.0,"
                        "fallback=heuristic,measured-sparsity=false},plan-memory{network-time-limit=10.0}"
                        + (",lower-program" if driver.lowers_by_default() else ""))
    again, solved = fresh_solves(lambda: cli("compile", tiny_path(), "-t", "pe8x8", "--passes", recorded,
                                             "-o", tmp_path / "b/"))
    assert again.exit_code == 0 and solved > 0, again.output
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(n for f in FORMATS.values() for n in f.filenames
                           if not f.needs_program or driver.lowers_by_default())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_a_cache_dir_is_not_recorded_and_changes_no_output(cli, tmp_path):
    a = cli("compile", tiny_path(), "-t", "pe8x8", "--emit", "schedule")
    b, solved = fresh_solves(lambda: cli("compile", tiny_path(), "-t", "pe8x8", "--emit", "schedule",
                                         "--cache-dir", tmp_path / "cache"))
    assert a.exit_code == b.exit_code == 0 and solved > 0
    assert a.stdout == b.stdout and str(tmp_path) not in b.stdout
    assert any((tmp_path / "cache").iterdir())


# ---- one import, several targets ---------------------------------------------------------
def test_compile_for_targets_equals_a_compile_per_target():
    targets = [load_target("pe16x16"), load_target("pe8x8")]
    each = list(driver.compile_for_targets(tiny_path(), targets, schedule={"objective": "edp"}))
    assert [r.target.name for r in each] == ["pe16x16", "pe8x8"]
    for res, t in zip(each, targets):
        alone, solved = fresh_solves(lambda t=t: driver.compile(tiny_path(), target=t,
                                                                schedule={"objective": "edp"}))
        assert solved > 0
        assert driver.render(res, renderable(res)) == driver.render(alone, renderable(alone))
    # each result stands alone: its graph carries its own target's schedules
    a, b = (next(op for op in r.graph.ops() if "schedule" in op.attrs) for r in each)
    assert a is not b and a.id == b.id
    assert a.attrs["schedule"].schedule != b.attrs["schedule"].schedule


def test_clone_is_independent_and_shares_the_weights():
    res = driver.compile(tiny_path())
    g = res.graph
    c = g.clone()
    assert [(op.id, op.name) for op in c.ops()] == [(op.id, op.name) for op in g.ops()]
    from sqnxt_compiler.ir import print_graph
    assert print_graph(c) == print_graph(g)
    conv = next(op for op in c.ops() if op.name == "sqnxt.conv")
    conv.attrs["act"] = "relu6"
    assert print_graph(c) != print_graph(g)
    w = next(op for op in g.ops() if op.name == "sqnxt.constant")
    assert next(op for op in c.ops() if op.id == w.id).const_value() is w.const_value()


def test_render_of_a_schedule_format_without_a_target_is_a_usage_error():
    res = driver.compile(tiny_path())
    assert res.network is None and res.document is None and res.schedule_options is None
    assert set(driver.render(res, ["ir"])) == {"ir"}
    with pytest.raises(UsageError, match="--emit schedule needs --target"):
        driver.render(res, ["schedule"])
