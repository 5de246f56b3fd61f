"""The exhaustive oracle: exact against brute force, fast on every 1.0-SqNxt-23 layer, and
the qualitative facts any model of this machine must show."""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from sqnxt_compiler.cost import ORDERS, Layer, evaluate
from sqnxt_compiler.cost.model import objective_value
from sqnxt_compiler.diagnostics import ScheduleError
from functools import lru_cache

from sqnxt_compiler.schedule.oracle import (SECONDARY, brute_force_best, brute_force_table,
                                            exhaustive_best)
from sqnxt_compiler.schedule.space import (chan_tables, get_space, order_representatives, order_signature,
                                           out_tables, pareto_keep, pareto_min)
from sqnxt_compiler.cost.features import c_feat, k_feat
import numpy as np
from sqnxt_compiler.cost.layer import ElementFn
from sqnxt_compiler.cost.reference_layers import table4_layers
from sqnxt_compiler.targets import load_target

ROOT = Path(__file__).resolve().parents[1]
T16, T8 = load_target("pe16x16"), load_target("pe8x8")
T4 = [L for L, _ in table4_layers(ROOT / "docs" / "spec" / "sqnxt23_table4.csv")]

# a small machine so that tiny layers need tiling: 4x4 PEs, 600-byte buffer
TINY = replace(T8, pe_rows=4, pe_cols=4, global_buffer_bytes=600, pipeline_fill_cycles=8,
               dram_latency_cycles=20)

TINY_LAYERS = [
    Layer("c3x3", "conv", 3, 5, 7, 6, 3, 3, 5, 4),
    Layer("c3x1", "conv", 6, 4, 6, 5, 3, 1, 6, 5, pad_top=1, pad_bottom=1),
    Layer("s2", "conv", 5, 6, 9, 9, 1, 1, 5, 5, 2, 2),
    Layer("dw", "conv", 6, 6, 5, 5, 3, 3, 5, 5, 1, 1, 1, 1, 1, 1, groups=6),
    Layer("g2", "conv", 4, 6, 5, 4, 1, 3, 5, 4, pad_left=1, pad_right=1, groups=2),
    Layer("fc", "fc", 9, 7, 1, 1, 1, 1, 1, 1),
    Layer("pool", "maxpool", 3, 3, 8, 8, 3, 3, 4, 4, 2, 2, pad_bottom=1, pad_right=1),
    Layer("add", "add", 4, 4, 5, 3, 1, 1, 5, 3, n_inputs=2),
    Layer("sparse", "conv", 7, 3, 4, 4, 2, 2, 3, 3, weight_zero_fraction=Fraction(3, 7)),
    Layer("lrn", "eltwise", 6, 6, 5, 4, 1, 1, 5, 4, element=ElementFn("lrn", ops=5, funcs=1)),
]


@lru_cache(maxsize=None)
def _table(L):
    return tuple(brute_force_table(L, TINY))


def test_an_lrn_spans_its_channels():
    """Layer.spanned: an lrn's k tile is all its channels, in the brute force, the
    candidates and the smallest footprint alike."""
    L = TINY_LAYERS[-1]
    assert L.spanned == {"k"} and not TINY_LAYERS[0].spanned
    rows = _table(L)
    assert rows and {r[5] for r in rows} == {L.Kg} and len({r[2] for r in rows}) == L.Q
    sp = get_space(L, TINY)
    assert all(sp.cands[df]["k"] == [L.Kg] for df in sp.dataflows)
    assert sp.size_full() == len(sp.dataflows) * 24 * L.Q * L.P * L.Cg
    m, r = exhaustive_best(L, TINY, "cycles")
    assert m.tk == L.Kg and r.fits


def test_pareto_min():
    rows = [(1, (4, 1)), (2, (2, 2)), (3, (2, 3)), (4, (1, 4)), (5, (1, 4))]
    assert pareto_min(rows) == [1, 2, 4]


def _naive_keep(arr):
    """Row i is kept iff no earlier row is <= it entry by entry (the definition)."""
    return [not any((arr[j] <= arr[i]).all() for j in range(i)) for i in range(len(arr))]


@pytest.mark.parametrize("seed", range(6))
def test_pareto_keep_is_the_definition(seed):
    """The blocked, run-wise reduction keeps exactly the rows no earlier row dominates:
    random rows with a non-increasing first column (runs) and without, small blocks so
    that every path (kept rows, within a block, across blocks) is exercised."""
    rng = np.random.default_rng(seed)
    for monotone in (True, False):
        for cols in (1, 2, 3):
            arr = rng.integers(0, 6, size=(300, cols))
            if monotone:
                arr[:, 0] = np.sort(rng.integers(0, 8, size=300))[::-1]
            want = _naive_keep(arr)
            assert pareto_keep(arr, block=16).tolist() == want
            assert pareto_keep(arr).tolist() == want


