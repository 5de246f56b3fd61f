"""The CP-SAT scheduler: the oracle's answer on every distinct SqueezeNext layer, exact
agreement with the cost model, determinism, failure modes, caching."""
from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction
from types import SimpleNamespace

import pytest
from ortools.sat.python import cp_model

from sqnxt_compiler.cost import Layer, evaluate
from sqnxt_compiler.cost.model import objective_value
from sqnxt_compiler.cost.reference_layers import distinct, squeezenext_layers
from sqnxt_compiler.diagnostics import ScheduleError
from sqnxt_compiler.schedule import edp as edp_mod
from sqnxt_compiler.schedule import heuristic as heuristic_mod
from sqnxt_compiler.schedule import layer_solve
from sqnxt_compiler.schedule import solver as solver_mod
from sqnxt_compiler.schedule.cpsat import build_model, decode
from sqnxt_compiler.schedule.oracle import SECONDARY, exhaustive_best
from sqnxt_compiler.schedule.solver import (LayerSchedule, clear_cache, heuristic_mapping, schedule_layer,
                                            schedule_layers)
from sqnxt_compiler.targets import load_target

T16, T8 = load_target("pe16x16"), load_target("pe8x8")
MODELS = ("1.0-SqNxt-23", "1.0-SqNxt-23v5")
ALL = distinct([L for v in MODELS for L in squeezenext_layers(v)])
MAC = [L for L in ALL if L.is_mac]


@pytest.mark.parametrize("limit", [solver_mod.INCUMBENT_LIMIT, 0], ids=["incumbent", "cpsat_alone"])
@pytest.mark.parametrize("t", [T16, pytest.param(T8, marks=pytest.mark.slow)], ids=["pe16x16", "pe8x8"])
def test_solver_equals_oracle_on_every_distinct_layer(t, limit, monkeypatch):
    """Objective, secondary objective and the tie-broken mapping equal the exhaustive
    search's, on every distinct layer of 1.0-SqNxt-23 and 1.0-SqNxt-23v5; with the
    enumerated incumbent (most of these layers) and with CP-SAT alone."""
    monkeypatch.setattr(heuristic_mod, "INCUMBENT_LIMIT", limit)
    for L in ALL:
        s = schedule_layer(L, t)
        m, r = exhaustive_best(L, t)
        assert s.status == "optimal" and s.tie_break, L.name
        assert s.mapping == m, (L.name, s.mapping, m)
        assert s.cost == r == evaluate(L, t, s.mapping)
        assert s.objective_value == r.total_cycles and s.bound == s.objective_value and s.gap == 0.0


SUBSET = [L for L in MAC if L.name in ("conv1", "s1b1_sep1", "s2b1_sep2", "s3b1_proj", "s4b1_sep2",
                                        "conv111", "fc1000")]


@pytest.mark.parametrize("objective", ["energy", "edp"])
@pytest.mark.parametrize("t", [T16, T8], ids=["pe16x16", "pe8x8"])
def test_other_objectives_equal_oracle(objective, t):
    for L in SUBSET:
        s = schedule_layer(L, t, objective=objective)
        m, r = exhaustive_best(L, t, objective)
        assert s.mapping == m and s.objective_value == objective_value(r, objective), L.name


@pytest.mark.parametrize("L", SUBSET + [Layer("dw", "conv", 64, 64, 28, 28, 3, 3, 28, 28, 1, 1, 1, 1, 1, 1,
                                              groups=64),
                                        Layer("g2", "conv", 64, 64, 28, 28, 1, 3, 28, 28, pad_left=1,
                                              pad_right=1, groups=2),
                                        Layer("sp", "conv", 64, 32, 14, 14, 3, 3, 12, 12,
                                              weight_zero_fraction=Fraction(7, 9))],
                         ids=lambda L: L.name)
