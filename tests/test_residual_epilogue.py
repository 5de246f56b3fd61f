"""A fused residual add in the cost model (docs/cost-model.md, "Fused residual add"): what
reading a residual in the epilogue adds to a conv or fc, from DRAM or resident, that nothing
else changes, and that the solver still finds the exhaustive search's answer."""
from __future__ import annotations

from dataclasses import replace
from itertools import product

import pytest

from sqnxt_compiler.cost import Epilogue, Homes, Layer, evaluate
from sqnxt_compiler.diagnostics import UnsupportedError
from sqnxt_compiler.schedule.oracle import exhaustive_best
from sqnxt_compiler.schedule.solver import schedule_layer
from sqnxt_compiler.targets import load_target

from test_operand_homes import assert_reduced_space_is_exact, some_mappings

T16, T8 = load_target("pe16x16"), load_target("pe8x8")

LAYERS = [
    Layer("expand", "conv", C=32, K=128, H=14, W=14, R=1, S=1, P=14, Q=14),
    Layer("sep", "conv", C=64, K=64, H=14, W=14, R=1, S=3, P=14, Q=14, pad_left=1, pad_right=1),
    Layer("grouped", "conv", C=64, K=64, H=14, W=14, R=1, S=1, P=14, Q=14, groups=2),
    Layer("dw", "conv", C=64, K=64, H=14, W=14, R=3, S=3, P=14, Q=14, pad_top=1, pad_left=1,
          pad_bottom=1, pad_right=1, groups=64),
    Layer("fc", "fc", C=512, K=100, H=1, W=1, R=1, S=1, P=1, Q=1),
]


def variants(L: Layer):
    """The layer with a residual from DRAM and a resident one, each with every output home."""
    for res_res, out in product((False, True), (False, True)):
        yield replace(L, epilogue=Epilogue(residual=True), homes=Homes(resident_residual=res_res, resident_output=out))


@pytest.mark.parametrize("L", LAYERS, ids=[L.name for L in LAYERS])
def test_a_residual_adds_exactly_the_documented_terms(L):
    for m in some_mappings(L):
        for R in variants(L):
            b = evaluate(replace(R, epilogue=Epilogue(), homes=replace(R.homes, resident_residual=False)), T16, m)
            r = evaluate(R, T16, m)
            n = r.tiles_n
            out_tiles = L.eff_groups * n["x"] * n["y"] * n["k"]
            words = L.K * L.P * L.Q
            from_dram = not R.homes.resident_residual
            assert r.dram["residual_reads"] == (words if from_dram else 0)
            assert r.dram["total"] == b.dram["total"] + r.dram["residual_reads"]
            assert r.transfers["residual"] == (out_tiles if from_dram else 0)
            assert r.transfers["total"] == b.transfers["total"] + r.transfers["residual"]
            tile = min(m.tx, L.Q) * min(m.ty, L.P) * min(m.tk, L.Kg)
            assert r.footprint["residual"] == (tile if from_dram else 0)
            assert r.footprint["total"] == b.footprint["total"] + r.footprint["copies"] * r.footprint["residual"]
            # the adder is on the output path: no array cycles, one add and one buffer read
            # per output element
            assert r.compute_cycles == b.compute_cycles and r.macs_performed == b.macs_performed
            assert r.accesses["mac"] == b.accesses["mac"] + words
            assert r.accesses["buffer"] == b.accesses["buffer"] + words + r.dram["residual_reads"]
            assert r.energy["dram"] == b.energy["dram"] + T16.e_dram * r.dram["residual_reads"]
            assert r.energy_total == (b.energy_total + (T16.e_mac + T16.e_buffer) * words
                                      + (T16.e_buffer + T16.e_dram) * r.dram["residual_reads"])
            assert r.prologue_cycles == b.prologue_cycles and r.epilogue_cycles == b.epilogue_cycles
            assert r.total_cycles >= b.total_cycles


@pytest.mark.parametrize("L", LAYERS, ids=[L.name for L in LAYERS])
@pytest.mark.parametrize("t", [T16, pytest.param(T8, marks=pytest.mark.slow)], ids=["pe16x16", "pe8x8"])
def test_solver_equals_the_exhaustive_search_with_a_residual(L, t):
    for R in variants(L):
        for objective in ("cycles", "energy"):
            s = schedule_layer(R, t, objective=objective)
            m, r = exhaustive_best(R, t, objective)
            assert s.status == "optimal" and s.mapping == m, (R, objective)
            assert s.cost == r == evaluate(R, t, m)


def test_reduced_space_equals_brute_force_on_a_tiny_residual_layer():
    L = Layer("tiny", "conv", C=4, K=4, H=7, W=6, R=3, S=3, P=5, Q=4)
    t = replace(T8, global_buffer_bytes=500)
    for R in variants(L):
        for cap in (None, 150):
            assert_reduced_space_is_exact(R.with_homes(capacity=cap), t)


@pytest.mark.parametrize("make,msg", [
    (lambda L: replace(L, epilogue=Epilogue(residual=1)), "residual must be true or false"),
    (lambda L: L.with_homes(resident_residual=True), "layer 'expand' \\(conv\\): resident_residual needs a residual"),
])
def test_bad_residual_fields_are_rejected(make, msg):
    with pytest.raises(UnsupportedError, match=msg):
        make(LAYERS[0])


def test_only_conv_and_fc_take_a_residual():
    pool = Layer("p", "maxpool", C=8, K=8, H=8, W=8, R=2, S=2, P=4, Q=4, stride_h=2, stride_w=2)
    with pytest.raises(UnsupportedError, match="only conv and fc take a fused residual add"):
        replace(pool, epilogue=Epilogue(residual=True))


def test_the_residual_is_part_of_the_key_not_of_the_shape():
    L = LAYERS[0]
    res = replace(L, epilogue=Epilogue(residual=True))
    R = res.with_homes(resident_residual=True)
    assert R.key() != res.key() != L.key()
    assert R.shape_key() == L.shape_key()


def test_a_conv_without_bias_but_with_a_fused_residual_has_no_bias():
    """Its third operand is the residual, not a bias (ESPNet's dilated branches: a
    bias-free conv + add): the cost model counts no bias, so the program's LOADs and the
    cost model agree (this was an internal error of --program, exit 70)."""
    import dataclasses

    import numpy as np
    from onnx import helper

    from support import inferred_model, rand
    from sqnxt_compiler import driver
    from sqnxt_compiler.program.lower import lower
    from sqnxt_compiler.program.verify import verify_lowered

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["b"], pads=[2, 2, 2, 2], dilations=[2, 2]),
             helper.make_node("Add", ["b", "a"], ["y"])]
    model = inferred_model(nodes, [("x", [1, 4, 8, 8])], ["y"],
                           [("w1", rand(rng, 6, 4, 3, 3)), ("w2", rand(rng, 6, 4, 3, 3))])
    tgt = dataclasses.replace(load_target("pe16x16"), activation_home="dram")
    res = driver.compile((model, "nobias.onnx"), target=tgt)
    fused = [op for op in res.graph.ops() if op.name == "sqnxt.conv" and op.attrs["residual"]]
    assert len(fused) == 1 and len(fused[0].operands) == 3
    L = fused[0].attrs["schedule"].schedule.layer
    assert L.epilogue.residual and not L.epilogue.bias
    assert fused[0].attrs["schedule"].schedule.cost.dram["bias_reads"] == 0
    verify_lowered(lower(res.graph, tgt))