BIG = [Layer("fc6", "fc", 9216, 4096, 1, 1, 1, 1, 1, 1), Layer("fc_odd", "fc", 1001, 997, 1, 1, 1, 1, 1, 1),
       Layer("g4", "conv", 96, 64, 14, 14, 3, 3, 14, 14, 1, 1, 1, 1, 1, 1, groups=4),
       Layer("dw", "conv", 64, 64, 28, 28, 3, 3, 28, 28, 1, 1, 1, 1, 1, 1, groups=64),
       Layer("sp", "conv", 200, 130, 14, 14, 3, 3, 12, 12, weight_zero_fraction=Fraction(7, 9)),
       Layer("add3", "add", 72, 72, 5, 5, 1, 1, 5, 5, n_inputs=3)]


@pytest.mark.parametrize("t", [T16, T8, TINY, replace(T8, rf_words_per_pe=1)],
                         ids=["pe16x16", "pe8x8", "tiny", "single_accumulator"])
def test_vectorized_channel_tables_equal_the_cost_models(t):
    """space.chan_tables / out_tables (vectorized) give, for every tile size, the rows of
    the cost model's own c_feat / k_feat."""
    seen = set()
    for L in TINY_LAYERS + BIG + T4:
        if L.key() in seen:
            continue
        seen.add(L.key())
        ct, kt = chan_tables(L, t), out_tables(L, t)
        assert ct.tolist() == [list(c_feat(L, t, tc).as_tuple()) for tc in range(1, L.Cg + 1)], L.name
        assert kt.tolist() == [list(k_feat(L, t, tk).as_tuple()) for tk in range(1, L.Kg + 1)], L.name


@pytest.mark.parametrize("L", TINY_LAYERS, ids=lambda L: L.name)
def test_equivalent_orders_cost_the_same(L):
    """Every order costs, for every tile choice of the whole space, exactly what its class
    representative costs (brute force, scalar evaluate)."""
    bounds = {"x": L.Q, "y": L.P, "c": L.Cg, "k": L.Kg}
    sig = [order_signature(o, bounds, L.channelwise, L.is_mac) for o in ORDERS]
    rep = {i: sig.index(sig[i]) for i in range(len(ORDERS))}
    assert sorted(set(rep.values())) == list(order_representatives(L))
    cost = {row[:6]: row[6:] for row in _table(L)}
    for key, c in cost.items():
        assert cost[(key[0], rep[key[1]]) + key[2:]] == c, (key, rep[key[1]])


def test_order_classes():
    fc, conv, dw = BIG[0], T4[1], BIG[3]
    assert [ORDERS[i] for i in order_representatives(fc)] == [tuple("kcyx"), tuple("ckyx")]
    assert len(order_representatives(conv)) == 18 and len(order_representatives(dw)) == 4
    assert len(order_representatives(TINY_LAYERS[6])) == 1      # pool


@pytest.mark.parametrize("L", [BIG[0], BIG[2], BIG[3], T4[0], T4[1]], ids=lambda L: L.name)
def test_order_reduction_keeps_the_oracles_answer(L):
    for t in (T16, T8):
        for objective in ("cycles", "energy"):
            assert exhaustive_best(L, t, objective) == exhaustive_best(L, t, objective, all_orders=True)


@pytest.mark.parametrize("L", TINY_LAYERS, ids=lambda L: L.name)
@pytest.mark.parametrize("objective", ["cycles", "energy", "edp"])
def test_reduced_space_gives_the_brute_force_answer(L, objective):
    """The candidate reduction is exact: same objective, same tie-broken mapping as
    evaluating every mapping of the whole space with scalar evaluate()."""
    bf = brute_force_best(L, TINY, objective, table=_table(L))
    m, r = exhaustive_best(L, TINY, objective)
    assert (objective_value(r, objective), objective_value(r, SECONDARY[objective])) == bf[:2]
    assert (m.dataflow, m.order, m.tx, m.ty, m.tc, m.tk) == (
        ("WS", "OS")[bf[2]], ORDERS[bf[3]]) + bf[4:]
    assert r.fits


@pytest.mark.slow
def test_oracle_on_every_distinct_sqnxt23_layer_both_targets():
    seen = set()
    for L in T4:
        if L.key() in seen:
            continue
        seen.add(L.key())
        for t in (T16, T8):
            m, r = exhaustive_best(L, t)
            assert r.fits and r == evaluate(L, t, m)
            sp = get_space(L, t)
            assert sp.size_candidates() < sp.size_full()


