"""The fp64 arbiter of ``sqnxtc check`` (sqnxt_compiler/reference/arbiter.py): fp32 rounding
that onnxruntime shares passes, a wrong kernel or rewrite still fails, and a result merely
close to an exact onnxruntime fails."""
from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper

from sqnxt_compiler import driver
from sqnxt_compiler.reference import arbiter as arb
from sqnxt_compiler.reference.check import check, compare, fp64_arbiter, random_inputs
from sqnxt_compiler.reference.executor import KERNELS
from sqnxt_compiler.reference.ort import ort_session, run_ort
from support import make_model


def ill_conditioned(C=64, depth=3, eps=1e-2, gain=4.0, seed=0):
    """Two deep conv branches whose weights differ by a relative ``eps``, subtracted: the
    output is a small difference of large values, so fp32 rounding (onnxruntime's as much
    as sqnxtc's) is far beyond a fixed tolerance of the output."""
    rng = np.random.default_rng(seed)
    nodes, w_a = [], []
    inits = []
    for br in "ab":
        prev = "x"
        for d in range(depth):
            cin = C if d else 16
            if br == "a":
                w = rng.standard_normal((C, cin, 3, 3)) / math.sqrt(9 * cin) * gain
                w_a.append(w)
            else:
                w = w_a[d] * (1 + eps * rng.standard_normal(w_a[d].shape))
            inits.append((f"w{br}{d}", w.astype(np.float32)))
            out = f"{br}{d}"
            nodes.append(helper.make_node("Conv", [prev, f"w{br}{d}"], [out], pads=[1, 1, 1, 1]))
            if d < depth - 1:
                nodes.append(helper.make_node("Relu", [out], [out + "r"]))
                out += "r"
            prev = out
    nodes.append(helper.make_node("Sub", [f"a{depth - 1}", f"b{depth - 1}"], ["y"]))
    return make_model(nodes, [("x", (1, 16, 12, 12))], [("y", (1, C, 12, 12))], inits)


def _arbiter_for(model):
    return fp64_arbiter(lambda: driver.compile((model, "m.onnx"), pipeline="none").graph)


def _compiled(model):
    return driver.compile((model, "m.onnx"), pipeline="default")


def test_the_ill_conditioned_net_is_beyond_a_fixed_tolerance_for_onnxruntime_too():
    """The premise: onnxruntime's own fp32 result is beyond the tolerance from the fp64
    one, so the fixed rule cannot be what decides."""
    model = ill_conditioned()
    g = driver.compile((model, "m.onnx"), pipeline="none").graph
    feeds = random_inputs(g, 0)
    ref = run_ort(ort_session(model, "m.onnx"), feeds)["y"]
    exact = arb.run_fp64(g, feeds)["y"]
    assert exact.dtype == np.float64
    _, _, ok = compare(ref, exact, 1e-4, 1e-5)
    assert not ok


def test_fp32_rounding_passes_by_the_arbiter_and_fails_strict(cli, save):
    path = save(ill_conditioned())
    r = cli("check", path)
    assert r.exit_code == 0, r.output
    assert "ok (fp64 arbiter)" in r.stdout
    assert "PASS (fp32 rounding, by the fp64 arbiter)" in r.stdout
    assert "sample 0: sqnxtc" in r.stdout and "onnxruntime" in r.stdout
    strict = cli("check", path, "--strict")
    assert strict.exit_code == 1
    assert "MISMATCH" in strict.stdout and "arbiter" not in strict.stdout


def test_the_report_gives_both_errors_against_fp64():
    model = ill_conditioned()
    res = _compiled(model)
    report = check(res.graph, res.model, "m.onnx", samples=2, arbiter=_arbiter_for(model))
    assert report.ok
    (out,) = report.outputs
    assert [i for i, _ in out.arbitrated] == [0, 1]
    for _, v in out.arbitrated:
        assert 0 < v.ort.max_abs and 0 < v.ours.max_abs <= arb.MULTIPLE * v.ort.max_abs
        assert v.ours.rms <= arb.MULTIPLE * v.ort.rms


def test_a_transposed_weight_in_the_compiled_graph_still_fails():
    """A wrong rewrite: the compiled graph's first conv has its kernel transposed (kh <-> kw).
    The fp64 arbiter evaluates the imported IR, which is right, so sqnxtc is the one off."""
    model = ill_conditioned()
    res = _compiled(model)
    conv = next(op for op in res.graph.ops() if op.name == "sqnxt.conv")
    wop = conv.operands[1].owner
    wop.attrs["value"] = np.ascontiguousarray(wop.attrs["value"].transpose(0, 1, 3, 2))
    report = check(res.graph, res.model, "m.onnx", samples=1, arbiter=_arbiter_for(model))
    assert not report.ok
    (_, v), = report.outputs[0].arbitrated
    assert not v.ok and "sqnxtc is further from fp64" in v.why
    assert v.ours.max_abs > 100 * v.ort.max_abs


