"""Depth-first stacks, the geometry (sqnxt_compiler/cost/stack.py; docs/cost-model.md, "Fused
stacks"): the rows each member needs and computes per band, in both overlap modes, are
checked by running every (band, member) as its band layer says (the member's kernel on the
input rows it names, with the pads it names) and comparing with the whole network's rows;
the counts (computed rows, recomputed MACs, band windows, kept halo words) against their
definitions; the worked example of the docs recomputed."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from support import inferred_model, rand
from sqnxt_compiler import driver
from sqnxt_compiler.cost.stack import (MODES, band_layer, bands, chainable, computed_outputs, computed_rows,
                                       halo_words, input_cols, input_rows, recomputed_macs, window_rows,
                                       window_words)
from sqnxt_compiler.ir.core import Op
from sqnxt_compiler.layers import layer_of
from sqnxt_compiler.reference.check import random_inputs
from sqnxt_compiler.reference.executor import eval_op, run


def conv(x, w, y, kh=3, kw=None, stride=1, pads=None, **kw_):
    kw = kh if kw is None else kw
    pads = pads if pads is not None else [kh // 2, kw // 2, kh // 2, kw // 2]
    return helper.make_node("Conv", [x, w], [y], kernel_shape=[kh, kw], strides=[stride, stride], pads=pads, **kw_)


def pooled_chain(seed=0):
    """x 4x13x11 -> 3x3 (6) relu -> 1x1 (5) -> 3x1 (6) -> 3x3 stride 2 (4) -> 3x3 (4) relu
    + maxpool 3x3 stride 2 ceil (fused into the conv)."""
    rng = np.random.default_rng(seed)
    nodes = [conv("x", "w1", "a"), helper.make_node("Relu", ["a"], ["ar"]), conv("ar", "w2", "b", 1),
             conv("b", "w3", "c", 3, 1), conv("c", "w4", "d", 3, stride=2), conv("d", "w5", "e", 3),
             helper.make_node("Relu", ["e"], ["er"]),
             helper.make_node("MaxPool", ["er"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)]
    inits = [("w1", rand(rng, 6, 4, 3, 3)), ("w2", rand(rng, 5, 6, 1, 1)), ("w3", rand(rng, 6, 5, 3, 1)),
             ("w4", rand(rng, 4, 6, 3, 3)), ("w5", rand(rng, 4, 4, 3, 3))]
    return inferred_model(nodes, [("x", [1, 4, 13, 11])], ["y"], inits)


def sqnxt_block(seed=1):
    """A SqueezeNext block on 8x12x9: 1x1 (4), 1x1 (2), 3x1 (4), 1x3 (4), 1x1 (8) + the
    input (a fused residual), relu after the add."""
    rng = np.random.default_rng(seed)
    nodes = [conv("x", "w1", "a", 1), helper.make_node("Relu", ["a"], ["ar"]),
             conv("ar", "w2", "b", 1), helper.make_node("Relu", ["b"], ["br"]),
             conv("br", "w3", "c", 3, 1), helper.make_node("Relu", ["c"], ["cr"]),
             conv("cr", "w4", "d", 1, 3), helper.make_node("Relu", ["d"], ["dr"]),
             conv("dr", "w5", "e", 1), helper.make_node("Add", ["e", "x"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    inits = [("w1", rand(rng, 4, 8, 1, 1)), ("w2", rand(rng, 2, 4, 1, 1)), ("w3", rand(rng, 4, 2, 3, 1)),
             ("w4", rand(rng, 4, 4, 1, 3)), ("w5", rand(rng, 8, 4, 1, 1))]
    return inferred_model(nodes, [("x", [1, 8, 12, 9])], ["y"], inits)


def chain_of(model):
    """The compiled graph, its conv ops in order with their layers, and every op's value in
    a reference run (by op id)."""
    res = driver.compile((model, "chain.onnx"))
    ops = [op for op in res.graph.ops() if op.name == "sqnxt.conv"]
    layers = [layer_of(op) for op in ops]
    feeds = random_inputs(res.graph, 0)
    values: dict[int, np.ndarray] = {}
    run(res.graph, feeds, observe=lambda op, v: values.__setitem__(op.id, v))
    return res.graph, ops, layers, values, feeds


def band_op(op: Op, band) -> Op:
    """``op`` as its band layer runs it: the same kernel with the band layer's row pads, and
    a fused pool's pads as the band layer's pool has them (a ceil-mode overhang spelled as
    an explicit pad, which a max pool ignores as ceil mode does)."""
    attrs = dict(op.attrs)
    attrs["pads"] = (band.pad_top, band.pad_left, band.pad_bottom, band.pad_right)
    if band.epilogue.pool is not None:
        p = band.epilogue.pool
        attrs["pool"] = {**attrs["pool"], "pads": (p.pad_top, p.pad_left, p.pad_bottom, p.pad_right),
                         "ceil_mode": 0}
    return Op(op.name, op.operands, op.results, attrs, op.loc, op.id)


@pytest.mark.parametrize("make", [pooled_chain, sqnxt_block], ids=["pooled-chain", "sqnxt-block"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("h, w", [(1, None), (2, None), (3, None), (100, None), (2, 1), (3, 2), (1, 3)])
def test_every_band_of_every_member_reproduces_the_networks_rows(make, mode, h, w):
    graph, ops, layers, values, feeds = chain_of(make())
    assert chainable(layers) == ""
    n = len(layers)
    x = values[ops[0].operands[0].owner.id] if ops[0].operands[0].owner.name != "sqnxt.input" \
        else next(iter(feeds.values()))
    bs = bands(layers, min(h, layers[-1].P), mode, w)
    covered = [np.zeros((L.P, L.Q), dtype=int) for L in layers]
    for b in bs:
        for k, (op, L) in enumerate(zip(ops, layers)):
            (a, e), (c, d) = b.rows[k], b.cols[k]
            if e <= a or d <= c:
                assert mode == "keep"      # nothing new for this member in this band
                continue
            covered[k][a:e, c:d] += 1
            band = band_layer(L, (a, e), k, n, (c, d))
            lo, hi = input_rows(L, a, e)
            clo, chi = input_cols(L, c, d)
            assert (band.H, band.W, band.P, band.Q) == (hi - lo, chi - clo, e - a, d - c)
            assert band.homes.resident_inputs == int(k > 0) and band.homes.resident_output == (k < n - 1)
            src = x if k == 0 else values[ops[k - 1].id]
            if k > 0:     # what it reads, the member before holds in this band
                (na, ne), (nc, nd) = b.need[k - 1], b.need_cols[k - 1]
                assert na <= lo and hi <= ne and nc <= clo and chi <= nd
            else:
                assert (b.input, b.input_cols) == ((lo, hi), (clo, chi))
            args = [src[:, :, lo:hi, clo:chi]] + [values[v.owner.id] if v.owner.name != "sqnxt.input" else x
                                                  for v in op.operands[1:]]
            if op.attrs.get("residual"):   # the residual's part of this band
                args[-1] = args[-1][:, :, a:e, c:d]
            got = eval_op(band_op(op, band), args)
            np.testing.assert_allclose(got, values[op.id][:, :, a:e, c:d], rtol=1e-5, atol=1e-5)
    for k, L in enumerate(layers):           # every output computed: once when keeping
        assert covered[k].min() >= 1
        if mode == "keep" and w is None:
            assert covered[k].max() == 1
        elif mode == "keep":                 # columns kept along a row of bands, rows recomputed
            assert covered[k].max(axis=1).max() >= 1 and all(
                (covered[k][r] == covered[k][r].max()).all() for r in range(L.P))
    assert computed_outputs(layers, bs) == [int(c.sum()) for c in covered]


@pytest.mark.parametrize("make", [pooled_chain, sqnxt_block], ids=["pooled-chain", "sqnxt-block"])
def test_the_counts_follow_their_definitions(make):
    _graph, _ops, layers, _values, _feeds = chain_of(make())
    for h in (1, 2, 5):
        rec, keep = bands(layers, h, "recompute"), bands(layers, h, "keep")
        assert [b.need for b in rec] == [b.need for b in keep]       # the same windows
        assert window_rows(layers, rec) == window_rows(layers, keep)
        assert computed_rows(layers, keep) == [L.P for L in layers]  # keep: each row once
        n = len(layers)
        for k, L in enumerate(layers):   # ... and each MAC once, but under a fused pool's overlap
            macs = sum(band_layer(L, b.rows[k], k, n).macs for b in keep if b.rows[k][1] > b.rows[k][0])
            assert macs == L.macs if L.epilogue.pool is None else macs >= L.macs
        assert halo_words(layers, rec) == 0
        assert recomputed_macs(layers, rec) >= 0
        # the halo kept is exactly the halo recomputed, counted in words instead of rows
        extra = [r - L.P for r, L in zip(computed_rows(layers, rec), layers)]
        assert halo_words(layers, keep) == sum(e * L.Q * L.K for e, L in zip(extra[:-1], layers))
    for h, w in ((1, 1), (2, 3)):      # 2-D bands: columns kept, rows recomputed
        rec, keep = bands(layers, h, "recompute", w), bands(layers, h, "keep", w)
        assert window_words(layers, rec) == window_words(layers, keep)
        assert all(r >= k for r, k in zip(computed_outputs(layers, rec), computed_outputs(layers, keep)))
        assert computed_outputs(layers, keep)[-1] == layers[-1].P * layers[-1].Q
        assert halo_words(layers, keep) == sum(
            (r - k) * L.K for r, k, L in zip(computed_outputs(layers, rec)[:-1], computed_outputs(layers, keep),
                                             layers))
    whole = bands(layers, layers[-1].P, "recompute")
    assert len(whole) == 1 and recomputed_macs(layers, whole) == 0
    assert window_rows(layers, whole) == [L.P for L in layers[:-1]]


def test_a_chain_that_is_not_one_is_named():
    _graph, _ops, layers, _values, _feeds = chain_of(sqnxt_block())
    assert "not the" in chainable([layers[0], layers[2]])
    assert "at least two" in chainable(layers[:1])
    with pytest.raises(ValueError, match="overlap mode"):
        bands(layers, 2, "cache")


def test_the_worked_example_of_the_docs():
    """docs/cost-model.md, "Fused stacks": 1.0-SqNxt-23's stage1/block1 (squeeze1 ..
    expand), bands of 4 rows."""
    res = driver.compile("zoo:1.0-SqNxt-23")
    layers = [layer_of(op) for op in res.graph.ops() if layer_of(op) is not None][2:7]
    assert [L.name.split("/")[-1] for L in layers] == ["squeeze1", "squeeze2", "sep1", "sep2", "expand"]
    rec, keep = bands(layers, 4, "recompute"), bands(layers, 4, "keep")
    assert len(rec) == 14
    assert rec[1].need == ((3, 9), (3, 9), (4, 8), (4, 8), (4, 8))
    assert window_rows(layers, rec) == [6, 6, 4, 4]
    assert window_words(layers, rec) == 14960
    assert computed_rows(layers, rec) == [81, 81, 55, 55, 55]
    assert recomputed_macs(layers, rec) == 1647360
    assert halo_words(layers, keep) == 34320


def test_resident_weights_and_their_preload():
    """A stack keeping its members' weights: their words with the biases (psum_words each),
    loaded once with a latency per tensor (docs/cost-model.md, "Operand homes")."""
    from dataclasses import replace

    from sqnxt_compiler.cost.layer import Layer
    from sqnxt_compiler.cost.stack import resident_weight_words, weight_preload
    from sqnxt_compiler.targets import load_target

    t = load_target("pe8x8")
    a = Layer("a", "conv", C=64, K=16, H=8, W=8, R=1, S=1, P=8, Q=8)
    b = Layer("b", "conv", C=16, K=8, H=8, W=8, R=3, S=1, P=8, Q=8, pad_top=1, pad_bottom=1)
    b = replace(b, epilogue=replace(b.epilogue, bias=True))
    words = 64 * 16 + 16 * 8 * 3 + 8 * t.psum_words
    assert resident_weight_words([a, b], t.psum_words) == words
    bw = t.dram_words_per_cycle
    assert weight_preload([a, b], t) == (3 * t.dram_latency_cycles + -(-words * bw.denominator // bw.numerator),
                                         words)


def two_blocks(seed=2):
    """A 3x3 stem (8 channels) and two SqueezeNext blocks on 8x12x9 (sqnxt_block's layers),
    each adding its input: the stem's and the first block's outputs are read by two members
    of a stack spanning them (the next squeeze as its data input, the next expand as its
    residual)."""
    rng = np.random.default_rng(seed)
    nodes = [conv("x", "w0", "s0", 3), helper.make_node("Relu", ["s0"], ["x0"])]
    inits = [("w0", rand(rng, 8, 8, 3, 3))]
    for b in (1, 2):
        i, o = f"x{b - 1}", f"x{b}"
        nodes += [conv(i, f"w{b}1", f"{b}a", 1), helper.make_node("Relu", [f"{b}a"], [f"{b}ar"]),
                  conv(f"{b}ar", f"w{b}2", f"{b}b", 1),
                  conv(f"{b}b", f"w{b}3", f"{b}c", 3, 1), helper.make_node("Relu", [f"{b}c"], [f"{b}cr"]),
                  conv(f"{b}cr", f"w{b}4", f"{b}d", 1, 3),
                  conv(f"{b}d", f"w{b}5", f"{b}e", 1), helper.make_node("Add", [f"{b}e", i], [f"{b}s"]),
                  helper.make_node("Relu", [f"{b}s"], [o])]
        inits += [(f"w{b}1", rand(rng, 4, 8, 1, 1)), (f"w{b}2", rand(rng, 2, 4, 1, 1)),
                  (f"w{b}3", rand(rng, 4, 2, 3, 1)), (f"w{b}4", rand(rng, 4, 4, 1, 3)),
                  (f"w{b}5", rand(rng, 8, 4, 1, 1))]
    nodes.append(helper.make_node("Identity", ["x2"], ["y"]))
    return inferred_model(nodes, [("x", [1, 8, 12, 9])], ["y"], inits)


#: The stack of two_blocks: the stem, then per block squeeze1 .. expand, expand's residual
#: the output of the stem (block 1) or of block 1's expand (block 2).
TWO_BLOCK_LINKS = ((None, None), (0, None), (1, None), (2, None), (3, None), (4, 0),
                   (5, None), (6, None), (7, None), (8, None), (9, 5))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("h, w", [(1, None), (2, None), (5, None), (2, 1), (3, 2)])
def test_bands_of_a_stack_with_residuals_inside_reproduce_the_networks_rows(mode, h, w):
    """A member read by two later ones (a data input and a residual) holds the hull of what
    both read: every band of every member, run on its sources' windows, gives the network's
    rows."""
    graph, ops, layers, values, feeds = chain_of(two_blocks())
    links = TWO_BLOCK_LINKS
    assert len(layers) == len(links) and chainable(layers, links) == ""
    three = [layers[0], layers[1], layers[6]]      # both squeezes read the stem: the first is lost
    assert "read by no later member" in chainable(three, ((None, None), (0, None), (0, None)))
    assert "reads 4x12x9, not the 8x12x9 output" in chainable(layers, [(None, None)] + [(0, None)] * 10)
    x = next(iter(feeds.values()))
    n = len(layers)
    bs = bands(layers, h, mode, w, links)
    covered = [np.zeros((L.P, L.Q), dtype=int) for L in layers]
    for b in bs:
        for k, (op, L) in enumerate(zip(ops, layers)):
            (a, e), (c, d) = b.rows[k], b.cols[k]
            if e <= a or d <= c:
                assert mode == "keep"
                continue
            covered[k][a:e, c:d] += 1
            src, res = links[k]
            band = band_layer(L, (a, e), k, n, (c, d), links[k])
            assert band.homes.resident_inputs == int(src is not None)
            assert band.homes.resident_residual == (res is not None)
            lo, hi = input_rows(L, a, e)
            clo, chi = input_cols(L, c, d)
            if src is not None:      # its source's window holds what it reads
                (na, ne), (nc, nd) = b.need[src], b.need_cols[src]
                assert na <= lo and hi <= ne and nc <= clo and chi <= nd
            if res is not None:      # ... and its residual's window its rows
                (na, ne), (nc, nd) = b.need[res], b.need_cols[res]
                assert na <= a and e <= ne and nc <= c and d <= nd
            inp = x if src is None and k == 0 else values[op.operands[0].owner.id]
            args = [inp[:, :, lo:hi, clo:chi]] + [values[v.owner.id] for v in op.operands[1:]]
            if op.attrs.get("residual"):
                args[-1] = args[-1][:, :, a:e, c:d]
            got = eval_op(band_op(op, band), args)
            np.testing.assert_allclose(got, values[op.id][:, :, a:e, c:d], rtol=1e-5, atol=1e-5)
    for k in range(n):
        assert covered[k].min() >= 1
        if mode == "keep" and w is None:
            assert covered[k].max() == 1
    # the stem's window covers the squeeze's halo-free rows and block 1's expand's rows
    assert window_rows(layers, bs)[0] >= min(h, layers[-1].P)


def test_the_preload_worked_example_of_the_docs():
    """docs/cost-model.md, "A stack's figures": stage1/block1's squeeze1 .. expand on pe8x8."""
    from sqnxt_compiler.cost.stack import resident_weight_words, weight_preload
    from sqnxt_compiler.targets import load_target

    t = load_target("pe8x8")
    res = driver.compile("zoo:1.0-SqNxt-23", target=t)
    names = [f"stage1/block1/{m}" for m in ("squeeze1", "squeeze2", "sep1", "sep2", "expand")]
    by = {op.loc.node: layer_of(op) for op in res.graph.ops() if op.name == "sqnxt.conv"}
    layers = [by[n] for n in names]
    assert [L.weight_words for L in layers] == [1024, 128, 384, 768, 512]
    assert all(L.epilogue.bias for L in layers) and t.psum_words == 2
    assert resident_weight_words(layers, t.psum_words) == 2816 + 88 * 2 == 2992
    assert (t.dram_latency_cycles, t.dram_words_per_cycle) == (100, 8)
    assert weight_preload(layers, t) == (10 * 100 + 374, 2992)
