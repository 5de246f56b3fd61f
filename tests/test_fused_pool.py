"""A fused pool in the cost model (docs/cost-model.md, "Fused pooling"): the per-loop
tables count the conv outputs each pooled tile computes (its windows' cover, recomputed
where neighbouring tiles overlap), the formulas charge exactly those, and the solver still
finds the exhaustive search's (and on a tiny layer the brute force's) answer."""
from __future__ import annotations

from dataclasses import replace

import pytest

from sqnxt_compiler.cost import Epilogue, Layer, Mapping, Pool, evaluate
from sqnxt_compiler.cost.features import pool_cover, tiles, x_feat, y_feat
from sqnxt_compiler.diagnostics import UnsupportedError
from sqnxt_compiler.schedule.oracle import exhaustive_best
from sqnxt_compiler.schedule.solver import schedule_layer
from sqnxt_compiler.targets import load_target

from test_operand_homes import assert_reduced_space_is_exact, some_mappings

T16, T8 = load_target("pe16x16"), load_target("pe8x8")


def fused(name="conv1", C=3, K=64, H=227, W=227, R=7, S=7, stride=2, pad=0, pool="max", pk=3, ps=2,
          pp=(0, 0, 0, 0)):
    """A conv with a fused pool; P and Q follow from the shapes."""
    cp = (H + 2 * pad - R) // stride + 1
    cq = (W + 2 * pad - S) // stride + 1
    P = (cp + pp[0] + pp[2] - pk) // ps + 1
    Q = (cq + pp[1] + pp[3] - pk) // ps + 1
    return Layer(name, "conv", C=C, K=K, H=H, W=W, R=R, S=S, P=P, Q=Q, stride_h=stride, stride_w=stride,
                 pad_top=pad, pad_left=pad, pad_bottom=pad, pad_right=pad,
                 epilogue=Epilogue(pool=Pool(pool, pk, pk, ps, ps, *pp)))


LAYERS = [
    fused(),                                                         # SqueezeNext conv1 + pool1
    fused("overlap", C=16, K=32, H=30, W=30, R=3, S=3, stride=1, pad=1, pk=3, ps=2, pp=(1, 1, 1, 1)),
    fused("disjoint", C=16, K=32, H=28, W=28, R=3, S=3, stride=1, pad=1, pk=2, ps=2, pool="avg"),
    fused("gapped", C=8, K=16, H=20, W=20, R=1, S=1, stride=1, pk=2, ps=3),
]


def test_the_cover_of_pooled_tiles():
    # 111 conv rows, 3x3/2 pool: pooled rows [0, 7) read conv rows [0, 15), [7, 14) read [14, 29)
    assert pool_cover(0, 7, (3, 2, 0, 111)) == (0, 15)
    assert pool_cover(7, 14, (3, 2, 0, 111)) == (14, 29)
    assert pool_cover(49, 55, (3, 2, 0, 111)) == (98, 111)
    assert pool_cover(0, 4, (3, 2, 1, 111)) == (0, 8)                 # pad: clipped at 0
    assert pool_cover(3, 5, None) == (3, 5)


@pytest.mark.parametrize("L", LAYERS, ids=[L.name for L in LAYERS])
def test_tables_count_the_recomputed_outputs(L):
    for t in (1, 2, 3, 5, 7, L.P):
        f = y_feat(L, T16, t)
        p = L.epilogue.pool
        covers = [pool_cover(a, b, (p.R, p.stride_h, p.pad_top, L.conv_P))
                  for a, b in tiles(L.P, t)]
        assert f.C == sum(b - a for a, b in covers) and f.Cm == max(b - a for a, b in covers)
        # every conv row a window reads is computed, those shared by two tiles twice (a
        # tile computes the contiguous span its windows cover: with a pool stride above
        # the window, the rows between windows too)
        read = {r for o in range(L.P) for r in range(o * p.stride_h - p.pad_top, o * p.stride_h - p.pad_top + p.R)
                if 0 <= r < L.conv_P}
        assert f.C >= len(read)
        no_gaps = p.R >= p.stride_h
        if (t == L.P and no_gaps) or p.R == p.stride_h:   # nothing recomputed or skipped
            assert f.C == len(read)
        if t == L.P:
            assert f.n == 1 and f.C == f.Cm
    plain = L.without_pool()
    assert x_feat(plain, T16, 4).C == plain.Q and x_feat(plain, T16, 4).Cm == 4


