"""plan-memory, the memory planner as a pass of its own (issue 22, "planning as a pass"):
the default pipeline gets it from the target's ``dram.activation_home`` (or
``--activation-home``), its output is the planner's (checked against the planner's
functions called directly on the schedule pass's layer-alone schedules), the IR after
``schedule`` has no plan and the IR after ``plan-memory`` has one, its candidate solves use
exactly the schedule pass's options, and every misuse is a one-line usage error."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from report_support import tiny_path
from sqnxt_compiler import driver
from sqnxt_compiler.diagnostics import ExitCode, UsageError
from sqnxt_compiler.passes.plan_memory import PlanMemory, PlanMemoryOptions
from sqnxt_compiler.passes.schedule import ScheduleOptions
from sqnxt_compiler.pipeline import PassContext, PassManager, parse_pipeline
from sqnxt_compiler.targets import load_target

ROOT = Path(__file__).resolve().parent.parent
MODEL = str(ROOT / "tests" / "fixtures" / "external" / "caffe_style_sqnxt_block_op11_ceil.onnx")
GRAPH_PASSES = ["canonicalize", "fold-bn", "fuse-relu", "fuse-add", "fuse-pool", "concat-in-place"]


def planned_target():
    t = load_target("pe16x16")
    assert t.activation_home == "planned"
    return t


def dram(t):
    return replace(t, activation_home="dram")


def _one_line(r, code=ExitCode.USAGE) -> str:
    assert r.exit_code == int(code), (r.exit_code, r.output)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqnxtc: error: ") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


# ---- which pipelines have it -------------------------------------------------------------------
def test_the_default_pipeline_plans_on_a_planned_target_and_not_on_a_dram_one():
    t = planned_target()
    assert [p.name for p in driver.build_pipeline("default", target=t)] == GRAPH_PASSES + ["schedule", "plan-memory"]
    assert [p.name for p in driver.build_pipeline("default", target=dram(t))] == GRAPH_PASSES + ["schedule"]
    # a pipeline that schedules already gets plan-memory right after its (last) schedule pass
    assert [p.name for p in driver.build_pipeline("canonicalize,schedule{objective=edp},fold-bn", target=t)] == \
        ["canonicalize", "schedule", "plan-memory", "fold-bn"]
    # an explicit plan-memory is not doubled, and runs with a target whose home is dram
    assert [p.name for p in driver.build_pipeline("default,schedule,plan-memory", target=t)] == \
        GRAPH_PASSES + ["schedule", "plan-memory"]
    assert [p.name for p in driver.build_pipeline("default,schedule,plan-memory", target=dram(t))] == \
        GRAPH_PASSES + ["schedule", "plan-memory"]
    # the schedule flags set the schedule pass's options, never plan-memory's
    passes = driver.build_pipeline("default", target=t, schedule={"time_limit": 3.0, "objective": "edp"})
    assert passes[-2].options == ScheduleOptions(objective="edp", time_limit=3.0)
    assert passes[-1].options == PlanMemoryOptions()


def test_the_activation_home_flag_decides_as_before(cli):
    r = cli("compile", tiny_path(), "-t", "pe8x8", "--activation-home", "dram", "--emit", "schedule",
            "--pass-statistics")
    assert r.exit_code == 0, r.output
    assert '"pipeline": "canonicalize,fold-bn,fuse-relu,fuse-add,fuse-pool,concat-in-place,schedule{' in r.stdout
    assert "plan-memory" not in r.stdout and "plan-memory" not in r.stderr
    r = cli("compile", tiny_path(), "-t", "pe8x8", "--emit", "schedule", "--pass-statistics")
    assert r.exit_code == 0, r.output
    assert ",plan-memory{network-time-limit=10.0}\"" in r.stdout
    stats = r.stderr.split("... Pass statistics report ...", 1)[1]
    sched, plan = stats.split("\nschedule\n", 1)[1].split("\nplan-memory\n", 1)
    assert "tensors-resident" not in sched and "plan-" not in sched
    assert "tensors-resident" in plan and "tensors-through-dram" in plan and re.search(r"\(1\) plan-\w+", plan)


def test_the_pass_and_its_options_are_documented(cli):
    from sqnxt_compiler.schedule.planner import NETWORK_TIME_LIMIT

    assert PlanMemoryOptions().network_time_limit == NETWORK_TIME_LIMIT
    assert PlanMemory().spec() == "plan-memory{network-time-limit=10.0}"
    assert "plan-memory" in " ".join(cli("compile", "--help").stdout.split())
    passes_md = (ROOT / "docs" / "passes.md").read_text()
    assert "**plan-memory** (`passes/plan_memory.py`" in passes_md
    assert "plan-memory" in (ROOT / "docs" / "memory-planning.md").read_text()


# ---- what it computes ---------------------------------------------------------------------------
def test_its_output_is_the_planners_on_the_layer_alone_schedules():
    """The compile's plan, planned schedules and statistics equal the planner's functions
    called directly (candidates from the same solver and options, the network solve, the
    allocation) on the schedules the schedule pass attached before it."""
    from sqnxt_compiler.schedule.liveness import network_of
    from sqnxt_compiler.schedule.planner import (candidates, network_plan, network_time_limit, plan_network,
                                                 verify_allocation)
    from sqnxt_compiler.schedule.solver import schedule_layers

    t = planned_target()
    planned = driver.compile(MODEL, target=t)
    assert [p.name for p in planned.passes][-2:] == ["schedule", "plan-memory"]
    # the same pipeline without plan-memory, on the same (planned) target: the layer-alone schedules
    alone_res = driver.compile(MODEL, pipeline=driver.build_pipeline("default", target=dram(t)), target=t)
    assert "plan" not in alone_res.graph.attrs
    ops = [op for op in alone_res.graph.ops() if "schedule" in op.attrs]
    alone = [op.attrs["schedule"].schedule for op in ops]
    opts = alone_res.passes[-1].options
    assert all(op.attrs["schedule"].options == opts for op in ops)

    kw = opts.solver_kwargs()
    net = network_of(alone_res.graph, [(op, s.layer) for op, s in zip(ops, alone)])
    cands = candidates(net, t, lambda Ls, hints=None: schedule_layers(Ls, t, hints=hints, **kw),
                       opts.objective, alone)
    plan = plan_network(net, cands, t, opts.objective, network_time_limit(kw["time_limit"]),
                        fallback=kw["fallback"])
    assert verify_allocation(net, plan, t) == []
    assert any(plan.resident), "a test of planning needs a plan that keeps something resident"

    got = [op for op in planned.graph.ops() if "schedule" in op.attrs]
    assert [op.loc.node for op in got] == [op.loc.node for op in ops]
    assert [op.attrs["schedule"].schedule for op in got] == [c.schedule for c in plan.choice]
    expected = network_plan(net, plan, alone, t)
    assert planned.graph.attrs["plan"] == expected
    for step, op in zip(net.steps, got):
        p = op.attrs["plan"]
        T = net.tensors[step.output]
        assert (p.output == "buffer") == plan.resident[T.index] and p.offset == plan.offsets[T.index]
        assert p.live == (T.producer, T.last)
    stats = planned.statistics
    assert stats["plan-memory"]["tensors-resident"] == sum(plan.resident)
    assert stats["plan-memory"]["tensors-through-dram"] == len(plan.resident) - sum(plan.resident)
    assert stats["plan-memory"][f"plan-{plan.status}"] == 1
    assert not {"tensors-resident", "tensors-through-dram"} & set(stats["schedule"])
    assert stats["schedule"] == alone_res.statistics["schedule"]   # the schedule pass: each layer alone


def test_print_ir_after_schedule_has_no_plan_and_after_plan_memory_has_it(cli):
    r = cli("compile", MODEL, "-t", "pe16x16", "--emit", "ir", "--print-ir-after", "schedule",
            "--print-ir-after", "plan-memory")
    assert r.exit_code == 0, r.output
    dumps = re.split(r"(?m)^// -----// IR Dump After ([\w-]+) //----- //\n", r.stderr)[1:]
    after = dict(zip(dumps[::2], dumps[1::2]))
    assert list(after) == ["schedule", "plan-memory"]
    assert "schedule = {" in after["schedule"] and "plan = {" not in after["schedule"]
    assert "attributes {plan = " in after["plan-memory"] and "output_at = " in after["plan-memory"]
    assert after["plan-memory"] == r.stdout    # the IR after the pipeline is plan-memory's
    # the IR after schedule on a planned target is the all-DRAM compile's: each layer alone
    d = cli("compile", MODEL, "-t", "pe16x16", "--activation-home", "dram", "--emit", "ir")
    assert d.exit_code == 0 and d.stdout == after["schedule"]


def test_the_candidate_solves_use_exactly_the_schedule_passs_options(monkeypatch, tmp_path):
    from sqnxt_compiler.schedule import planner, solver

    seen, limits = [], []
    real_solve, real_plan = solver.schedule_layers, planner.plan_network

    def spy_solve(layers, target, **kw):
        seen.append({k: kw.get(k) for k in ("objective", "time_limit", "fallback", "cache_dir", "jobs")})
        return real_solve(layers, target, **kw)

    def spy_plan(*a, **k):
        limits.append(a[4] if len(a) > 4 else k.get("time_limit"))
        return real_plan(*a, **k)

    monkeypatch.setattr(solver, "schedule_layers", spy_solve)
    monkeypatch.setattr(planner, "plan_network", spy_plan)
    t = load_target("pe8x8")
    flags = {"objective": "energy", "time_limit": 20.0, "fallback": "heuristic", "cache_dir": str(tmp_path / "c"),
             "jobs": 1}
    res = driver.compile(tiny_path(), target=t, schedule=flags)
    want = ScheduleOptions(**flags).solver_kwargs()
    assert len(seen) >= 2 and all(s == want for s in seen)   # the schedule pass's call, then the candidates'
    assert limits == [20.0] and res.graph.attrs["plan"].objective == "energy"
    # the network time limit: its option when the layers have a limit, none when they have none
    limits.clear()
    driver.compile(tiny_path(), pipeline="default,schedule{time-limit=5},plan-memory{network-time-limit=30}",
                   target=t)
    driver.compile(tiny_path(), pipeline="default,schedule,plan-memory{network-time-limit=30}", target=t)
    driver.compile(tiny_path(), target=t, schedule={"time_limit": 5.0})
    assert limits == [30.0, None, 10.0]


def test_an_explicit_plan_memory_runs_with_a_dram_target_file(cli, tmp_path):
    text = (ROOT / "targets" / "pe8x8.toml").read_text()
    toml = tmp_path / "pe8x8_dram.toml"
    toml.write_text(re.sub(r'(?m)^activation_home = "planned"', 'activation_home = "dram"', text))
    plain = cli("compile", tiny_path(), "-t", toml, "--emit", "schedule")
    assert plain.exit_code == 0 and '"plan": null' in plain.stdout
    r = cli("compile", tiny_path(), "-t", toml, "--passes", "default,schedule,plan-memory", "--emit", "schedule")
    assert r.exit_code == 0, r.output
    assert '"plan": null' not in r.stdout and "plan-memory{network-time-limit=10.0}" in r.stdout


def test_a_rerun_of_schedule_drops_the_plan():
    t = planned_target()
    res = driver.compile(tiny_path(), pipeline="default,schedule,plan-memory,schedule", target=t)
    assert "plan" not in res.graph.attrs and not any("plan" in op.attrs for op in res.graph.ops())


# ---- misuse -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,pieces", [
    (("--passes", "default,plan-memory"), ("pass 'plan-memory' needs pass 'schedule' before it",)),
    (("--passes", "default,plan-memory,schedule"), ("pass 'plan-memory' needs pass 'schedule' before it",)),
    (("--passes", "default,schedule,plan-memory", "--activation-home", "dram"),
     ("--activation-home dram contradicts the pipeline's plan-memory",)),
    (("--passes", "default,schedule,plan-memory{network-time-limit=-1}"),
     ("pass 'plan-memory': option 'network-time-limit' must be >= 0 seconds, got -1.0",)),
    (("--passes", "default,schedule,plan-memory{time-limit=5}"),
     ("pass 'plan-memory' has no option 'time-limit'",)),
])
def test_misuse_is_a_one_line_usage_error_before_the_model_is_read(cli, tmp_path, args, pieces):
    missing = tmp_path / "absent.onnx"          # never read: the pipeline is rejected first
    for command in ("compile", "check"):
        line = _one_line(cli(command, missing, "-t", "pe8x8", *args))
        for piece in pieces:
            assert piece in line, (command, line)


def test_without_a_target_it_is_the_usual_usage_error(cli):
    line = _one_line(cli("compile", tiny_path(), "--passes", "default,plan-memory"))
    assert "pass 'plan-memory' needs a target but no --target was given" in line


def test_run_on_a_graph_the_schedule_pass_has_not_scheduled_it_is_a_usage_error():
    t = planned_target()
    with pytest.raises(UsageError, match=r"pass 'plan-memory' needs the schedule pass to run before it "
                                         r"\(op '.*' has no schedule\)"):
        driver.compile(tiny_path(), pipeline=parse_pipeline("default,plan-memory"), target=t)
    with pytest.raises(UsageError, match="these schedules are planned already"):
        driver.compile(tiny_path(), pipeline=parse_pipeline("default,schedule,plan-memory,plan-memory"), target=t)
    # with a schedule not made by the schedule pass (no options recorded on it)
    res = driver.compile(tiny_path(), pipeline=parse_pipeline("default,schedule"), target=t)
    for op in res.graph.ops():
        if "schedule" in op.attrs:
            op.attrs["schedule"] = type(op.attrs["schedule"])(op.attrs["schedule"].schedule)
    with pytest.raises(UsageError, match="was not made by it"):
        PassManager([PlanMemory()]).run(res.graph, PassContext(target=t))


def test_a_scheduled_graph_changed_afterwards_is_refused():
    """A schedule whose layer is not the op's any more (a graph pass ran in between)."""
    t = planned_target()
    res = driver.compile(tiny_path(), pipeline=parse_pipeline("default,schedule"), target=t)
    ops = [op for op in res.graph.ops() if "schedule" in op.attrs]
    a, b = next((a, b) for a in ops for b in ops
                if a.attrs["schedule"].schedule.layer.key() != b.attrs["schedule"].schedule.layer.key())
    a.attrs["schedule"] = b.attrs["schedule"]      # as if a's layer changed after it was scheduled
    with pytest.raises(UsageError, match="is stale"):
        PassManager([PlanMemory()]).run(res.graph, PassContext(target=t))