def test_an_off_by_one_pad_in_the_conv_kernel_fails_though_the_arbiter_shares_it(monkeypatch):
    """A wrong kernel is wrong in the fp64 evaluation too (it runs the same kernels): then
    onnxruntime looks far from "fp64", which is not fp32 rounding, and the check fails."""
    model = ill_conditioned()
    res = _compiled(model)
    right = KERNELS["sqnxt.conv"]

    def shifted(op, args):
        y = right(op, args)
        return np.roll(y, 1, axis=3)     # every output one column off: a pad off by one
    monkeypatch.setitem(KERNELS, "sqnxt.conv", shifted)
    report = check(res.graph, res.model, "m.onnx", samples=1, arbiter=_arbiter_for(model))
    assert not report.ok
    (_, v), = report.outputs[0].arbitrated
    assert not v.ok and "kernels are in doubt" in v.why


def test_merely_close_fails_when_onnxruntime_is_exact():
    """y = 2 x by a 1x1 conv: exact in fp32, so onnxruntime's error against fp64 is 0 and a
    result off by 2e-4 relative (beyond the tolerance) gets no allowance."""
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"])], [("x", (1, 1, 6, 6))],
                       [("y", (1, 1, 6, 6))], [("w", np.full((1, 1, 1, 1), 2.0, np.float32))])
    res = _compiled(model)
    conv = next(op for op in res.graph.ops() if op.name == "sqnxt.conv")
    conv.operands[1].owner.attrs["value"] = np.full((1, 1, 1, 1), 2.0 * (1 + 2e-4), np.float32)
    report = check(res.graph, res.model, "m.onnx", samples=1, arbiter=_arbiter_for(model))
    assert not report.ok
    (_, v), = report.outputs[0].arbitrated
    assert v.ort.max_abs == 0.0 and not v.ok


def test_an_untouched_model_within_tolerance_never_runs_the_arbiter():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", (1, 2, 4, 4))], [("y", (1, 2, 4, 4))])
    res = _compiled(model)
    calls = []

    def arbiter(feeds):
        calls.append(feeds)
        return {}
    report = check(res.graph, res.model, "m.onnx", samples=2, arbiter=arbiter)
    assert report.ok and calls == [] and not report.outputs[0].arbitrated


def test_fp64_evaluation_is_float64_throughout():
    """(x + 1e8) - 1e8 loses x in float32 and keeps it to 1e-8 in float64; a Cast to float
    stays float64; erf is exact to double precision."""
    c = lambda n, v: (n, np.array(v, np.float32))  # noqa: E731
    model = make_model(
        [helper.make_node("Add", ["x", "big"], ["s"]), helper.make_node("Sub", ["s", "big"], ["d"]),
         helper.make_node("Cast", ["d"], ["dc"], to=1), helper.make_node("Erf", ["x"], ["e"]),
         helper.make_node("Add", ["dc", "e"], ["y"])],
        [("x", (1, 4))], [("y", (1, 4))], [c("big", 1e8)])
    g = driver.compile((model, "m.onnx"), pipeline="none").graph
    x = np.array([[0.125, -0.3, 0.7, 1.9]], np.float32)
    y = arb.run_fp64(g, {"x": x})["y"]
    x64 = x.astype(np.float64)
    want = x64 + np.array([math.erf(v) for v in x64[0]])
    assert y.dtype == np.float64
    assert np.max(np.abs(y - want)) < 1e-7
    from sqnxt_compiler.reference.executor import run
    assert np.max(np.abs(run(g, {"x": x})["y"] - want)) > 0.1   # float32 loses x entirely


@pytest.mark.parametrize("mode", [["--tiled"], ["--program"]])
def test_tiled_and_program_fp32_are_arbitrated_too(cli, save, mode):
    path = save(ill_conditioned(C=32))
    r = cli("check", path, "-t", "pe16x16", *mode)
    assert r.exit_code == 0, r.output
    assert "PASS (fp32 rounding, by the fp64 arbiter)" in r.stdout
    assert cli("check", path, "-t", "pe16x16", *mode, "--strict").exit_code == 1


def test_int16_is_not_arbitrated(cli, save):
    """Quantization error is held by int16's own tolerance, never excused as fp32 rounding."""
    path = save(ill_conditioned(C=32))
    r = cli("check", path, "-t", "pe16x16", "--tiled", "--precision", "int16")
    assert "arbiter" not in r.stdout