@pytest.mark.parametrize("L", TINY_LAYERS, ids=lambda L: L.name)
def test_the_no_refetch_terms_bound_every_order(L):
    """cost_terms with order None (no tile refetched), the exhaustive search's pruning
    bound: its cycles and energy are <= those of every order, its footprint equal, for
    every tile choice of the whole space."""
    from sqnxt_compiler.cost.model import consts, cost_terms, layer_tables
    from sqnxt_compiler.cost import Mapping

    k = consts(L, TINY)
    for row in _table(L):
        dfi, oi, tx, ty, tc, tk, cyc, en = row
        m = Mapping(("WS", "OS")[dfi], tx, ty, tc, tk, ORDERS[oi])
        lb = cost_terms(k, dfi == 1, *layer_tables(L, TINY, m), None)
        exact = cost_terms(k, dfi == 1, *layer_tables(L, TINY, m), ORDERS[oi])
        assert lb["total_cycles"] <= cyc and lb["energy_total"] <= en, (L.name, row)
        assert lb["fp_total"] == exact["fp_total"]
        for term in ("dram_words", "transfers", "dma_cycles", "acc_buffer"):
            assert lb[term] <= exact[term], (L.name, row, term)


def _unpruned_best(L, t, objective):
    """The oracle's answer without its pruning: every order costed over the whole grid of
    candidates (numpy), the smallest (objective, secondary, dataflow, order, tx, ty, tc, tk)."""
    from sqnxt_compiler.cost.model import consts, cost_terms
    from sqnxt_compiler.schedule.oracle import _grid_tables

    sp, k = get_space(L, t), consts(L, t)
    best = None
    for df in sp.dataflows:
        dfi = ("WS", "OS").index(df)
        shape = tuple(len(sp.cands[df][d]) for d in "xyck")
        for oi in sp.orders:
            tm = cost_terms(k, df == "OS", *_grid_tables(sp, df), ORDERS[oi])
            feas = np.broadcast_to(tm["fp_total"] <= k.buffer_words, shape)
            cyc = np.broadcast_to(tm["total_cycles"], shape)[feas]
            en = np.broadcast_to(tm["energy_total"], shape)[feas]
            prim = {"cycles": cyc, "energy": en}[objective]
            sec = {"cycles": en, "energy": cyc}[objective]
            idx = np.argwhere(feas)
            j = np.lexsort((np.arange(len(prim)), sec, prim))[0]   # C order breaks the last ties
            key = (int(prim[j]), int(sec[j]), dfi, oi) + tuple(
                sp.cands[df][d][int(i)] for d, i in zip("xyck", idx[j]))
            best = key if best is None or key < best else best
    return best