@pytest.mark.parametrize("L", LAYERS, ids=[L.name for L in LAYERS])
def test_the_formulas_charge_the_computed_outputs(L):
    for m in some_mappings(L, 25):
        r = evaluate(L, T16, m)
        fx, fy = x_feat(L, T16, m.tx), y_feat(L, T16, m.ty)
        computed = fx.C * fy.C
        Kg = L.K
        if m.dataflow == "WS":
            assert r.macs_performed == Kg * L.C * L.R * L.S * computed
        # outputs written are the pooled ones; the accumulator tile holds the computed ones
        assert r.dram["output_writes"] == L.K * L.P * L.Q
        assert r.footprint["outputs"] == fx.Cm * fy.Cm * m.tk * T16.psum_words + m.tx * m.ty * m.tk
        assert r.accesses["mac"] == r.macs_performed + L.pool_ops
        assert r.macs == L.K * L.conv_P * L.conv_Q * L.C * L.R * L.S     # dense, no recompute
        assert r.dram["psum_writes"] == Kg * computed * (r.refetch["output_visits"] - 1) * T16.psum_words


def test_fusing_conv1_and_pool1_beats_the_two_layers():
    L = LAYERS[0]
    conv = Layer("conv1", "conv", C=3, K=64, H=227, W=227, R=7, S=7, P=111, Q=111, stride_h=2, stride_w=2)
    pool = Layer("pool1", "maxpool", C=64, K=64, H=111, W=111, R=3, S=3, P=55, Q=55, stride_h=2, stride_w=2)
    f, c, p = (schedule_layer(x, T16) for x in (L, conv, pool))
    assert f.cost.total_cycles < c.cost.total_cycles + p.cost.total_cycles
    assert f.cost.dram["total"] < c.cost.dram["total"] + p.cost.dram["total"]
    assert f.cost.compute_cycles > c.cost.compute_cycles      # the recomputed rows are paid for


@pytest.mark.parametrize("L", LAYERS, ids=[L.name for L in LAYERS])
@pytest.mark.parametrize("t", [T16, pytest.param(T8, marks=pytest.mark.slow)], ids=["pe16x16", "pe8x8"])
def test_solver_equals_the_exhaustive_search_with_a_pool(L, t):
    for X in (L, L.with_homes(resident_inputs=1, resident_output=True)):
        for objective in ("cycles", "energy"):
            s = schedule_layer(X, t, objective=objective)
            m, r = exhaustive_best(X, t, objective)
            assert s.status == "optimal" and s.mapping == m, (X.name, objective)
            assert s.cost == r == evaluate(X, t, m)


@pytest.mark.parametrize("pk,ps,pp", [(3, 2, (0, 0, 1, 1)), (2, 2, (0, 0, 0, 0)), (3, 1, (1, 1, 1, 1)),
                                      (1, 2, (0, 0, 0, 0))])
def test_reduced_space_equals_brute_force_on_a_tiny_pooled_layer(pk, ps, pp):
    L = fused("tiny", C=3, K=4, H=9, W=8, R=3, S=3, stride=1, pad=1, pk=pk, ps=ps, pp=pp)
    t = replace(T8, global_buffer_bytes=600)
    assert_reduced_space_is_exact(L, t)
    assert_reduced_space_is_exact(L.with_homes(resident_inputs=1, capacity=150), t)


def _with_pool(L, layer_change=None, **change):
    """``L`` with its pool's fields ``change``d (and the layer's ``layer_change``)."""
    pool = replace(L.epilogue.pool, **change)
    return replace(L, epilogue=replace(L.epilogue, pool=pool), **(layer_change or {}))


@pytest.mark.parametrize("make,msg", [
    (lambda L: _with_pool(L, kind="min"), "pool must be 'max' or 'avg', got 'min'"),
    (lambda L: _with_pool(L, R=0), "pool R must be a positive integer, got 0"),
    (lambda L: _with_pool(L, pad_left=-1), "pool pad_left must be a non-negative integer"),
    (lambda L: replace(L, P=27), "layer 'conv1' \\(conv\\): P=27 does not match the pool"),
    (lambda L: _with_pool(L, dict(P=56), pad_top=3), "must start inside"),
    (lambda L: replace(L, epilogue=replace(L.epilogue, residual=True)),
     "a fused residual add or a fused pool, not both"),
])
def test_bad_pool_fields_are_rejected(make, msg):
    with pytest.raises(UnsupportedError, match=msg):
        make(LAYERS[0])


def test_only_conv_takes_a_pool():
    with pytest.raises(UnsupportedError, match="only conv takes a fused pool"):
        Layer("f", "fc", C=8, K=4, H=1, W=1, R=1, S=1, P=1, Q=1, epilogue=Epilogue(pool=Pool("max", 1, 1)))


def test_the_pool_is_part_of_the_shape():
    L = LAYERS[0]
    avg = _with_pool(L, kind="avg")
    assert avg.shape_key() != L.shape_key()
    assert evaluate(L, T16, Mapping("OS", 1, 1, 1, 1)).fits
    assert evaluate(avg, T16, Mapping("OS", 1, 1, 1, 1)).fits
    plain = L.without_pool()
    assert plain.epilogue.pool is None and (plain.P, plain.Q) == (L.conv_P, L.conv_Q)


