"""Operand homes in the cost model (docs/cost-model.md, "Operand homes"): what a resident
input, a resident output and a reduced capacity change, that nothing else changes, and
that the solver still finds the exhaustive search's answer with them."""
from __future__ import annotations

from dataclasses import replace
from itertools import product

import pytest

from sqnxt_compiler.cost import Layer, Mapping, evaluate
from sqnxt_compiler.cost.mapping import ORDERS
from sqnxt_compiler.diagnostics import ScheduleError, UnsupportedError
from sqnxt_compiler.cost.model import objective_value
from sqnxt_compiler.schedule.oracle import SECONDARY, brute_force_best, exhaustive_best
from sqnxt_compiler.schedule.solver import schedule_layer
from sqnxt_compiler.targets import load_target

T16, T8 = load_target("pe16x16"), load_target("pe8x8")

LAYERS = [
    Layer("sep1", "conv", C=32, K=64, H=14, W=14, R=3, S=1, P=14, Q=14, pad_top=1, pad_bottom=1),
    Layer("sq", "conv", C=128, K=64, H=14, W=14, R=1, S=1, P=14, Q=14),
    Layer("s2", "conv", C=64, K=128, H=28, W=28, R=1, S=1, P=14, Q=14, stride_h=2, stride_w=2),
    Layer("dw", "conv", C=64, K=64, H=14, W=14, R=3, S=3, P=14, Q=14, pad_top=1, pad_left=1,
          pad_bottom=1, pad_right=1, groups=64),
    Layer("add", "add", C=128, K=128, H=14, W=14, R=1, S=1, P=14, Q=14, n_inputs=2),
    Layer("pool", "maxpool", C=64, K=64, H=28, W=28, R=3, S=3, P=14, Q=14, stride_h=2, stride_w=2,
          pad_bottom=1, pad_right=1),
    Layer("fc", "fc", C=512, K=100, H=1, W=1, R=1, S=1, P=1, Q=1),
]


def homes(L: Layer):
    """Every combination of resident inputs (0..n_inputs) and a resident output."""
    for r, o in product(range(L.n_inputs + 1), (False, True)):
        yield L.with_homes(resident_inputs=r, resident_output=o)


