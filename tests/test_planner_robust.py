"""The memory planner and the solver boundary under stress (issue 21, items 2, 3 and 6):

* **the CP-SAT crash** (item 6): a valid 37x37 CNN made CP-SAT raise ``IndexError:
  absl::btree_map::at`` from inside its presolve, on the planner's solve of one layer
  started from a hint that named only the decision variables.  Every hint is now complete
  (docs/scheduler.md, "Hints"), and whatever CP-SAT raises is a located ScheduleError (exit
  6) or, with ``--fallback heuristic``, the fallback: never exit 70;
* **time limits** (item 2): a network solve that stops before its first plan is not an
  infeasible model: the plan is the best one found or the all-DRAM plan, status
  ``feasible`` with its bound; the network solve has its own time limit;
* **a tensor that is two operands of one step** (item 3): a conv whose input is also its
  fused residual holds that tensor's words once, so its capacity is the buffer minus the
  distinct resident tensors.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from ortools.sat.python import cp_model

from report_support import fresh_solves, validate
from support import ROOT
from test_planner import UNFUSED, conv, problem, residual, tiny_target, w
from sqnxt_compiler import driver
from sqnxt_compiler.cost import Homes, Layer, evaluate
from sqnxt_compiler.cost.mapping import Mapping
from sqnxt_compiler.cost.reference_layers import distinct, squeezenext_layers
from sqnxt_compiler.diagnostics import ScheduleError
from sqnxt_compiler.schedule import planner as P
from sqnxt_compiler.schedule import solver as solver_mod
from sqnxt_compiler.schedule.cpsat import build_model, set_hint
from sqnxt_compiler.schedule.oracle import exhaustive_best, exhaustive_plan
from sqnxt_compiler.schedule.planner import (NETWORK_TIME_LIMIT, network_time_limit, plan_network, plan_value,
                                             verify_allocation)
from sqnxt_compiler.schedule.solver import schedule_layer
from sqnxt_compiler.targets import load_target

REPRO = ROOT / "tests" / "fixtures" / "repro" / "cpsat_crash_g1088.onnx"
T16 = load_target("pe16x16")


def _main():
    from sqnxt_compiler.cli import main
    return main


def _compile(args):
    return CliRunner().invoke(_main(), ["compile", *args], catch_exceptions=False)


# ---- item 6: the crash inside CP-SAT ----------------------------------------------------------
#: The solve that crashed: the repro's Conv_15 (1x1, 54 -> 6 channels, 9x9) with its input
#: and output resident, started from its all-DRAM mapping.
CRASHED = Layer(name="Conv_15", kind="conv", C=54, K=6, H=9, W=9, R=1, S=1, P=9, Q=9,
                homes=Homes(resident_inputs=1, resident_output=True, capacity=65536 - 54 * 81 - 6 * 81))
CRASHED_HINT = Mapping("WS", 9, 9, 27, 6, "kcyx")


def test_the_layer_that_crashed_cpsat_solves_from_its_hint():
    s = schedule_layer(CRASHED, T16, hint=CRASHED_HINT)
    m, r = exhaustive_best(CRASHED, T16, "cycles")
    assert s.status == "optimal" and s.mapping == m and s.cost == r


@pytest.mark.parametrize("target", ["pe16x16", "pe8x8"])
def test_the_model_that_crashed_cpsat_compiles_planned(tmp_path, target):
    out = tmp_path / "s.json"
    r = _compile([str(REPRO), "-t", target, "--emit", "schedule", "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(out.read_text())
    validate(doc)
    assert doc["plan"]["status"] == "optimal" and all(L["status"] == "optimal" for L in doc["layers"])


def _hint_layers():
    """Distinct SqueezeNext layers (a sample) and the crashed one, alone and with operands
    resident."""
    layers = distinct(squeezenext_layers())[::4] + [CRASHED]
    out = []
    for L in layers:
        out.append(L.with_homes(resident_inputs=0, resident_output=False, capacity=None))
        out.append(L.with_homes(resident_inputs=1, resident_output=True, capacity=None))
    return out


def _hint_solves(model, solve=cp_model.CpSolver.solve) -> cp_model.CpSolver | None:
    """The solver that solved a copy of ``model`` (no objective) with every hinted variable
    fixed to its hint, no presolve; None when the hint is no solution."""
    check = cp_model.CpSolver()
    check.parameters.num_workers = 1
    check.parameters.fix_variables_to_their_hinted_value = True
    check.parameters.cp_model_presolve = False
    probe = model.clone()
    probe.clear_objective()
    ok = solve(check, probe) in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    return check if ok else None


@pytest.mark.parametrize("target", ["pe16x16", "pe8x8"])
def test_a_mapping_gives_every_variable_a_value_that_solves_the_model(target):
    """The rule behind complete hints: from a mapping's decision variables every other
    variable's value follows (its definition), and together they are a solution of the
    model with the cost model's cycles and energy."""
    t = load_target(target)
    for L in _hint_layers():
        m, r = exhaustive_best(L, t, "cycles")
        lm = build_model(L, t)
        vals = solver_mod._full_hint(lm, m)
        assert vals is not None and len(vals) == len(lm.model.proto.variables), L.name
        set_hint(lm.model, vals)
        s = _hint_solves(lm.model)
        assert s is not None, L.name
        assert (s.value(lm.cycles.expr), s.value(lm.energy.expr)) == (r.total_cycles, r.energy_total), L.name


