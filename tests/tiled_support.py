"""Checks of a tiled run against the cost model and the plain executor (shared by
test_tiled.py and test_fuzz.py)."""
from __future__ import annotations

import math

import numpy as np


def assert_invariants(stats, graph):
    """Every MAC once (a fused pool: every covered conv output of every tile), every output
    once, tile/transfer counts as in the cost model."""
    from sqnxt_compiler.cost.features import pool_cover, tiles

    scheds = [op.attrs["schedule"].schedule for op in graph.ops() if "schedule" in op.attrs]
    assert len(stats) == len(scheds) > 0
    for st, s in zip(stats, scheds):
        L, m = s.layer, s.mapping
        p = L.epilogue.pool
        if p is not None:
            cy = sum(b - a for a, b in (pool_cover(*r, (p.R, p.stride_h, p.pad_top, L.conv_P))
                                        for r in tiles(L.P, m.ty)))
            cx = sum(b - a for a, b in (pool_cover(*r, (p.S, p.stride_w, p.pad_left, L.conv_Q))
                                        for r in tiles(L.Q, m.tx)))
            assert st.macs == L.K * (L.C // L.groups) * L.R * L.S * cy * cx, st.name
            assert cy * cx >= L.P * L.Q
        else:
            assert st.macs == L.macs, st.name
        assert st.outputs == st.output_elements and st.writes_min == st.writes_max == 1
        if st.coverage is not None:
            assert st.coverage.min() == st.coverage.max() == 1, st.name
        assert st.tiles_n == s.cost.tiles_n
        assert st.tiles == s.layer.eff_groups * math.prod(s.cost.tiles_n.values())
        for k in ("input", "weights", "outputs", "psum_reads", "residual", "bias"):
            assert st.transfers[k] == s.cost.transfers[k], (st.name, k, st.mapping)


def assert_close_to_plain(got, want, rtol=1e-5):
    for k in want:
        scale = max(1.0, float(np.max(np.abs(want[k]))))
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=1e-6 * scale)
