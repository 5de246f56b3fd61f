"""ONNX ConvTranspose, lowered to the sub-pixel form (a stride-1 conv of every output phase,
a depth-to-space, a crop: docs/ir.md, docs/cost-model.md "Transposed convolution"):
against onnxruntime on a matrix of attributes (imported with and without the passes),
compiled and scheduled for both targets, run tile by tile and as a program where the
program lowers it, the rejected attributes as one-line errors naming the node, a small
decoder end to end, and the cost model's worked example recomputed from the compile."""
from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from sqnxt_compiler import driver
from sqnxt_compiler.diagnostics import ExitCode
from sqnxt_compiler.ir import print_graph
from sqnxt_compiler.targets import load_target
from support import compile_and_check, inferred_model, make_model

N = helper.make_node
DOC = Path(__file__).resolve().parents[1] / "docs" / "cost-model.md"
TARGETS = ("pe16x16", "pe8x8")


def ct_model(cin=4, cout=6, hw=(5, 6), k=(3, 3), *, bias=True, seed=0, opset=17, **attrs):
    """One ConvTranspose node 'up' (x -> y) with random weights; y typed by ONNX inference."""
    rng = np.random.default_rng(seed)
    g = attrs.get("group", 1)
    inits = [("w", rng.standard_normal((cin, cout // g, *k)).astype(np.float32))]
    ins = ["x", "w"]
    if bias:
        inits.append(("b", rng.standard_normal(cout).astype(np.float32)))
        ins.append("b")
    return inferred_model([N("ConvTranspose", ins, ["y"], name="up", **attrs)],
                          [("x", [1, cin, *hw])], ["y"], inits, opset=opset)


def ort_output(model, x):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


# ------------------------------------------------------------------ the attribute matrix
CASES: dict[str, dict] = {}
for _s in (1, 2, 3):
    for _k in (1, 2, 3, 4, 5):
        for _p in (0, 1, 2):
            if _p == 2 and _s == 1 and _k < 3:
                continue                       # an output of 1 or fewer rows: below
            CASES[f"s{_s}-k{_k}-p{_p}"] = dict(k=(_k, _k), strides=[_s, _s], pads=[_p] * 4)
CASES.update({
    # the exporters' upsampling layers
    "k4-s2-p1-dcgan": dict(k=(4, 4), strides=[2, 2], pads=[1, 1, 1, 1]),
    "k3-s2-p1-adj1": dict(k=(3, 3), strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
    "k2-s2-unet": dict(k=(2, 2), strides=[2, 2]),
    "k16-s8-p4-fcn": dict(cin=3, cout=3, k=(16, 16), strides=[8, 8], pads=[4, 4, 4, 4], group=3, hw=(3, 4)),
    # pads
    "asym-pads": dict(k=(4, 3), strides=[2, 3], pads=[1, 0, 2, 1]),
    "asym-pads-adj": dict(k=(4, 3), strides=[2, 3], pads=[0, 2, 1, 0], output_padding=[1, 2]),
    "huge-begin-pad": dict(k=(3, 3), strides=[2, 2], pads=[5, 4, 0, 0]),
    "s1-pad-beyond-kernel": dict(k=(3, 3), strides=[1, 1], pads=[2, 3, 2, 3], hw=(7, 8)),
    "k-below-stride": dict(k=(2, 1), strides=[3, 2], pads=[0, 0, 1, 0], output_padding=[2, 1]),
    # output_shape (pads then follow ONNX's rule; one past the full size ends in the bias)
    "oshape-smaller": dict(k=(3, 3), strides=[2, 2], output_shape=[8, 10]),
    "oshape-even-total": dict(k=(3, 3), strides=[2, 2], output_shape=[7, 9]),
    "oshape-larger": dict(k=(3, 3), strides=[2, 2], output_shape=[12, 14]),
    "oshape-adj": dict(k=(3, 3), strides=[3, 3], output_shape=[13, 17], output_padding=[1, 2]),
    "oshape-same-upper": dict(k=(3, 3), strides=[3, 2], output_shape=[13, 11], auto_pad="SAME_UPPER"),
    "oshape-same-lower": dict(k=(3, 3), strides=[3, 2], output_shape=[13, 11], auto_pad="SAME_LOWER"),
    "oshape-valid": dict(k=(3, 3), strides=[2, 2], output_shape=[8, 10], auto_pad="VALID"),
    # auto_pad alone
    "valid": dict(k=(3, 3), strides=[3, 2], auto_pad="VALID"),
    "same-upper-s1": dict(k=(3, 3), strides=[1, 1], auto_pad="SAME_UPPER"),
    "same-upper-s2": dict(k=(3, 3), strides=[2, 2], auto_pad="SAME_UPPER"),
    "same-lower-s2": dict(k=(3, 3), strides=[2, 2], auto_pad="SAME_LOWER"),
    "same-upper-s3-k4": dict(k=(4, 4), strides=[3, 3], auto_pad="SAME_UPPER"),
    "same-lower-s3-k2": dict(k=(2, 2), strides=[3, 3], auto_pad="SAME_LOWER"),
    "same-upper-k1-s3": dict(k=(1, 1), strides=[3, 3], auto_pad="SAME_UPPER"),
    "same-dilated": dict(k=(3, 3), strides=[2, 2], dilations=[2, 2], auto_pad="SAME_UPPER"),
    # groups, bias
    "group2": dict(cin=4, cout=6, k=(4, 4), strides=[2, 2], pads=[1, 1, 1, 1], group=2),
    "group2-s3": dict(cin=6, cout=4, k=(3, 5), strides=[3, 2], pads=[1, 2, 0, 1], group=2),
    "depthwise": dict(cin=4, cout=4, k=(4, 4), strides=[2, 2], pads=[1, 1, 1, 1], group=4),
    "depthwise-mult2": dict(cin=4, cout=8, k=(3, 3), strides=[2, 2], pads=[1, 1, 1, 1], group=4,
                            output_padding=[1, 1]),
    "no-bias": dict(k=(4, 4), strides=[2, 2], pads=[1, 1, 1, 1], bias=False),
    "depthwise-no-bias": dict(cin=4, cout=4, k=(3, 3), strides=[2, 1], pads=[1, 1, 1, 1], group=4, bias=False),
    # dilation: with stride 1 a plain dilated conv; with a stride, when the phases align
    "s1-dil2": dict(k=(3, 3), strides=[1, 1], dilations=[2, 2], pads=[1, 1, 1, 1]),
    "s1-dil-asym": dict(k=(3, 2), strides=[1, 1], dilations=[2, 3], pads=[1, 2, 0, 3]),
    "s2-dil2": dict(k=(3, 3), strides=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1]),
    "s4-dil2": dict(k=(3, 5), strides=[4, 4], dilations=[2, 2], pads=[1, 2, 1, 0]),
    "s2-dil4": dict(k=(3, 3), strides=[2, 2], dilations=[4, 4], pads=[2, 1, 0, 2]),
    "s3-dil2-k3": dict(k=(3, 3), strides=[3, 3], dilations=[2, 2]),
    # non-square everything
    "non-square": dict(cin=3, cout=5, hw=(4, 7), k=(5, 2), strides=[3, 1], pads=[2, 0, 1, 1],
                       output_padding=[1, 0]),
    "row-stride-only": dict(k=(3, 3), strides=[2, 1], pads=[1, 1, 1, 1], output_padding=[1, 0]),
    "col-stride-only": dict(k=(3, 4), strides=[1, 2], pads=[1, 1, 1, 1]),
    "opset11": dict(k=(4, 4), strides=[2, 2], pads=[1, 1, 1, 1], opset=11),
})


def build(name, seed=0):
    c = dict(CASES[name])
    keys = ("cin", "cout", "hw", "k", "bias", "opset")
    return ct_model(**{key: c.pop(key) for key in keys if key in c}, seed=seed, **c)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_onnxruntime(name):
    """The default pipeline and no passes both match onnxruntime; the graph is one stride-1
    conv, a depth-to-space transpose exactly when a stride is > 1, at most one crop."""
    model = build(name)
    for passes in ("default", "none"):
        graph, report = compile_and_check(model, passes=passes)
        assert report.ok, (passes, report.format())
    counts = graph.count_by_name()                 # as imported
    assert counts["sqnxt.conv"] == 1
    (conv,) = graph.ops_named("sqnxt.conv")
    assert tuple(conv.attrs["strides"]) == (1, 1) and conv.loc.node == "up"
    strided = tuple(CASES[name]["strides"]) != (1, 1)
    assert counts.get("sqnxt.transpose", 0) == int(strided)
    assert counts.get("sqnxt.extract_slice", 0) <= 1


def test_the_output_past_the_full_size_is_the_bias():
    """output_shape one row past what the input reaches: onnxruntime ends the output with
    the bias, and so does the lowering (not a zero, not a wrap-around)."""
    model = build("oshape-larger")
    x = np.random.default_rng(3).standard_normal((1, 4, 5, 6)).astype(np.float32)
    ref = ort_output(model, x)
    b = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "b"))
    assert ref.shape == (1, 6, 12, 14)           # the full output is 11 x 13
    np.testing.assert_allclose(ref[0, :, -1, :], np.broadcast_to(b[:, None], (6, 14)), rtol=1e-6)
    np.testing.assert_allclose(ref[0, :, :, -1], np.broadcast_to(b[:, None], (6, 12)), rtol=1e-6)
    _, report = compile_and_check(model)
    assert report.ok


@pytest.mark.parametrize("name", ["k4-s2-p1-dcgan", "k3-s2-p1-adj1", "group2-s3", "depthwise",
                                  "s1-dil-asym", "s2-dil2", "non-square", "huge-begin-pad"])
@pytest.mark.parametrize("tname", TARGETS)
def test_compiles_and_schedules_for_both_targets(name, tname):
    """Every layer the ConvTranspose became is scheduled (proved optimal); the conv carries
    the node's name and does the sub-pixel MACs."""
    res = driver.compile((build(name), "t.onnx"), target=load_target(tname), schedule={"jobs": 1})
    rows = {r.name: r for r in res.network.rows}
    assert "up" in rows and rows["up"].schedule is not None
    for r in rows.values():
        if r.schedule is not None:
            assert r.schedule.status == "optimal" and r.schedule.cost.fits, r.name
    conv = rows["up"].schedule.layer
    assert conv.kind == "conv" and conv.stride_h == conv.stride_w == 1
    strided = tuple(CASES[name]["strides"]) != (1, 1)
    assert ("up.depth_to_space" in rows) == strided


@pytest.mark.parametrize("name", ["k4-s2-p1-dcgan", "group2-s3", "non-square"])
@pytest.mark.parametrize("objective", ["cycles", "energy"])
def test_the_solver_agrees_with_the_exhaustive_oracle(name, objective):
    """The sub-pixel conv a ConvTranspose becomes is scheduled like any conv: CP-SAT's
    mapping and cost are the exhaustive oracle's (every tile size, order and dataflow
    evaluated), on both targets."""
    from sqnxt_compiler.schedule.oracle import exhaustive_best
    from sqnxt_compiler.schedule.solver import schedule_layer

    for tname in TARGETS:
        t = load_target(tname)
        res = driver.compile((build(name), "t.onnx"), target=t, schedule={"jobs": 1})
        L = next(r for r in res.network.rows if r.name == "up").schedule.layer
        s = schedule_layer(L, t, objective=objective)
        m, r = exhaustive_best(L, t, objective)
        assert s.status == "optimal" and (s.mapping, s.cost) == (m, r), (name, tname)


# ------------------------------------------------------------------ the CLI's executions
@pytest.mark.parametrize("name, tname, extra", [
    ("k4-s2-p1-dcgan", "pe16x16", ()),
    ("k3-s2-p1-adj1", "pe8x8", ()),
    ("group2-s3", "pe16x16", ()),
    ("s1-dil-asym", "pe8x8", ()),
    ("huge-begin-pad", "pe8x8", ("--precision", "int16")),
])
def test_tiled_check(cli, save, name, tname, extra):
    r = cli("check", save(build(name)), "-t", tname, "--tiled", *extra)
    assert r.exit_code == 0, r.stderr
    assert "PASS" in r.stdout and "tiled" in r.stdout


@pytest.mark.parametrize("name, tname, home", [
    ("s1-k3-p1", "pe16x16", None),                   # a plain conv with the flipped kernel
    ("s1-dil-asym", "pe8x8", None),                  # a dilated one
    ("s1-pad-beyond-kernel", "pe8x8", "dram"),       # conv + crop
    ("row-stride-only", "pe16x16", "dram"),          # the row interleave is one box per tile
])
def test_program_check(cli, save, name, tname, home):
    args = ["check", save(build(name)), "-t", tname, "--program"]
    if home:
        args += ["--activation-home", home]
    r = cli(*args)
    assert r.exit_code == 0, r.stderr
    assert "functional simulator" in r.stdout and "PASS" in r.stdout


def test_program_does_not_lower_a_2d_depth_to_space(cli, save):
    """Known limit (docs/cost-model.md, "Transposed convolution"): with both strides > 1 the
    depth-to-space transpose is not one strided box per tile, so lower-program refuses it:
    exit 4, one line naming the layer."""
    r = cli("check", save(build("k4-s2-p1-dcgan")), "-t", "pe16x16", "--program", "--activation-home", "dram")
    assert r.exit_code == int(ExitCode.UNSUPPORTED)
    line = r.stderr.strip()
    assert "\n" not in line and "layer 'up.depth_to_space' (move): not lowered" in line


def test_large_weight_read_lazily(cli, save):
    """A weight of 1 MiB is read from the file when the node is lowered (weights.py): the
    lowering builds the sub-pixel weight from it, and the result still matches."""
    model = ct_model(cin=256, cout=64, hw=(2, 3), k=(4, 4), strides=[2, 2], pads=[1, 1, 1, 1], seed=5)
    assert numpy_helper.to_array(model.graph.initializer[0]).nbytes >= 1 << 20
    r = cli("check", save(model))
    assert r.exit_code == 0, r.stderr
    assert "PASS" in r.stdout


def test_ops_lists_conv_transpose(cli):
    r = cli("ops")
    assert r.exit_code == 0
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith("ConvTranspose ")]
    assert "sqnxt.conv" in line and "sqnxt.transpose" in line and line.rstrip().endswith("array")


def test_deterministic_ir():
    a = print_graph(driver.compile((build("group2-s3"), "t.onnx"), pipeline="none").graph)
    b = print_graph(driver.compile((build("group2-s3"), "t.onnx"), pipeline="none").graph)
    assert a == b and "up.depth_to_space" in a and "up.crop" in a


# ------------------------------------------------------------------ rejected
def _bare(xshape, wshape, opset=17, **attrs):
    """A ConvTranspose whose output has only its rank declared (ONNX inference decides)."""
    rng = np.random.default_rng(0)
    return make_model([N("ConvTranspose", ["x", "w"], ["y"], name="deconv", **attrs)], [("x", xshape)],
                      [("y", [None] * len(xshape))], [("w", rng.standard_normal(wshape).astype(np.float32))],
                      opset=opset)


REJECTED = {
    "1-d": (_bare([1, 2, 5], [2, 3, 3], strides=[2]), "only 2-D transposed convolutions"),
    "3-d": (_bare([1, 2, 3, 4, 5], [2, 3, 3, 3, 3], strides=[2, 2, 2]), "only 2-D transposed convolutions"),
    "dilation-off-lattice": (_bare([1, 2, 4, 4], [2, 3, 5, 5], strides=[3, 3], dilations=[2, 2]),
                             "dilation 2 with stride 3 on axis H"),
    "output-padding-at-stride": (_bare([1, 2, 4, 4], [2, 3, 3, 3], strides=[2, 2], output_padding=[2, 0]),
                                 "output_padding 2 on axis H is not below the stride 2"),
    "output-padding-s1-dilated": (_bare([1, 2, 4, 4], [2, 3, 3, 3], dilations=[2, 2], output_padding=[0, 1]),
                                  "output_padding 1 on axis W is not below the stride 1"),
    "output-shape-too-large": (_bare([1, 2, 4, 4], [2, 3, 3, 3], strides=[2, 2], output_shape=[8, 11]),
                               "output_shape 11 on axis W is more than 1 past"),
    "same-with-output-padding": (_bare([1, 2, 4, 5], [2, 3, 3, 3], strides=[3, 3], output_padding=[1, 2],
                                       auto_pad="SAME_UPPER"),
                                 "onnxruntime computes an output of [1, 3, 12, 15] but ONNX shape inference says"),
    "kernel-shape": (_bare([1, 2, 4, 4], [2, 3, 3, 3], strides=[2, 2], kernel_shape=[2, 2]),
                     "kernel_shape [2, 2] differs from the weight's [3, 3]"),
    "pads-empty-output": (_bare([1, 2, 4, 4], [2, 3, 3, 3], pads=[3, 0, 3, 0]),
                          "pads [3, 3] on axis H leave an output of 0"),
    "auto-pad-unknown": (_bare([1, 2, 4, 4], [2, 3, 3, 3], strides=[2, 2], auto_pad="NEAREST"),
                         "auto_pad 'NEAREST'"),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_is_a_one_line_error_naming_the_node(cli, save, name):
    model, what = REJECTED[name]
    r = cli("compile", save(model))
    assert r.exit_code == int(ExitCode.UNSUPPORTED), r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("sqnxtc: error: ") and "node 'deconv' (ConvTranspose): " in line
    assert what in line, line


@pytest.mark.parametrize("name", ["output-padding-at-stride", "output-padding-s1-dilated",
                                  "output-shape-too-large"])
def test_what_is_rejected_as_onnxruntime_s_refusal_is_refused_by_onnxruntime(name):
    """The messages say onnxruntime rejects these: it does (there is no reference)."""
    model, _ = REJECTED[name]
    x = np.zeros([d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim], np.float32)
    with pytest.raises(Exception, match="output"):
        ort_output(model, x)


# ------------------------------------------------------------------ a decoder end to end
def decoder(seed=7):
    """conv (stride 2) -> relu -> ConvTranspose k4 s2 p1 -> relu -> ConvTranspose k3 s2 p1
    adj 1 (group 2) -> 1x1 conv: a segmentation decoder's shape, 16x16 -> 8x8 -> 32x32."""
    rng = np.random.default_rng(seed)
    w = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    nodes = [N("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1], strides=[2, 2], name="enc"),
             N("Relu", ["c0"], ["r0"]),
             N("ConvTranspose", ["r0", "w1", "b1"], ["u1"], strides=[2, 2], pads=[1, 1, 1, 1], name="up1"),
             N("Relu", ["u1"], ["r1"]),
             N("ConvTranspose", ["r1", "w2"], ["u2"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1],
               group=2, name="up2"),
             N("Conv", ["u2", "w3"], ["y"], name="head")]
    inits = [("w0", w(16, 3, 3, 3)), ("b0", w(16)), ("w1", w(16, 8, 4, 4)), ("b1", w(8)),
             ("w2", w(8, 4, 3, 3)), ("w3", w(5, 8, 1, 1))]
    return inferred_model(nodes, [("x", [1, 3, 16, 16])], ["y"], inits, opset=13)


def test_decoder_matches_onnxruntime():
    for passes in ("default", "none"):
        _, report = compile_and_check(decoder(), passes=passes, samples=3)
        assert report.ok, report.format()


@pytest.mark.parametrize("tname", TARGETS)
def test_decoder_compiles_and_runs_tiled(cli, save, tname):
    path = save(decoder())
    res = driver.compile(path, target=load_target(tname), schedule={"jobs": 1})
    names = [r.name for r in res.network.rows if r.schedule is not None]
    for layer in ("enc", "up1", "up1.depth_to_space", "up1.crop", "up2", "up2.depth_to_space", "head"):
        assert layer in names
    assert all(r.schedule.status == "optimal" for r in res.network.rows if r.schedule is not None)
    r = cli("check", path, "-t", tname, "--tiled")
    assert r.exit_code == 0, r.stderr
    assert "PASS" in r.stdout


# ------------------------------------------------------------------ the worked example
def driver_target(name, home):
    return dataclasses.replace(load_target(name), activation_home=home)


def doc_block() -> dict[str, str]:
    block = re.search(r"```worked-example-conv-transpose\n(.*?)```", DOC.read_text(), re.S).group(1)
    return {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in block.strip().splitlines())}


def fields(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split())


def hand_axis(size, k, s, p, out, r):
    """(window T, positions J) of one axis shifted by r, counted from the definition: every
    (input i, tap k) pair whose output o = i*s + k - p lies in [0, out) puts input offset
    i - q at phase (o + r) mod s of position q = (o + r) // s."""
    offsets = {}
    for i in range(size):
        for kk in range(k):
            o = i * s + kk - p
            if 0 <= o < out:
                q, phi = divmod(o + r, s)
                offsets.setdefault(phi, set()).add(i - q)
    every = set().union(*offsets.values())
    return max(every) - min(every) + 1, -(-(out + r) // s)


EXAMPLES = {"a": dict(k=4, s=2, p=1, adj=0), "b": dict(k=3, s=2, p=1, adj=1)}


@pytest.mark.parametrize("ex", sorted(EXAMPLES))
def test_worked_example(ex):
    """docs/cost-model.md, "Transposed convolution": the figures of the doc's block from the
    definition (the MACs of every form) and from sqnxtc's compile (layers, words, cycles)."""
    d = doc_block()
    a = EXAMPLES[ex]
    k, s, p, adj = a["k"], a["s"], a["p"], a["adj"]
    cin, cout, size = 16, 8, 6
    out = s * (size - 1) + adj + k - 2 * p
    assert out == 12
    attrs = fields(d[f"{ex}.attrs"])
    assert (int(attrs["K"]), int(attrs["s"]), int(attrs["p"]), int(attrs.get("output_padding", 0))) == (k, s, p, adj)

    # by hand: the window and positions of every shift, the MACs of each form
    per = {r: hand_axis(size, k, s, p, out, r) for r in range(s)}
    shift = int(d[f"{ex}.shift"])
    t, j = per[shift]
    assert (t, j) == (int(d[f"{ex}.window"]), int(d[f"{ex}.positions"]))
    macs = lambda t, j: cout * s * s * cin * (t * j) ** 2  # noqa: E731
    assert macs(t, j) == int(d[f"{ex}.macs"])
    crop = 32 * cout * out * out
    score = {r: macs(*per[r]) + (crop if (r != 0 or per[r][1] * s != out) else 0) for r in per}
    assert min(score, key=lambda r: (score[r], r)) == shift
    if f"{ex}.unshifted_macs" in d:
        assert macs(*per[0]) == int(d[f"{ex}.unshifted_macs"]) and crop == int(d[f"{ex}.crop_penalty"])
    assert cout * cin * k * k * out * out == int(d[f"{ex}.zero_insertion_macs"])
    assert cout * cin * k * k * size * size == int(d[f"{ex}.scatter_macs"])

    # from the compile: pe16x16, every activation through DRAM
    model = ct_model(cin, cout, (size, size), (k, k), strides=[s, s], pads=[p] * 4,
                     output_padding=[adj, adj], seed=11)
    tgt = driver_target("pe16x16", "dram")
    res = driver.compile((model, "t.onnx"), target=tgt, schedule={"jobs": 1})
    rows = {r.name: r.schedule for r in res.network.rows if r.schedule is not None}
    conv = rows["up"].layer
    want = fields(d[f"{ex}.conv"])
    assert (conv.C, conv.K, conv.R, conv.S, conv.P, conv.Q) == tuple(int(want[x]) for x in "CKRSPQ")
    assert conv.K == cout * s * s and conv.R == t and conv.P == j
    assert (conv.pad_top, conv.pad_left, conv.pad_bottom, conv.pad_right) == \
        tuple(int(v) for v in want["pads"].split(","))
    assert conv.macs == macs(t, j)
    assert rows["up"].cost.total_cycles == int(d[f"{ex}.conv_cycles"])

    d2s = rows["up.depth_to_space"]
    want = fields(d[f"{ex}.depth_to_space"])
    assert (d2s.layer.K, d2s.layer.P, d2s.layer.Q) == (int(want["K"]), int(want["P"]), int(want["Q"]))
    assert (d2s.layer.K, d2s.layer.P, d2s.layer.Q) == (cout * j * s, j, s)
    assert d2s.cost.dram["total"] == int(want["words"]) == 2 * cout * (j * s) ** 2
    assert d2s.cost.total_cycles == int(want["cycles"])
    if "compute" in want:
        assert d2s.cost.compute_cycles == int(want["compute"])
        assert d2s.cost.dma_cycles == int(want["dma"]) == 100 * d2s.cost.transfers["total"] + \
            math.ceil(d2s.cost.dram["total"] / 8)
    if f"{ex}.crop" in d:
        c = rows["up.crop"]
        want = fields(d[f"{ex}.crop"])
        assert (c.layer.K, c.layer.P, c.layer.Q) == (int(want["K"]), int(want["P"]), int(want["Q"])) == \
            (cout, out, out)
        assert c.cost.dram["total"] == int(want["words"]) == 2 * cout * out * out
        assert c.cost.total_cycles == int(want["cycles"])
    else:
        assert "up.crop" not in rows


def test_the_graph_output_keeps_the_onnx_name():
    """The ConvTranspose's output is the ONNX tensor 'y' whatever op ends the lowering."""
    for name in ("s1-k3-p1", "k3-s2-p1-adj1", "k4-s2-p1-dcgan"):
        g = driver.compile((build(name), "t.onnx"), pipeline="none").graph
        assert [v.name for v in g.outputs] == ["y"]


def test_weight_as_a_constant_node():
    """A weight given by a Constant node (not an initializer) lowers the same way."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [N("Constant", [], ["w"], value=numpy_helper.from_array(w, "w")),
             N("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1], name="up")]
    model = inferred_model(nodes, [("x", [1, 4, 5, 5])], ["y"])
    graph, report = compile_and_check(model, passes="none")
    assert report.ok
    assert graph.count_by_name()["sqnxt.conv"] == 1


def test_after_a_pool_onnx_inference_mis_sizes():
    """A ceil-mode pool whose last window starts in the padding: ONNX inference (opset 11)
    says 5x5, onnxruntime 4x4; the ConvTranspose after it follows the runtime's sizes
    (its declared type is off by the same rows) and matches onnxruntime."""
    rng = np.random.default_rng(4)
    nodes = [N("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
             N("ConvTranspose", ["p", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1], name="up")]
    inits = [("w", rng.standard_normal((3, 4, 4, 4)).astype(np.float32)),
             ("b", rng.standard_normal(4).astype(np.float32))]
    model = inferred_model(nodes, [("x", [1, 3, 7, 7])], ["y"], inits, opset=11)
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, 4, 10, 10]
    graph, report = compile_and_check(model, passes="none")
    assert report.ok, report.format()
    assert graph.outputs[0].type.shape == (1, 4, 8, 8)