def _spy_hints(monkeypatch) -> list:
    """Record, for every CP-SAT solve given a hint, whether it names every variable and is
    a solution of the model (the model solved with every variable fixed to its hint)."""
    seen = []
    real = cp_model.CpSolver.solve

    def spy(self, model, *a, **k):
        n = len(model.proto.solution_hint.vars)
        if n:
            seen.append(n == len(model.proto.variables) and _hint_solves(model, real) is not None)
        return real(self, model, *a, **k)

    monkeypatch.setattr(cp_model.CpSolver, "solve", spy)
    return seen


@pytest.mark.parametrize("objective", ["cycles", "energy", "edp"])
def test_cpsat_is_only_ever_given_complete_and_consistent_hints(monkeypatch, objective):
    """Every hinted solve of a planned compile (layer stages from the incumbent, the tie
    stages, the EDP pre-solves and the EDP solve, the planner's candidates, the network
    stages) names every variable, with values that solve the model.  The candidates' hint
    is each layer's mapping alone, often no solution of a layer with less capacity: the
    layer then starts from its enumerated incumbent."""
    seen = _spy_hints(monkeypatch)
    t = tiny_target(8192)
    _, solved = fresh_solves(lambda: driver.compile((residual(), "r.onnx"), target=t,
                                                    schedule={"objective": objective}))
    assert solved > 0 and len(seen) > 10 and all(seen), seen


def test_an_edp_solve_from_a_poor_hint_starts_from_a_solution(monkeypatch):
    """A hinted incumbent worse than the cycles-optimal mapping's EDP H would break the
    EDP model's ``edp <= H``: the solve starts from the cycles-optimal mapping instead.
    Same answer as without the hint."""
    t = load_target("pe8x8")
    layers = [L for L in distinct(squeezenext_layers()) if L.name in ("conv1", "s2b1_sep2", "fc1000")]
    alone = [schedule_layer(L, t, objective="edp") for L in layers]
    seen = _spy_hints(monkeypatch)
    solver_mod.clear_cache()
    for L, a in zip(layers, alone):
        poor, _ = solver_mod.heuristic_mapping(L, t)
        assert schedule_layer(L, t, objective="edp", hint=poor).to_dict() == a.to_dict()
    assert len(seen) > 6 and all(seen), seen


class Crashing(cp_model.CpSolver):
    """A solver that raises from inside its solve, as CP-SAT did."""

    def solve(self, model, *a, **k):
        raise IndexError("absl::btree_map::at")


def test_whatever_cpsat_raises_is_exit_6_naming_the_layer(monkeypatch, tmp_path):
    monkeypatch.setattr(cp_model.CpSolver, "solve", Crashing.solve)
    solver_mod.clear_cache()
    r = _compile([str(REPRO), "-t", "pe16x16", "-o", str(tmp_path / "out")])
    assert r.exit_code == 6, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("sqnxtc: error: ") and "cpsat_crash_g1088.onnx: layer '" in last
    assert "CP-SAT raised IndexError: absl::btree_map::at" in last and "Traceback" not in r.stderr