def test_cpsat_expressions_are_the_cost_models(L):
    """Pin any mapping found by CP-SAT and read its cycles and energy variables: they
    equal evaluate() for that mapping, in both dataflows."""
    for t in (T16, T8):
        for df in ("WS", "OS"):
            lm = build_model(L, t)
            if not isinstance(lm.os, int):
                lm.model.add(lm.os == (1 if df == "OS" else 0))
            lm.model.minimize(lm.energy.expr)       # any objective: we check the values
            s = cp_model.CpSolver()
            s.parameters.num_workers = 1
            assert s.solve(lm.model) == cp_model.OPTIMAL
            dfx, order, tiles = decode(lm, s)
            from sqnxt_compiler.cost import Mapping
            r = evaluate(L, t, Mapping(dfx, tiles["x"], tiles["y"], tiles["c"], tiles["k"], order))
            assert s.value(lm.cycles.expr) == r.total_cycles
            assert s.value(lm.energy.expr) == r.energy_total
            assert s.value(lm.extra["compute"].expr) == r.compute_cycles
            assert s.value(lm.extra["dma"].expr) == r.dma_cycles
            assert s.value(lm.extra["dram"].expr) == r.dram["total"]
            assert s.value(lm.extra["fp"].expr) * r.footprint["copies"] == r.footprint["total"]


def test_schedules_are_byte_identical_across_runs():
    layers = squeezenext_layers("1.0-SqNxt-23")
    dumps = []
    for _ in range(2):
        clear_cache()
        before = solver_mod.STATS["solved"]
        out = schedule_layers(layers, T16)
        # every distinct layer really solved: no cache answers the second run
        assert solver_mod.STATS["solved"] - before == len({L.key() for L in layers})
        dumps.append(json.dumps([s.to_dict() for s in out], sort_keys=True))
    assert dumps[0] == dumps[1]
    assert "solve_time" not in dumps[0]


@pytest.mark.parametrize("t", [T16, T8], ids=["pe16x16", "pe8x8"])
def test_solving_in_threads_gives_the_same_schedules(t):
    """jobs changes how fast, never what: every distinct layer solved again (caches
    cleared, counted) serially and in 2 and 3 threads gives identical schedules."""
    layers = squeezenext_layers("1.0-SqNxt-23")
    dumps = []
    for jobs in (1, 2, 3):
        clear_cache()
        before = solver_mod.STATS["solved"]
        out = schedule_layers(layers, t, jobs=jobs)
        assert solver_mod.STATS["solved"] - before == len({L.key() for L in layers})
        assert [s.layer.name for s in out] == [L.name for L in layers]
        dumps.append(json.dumps([s.to_dict() for s in out], sort_keys=True))
    assert dumps[0] == dumps[1] == dumps[2]


def test_in_threads_the_first_failing_layer_in_order_raises():
    """Two layers that fit nowhere, after and between feasible ones: the error names the
    first in the list's order, whichever thread fails first."""
    tiny = replace(T8, global_buffer_bytes=300)   # a 7x7 conv needs 400 bytes at least
    ok = Layer("ok", "conv", 2, 2, 4, 4, 1, 1, 4, 4)
    bad1 = Layer("bad1", "conv", 3, 8, 20, 20, 7, 7, 14, 14)
    bad2 = Layer("bad2", "conv", 4, 8, 22, 22, 7, 7, 16, 16)
    progress = []
    for jobs in (1, 2):
        clear_cache()
        with pytest.raises(ScheduleError, match="'bad1'"):
            schedule_layers([ok, bad1, replace(ok, name="ok2", C=3), bad2], tiny, jobs=jobs,
                            progress=lambda i, n, L: progress.append((jobs, i, n, L and L.name)))
        assert progress[-1][1:] == (1, 4, "bad1")


def test_distinct_layers_are_solved_once_and_names_kept(monkeypatch):
    clear_cache()
    calls = []
    real = solver_mod.schedule_layer

    def counting(L, t, **kw):
        calls.append(L.name)
        return real(L, t, **kw)

    monkeypatch.setattr(solver_mod, "schedule_layer", counting)
    layers = squeezenext_layers("1.0-SqNxt-23")
    out = schedule_layers(layers, T8)
    assert [s.layer.name for s in out] == [L.name for L in layers]
    assert len(calls) == len({L.key() for L in layers})
    out2 = schedule_layers(layers, T8)           # in-process cache
    assert len(calls) == len({L.key() for L in layers})
    assert [s.to_dict() for s in out2] == [s.to_dict() for s in out]


