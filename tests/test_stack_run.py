"""A fused stack run band by band (sqnxt_compiler/reference/stack_run.py): every member's
rows as the network computes them (the whole two-block stack's output against
onnxruntime), every (band, member) layer's tiles, MACs and transfers as the cost model
counts them for its schedule, and a band that reads what no band computed is an error."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest

from test_planner import tiny_target
from test_stack import two_blocks
from sqnxt_compiler import driver
from sqnxt_compiler.cost.stack import MODES, StackConfig
from sqnxt_compiler.diagnostics import SqnxtError
from sqnxt_compiler.layers import layer_of
from sqnxt_compiler.reference.arith import _Fp32
from sqnxt_compiler.reference.check import random_inputs
from sqnxt_compiler.reference.executor import run
from sqnxt_compiler.reference.stack_run import run_stack
from sqnxt_compiler.schedule.liveness import network_of
from sqnxt_compiler.schedule.solver import schedule_layers
from sqnxt_compiler.schedule.stacks import stack_candidates

GRID = tuple(StackConfig(h, w, mode, kept) for h, w in ((2, None), (3, 4), (5, None)) for mode in MODES
             for kept in (False, True))


@pytest.fixture(scope="module")
def problem():
    model = two_blocks()
    t = tiny_target(16384)
    res = driver.compile((model, "two.onnx"), target=replace(t, activation_home="dram"))
    pairs = [(op, layer_of(op)) for op in res.graph.ops() if "schedule" in op.attrs]
    net = network_of(res.graph, pairs)
    feeds = random_inputs(res.graph, 0)
    values: dict[int, np.ndarray] = {}
    run(res.graph, feeds, observe=lambda op, v: values.__setitem__(op.id, v))
    (x,) = feeds.values()                  # the one network input
    values.update({op.id: x for op in res.graph.ops() if op.name == "sqnxt.input"})
    stacks = stack_candidates(net, t, lambda Ls: schedule_layers(Ls, t), GRID, max_members=11)
    onnx_y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {k: v for k, v in feeds.items()})[0]
    return net, values, stacks, onnx_y, res.graph


def _args(net, values, st):
    ops = [net.steps[i].op for i in st.steps]
    return ops, [[values[v.owner.id] for v in op.operands] for op in ops]


def test_every_configuration_of_the_whole_stack_gives_onnxruntimes_output(problem):
    net, values, stacks, onnx_y, _g = problem
    whole = [s for s in stacks if (s.first, s.last) == (0, len(net.steps) - 1)]
    assert {(s.config.mode, s.config.w is None) for s in whole} >= {("recompute", True), ("keep", True)}
    for st in whole:
        ops, args = _args(net, values, st)
        got = run_stack(st, ops, args, _Fp32())
        scale = max(1.0, float(np.abs(onnx_y).max()))
        np.testing.assert_allclose(got.outputs[-1], onnx_y, rtol=1e-4, atol=1e-5 * scale)
        for k, op in enumerate(ops):         # every member's rows as the network's
            ref = values[op.id]
            np.testing.assert_allclose(got.outputs[k], ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max())))


def test_each_band_layer_runs_as_the_cost_model_counts(problem):
    net, values, stacks, _, _g = problem
    checked = 0
    for st in stacks[::3]:
        ops, args = _args(net, values, st)
        got = run_stack(st, ops, args, _Fp32())
        assert len(got.stats) == len(st.schedules)
        for s, ls in zip(st.schedules, got.stats):
            if ls is None:                   # a kept halo's move inside the buffer
                assert s.layer.kind == "move" and s.layer.name.endswith("/halo")
                continue
            assert ls.macs == s.layer.macs and ls.tiles_n == s.cost.tiles_n
            assert ls.outputs == ls.output_elements and ls.writes_min == ls.writes_max == 1
            for k in ("input", "weights", "outputs", "psum_reads", "residual", "bias"):
                assert ls.transfers[k] == s.cost.transfers[k], (s.layer.name, k)
            checked += 1
        if st.config.mode == "keep":
            assert got.halo_words == sum(s.layer.K * s.layer.Q for s in st.schedules if s.layer.kind == "move")
    assert checked > 50


def test_a_band_reading_what_no_band_computed_fails(problem, monkeypatch):
    net, values, stacks, _, _g = problem
    st = next(s for s in stacks if s.config.mode == "keep" and len(s.steps) >= 3)
    ops, args = _args(net, values, st)
    # its schedules run with the other overlap mode's bands: named, not run
    bad = replace(st, config=replace(st.config, mode="recompute"))
    with pytest.raises(SqnxtError, match=r"band \d+ of '.*' computes \d+x\d+ outputs; its schedule is"):
        run_stack(bad, ops, args, _Fp32())
    # a member's computed rows forgotten before a read: the read fails
    from sqnxt_compiler.reference import stack_run

    real = stack_run._read

    def forgetful(outs, done, j, area, reader):
        done[j][:] = False
        return real(outs, done, j, area, reader)
    monkeypatch.setattr(stack_run, "_read", forgetful)
    with pytest.raises(SqnxtError, match="which no band computed yet"):
        run_stack(st, ops, args, _Fp32())


def test_int16_bands_give_the_int16_layers_results_exactly(problem):
    """int16 (the scales of check --tiled's int16 run): the whole stack's output, band by
    band, is bit-identical to the int16 tiled executor's layer-by-layer output (partial sums
    are exact integers, requantized once per output) and within the int16 tolerance of
    onnxruntime."""
    from sqnxt_compiler.reference.arith import _Int16
    from sqnxt_compiler.reference.fixed_point import QTensor, shared_scales
    from sqnxt_compiler.reference.tiled import TOLERANCES, TiledExecutor

    net, _values, stacks, onnx_y, g = problem
    feeds = random_inputs(g, 0)
    cal = TiledExecutor(g, _Fp32(probe=True)).execute(feeds)
    arith = _Int16(None, shared_scales(g, cal.maxabs), {s.op_id: s.acc_max for s in cal.layers})

    class Capture(TiledExecutor):
        """The int16 executor keeping every op's raw result (QTensors, not dequantized)."""
        raw: dict = {}

        def run_op(self, op, args):
            y = super().run_op(op, args)
            self.raw[op.id] = y
            return y

        def bind(self, op, inputs):
            y = super().bind(op, inputs)
            self.raw[op.id] = y
            return y

    ex = Capture(g, arith)
    ex.raw = {}
    ex.execute(feeds)
    whole = [s for s in stacks if (s.first, s.last) == (0, len(net.steps) - 1)]
    assert whole
    rtol, atol = TOLERANCES["int16"]
    for st in whole:
        ops = [net.steps[i].op for i in st.steps]
        args = [[ex.raw[v.owner.id] for v in op.operands] for op in ops]
        got = run_stack(st, ops, args, arith)
        last = got.outputs[-1]
        want = ex.raw[ops[-1].id]
        assert isinstance(last, QTensor) and last.frac == want.frac
        np.testing.assert_array_equal(last.q, want.q)
        scale = max(1.0, float(np.abs(onnx_y).max()))
        assert float(np.abs(last.dequantize() - onnx_y).max()) <= atol * scale