def test_whatever_cpsat_raises_with_the_fallback_is_the_heuristic_and_the_all_dram_plan(monkeypatch, tmp_path):
    monkeypatch.setattr(cp_model.CpSolver, "solve", Crashing.solve)
    solver_mod.clear_cache()
    out = tmp_path / "s.json"
    r = _compile([str(REPRO), "-t", "pe16x16", "--fallback", "heuristic", "--emit", "schedule", "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(out.read_text())
    validate(doc)
    assert {L["status"] for L in doc["layers"] if L["solver"] != "exhaustive"} == {"heuristic"}
    assert all("CP-SAT raised IndexError" in L["note"] for L in doc["layers"] if L["status"] == "heuristic")
    p = doc["plan"]
    assert p["status"] == "feasible" and p["bound"] == 0 and {T["home"] for T in p["tensors"]} == {"dram"}
    assert "memory plan of the network" in r.stderr and "the all-DRAM plan" in r.stderr


def test_a_crash_in_the_network_solve_is_a_schedule_error_or_the_all_dram_plan(monkeypatch):
    t = tiny_target(8192)
    _, net, cands = problem(residual(), t)
    monkeypatch.setattr(P, "PARAMS", SimpleNamespace(solver=lambda limit: Crashing()))
    with pytest.raises(ScheduleError, match=r"memory plan of the network \(5 steps\): CP-SAT raised IndexError"):
        plan_network(net, cands, t, "cycles")
    plan = plan_network(net, cands, t, "cycles", fallback="heuristic")
    assert plan.status == "feasible" and not any(plan.resident) and "CP-SAT raised" in plan.note
    assert verify_allocation(net, plan, t) == []


def test_an_edp_beyond_cpsats_integers_is_a_schedule_error_or_the_all_dram_plan(monkeypatch):
    """VGG-19 on pe16x16 with --objective edp exited 70: its network EDP (up to 1.4e19)
    does not fit CP-SAT's integers.  Here the candidates' figures are scaled up."""
    t = tiny_target(8192)
    _, net, cands = problem(residual(), t, "edp")
    real = P.Candidate.value
    monkeypatch.setattr(P.Candidate, "value", lambda c, objective: real(c, objective) * 10 ** 8)
    with pytest.raises(ScheduleError, match=r"network \(5 steps\): CP-SAT model too large: the network's EDP can "
                                            r"reach .*--fallback heuristic: the all-DRAM plan"):
        plan_network(net, cands, t, "edp")
    plan = plan_network(net, cands, t, "edp", fallback="heuristic")
    assert plan.status == "feasible" and not any(plan.resident) and "too large" in plan.note
    assert verify_allocation(net, plan, t) == []


# ---- item 2: time limits -----------------------------------------------------------------------
class Unknown(cp_model.CpSolver):
    """A solver that stops before its first solution (as on a time limit)."""

    def solve(self, model, *a, **k):
        return cp_model.UNKNOWN


def _all_dram(cands):
    return [next(c for c in cs if c.resident_inputs == 0 and not c.resident_output and not c.resident_residual
                 and c.schedule.layer.homes.capacity is None) for cs in cands]


@pytest.mark.parametrize("objective", ["cycles", "edp"])
def test_a_network_solve_out_of_time_gives_the_all_dram_plan(monkeypatch, objective):
    """No plan within the limit is not 'no plan fits' (it once was, exit 6 calling itself
    a bug): the all-DRAM plan, always feasible, status 'feasible' with a bound."""
    t = tiny_target(8192)
    _, net, cands = problem(residual(), t, objective)
    monkeypatch.setattr(P, "PARAMS", SimpleNamespace(solver=lambda limit: Unknown()))
    plan = plan_network(net, cands, t, objective, time_limit=0.5)
    assert plan.status == "feasible" and not any(plan.resident) and not plan.joint
    assert list(plan.choice) == _all_dram(cands) and plan.value == plan_value(plan.choice, objective)
    assert 0 <= plan.bound <= plan.value and "time limit" in plan.note
    assert verify_allocation(net, plan, t) == []


def test_a_joint_solve_out_of_time_gives_the_all_dram_plan(monkeypatch):
    """The joint re-solve (after an allocation failure) had the same unchecked path."""
    t = tiny_target(8192)
    _, net, cands = problem(residual(), t)
    relaxed = plan_network(net, cands, t, "cycles")
    real = P._solve_stages

    def joint_out_of_time(net, cands, target, objective, joint, deadline, reference=None):
        if joint:
            return None, None, "unknown", 0
        return real(net, cands, target, objective, joint, deadline, reference)

    monkeypatch.setattr(P, "_allocate", lambda *a, **k: None)
    monkeypatch.setattr(P, "_solve_stages", joint_out_of_time)
    plan = plan_network(net, cands, t, "cycles", time_limit=5.0)
    assert plan.status == "feasible" and not any(plan.resident) and verify_allocation(net, plan, t) == []
    # the relaxation's optimum is a lower bound of the exact problem
    assert plan.bound == relaxed.value < plan.value


@pytest.mark.parametrize("limit", [1e-9, 1e-3, 1e-2])
def test_any_network_time_limit_gives_a_sound_plan(limit):
    t = tiny_target(8192)
    for objective in ("cycles", "edp"):
        _, net, cands = problem(residual(), t, objective)
        plan = plan_network(net, cands, t, objective, time_limit=limit)
        assert plan.status in ("optimal", "feasible") and 0 <= plan.bound <= plan.value
        assert plan.value == plan_value(plan.choice, objective)
        assert verify_allocation(net, plan, t) == []


def test_a_first_plan_before_the_limit_is_feasible_with_its_bound(monkeypatch):
    """Stopped at its first solution (what a time limit does, deterministically)."""
    real = P.PARAMS.solver

    def first(limit):
        s = real(limit)
        s.parameters.stop_after_first_solution = True
        return s

    t = tiny_target(8192)
    _, net, cands = problem(residual(), t)
    best = plan_network(net, cands, t, "cycles")
    monkeypatch.setattr(P, "PARAMS", SimpleNamespace(solver=first))
    plan = plan_network(net, cands, t, "cycles", time_limit=5.0)
    assert plan.status in ("feasible", "optimal") and plan.bound <= best.value <= plan.value
    assert verify_allocation(net, plan, t) == []


def test_the_network_solve_has_its_own_time_limit(monkeypatch):
    assert network_time_limit(None) is None
    assert network_time_limit(0.02) == NETWORK_TIME_LIMIT == 10.0 and network_time_limit(60.0) == 60.0
    limits = []
    real = P.plan_network

    def spy(*a, **k):
        limits.append(a[4] if len(a) > 4 else k.get("time_limit"))
        return real(*a, **k)

    monkeypatch.setattr(P, "plan_network", spy)
    t = tiny_target(8192)
    for opts in ({"time_limit": 0.02, "fallback": "heuristic"}, {}):
        driver.compile((residual(), "r.onnx"), pipeline=UNFUSED, target=t, schedule=opts)
    assert limits == [NETWORK_TIME_LIMIT, None]


def _slow_first_plan(monkeypatch):
    """The network solver finds its first plan only when given 1 s or more (deterministic
    stand-in for a network model slower than a per-layer limit)."""
    real = P.PARAMS.solver
    monkeypatch.setattr(P, "PARAMS", SimpleNamespace(
        solver=lambda limit: Unknown() if limit is not None and limit < 1.0 else real(limit)))


def test_a_tiny_per_layer_time_limit_is_not_the_network_solves(monkeypatch, tmp_path):
    """``--time-limit 0.02 --fallback heuristic`` once exited 6 ('no memory plan fits the
    buffer ... a bug') on zoo models: the network solve inherited the 20 ms."""
    _slow_first_plan(monkeypatch)
    out = tmp_path / "s.json"
    r = _compile([str(REPRO), "-t", "pe16x16", "--time-limit", "0.02", "--fallback", "heuristic",
                  "--emit", "schedule", "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(out.read_text())
    validate(doc)
    assert doc["plan"]["status"] == "optimal"


@pytest.mark.parametrize("fallback", [[], ["--fallback", "heuristic"]])
def test_a_network_solve_out_of_time_compiles_with_the_all_dram_plan(monkeypatch, tmp_path, fallback):
    monkeypatch.setattr(P, "PARAMS", SimpleNamespace(solver=lambda limit: Unknown()))
    out = tmp_path / "s.json"
    r = _compile([str(REPRO), "-t", "pe16x16", "--time-limit", "30", *fallback, "--emit", "schedule", "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(out.read_text())
    validate(doc)
    p = doc["plan"]
    assert p["status"] == "feasible" and {T["home"] for T in p["tensors"]} == {"dram"}
    assert 0 <= p["bound"] <= p["value"] == doc["totals"]["total_cycles"] == p["all_dram"]["total_cycles"]
    assert "time limit before the network solve's first plan" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("model,limit", [("1.0-SqNxt-23", "0.02"), ("MobileNet-1.0-224", "0.005"),
                                         ("SqueezeNet-1.1", "0.001")])
def test_tiny_per_layer_time_limits_with_the_fallback_compile(tmp_path, model, limit):
    """The issue's commands (they failed or not depending on the machine's speed)."""
    out = tmp_path / "s.json"
    r = _compile([f"zoo:{model}", "-t", "pe16x16", "--time-limit", limit, "--fallback", "heuristic",
                  "--emit", "schedule", "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(out.read_text())
    validate(doc)
    assert doc["plan"]["status"] in ("optimal", "feasible")


# ---- item 3: a tensor that is two operands of one step ---------------------------------------
def self_residual():
    """x 8x12x12 -> conv3x3 16 -> relu = t; conv3x3(t) + t = y (fuse-add: t is the conv's
    input and its residual); conv1x1(y) -> 8."""
    from onnx import helper
    from support import make_model

    nodes = [conv("c1", "x", "c", "w1", 3, 1), helper.make_node("Relu", ["c"], ["t"], name="r1"),
             conv("c2", "t", "a", "w2", 3, 1), helper.make_node("Add", ["a", "t"], ["y"], name="add"),
             conv("c3", "y", "out", "w3", 1)]
    inits = [("w1", w(16, 8, 3, 3)), ("w2", w(16, 16, 3, 3)), ("w3", w(8, 16, 1, 1))]
    return make_model(nodes, [("x", [1, 8, 12, 12])], [("out", [1, 8, 12, 12])], inits, name="selfres")


def test_a_conv_whose_input_is_its_residual_counts_it_once():
    """t and y resident while c2 runs leave the buffer minus |t| + |y| for its tiles (not
    minus 2|t| + |y|), and homes that give t two homes at once are no candidates."""
    t = tiny_target(12000)             # 6000 words: t and y (2304 each) fit beside c2's tiles
    _, net, cands = problem(self_residual(), t, pipeline="default")
    i, step = next((i, s) for i, s in enumerate(net.steps) if s.layer.name == "c2")
    assert step.inputs == (step.residual,) and step.layer.epilogue.residual
    T, Y = net.tensors[step.residual], net.tensors[step.output]
    homes = {(c.resident_inputs, c.resident_residual, c.resident_output): c.schedule.layer.homes.capacity
             for c in cands[i]}
    assert homes == {(0, False, False): None, (0, False, True): t.buffer_words - Y.words,
                     (1, True, False): t.buffer_words - T.words,
                     (1, True, True): t.buffer_words - T.words - Y.words}
    plan = plan_network(net, cands, t, "cycles")
    assert plan.resident[T.index] and plan.resident[Y.index]     # both stay: the best plan
    assert (plan.value, sum(c.value("energy") for c in plan.choice)) == exhaustive_plan(net, cands, t)[:2]
    assert verify_allocation(net, plan, t) == []


@pytest.mark.parametrize("buffer_bytes", [12000, 20000])
def test_a_planned_compile_of_a_conv_reading_its_residual_records_one_home(buffer_bytes):
    """Through the schedule pass: the plan verifies, c2's capacity is the buffer minus the
    distinct tensors resident while it runs, and the tiled executor (t read in place twice)
    agrees with the cost model and the plain executor."""
    from sqnxt_compiler.reference.check import random_inputs
    from sqnxt_compiler.reference.executor import run
    from sqnxt_compiler.reference.tiled import execute_tiled
    from tiled_support import assert_close_to_plain, assert_invariants

    t = tiny_target(buffer_bytes)
    res = driver.compile((self_residual(), "s.onnx"), target=t)
    feeds = random_inputs(res.graph, 0)
    r = execute_tiled(res.graph, feeds, trace=True)
    assert_close_to_plain(r.outputs, run(res.graph, feeds))
    assert_invariants(r.layers, res.graph)
    doc = res.document
    validate(doc)
    homes = {T["name"]: T for T in doc["plan"]["tensors"]}
    c2 = next(L for L in doc["layers"] if L["layer"] == "c2")
    assert c2["homes"]["inputs"] == [c2["homes"]["residual"]] == [homes["c1"]["home"]]
    resident = sum(homes[n]["words"] for n in ("c1", "c2") if homes[n]["home"] == "buffer")
    L = next(op for op in res.graph.ops() if op.loc.node == "c2").attrs["schedule"].schedule.layer
    assert (L.homes.capacity or t.buffer_words) == t.buffer_words - resident
    assert evaluate(L, t, next(op for op in res.graph.ops()
                               if op.loc.node == "c2").attrs["schedule"].schedule.mapping).fits