def test_disk_cache_roundtrip(tmp_path, monkeypatch):
    clear_cache()
    layers = [L for L in squeezenext_layers("1.0-SqNxt-23") if L.name in ("conv1", "fc1000", "pool1")]
    first = schedule_layers(layers, T16, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 3
    clear_cache()
    monkeypatch.setattr(solver_mod, "schedule_layer", lambda *a, **k: pytest.fail("not cached"))
    second = schedule_layers(layers, T16, cache_dir=tmp_path)
    assert all(s.cached for s in second)
    assert [s.to_dict() for s in second] == [s.to_dict() for s in first]


def _set(path, value):
    def edit(d):
        *head, last = path
        for k in head:
            d = d[k]
        d[last] = value(d[last]) if callable(value) else value
    return edit


TAMPER = {  # a bad cache entry -> the rule the note names
    "tile 0": (_set(("mapping", "tiles", "x"), 0), "tile x=0 outside 1..111"),
    "tile 1e12": (_set(("mapping", "tiles", "y"), 10 ** 12), "tile y=1000000000000 outside 1..111"),
    "tile -3": (_set(("mapping", "tiles", "k"), -3), "tile k=-3 outside"),
    "tile str": (_set(("mapping", "tiles", "c"), "3"), "tile c='3' outside"),
    "tile float": (_set(("mapping", "tiles", "c"), 1.0), "tile c=1.0 outside"),
    "dataflow": (_set(("mapping", "dataflow"), "XS"), "dataflow must be one of"),
    "order": (_set(("mapping", "order"), "kcyy"), "order must be a permutation"),
    "no tiles": (_set(("mapping",), {}), "mapping unreadable (KeyError)"),
    "cost": (_set(("cost", "total_cycles"), lambda v: v + 1), "cost differs"),
    "value": (_set(("objective", "value"), lambda v: v - 1), "objective value differs"),
    "objective": (_set(("objective", "name"), "energy"), "objective is not cycles"),
    "bound": (_set(("objective", "bound"), lambda v: v + 1), "bound outside 0..value"),
    "bound below": (_set(("objective", "bound"), lambda v: v - 1), "gap disagrees"),
    "gap": (_set(("objective", "gap"), 0.5), "gap disagrees"),
    "status": (_set(("status",), "feasible"), "is not a stored answer"),
    "solver": (_set(("solver",), "magic"), "is not a stored answer"),
    "tie_break": (_set(("tie_break",), "yes"), "tie_break is not a bool"),
    "list": (lambda d: d.clear() or d.update({"_": []}), "no 'mapping'"),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_a_bad_cache_entry_is_a_miss_with_a_note(tmp_path, case):
    clear_cache()
    L = next(L for L in squeezenext_layers("1.0-SqNxt-23") if L.name == "conv1")
    good = schedule_layers([L], T16, cache_dir=tmp_path)[0]
    (entry,) = tmp_path.glob("*.json")
    d = json.loads(entry.read_text())
    edit, rule = TAMPER[case]
    edit(d)
    entry.write_text(json.dumps(d))
    clear_cache()
    notes, solved = [], solver_mod.STATS["solved"]
    again = schedule_layers([L], T16, cache_dir=tmp_path, notes=notes)[0]
    assert solver_mod.STATS["solved"] == solved + 1 and not again.cached
    assert again.to_dict() == good.to_dict()
    assert len(notes) == 1 and rule in notes[0] and str(entry) in notes[0] and "'conv1'" in notes[0], notes
    assert json.loads(entry.read_text()) == good.to_dict()  # overwritten by the new answer


def test_a_cache_entry_that_is_not_json_is_a_miss(tmp_path):
    clear_cache()
    L = next(L for L in squeezenext_layers("1.0-SqNxt-23") if L.name == "pool1")
    good = schedule_layers([L], T16, cache_dir=tmp_path)[0]
    (entry,) = tmp_path.glob("*.json")
    for text in ("{", "[" * 100000, "\xff\xfe"):
        entry.write_bytes(text.encode("latin-1"))
        clear_cache()
        notes = []
        assert schedule_layers([L], T16, cache_dir=tmp_path, notes=notes)[0].to_dict() == good.to_dict()
        assert len(notes) == 1 and "not valid JSON" in notes[0]
    d = good.to_dict()
    d["mapping"]["dataflow"] = "WS"  # a pool has no weights
    entry.write_text(json.dumps(d))
    clear_cache()
    notes = []
    assert schedule_layers([L], T16, cache_dir=tmp_path, notes=notes)[0].to_dict() == good.to_dict()
    assert "has no weights: only OS applies" in notes[0]


def test_infeasible_layer_names_layer_and_smallest_buffer():
    tiny = replace(T8, global_buffer_bytes=64)
    L = Layer("conv7x7", "conv", 3, 8, 20, 20, 7, 7, 14, 14)
    need = 2 * (49 + 49 + 2) * 2        # all tiles 1, double-buffered, in bytes
    for fb in (None, "heuristic"):
        with pytest.raises(ScheduleError, match=rf"'conv7x7'.*needs {need} bytes"):
            schedule_layer(L, tiny, fallback=fb)
    with pytest.raises(ScheduleError, match="'conv7x7'"):
        schedule_layers([L], tiny)


def test_time_limit_records_bound_and_gap(monkeypatch):
    """Stop at the first solution (what a time limit does, deterministically): the
    schedule is 'feasible' with the proven bound and the gap."""
    real = layer_solve.PARAMS.solver

    def first_solution(left):
        s = real(left)
        s.parameters.stop_after_first_solution = True
        return s

    monkeypatch.setattr(layer_solve, "PARAMS", SimpleNamespace(solver=first_solution))
    L = next(L for L in MAC if L.name == "conv1")
    s = schedule_layer(L, T16, time_limit=30)
    assert s.status in ("feasible", "optimal")
    assert s.bound <= s.objective_value == evaluate(L, T16, s.mapping).total_cycles
    assert s.gap == round((s.objective_value - s.bound) / s.objective_value, 6)
    if s.status == "feasible":
        assert not s.tie_break and s.to_dict()["objective"]["gap"] == s.gap


def test_real_time_limit_never_crashes():
    L = next(L for L in MAC if L.name == "conv1")
    for fb in (None, "heuristic"):
        try:
            s = schedule_layer(L, T8, time_limit=0.001, fallback=fb)
        except ScheduleError as exc:
            assert fb is None and "'conv1'" in str(exc)
            continue
        assert s.status in ("optimal", "feasible", "heuristic")
        assert s.cost.fits


class Unknown(cp_model.CpSolver):
    """A solver that stops before its first solution (as on a time limit)."""

    def solve(self, model, *a, **k):
        return cp_model.UNKNOWN


def test_solver_failure_uses_the_heuristic_when_asked(monkeypatch):
    """No CP-SAT solution and no enumerated incumbent: an error, or the heuristic."""
    monkeypatch.setattr(layer_solve, "PARAMS", SimpleNamespace(solver=lambda left: Unknown()))
    monkeypatch.setattr(heuristic_mod, "INCUMBENT_LIMIT", 0)
    L = next(L for L in MAC if L.name == "s2b1_sep2")
    with pytest.raises(ScheduleError, match="'s2b1_sep2'.*time limit"):
        schedule_layer(L, T16, time_limit=1.0)
    s = schedule_layer(L, T16, time_limit=1.0, fallback="heuristic")
    assert s.status == "heuristic" and s.solver == "heuristic" and s.note
    d = s.to_dict()
    assert d["status"] == "heuristic" and "time limit" in d["note"]
    m, r = heuristic_mapping(L, T16)
    assert s.mapping == m and r.fits


@pytest.mark.slow
def test_heuristic_fits_on_every_layer():
    for L in ALL:
        for t in (T16, T8):
            m, r = heuristic_mapping(L, t)
            assert r.fits
            best = exhaustive_best(L, t)[1]
            assert r.total_cycles >= best.total_cycles


def test_bad_options_are_usage_errors():
    """Arguments no option can produce are a usage error (exit 2), not a scheduling one."""
    from sqnxt_compiler.diagnostics import ExitCode, UsageError

    L = MAC[0]
    for kwargs, what in (({"objective": "speed"}, "objective"), ({"fallback": "random"}, "fallback"),
                         ({"time_limit": 0}, "time limit")):
        with pytest.raises(UsageError, match=what) as info:
            schedule_layer(L, T16, **kwargs)
        assert info.value.code == ExitCode.USAGE
    for jobs in (0, -1, 1.5, True):
        with pytest.raises(UsageError, match="jobs") as info:
            schedule_layers([L], T16, jobs=jobs)
        assert info.value.code == ExitCode.USAGE


def test_to_dict_is_json_and_roundtrips():
    L = MAC[0]
    s = schedule_layer(L, T16)
    d = s.to_dict()
    json.dumps(d)
    assert LayerSchedule.from_dict(json.loads(json.dumps(d)), L, T16) == s
    assert "timing" not in d and "timing" in s.to_dict(include_timing=True)
    assert SECONDARY["cycles"] == "energy"


@pytest.mark.parametrize("L", [Layer("sq_1.5x", "conv", 48, 48, 55, 55, 1, 1, 28, 28, 2, 2),
                               Layer("sep_2.0x", "conv", 64, 128, 14, 14, 3, 1, 14, 14, pad_top=1,
                                     pad_bottom=1)], ids=lambda L: L.name)
def test_large_objective_values_are_fixed_exactly(L):
    """Regression: fixing a stage's optimum from the float objective_value (42160895.99...)
    made the next stage infeasible; stages now fix the exact integer value."""
    s = schedule_layer(L, T8)
    m, r = exhaustive_best(L, T8)
    assert s.mapping == m and s.status == "optimal" and s.tie_break
    assert r.energy_total > 2 ** 24


FC = [Layer("fc6", "fc", 9216, 4096, 1, 1, 1, 1, 1, 1), Layer("fc8", "fc", 4096, 1000, 1, 1, 1, 1, 1, 1)]


@pytest.mark.parametrize("t", [T16, T8], ids=["pe16x16", "pe8x8"])
def test_large_fc_layers_equal_oracle(t):
    """The layers CP-SAT alone is slow on (hundreds of c and k candidates) get an
    enumerated incumbent: still the oracle's answer, proven, tie-broken."""
    for L in FC:
        assert solver_mod.incumbent(L, t, "cycles") is not None
        s = schedule_layer(L, t)
        m, r = exhaustive_best(L, t)
        assert s.status == "optimal" and s.tie_break and s.solver == "cp-sat"
        assert s.mapping == m and s.cost == r and s.bound == s.objective_value


@pytest.mark.parametrize("objective", ["cycles", "energy", "edp"])
def test_incumbent_is_only_a_cutoff(objective, monkeypatch):
    """The answer does not depend on the incumbent: CP-SAT alone (no incumbent), with the
    enumerated one, and with a poor one (the heuristic mapping) give the same schedule."""
    layers = [L for L in SUBSET if L.name in ("fc1000", "s2b1_sep2", "s4b1_sep2")]
    layers += [FC[1]] if objective != "edp" else []         # CP-SAT alone: 2-5 s on EDP
    with_inc = [schedule_layer(L, T8, objective=objective).to_dict() for L in layers]
    assert all(solver_mod.incumbent(L, T8, objective) is not None for L in layers)

    def poor(L, t, obj):
        m, r = heuristic_mapping(L, t)
        return solver_mod.Incumbent(m, {"cycles": r.total_cycles, "energy": r.energy_total,
                                        "edp": r.total_cycles * r.energy_total})

    monkeypatch.setattr(layer_solve, "incumbent", poor)
    monkeypatch.setattr(edp_mod, "incumbent", poor)
    assert [schedule_layer(L, T8, objective=objective).to_dict() for L in layers] == with_inc
    monkeypatch.undo()
    monkeypatch.setattr(heuristic_mod, "INCUMBENT_LIMIT", 0)
    assert all(solver_mod.incumbent(L, T8, objective) is None for L in layers)
    assert [schedule_layer(L, T8, objective=objective).to_dict() for L in layers] == with_inc


def test_time_limit_before_first_solution_returns_the_incumbent_as_feasible(monkeypatch):
    """When CP-SAT finds nothing within the limit but the enumerated incumbent exists, the
    schedule is that mapping, status 'feasible' with a valid bound and the gap, never a
    heuristic mapping (which can only be worse) and never an error."""
    monkeypatch.setattr(layer_solve, "PARAMS", SimpleNamespace(solver=lambda left: Unknown()))
    L = next(L for L in MAC if L.name == "s2b1_sep2")
    inc = solver_mod.incumbent(L, T16, "cycles")
    assert inc is not None
    for fb in (None, "heuristic"):
        s = schedule_layer(L, T16, time_limit=5.0, fallback=fb)
        assert s.status == "feasible" and s.mapping == inc.mapping and not s.tie_break
        assert s.objective_value == inc.values["cycles"] == s.cost.total_cycles
        assert 0 <= s.bound <= s.objective_value
        assert s.gap == round((s.objective_value - s.bound) / s.objective_value, 6)
        assert "incumbent" in s.to_dict()["note"]


@pytest.mark.parametrize("allowed", ["WS", "OS"])
def test_a_target_restricted_to_one_dataflow(allowed):
    """``dataflow.allowed``: conv/fc layers get that dataflow only (pools OS, as always);
    the answer is the unrestricted space's best of that dataflow (the oracle's own
    restriction, computed on the unrestricted target), and never beats the free choice."""
    clear_cache()
    t = replace(T8, dataflow_allowed=allowed)
    assert t.fingerprint() != T8.fingerprint()
    layers = distinct(squeezenext_layers("1.0-SqNxt-23"))[:8]
    assert any(L.is_mac for L in layers) and any(not L.is_mac for L in layers)
    for L in layers:
        s, free = schedule_layer(L, t), schedule_layer(L, T8)
        assert s.mapping.dataflow == (allowed if L.is_mac else "OS"), L.name
        assert s.objective_value >= free.objective_value
        m, r = exhaustive_best(L, T8, "cycles", dataflows=(allowed,) if L.is_mac else None)
        assert s.objective_value == r.total_cycles, L.name


def test_a_cached_lrn_split_over_channels_is_a_miss(tmp_path):
    """An entry written before an lrn's k tile had to span its channels (Layer.spanned),
    with its cost recomputed so only that rule can reject it, is a miss with a note."""
    from sqnxt_compiler.cost import evaluate
    from sqnxt_compiler.cost.layer import ElementFn
    from sqnxt_compiler.cost.mapping import Mapping

    clear_cache()
    L = Layer("norm", "eltwise", C=96, K=96, H=27, W=27, R=1, S=1, P=27, Q=27,
              element=ElementFn("lrn", ops=5, funcs=1))
    good = schedule_layers([L], T8, cache_dir=tmp_path)[0]
    assert good.mapping.tk == 96
    (entry,) = tmp_path.glob("*.json")
    d = json.loads(entry.read_text())
    m = Mapping(good.mapping.dataflow, good.mapping.tx, good.mapping.ty, good.mapping.tc, 48, good.mapping.order)
    cost = evaluate(L, T8, m)
    assert cost.fits
    d["mapping"] = m.to_dict()
    d["cost"] = cost.to_dict()
    d["objective"].update(value=cost.total_cycles, bound=cost.total_cycles, gap=0.0)
    entry.write_text(json.dumps(d))
    clear_cache()
    notes = []
    again = schedule_layers([L], T8, cache_dir=tmp_path, notes=notes)[0]
    assert again.to_dict() == good.to_dict() and not again.cached
    assert len(notes) == 1 and "splits the 96 channels" in notes[0], notes


def test_the_heuristic_fallback_keeps_an_lrn_whole_over_its_channels():
    from sqnxt_compiler.cost.layer import ElementFn

    L = Layer("norm", "eltwise", C=96, K=96, H=27, W=27, R=1, S=1, P=27, Q=27,
              element=ElementFn("lrn", ops=5, funcs=1))
    m, cost = heuristic_mapping(L, T8)
    assert m.tk == 96 and cost.fits and (m.tx, m.ty) != (27, 27)
