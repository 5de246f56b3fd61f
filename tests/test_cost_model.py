"""The cost model by hand: each expected figure is derived in the test from the formulas of
docs/cost-model.md (pe16x16 constants: 8 DRAM words/cycle, latency 100, weight-block load
16 cycles, OS drain 32 cycles with double-buffered accumulators, fill 32, psum 2 words,
buffer 65536 words, double buffering)."""
from __future__ import annotations

from fractions import Fraction

import pytest

from sqnxt_compiler.cost import ElementFn, Epilogue, Homes, Layer, Mapping, Pool, evaluate
from sqnxt_compiler.cost.features import c_feat, k_feat, tiles, touched, x_feat, y_feat
from sqnxt_compiler.diagnostics import ScheduleError, UnsupportedError
from sqnxt_compiler.targets import load_target

T = load_target("pe16x16")


def cdiv(a, b):
    return -(-a // b)


def conv(name, C, K, H, W, R=1, S=1, stride=1, pt=0, pl=0, groups=1, zeros=None):
    P = (H + 2 * pt - R) // stride + 1
    Q = (W + 2 * pl - S) // stride + 1
    return Layer(name, "conv", C, K, H, W, R, S, P, Q, stride, stride, pt, pl, pt, pl, groups,
                 weight_zero_fraction=zeros)


def test_constants_of_pe16x16():
    assert (T.dram_words_per_cycle, T.dram_latency_cycles, T.weight_load_cycles) == (8, 100, 16)
    assert (T.os_drain_cycles, T.os_double_buffered_accumulators, T.pipeline_fill_cycles) == (32, True, 32)
    assert (T.psum_words, T.buffer_words, T.double_buffering) == (2, 65536, True)


def test_1x1_conv_that_fits_in_the_buffer():
    L = conv("small", 16, 16, 8, 8)
    r = evaluate(L, T, Mapping("WS", 8, 8, 16, 16, ("k", "c", "y", "x")))
    # one tile per loop; one 16x16 weight block (CB = KB = 1); 64 pixels streamed + 16 load
    assert r.compute_cycles == 1 * 1 * 1 * (64 + 16 * 1) + 32
    macs = 16 * 16 * 64
    assert r.macs == r.macs_performed == macs
    assert r.utilization == round(macs / (256 * 112), 6)
    # DRAM: every tensor once
    assert r.dram == {"input_reads": 16 * 64, "weight_reads": 256, "output_writes": 16 * 64,
                      "psum_writes": 0, "psum_reads": 0, "residual_reads": 0, "bias_reads": 0,
                      "total": 2304}
    assert r.transfers["total"] == 3
    assert r.dma_cycles == 3 * 100 + cdiv(2304, 8)                    # 588
    assert r.footprint["input"] == 1024 and r.footprint["weights"] == 256
    assert r.footprint["outputs"] == 64 * 16 * 2                       # psum width
    assert r.footprint["total"] == 2 * (1024 + 256 + 2048) and r.fits
    assert r.prologue_cycles == 2 * 100 + cdiv(1024 + 256, 8)         # 360
    assert r.epilogue_cycles == 100 + cdiv(1024, 8)                   # 228
    assert r.total_cycles == max(112 + 360 + 228, 588) == 700
    buf_array = 1 * 256 + 1 * 16 * 64 * 1 + 2 * (2 * 1 * 16 * 64 * 1 - 16 * 64)
    assert r.accesses == {"mac": macs, "rf": macs, "array": 2 * macs, "buffer": buf_array + 2304,
                          "dram": 2304}
    assert r.energy == {"mac": macs, "rf": macs, "array": 2 * 2 * macs, "buffer": 6 * (buf_array + 2304),
                        "dram": 200 * 2304,
                        "total": macs + macs + 4 * macs + 6 * (buf_array + 2304) + 200 * 2304}


def test_1x1_conv_that_does_not_fit_is_tiled_with_a_ragged_tile():
    L = conv("proj", 64, 32, 55, 55)
    whole = evaluate(L, T, Mapping("WS", 55, 55, 64, 32))
    assert not whole.fits and whole.footprint["input"] == 55 * 55 * 64
    # y tile 4: 13 tiles of 4 rows and one of 3
    r = evaluate(L, T, Mapping("WS", 55, 4, 64, 32, ("k", "c", "y", "x")))
    assert r.tiles_n == {"x": 1, "y": 14, "c": 1, "k": 1}
    assert r.footprint["total"] == 2 * (4 * 55 * 64 + 32 * 64 + 55 * 4 * 32 * 2) == 60416 and r.fits
    # CB = ceil(64/16) = 4, KB = ceil(32/16) = 2; pixels summed over the ragged tiles = 3025
    assert r.compute_cycles == 1 * 4 * 2 * (55 * 55 + 16 * 14) + 32 == 26024
    words = 64 * 55 * 55 + 32 * 64 + 32 * 55 * 55
    assert r.dram["total"] == words
    assert r.transfers == {"input": 14, "weights": 1, "outputs": 14, "psum_reads": 0, "residual": 0, "bias": 0,
                           "total": 29}
    assert r.dma_cycles == 29 * 100 + cdiv(words, 8) == 39456
    assert r.prologue_cycles == 200 + cdiv(4 * 55 * 64 + 2048, 8)
    assert r.epilogue_cycles == 100 + cdiv(55 * 4 * 32, 8)
    # the first step (a full 4-row tile) cannot overlap DMA: 1 * 4 * 2 * (55 * 4 + 16) + 32 = 1920
    assert r.first_step_cycles == 1 * 4 * 2 * (55 * 4 + 16) + 32 == 1920
    assert r.total_cycles == max(26024 + r.prologue_cycles + r.epilogue_cycles, 39456 + 1920) == 41376


def test_input_channel_loop_outside_spills_partial_sums():
    L = conv("proj", 64, 32, 55, 55)
    # c outermost with 2 tiles: every output tile is visited twice
    r = evaluate(L, T, Mapping("WS", 55, 4, 32, 32, ("c", "k", "y", "x")))
    assert r.refetch["output_visits"] == 2
    assert r.dram["output_writes"] == 32 * 55 * 55
    assert r.dram["psum_writes"] == r.dram["psum_reads"] == 32 * 55 * 55 * (2 - 1) * 2
    assert r.transfers["psum_reads"] == 14 * 1 * (2 - 1)
    # c innermost with 2 tiles: accumulated in the buffer, written once
    r2 = evaluate(L, T, Mapping("WS", 55, 4, 32, 32, ("k", "y", "x", "c")))
    assert r2.refetch["output_visits"] == 1 and r2.dram["psum_writes"] == 0
    # but the input tile now changes with c under k: no refetch as n_k = 1
    assert r2.refetch["input_refetch"] == 1


def test_loop_with_one_tile_changes_nothing():
    L = conv("proj", 64, 32, 55, 55)
    a = evaluate(L, T, Mapping("WS", 55, 4, 64, 32, ("k", "c", "y", "x")))
    b = evaluate(L, T, Mapping("WS", 55, 4, 64, 32, ("y", "x", "c", "k")))
    assert a.total_cycles == b.total_cycles and a.dram == b.dram


def test_ragged_tile_tables():
    assert tiles(55, 16) == [(0, 16), (16, 32), (32, 48), (48, 55)]
    L = conv("r", 16, 4, 55, 55)
    f = x_feat(L, T, 16)
    assert (f.n, f.B, f.I, f.Im, f.t) == (4, 4, 55, 16, 16)
    # OS on a ragged tile: the 7-wide tile uses one 16-wide block
    r = evaluate(L, T, Mapping("OS", 16, 55, 16, 4))
    z = cdiv(16 * 1 * 3, 5)                     # ceil(16 channels * 1 tap * 3/5 nonzero) = 10
    assert c_feat(L, T, 16).Z == z == 10
    pass_cycles = max(z, 32)                    # drain overlapped (double-buffered accumulators)
    XB, YB = 4, cdiv(55, 16)
    assert r.compute_cycles == 4 * XB * YB * pass_cycles + 32 + 32
    assert r.macs_performed == 4 * 55 * 55 * z
    assert r.macs == 4 * 55 * 55 * 16


def test_3x1_conv_with_halo():
    L = conv("sep", 8, 16, 55, 55, R=3, S=1, pt=1, pl=0)
    assert (L.P, L.Q) == (55, 55)
    # y tiles of 16 rows: rows [o-1, o+1] clipped to [0, 54]
    spans = [touched(a, b, 1, 3, 1, 55) for a, b in tiles(55, 16)]
    assert spans == [17, 18, 18, 8]            # [0..16], [15..32], [31..48], [47..54]
    f = y_feat(L, T, 16)
    assert (f.I, f.Im) == (61, 18)
    r = evaluate(L, T, Mapping("WS", 55, 16, 8, 16, ("k", "c", "y", "x")))
    assert r.dram["input_reads"] == 8 * 61 * 55
    assert r.footprint["input"] == 18 * 55 * 8
    # WS: 3 taps x 1 row block x 1 column block x (3025 pixels + 16 per tile)
    assert r.compute_cycles == 3 * 1 * 1 * (3025 + 16 * 4) + 32


def test_strided_1x1_reads_only_the_pixels_it_needs():
    L = conv("s2", 32, 64, 55, 55, stride=2)
    assert L.P == 28
    assert touched(0, 28, 2, 1, 0, 55) == 28   # kernel < stride: the gaps are skipped
    r = evaluate(L, T, Mapping("WS", 28, 28, 32, 64))
    assert r.dram["input_reads"] == 32 * 28 * 28


def test_fc_is_a_1x1_conv_on_a_1x1_image_and_dram_bound():
    L = Layer("fc", "fc", 128, 1000, 1, 1, 1, 1, 1, 1)
    r = evaluate(L, T, Mapping("WS", 1, 1, 128, 250, ("k", "c", "y", "x")))
    CB, KB = cdiv(128, 16), 4 * cdiv(250, 16)
    assert r.compute_cycles == 1 * CB * KB * (1 + 16 * 1) + 32 == 8736
    words = 128 + 128 * 1000 + 1000
    assert r.transfers == {"input": 1, "weights": 4, "outputs": 4, "psum_reads": 0, "residual": 0, "bias": 0,
                           "total": 9}
    assert r.dma_cycles == 9 * 100 + cdiv(words, 8) == 17041
    # DMA-bound: plus the first step, one full k tile: 1 * 8 * 16 * (1 + 16) + 32 = 2208
    assert r.first_step_cycles == 1 * CB * cdiv(250, 16) * (1 + 16) + 32 == 2208
    assert r.total_cycles == r.dma_cycles + r.first_step_cycles == 19249


def test_depthwise_conv_is_channel_wise():
    L = conv("dw", 32, 32, 14, 14, R=3, S=3, pt=1, pl=1, groups=32)
    assert L.channelwise and (L.Cg, L.Kg, L.eff_groups) == (1, 32, 1)
    assert L.macs == 32 * 14 * 14 * 9
    r = evaluate(L, T, Mapping("OS", 14, 14, 1, 32))
    z = cdiv(9 * 3, 5)                                    # 6 nonzero taps per channel
    assert r.compute_cycles == 32 * 1 * 1 * max(z, 32) + 32 + 32
    assert r.dram["input_reads"] == 32 * 14 * 14 and r.dram["weight_reads"] == 32 * 9
    assert r.dram["output_writes"] == 32 * 14 * 14
    assert r.transfers["total"] == 3
    assert r.footprint["input"] == 14 * 14 * 32 and r.footprint["weights"] == 32 * 9
    # WS: a diagonal block of 16 channels per pass, 2 passes per tap
    w = evaluate(L, T, Mapping("WS", 14, 14, 1, 32))
    assert w.compute_cycles == 9 * 1 * 2 * (196 + 16) + 32
    assert w.macs_performed == L.macs


def test_grouped_conv_runs_groups_one_after_another():
    L = conv("g2", 32, 64, 28, 28, R=3, S=1, pt=1, groups=2)
    assert (L.Cg, L.Kg, L.eff_groups) == (16, 32, 2)
    r = evaluate(L, T, Mapping("WS", 28, 28, 16, 32))
    assert r.compute_cycles == 2 * (3 * 1 * 2 * (784 + 16)) + 32
    assert r.dram["weight_reads"] == 64 * 16 * 3
    assert r.macs_performed == L.macs == 64 * 784 * 16 * 3


def test_pool_and_add_costs():
    pool = Layer("pool", "maxpool", 64, 64, 111, 111, 3, 3, 55, 55, 2, 2)
    r = evaluate(pool, T, Mapping("OS", 55, 55, 1, 8))
    assert r.macs == 64 * 55 * 55 * 9 and r.dram["weight_reads"] == 0
    assert r.dram["input_reads"] == 64 * 111 * 111 and r.dram["output_writes"] == 64 * 55 * 55
    assert r.compute_cycles == 64 * 4 * 4 * max(9, 32) + 32 + 32
    add = Layer("add", "add", 32, 32, 55, 55, 1, 1, 55, 55, n_inputs=2)
    r = evaluate(add, T, Mapping("OS", 55, 8, 1, 32))
    assert r.dram["input_reads"] == 2 * 32 * 55 * 55
    assert r.transfers["input"] == 2 * 7 and r.transfers["outputs"] == 7
    with pytest.raises(ScheduleError, match="only OS"):
        evaluate(add, T, Mapping("WS", 55, 8, 1, 32))


def test_measured_sparsity_replaces_the_assumed_one():
    dense = conv("d", 64, 16, 14, 14, zeros=Fraction(0))
    half = conv("h", 64, 16, 14, 14, zeros=Fraction(1, 2))
    default = conv("x", 64, 16, 14, 14)
    m = Mapping("OS", 14, 14, 64, 16)
    assert evaluate(dense, T, m).macs_performed == dense.macs
    assert evaluate(half, T, m).macs_performed == 16 * 196 * 32
    assert evaluate(default, T, m).macs_performed == 16 * 196 * cdiv(64 * 3, 5)
    assert dense.key() != half.key() != default.key()
    # WS does not skip zeros
    assert evaluate(half, T, Mapping("WS", 14, 14, 64, 16)).macs_performed == half.macs


def test_invalid_mappings_and_layers():
    L = conv("c", 16, 16, 8, 8)
    for bad in (Mapping("XS", 1, 1, 1, 1), Mapping("WS", 9, 1, 1, 1), Mapping("WS", 1, 1, 1, 0),
                Mapping("WS", 1, 1, 1, 1, ("x", "y", "c", "c"))):
        with pytest.raises(ScheduleError, match="layer 'c'"):
            evaluate(L, T, bad)
    with pytest.raises(UnsupportedError, match="layer 'bad'"):
        Layer("bad", "conv", 3, 8, 10, 10, 3, 3, 9, 8)
    with pytest.raises(UnsupportedError, match="groups"):
        Layer("bad", "conv", 3, 8, 10, 10, 1, 1, 10, 10, groups=2)


def test_the_keys_keep_their_flat_order():
    """key() and shape_key() flatten the parts into the tuples the on-disk schedule cache
    has always keyed on (the order of the layer's fields before it had parts; the bias,
    added later, last in key()): a change
    here changes every cache key."""
    L = Layer("c", "conv", C=16, K=32, H=14, W=14, R=3, S=3, P=7, Q=7, pad_top=1, pad_left=1, pad_bottom=1,
              pad_right=1, weight_zero_fraction=Fraction(1, 4),
              epilogue=Epilogue(act_ops=1, act_funcs=1, pool=Pool("max", 3, 3, 2, 2, 1, 1, 1, 1)),
              homes=Homes(resident_inputs=1, resident_output=True, capacity=5000))
    assert L.key() == ("conv", 16, 32, 14, 14, 3, 3, 7, 7, 1, 1, 1, 1, 1, 1, 1, 1, "1/4", 1, True, 5000,
                       False, False, "max", 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, "", 0, 0, 0, False)
    assert L.shape_key() == ("conv", 16, 32, 14, 14, 3, 3, 7, 7, 1, 1, 1, 1, 1, 1, 1, 1, "max", 3, 3, 2, 2,
                             1, 1, 1, 1, 1, 1, "", 0, 0, 0)
    E = Layer("e", "eltwise", C=8, K=8, H=5, W=6, R=1, S=1, P=5, Q=6, n_inputs=2,
              element=ElementFn("mul", ops=1, funcs=2, params=1), homes=Homes(resident_inputs=2))
    assert E.key() == ("eltwise", 8, 8, 5, 6, 1, 1, 5, 6, 1, 1, 0, 0, 0, 0, 1, 2, None, 2, False, None, False,
                       False, "", 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, "mul", 1, 2, 1, False)
    assert E.shape_key() == ("eltwise", 8, 8, 5, 6, 1, 1, 5, 6, 1, 1, 0, 0, 0, 0, 1, 2, "", 1, 1, 1, 1, 0, 0,
                             0, 0, 1, 1, "mul", 1, 2, 1)
    R = Layer("r", "fc", C=64, K=10, H=1, W=1, R=1, S=1, P=1, Q=1, epilogue=Epilogue(residual=True),
              homes=Homes(resident_residual=True))
    assert R.key() == ("fc", 64, 10, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, None, 0, False, None, True,
                       True, "", 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, "", 0, 0, 0, False)
    assert R.with_homes(capacity=9).homes == Homes(resident_residual=True, capacity=9)


def test_serial_target_adds_dma_to_compute():
    from dataclasses import replace

    serial = replace(T, double_buffering=False)
    L = conv("small", 16, 16, 8, 8)
    r = evaluate(L, serial, Mapping("WS", 8, 8, 16, 16))
    assert r.total_cycles == r.compute_cycles + r.dma_cycles == 112 + 588
    assert r.footprint["total"] == 1024 + 256 + 2048
