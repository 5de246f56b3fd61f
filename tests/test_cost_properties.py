"""Properties of the cost model: monotonicity and conservation, on the 1.0-SqNxt-23 layers
and on hand-made shapes, over a deterministic sample of mappings."""
from __future__ import annotations

import random
from dataclasses import replace
from fractions import Fraction
from itertools import product
from pathlib import Path

import pytest

from sqnxt_compiler.cost import ORDERS, Layer, Mapping, evaluate
from sqnxt_compiler.cost.features import ceil_div, tiles
from sqnxt_compiler.cost.reference_layers import distinct, squeezenext_layers, table4_layers
from sqnxt_compiler.schedule.oracle import exhaustive_best, min_over_space
from sqnxt_compiler.targets import load_target

ROOT = Path(__file__).resolve().parents[1]
T16, T8 = load_target("pe16x16"), load_target("pe8x8")
T4 = [L for L, _ in table4_layers(ROOT / "docs" / "spec" / "sqnxt23_table4.csv")]


def sample_mappings(L: Layer, n: int, seed: int):
    rng = random.Random(seed)
    dfs = ("WS", "OS") if L.is_mac else ("OS",)
    for _ in range(n):
        yield Mapping(rng.choice(dfs), rng.randint(1, L.Q), rng.randint(1, L.P), rng.randint(1, L.Cg),
                      rng.randint(1, L.Kg), rng.choice(ORDERS))


def test_table4_layers_match_the_block_rules():
    """The rule builder reproduces Table 4's distinct conv/fc shapes (the table folds the
    alternating 1x3/3x1 pair, the rules produce both orientations)."""
    rules = {L.key() for L in squeezenext_layers("1.0-SqNxt-23") if L.is_mac}
    assert rules == {L.key() for L in T4}
    total = sum(L.macs for L in squeezenext_layers("1.0-SqNxt-23") if L.is_mac)
    assert 276e6 < total < 280e6          # the spec: 278M without the bias MAC


def test_more_bandwidth_never_costs_more_cycles():
    bws = [Fraction(4), Fraction(8), Fraction(16), Fraction(32), Fraction(64)]
    targets = [replace(T16, dram_bandwidth_gb_per_s=b) for b in bws]
    for i, L in enumerate(T4):
        for m in sample_mappings(L, 6, i):
            cyc = [evaluate(L, t, m).total_cycles for t in targets]
            assert cyc == sorted(cyc, reverse=True), (L.name, m, cyc)


def test_less_latency_never_costs_more_cycles():
    targets = [replace(T8, dram_latency_cycles=lat) for lat in (400, 100, 10, 0)]
    for i, L in enumerate(T4[::3]):
        for m in sample_mappings(L, 4, 100 + i):
            cyc = [evaluate(L, t, m).total_cycles for t in targets]
            assert cyc == sorted(cyc, reverse=True)


@pytest.mark.parametrize("name", ["conv1", "conv2", "conv5", "conv39", "conv73", "conv110", "fc1000"])
def test_bigger_buffer_never_forces_more_dram_traffic(name):
    L = next(L for L in T4 if L.name == name)
    prev = None
    for kb in (16, 32, 64, 128, 256, 512):
        t = replace(T8, global_buffer_bytes=kb * 1024)
        cur = (min_over_space(L, t, "dram_words"), min_over_space(L, t, "total_cycles"),
               min_over_space(L, t, "energy_total"))
        if prev is not None and prev[0] is not None:
            assert all(c <= p for c, p in zip(cur, prev)), (kb, cur, prev)
        prev = cur
    # and the best-cycles mapping found by the oracle fits
    m, r = exhaustive_best(L, replace(T8, global_buffer_bytes=512 * 1024))
    assert r.fits