def test_the_pool_is_part_of_the_key_so_the_caches_keep_them_apart():
    """Two convs whose fused pools differ but give the same pooled output (2x2/2 and 3x3/2
    padded by 1 both halve 28x28) are different schedules: the key, the schedule cache and
    the smallest-footprint cache must not mix them up."""
    from sqnxt_compiler.schedule.solver import clear_cache, schedule_layers
    from sqnxt_compiler.schedule.space import min_footprint_words

    a = fused("a", C=16, K=32, H=28, W=28, R=3, S=3, stride=1, pad=1, pk=2, ps=2)
    b = fused("b", C=16, K=32, H=28, W=28, R=3, S=3, stride=1, pad=1, pk=3, ps=2, pp=(1, 1, 1, 1))
    assert (a.P, a.Q) == (b.P, b.Q) and a.key() != b.key()
    clear_cache()
    sa, sb = schedule_layers([a, b], T16)
    assert sa.cost == schedule_layer(a, T16).cost and sb.cost == schedule_layer(b, T16).cost
    assert sa.cost != sb.cost
    assert min_footprint_words(a, T16) != min_footprint_words(b, T16)


# ---------------------------------------------------------------------------- dilation
DILATED = [
    Layer("d2", "conv", C=8, K=16, H=14, W=14, R=3, S=3, P=14, Q=14, pad_top=2, pad_left=2, pad_bottom=2,
          pad_right=2, dilation_h=2, dilation_w=2),
    Layer("d4s2", "conv", C=8, K=8, H=20, W=17, R=3, S=3, P=7, Q=6, stride_h=2, stride_w=2, dilation_h=4,
          dilation_w=3, pad_top=1, pad_left=1),
    Layer("dwd2", "conv", C=16, K=16, H=12, W=12, R=3, S=3, P=12, Q=12, pad_top=2, pad_left=2, pad_bottom=2,
          pad_right=2, groups=16, dilation_h=2, dilation_w=2),
]


def test_dilated_taps_are_counted_one_by_one():
    """touched() with a dilation counts the distinct taps the outputs read (a brute force
    set), for every tile of several geometries, strides 1 and 2."""
    from sqnxt_compiler.cost.features import touched

    for n_in, k, s, p, d in ((14, 3, 1, 2, 2), (20, 3, 2, 1, 4), (9, 5, 1, 4, 3), (30, 3, 3, 0, 5), (7, 2, 1, 0, 6)):
        n_out = (n_in + 2 * p - ((k - 1) * d + 1)) // s + 1
        for a in range(n_out):
            for b in range(a + 1, n_out + 1):
                want = len({o * s - p + j * d for o in range(a, b) for j in range(k)} & set(range(n_in)))
                assert touched(a, b, s, k, p, n_in, d) == want, (n_in, k, s, p, d, a, b)


def test_a_dilated_layer_reads_its_spread_halo():
    """Dilation changes the input extents and nothing else: against the same layer without
    dilation (whose kernel spans fewer rows), same MACs and compute, more input words."""
    L = DILATED[0]
    plain = replace(L, dilation_h=1, dilation_w=1, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1)
    assert (L.P, L.Q) == (plain.P, plain.Q) and L.macs == plain.macs
    m = Mapping("WS", 7, 7, 8, 16)
    a, b = evaluate(L, T16, m), evaluate(plain, T16, m)
    assert a.compute_cycles == b.compute_cycles and a.macs_performed == b.macs_performed
    assert a.footprint["input"] > b.footprint["input"] and a.dram["input_reads"] > b.dram["input_reads"]
    assert "d2x2" in L.describe() and L.key() != plain.key()


@pytest.mark.parametrize("L", DILATED, ids=lambda L: L.name)
@pytest.mark.parametrize("t", [T16, T8], ids=["pe16x16", "pe8x8"])
def test_solver_equals_the_exhaustive_search_on_dilated_layers(L, t):
    for objective in ("cycles", "energy"):
        s = schedule_layer(L, t, objective=objective)
        m, r = exhaustive_best(L, t, objective)
        assert (s.mapping, s.cost) == (m, r) and s.status == "optimal"


def test_reduced_space_equals_brute_force_on_a_tiny_dilated_layer():
    tiny = replace(T8, pe_rows=4, pe_cols=4, global_buffer_bytes=600)
    assert_reduced_space_is_exact(Layer("tiny-d2", "conv", C=2, K=3, H=7, W=6, R=3, S=2, P=5, Q=5, pad_top=1,
                                        pad_bottom=1, dilation_h=2, dilation_w=2, pad_left=1, pad_right=0), tiny)


def test_only_conv_takes_a_dilation():
    with pytest.raises(UnsupportedError, match="only conv takes a dilation"):
        Layer("p", "maxpool", C=4, K=4, H=8, W=8, R=2, S=2, P=6, Q=6, dilation_h=2, dilation_w=2)