def some_mappings(L: Layer, n: int = 40):
    """A deterministic spread of mappings of L (both dataflows where allowed, several
    tile sizes and orders)."""
    out = []
    dfs = ("WS", "OS") if L.is_mac else ("OS",)
    sizes = lambda b: sorted({1, max(1, b // 3), max(1, b // 2), b})  # noqa: E731
    i = 0
    for df in dfs:
        for tx, ty, tc, tk in product(sizes(L.Q), sizes(L.P), sizes(L.Cg), sizes(L.Kg)):
            out.append(Mapping(df, tx, ty, tc, tk, ORDERS[(i * 7) % 24]))
            i += 1
    return out[:: max(1, len(out) // n)]


@pytest.mark.parametrize("L", LAYERS, ids=[L.name for L in LAYERS])
def test_homes_change_exactly_the_documented_terms(L):
    for m in some_mappings(L):
        b = evaluate(L, T16, m)
        for H in homes(L):
            h = evaluate(H, T16, m)
            in_dram = L.n_inputs - H.homes.resident_inputs
            n = b.tiles_n
            per_input = b.dram["input_reads"] // L.n_inputs
            assert h.dram["input_reads"] == per_input * in_dram
            assert h.dram["output_writes"] == (0 if H.homes.resident_output else b.dram["output_writes"])
            assert h.dram["weight_reads"] == b.dram["weight_reads"]
            assert h.dram["psum_writes"] == b.dram["psum_writes"]   # spills still go to DRAM
            assert h.transfers["input"] == b.transfers["input"] // L.n_inputs * in_dram
            assert h.transfers["outputs"] == b.transfers["outputs"] - (
                n["x"] * n["y"] * n["k"] * (L.eff_groups) if H.homes.resident_output else 0)
            assert h.footprint["input"] == b.footprint["input"] // L.n_inputs * in_dram
            assert (h.footprint["weights"], h.footprint["outputs"]) == (b.footprint["weights"],
                                                                        b.footprint["outputs"])
            assert h.epilogue_cycles == (0 if H.homes.resident_output else b.epilogue_cycles)
            # compute and the array side do not see where the operands live
            assert h.compute_cycles == b.compute_cycles and h.macs_performed == b.macs_performed
            for level in ("mac", "rf", "array"):
                assert h.accesses[level] == b.accesses[level]
            saved = b.dram["total"] - h.dram["total"]
            assert h.accesses["buffer"] == b.accesses["buffer"] - saved
            assert h.energy_total == b.energy_total - (T16.e_dram + T16.e_buffer) * saved
            # never worse: a resident operand only removes work
            assert h.total_cycles <= b.total_cycles and h.footprint["total"] <= b.footprint["total"]


WEIGHTED = [L for L in LAYERS if L.weight_words] + [
    replace(LAYERS[1], name="sq_bias", epilogue=replace(LAYERS[1].epilogue, bias=True))]


@pytest.mark.parametrize("L", WEIGHTED, ids=[L.name for L in WEIGHTED])
def test_resident_weights_change_exactly_the_weight_terms(L):
    """Weights (and bias) resident (a fused stack's members, docs/cost-model.md "Operand
    homes"): no weight or bias DRAM reads, transfers, tile region or prologue load; the
    array side and every other operand unchanged."""
    bias = L.K * T16.psum_words if L.epilogue.bias else 0
    for m in some_mappings(L):
        b = evaluate(L, T16, m)
        h = evaluate(L.with_homes(resident_weights=True), T16, m)
        assert h.dram["weight_reads"] == h.dram["bias_reads"] == 0
        assert b.dram["bias_reads"] == bias
        assert h.dram["total"] == b.dram["total"] - b.dram["weight_reads"] - bias
        assert h.transfers["weights"] == h.transfers["bias"] == 0
        assert h.transfers["total"] == b.transfers["total"] - b.transfers["weights"] - b.transfers["bias"]
        assert h.footprint["weights"] == 0
        assert h.footprint["total"] == b.footprint["total"] - 2 * b.footprint["weights"]
        n_loads = (1 if L.weight_words else 0) + (1 if bias else 0)
        bw = T16.dram_words_per_cycle
        def load(words):
            return -(-words * bw.denominator // bw.numerator)
        assert b.prologue_cycles == (T16.dram_latency_cycles * (1 + n_loads)
                                     + load(b.footprint["input"] + b.footprint["weights"] + bias))
        assert h.prologue_cycles == T16.dram_latency_cycles + load(b.footprint["input"])
        assert h.compute_cycles == b.compute_cycles and h.accesses["array"] == b.accesses["array"]
        saved = b.dram["total"] - h.dram["total"]
        assert h.accesses["buffer"] == b.accesses["buffer"] - (saved - bias)
        assert h.total_cycles <= b.total_cycles


@pytest.mark.parametrize("L", WEIGHTED[:3], ids=[L.name for L in WEIGHTED[:3]])
def test_solver_equals_the_exhaustive_search_with_resident_weights(L):
    for cap in (None, 3000):
        X = L.with_homes(resident_weights=True, resident_inputs=1, resident_output=True, capacity=cap)
        for objective in ("cycles", "energy"):
            s = schedule_layer(X, T16, objective=objective)
            m, r = exhaustive_best(X, T16, objective)
            assert s.status == "optimal" and s.mapping == m, (X, objective)
            assert s.cost == r == evaluate(X, T16, m)


@pytest.mark.parametrize("L", LAYERS, ids=[L.name for L in LAYERS])
@pytest.mark.parametrize("t", [T16, pytest.param(T8, marks=pytest.mark.slow)], ids=["pe16x16", "pe8x8"])
def test_solver_equals_the_exhaustive_search_with_homes(L, t):
    in_words = L.C * L.H * L.W
    out_words = L.K * L.P * L.Q
    for H in homes(L):
        left = t.buffer_words - in_words * H.homes.resident_inputs - (out_words if H.homes.resident_output else 0)
        for cap in (None, left) if left > 0 else (None,):
            X = H.with_homes(capacity=cap)
            for objective in ("cycles", "energy"):
                s = schedule_layer(X, t, objective=objective)
                m, r = exhaustive_best(X, t, objective)
                assert s.status == "optimal" and s.mapping == m, (X, objective)
                assert s.cost == r == evaluate(X, t, m)
                assert r.footprint["capacity"] == (t.buffer_words if cap is None else cap)
                assert r.fits


def test_reduced_space_equals_brute_force_on_a_tiny_homed_layer():
    L = Layer("tiny", "conv", C=4, K=4, H=7, W=6, R=3, S=3, P=5, Q=4, groups=1)
    t = replace(T8, global_buffer_bytes=500)
    for H in homes(L):
        for cap in (None, 160):
            assert_reduced_space_is_exact(H.with_homes(capacity=cap), t)


def assert_reduced_space_is_exact(X: Layer, t) -> None:
    """The reduced space's best mapping (exhaustive_best) is the whole space's (brute
    force), objective, secondary objective and tie-break alike, for cycles and energy."""
    from sqnxt_compiler.schedule.oracle import brute_force_table

    table = brute_force_table(X, t)
    for objective in ("cycles", "energy"):
        bf = brute_force_best(X, t, objective, table=table)
        m, r = exhaustive_best(X, t, objective)
        assert (objective_value(r, objective), objective_value(r, SECONDARY[objective])) == bf[:2]
        assert (m.dataflow, m.order, m.tx, m.ty, m.tc, m.tk) == (
            ("WS", "OS")[bf[2]], ORDERS[bf[3]]) + bf[4:], X


def test_a_capacity_too_small_names_the_bytes_left():
    L = LAYERS[0].with_homes(capacity=10)
    with pytest.raises(ScheduleError, match=r"the 20 bytes left to it in the 131072-byte global buffer"):
        schedule_layer(L, T16)


@pytest.mark.parametrize("field,value,msg", [
    ("resident_inputs", 2, "layer 'sep1' \\(conv\\): resident_inputs must be an integer in 0..n_inputs=1"),
    ("resident_inputs", -1, "resident_inputs must be a non-negative integer"),
    ("resident_inputs", True, "resident_inputs"),
    ("resident_output", 1, "resident_output must be true or false"),
    ("resident_residual", 1, "resident_residual must be true or false"),
    ("resident_weights", 1, "resident_weights must be true or false"),
    ("capacity", 0, "capacity must be a positive number of words"),
    ("capacity", 2.5, "capacity must be a positive number of words"),
])
def test_bad_homes_are_rejected(field, value, msg):
    with pytest.raises(UnsupportedError, match=msg):
        LAYERS[0].with_homes(**{field: value})


def test_homes_are_part_of_the_key_not_of_the_shape():
    L = LAYERS[0]
    H = L.with_homes(resident_inputs=1, resident_output=True, capacity=1000)
    assert H.key() != L.key() and H.shape_key() == L.shape_key()
    W = L.with_homes(resident_weights=True)
    assert W.key() != L.key() and W.shape_key() == L.shape_key()


@pytest.mark.parametrize("L", LAYERS, ids=[L.name for L in LAYERS])
def test_a_hint_changes_how_fast_not_what(L):
    """The planner starts a homed layer's solve from the layer's mapping alone: the answer
    is the same unique tie-broken optimum as without the hint, whether the hint fits the
    homed capacity or not."""
    alone = schedule_layer(L, T16)
    for H in homes(L):
        for cap in (None, alone.cost.footprint["total"] - 1):
            X = H.with_homes(capacity=cap)
            try:
                plain = schedule_layer(X, T16)
            except ScheduleError:
                continue
            hinted = schedule_layer(X, T16, hint=alone.mapping)
            assert (hinted.mapping, hinted.cost, hinted.status) == (plain.mapping, plain.cost, plain.status)