def explicit_passes(L: Layer, t, m: Mapping):
    """Walk every tile and every pass (no closed forms): MACs issued and pass cycles."""
    macs = cycles = 0
    d = min(t.pe_rows, t.pe_cols)
    for (xa, xb), (ya, yb), (ca, cb), (ka, kb) in product(tiles(L.Q, m.tx), tiles(L.P, m.ty),
                                                          tiles(L.Cg, m.tc), tiles(L.Kg, m.tk)):
        pix = (xb - xa) * (yb - ya)
        for _ in range(L.eff_groups):
            if m.dataflow == "WS":
                for _tap in range(L.R * L.S):
                    if L.channelwise:
                        for ba, bb in tiles(kb - ka, d):
                            macs += (bb - ba) * pix
                            cycles += pix + t.weight_load_cycles
                        continue
                    for ra, rb in tiles(cb - ca, t.pe_rows):
                        for qa, qb in tiles(kb - ka, t.pe_cols):
                            macs += (rb - ra) * (qb - qa) * pix
                            cycles += pix + t.weight_load_cycles
            else:
                nz = 1 if L.weight_zero_fraction is None else 1 - L.weight_zero_fraction
                z = ceil_div((cb - ca) * L.R * L.S * nz.numerator, nz.denominator)
                for _k in range(kb - ka):
                    for ya2, yb2 in tiles(yb - ya, t.pe_rows):
                        for xa2, xb2 in tiles(xb - xa, t.pe_cols):
                            macs += (yb2 - ya2) * (xb2 - xa2) * z
                            cycles += max(z, t.os_drain_cycles)
    return macs, cycles


SHAPES = [
    Layer("a", "conv", 20, 40, 13, 11, 3, 1, 13, 11, pad_top=1, pad_bottom=1, weight_zero_fraction=Fraction(0)),
    Layer("b", "conv", 3, 24, 23, 23, 7, 7, 9, 9, 2, 2, weight_zero_fraction=Fraction(0)),
    Layer("c", "conv", 40, 40, 9, 9, 3, 3, 9, 9, 1, 1, 1, 1, 1, 1, groups=40, weight_zero_fraction=Fraction(0)),
    Layer("d", "conv", 36, 20, 10, 10, 1, 1, 10, 10, groups=2, weight_zero_fraction=Fraction(0)),
    Layer("e", "fc", 70, 33, 1, 1, 1, 1, 1, 1, weight_zero_fraction=Fraction(0)),
]


@pytest.mark.parametrize("L", SHAPES, ids=lambda L: L.name)
def test_every_mac_is_counted_once(L):
    for t in (T16, T8):
        for m in sample_mappings(L, 12, 7):
            r = evaluate(L, t, m)
            macs, cycles = explicit_passes(L, t, m)
            assert r.macs_performed == macs == L.macs, m
            extra = t.pipeline_fill_cycles + (t.os_drain_cycles if m.dataflow == "OS" else 0)
            assert r.compute_cycles == cycles + extra, m


def test_every_output_is_written_once_when_c_is_not_split():
    for i, L in enumerate(T4):
        for m in sample_mappings(L, 8, 50 + i):
            m = replace(m, tc=L.Cg)
            r = evaluate(L, T16, m)
            assert r.dram["output_writes"] == L.K * L.P * L.Q
            assert r.dram["psum_writes"] == r.dram["psum_reads"] == 0
            assert r.refetch["output_visits"] == 1


def test_inputs_and_weights_are_read_at_least_once_and_as_the_order_says():
    L = next(L for L in T4 if L.name == "conv39")       # 64 -> 32, 28x28
    for m in sample_mappings(L, 40, 3):
        r = evaluate(L, T16, m)
        assert r.dram["weight_reads"] == L.weight_words * r.refetch["weight_refetch"]
        assert r.dram["input_reads"] == L.C * L.H * L.W * r.refetch["input_refetch"]
        pos = {l: i for i, l in enumerate(m.order)}
        n = r.tiles_n
        expect_in = n["k"] if any(pos["k"] < pos[l] and n[l] > 1 for l in "xyc") else 1
        assert r.refetch["input_refetch"] == expect_in


def test_reports_are_integers_and_json_safe():
    import json

    L = T4[0]
    for m in sample_mappings(L, 5, 1):
        d = evaluate(L, T16, m).to_dict()
        json.dumps(d)
        for sub in ("dram", "transfers", "energy", "accesses", "footprint"):
            assert all(isinstance(v, int) for v in d[sub].values())


def test_all_sqnxt_layers_build_and_cost():
    for variant in ("1.0-SqNxt-23", "1.0-SqNxt-23v5"):
        for L in distinct(squeezenext_layers(variant)):
            m = Mapping("OS", 1, 1, 1, 1)
            assert evaluate(L, T8, m).fits