@pytest.mark.parametrize("L", [BIG[0], BIG[2], BIG[3], T4[0], T4[1], T4[5]], ids=lambda L: L.name)
@pytest.mark.parametrize("objective", ["cycles", "energy"])
def test_pruning_drops_no_winner_on_real_layers(L, objective):
    """The pruned search (bound: no refetch) gives the same tie-broken best as costing
    every order over the whole candidate grid, on real-size layers of both targets, alone
    and with a capacity that forces tiling."""
    for t in (T16, T8):
        for cap in (None, t.buffer_words // 5):
            X = L.with_homes(capacity=cap)
            try:
                m, r = exhaustive_best(X, t, objective)
            except ScheduleError:
                continue
            ref = _unpruned_best(X, t, objective)
            assert (objective_value(r, objective), objective_value(r, SECONDARY[objective])) == ref[:2]
            assert (("WS", "OS").index(m.dataflow), ORDERS.index(m.order), m.tx, m.ty, m.tc, m.tk) == ref[2:]


def test_infeasible_layer_names_the_smallest_buffer():
    t = replace(T8, global_buffer_bytes=64)
    L = Layer("big3x3", "conv", 8, 8, 10, 10, 3, 3, 8, 8)
    # all tiles 1: input 3x3x1 + weights 1x1x9 + output 1 psum (2 words), two copies
    need_words = 2 * (9 + 9 + 2)
    with pytest.raises(ScheduleError, match=rf"'big3x3'.*needs {need_words * 2} bytes"):
        exhaustive_best(L, t)


def _layer(name):
    return next(L for L in T4 if L.name == name)


@pytest.mark.parametrize("t", [T16, T8], ids=["pe16x16", "pe8x8"])
def test_conv1_runs_poorly_weight_stationary(t):
    """3 input channels fill 3 of the array's rows in WS."""
    L = _layer("conv1")
    _, ws = exhaustive_best(L, t, dataflows=("WS",))
    _, os_ = exhaustive_best(L, t, dataflows=("OS",))
    assert ws.utilization <= Fraction(3, t.pe_rows)
    assert ws.total_cycles > 2 * os_.total_cycles
    m, best = exhaustive_best(L, t)
    assert m.dataflow == "OS"


def test_7x7_layers_fill_a_16x16_array_poorly_output_stationary():
    """A 7x7 output plane covers 49 of 256 PEs in OS."""
    for L in T4:
        if L.P == 7 and L.Q == 7:
            _, os_ = exhaustive_best(L, T16, dataflows=("OS",))
            _, ws = exhaustive_best(L, T16, dataflows=("WS",))
            assert os_.utilization <= Fraction(49, 256)
            assert ws.compute_cycles < os_.compute_cycles, L.name


@pytest.mark.parametrize("t", [T16, T8], ids=["pe16x16", "pe8x8"])
def test_fc1000_is_dram_bandwidth_bound(t):
    L = _layer("fc1000")
    _, r = exhaustive_best(L, t, "cycles")
    # DMA bounds it: its time is the DMA's plus the first step's compute (nothing to store before it)
    assert r.total_cycles == r.dma_cycles + r.first_step_cycles and r.dma_cycles > r.compute_cycles
    # the weights alone need 128000 words at 8 words per cycle
    assert r.dma_cycles >= 128 * 1000 // 8
    # and DRAM dominates its energy whatever the objective
    for objective in ("cycles", "energy"):
        _, r = exhaustive_best(L, t, objective)
        assert 2 * r.energy["dram"] > r.energy["total"]


def test_the_dominance_columns_are_what_cost_terms_reads():
    """``space.USED`` is derived from ``cost_terms`` (a trace of its table reads), not kept
    by hand.  Checked on the numbers: changing a table entry outside USED[dataflow]
    leaves the cycles, energy and footprint of every mapping of every tiny layer
    unchanged; every entry inside USED changes one of them for some layer and mapping."""
    import random

    from sqnxt_compiler.cost.mapping import Mapping
    from sqnxt_compiler.cost.model import consts, cost_terms, layer_tables
    from sqnxt_compiler.schedule.space import USED

    rng = random.Random(7)
    seen_effect = set()
    for L in TINY_LAYERS:
        k = consts(L, TINY)
        for df in (("WS", "OS") if L.is_mac else ("OS",)):
            for _ in range(12):
                order = ORDERS[rng.randrange(24)]
                m = Mapping(df, rng.randint(1, L.Q), rng.randint(1, L.P), rng.randint(1, L.Cg),
                            rng.randint(1, L.Kg), order)
                tabs = [list(t) for t in layer_tables(L, TINY, m)]
                base = cost_terms(k, df == "OS", *tabs, order)
                key = lambda t: (t["total_cycles"], t["energy_total"], t["fp_total"])  # noqa: E731
                for li, d in enumerate("xyck"):
                    for i in range(len(tabs[li])):
                        bumped = [list(t) for t in tabs]
                        bumped[li][i] += 3
                        changed = key(cost_terms(k, df == "OS", *bumped, order)) != key(base)
                        if i not in USED[df][d]:
                            assert not changed, (L.name, df, d, i)
                        elif changed:
                            seen_effect.add((df, d, i))
    assert seen_effect == {(df, d, i) for df in USED for d in "xyck" for i in USED[df][d]}


@pytest.mark.parametrize("L", TINY_LAYERS, ids=lambda L: L.name)
def test_the_smallest_footprint_needs_no_space_and_is_the_spaces_rows(L):
    """min_footprint_words reads one feature row per loop (cost.features), the rows the
    Space's tables hold: the value is the footprint of the Space's tile-1 (or spanned)
    rows, and no Space is built (a warm compile, answered from the disk cache, builds none)."""
    from sqnxt_compiler.cost.model import consts, cost_terms
    from sqnxt_compiler.schedule import space

    for T in (T16, T8, TINY):
        space.clear_spaces()
        got = space.min_footprint_words(L, T)
        assert space._SPACES == {}
        sp = get_space(L, T)
        row = {d: sp.feats[d][sp.bounds[d] if d in L.spanned else 1] for d in "xyck"}
        want = cost_terms(consts(L, T), False, row["x"], row["y"], row["c"], row["k"], ("k", "c", "y", "x"))
        assert got == int(want["fp_total"])
