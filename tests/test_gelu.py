"""GELU as one activation (issue 25): ``sqnxt.gelu`` (``x / 2 * (1 + erf(x / sqrt(2)))``)
and ``sqnxt.gelu_tanh`` (its tanh approximation), ONNX Gelu (opset 20) imported directly,
canonicalize's ``gelu-from-parts`` (the ``Div, Erf, Add, Mul, Mul`` chain exporters write,
in each operand order and grouping), fuse-relu folding it into the conv / fc before it,
its cost (docs/cost-model.md, "Fused activations"), the program's activation codes and
the functional simulator, and the ConvNeXt fixtures.

Every number is compared with onnxruntime (its Gelu-20 kernel, or the decomposed graph);
every compile proves the rewrite driver's fixpoint (``rewrite.CHECK_FIXPOINT``)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from sqnxt_compiler import driver
from sqnxt_compiler.ir.ops import ACTIVATIONS
from sqnxt_compiler.pipeline import rewrite
from sqnxt_compiler.program import isa
from sqnxt_compiler.reference.check import check
from sqnxt_compiler.reference.executor import KERNELS, activate, gelu
from sqnxt_compiler.reference.ort import ort_session
from sqnxt_compiler.reference.tiled import execute_tiled
from sqnxt_compiler.targets import load_target
from support import inferred_model, make_model, rand

N = helper.make_node
f32 = np.float32
PE16 = load_target("pe16x16")
PE8 = load_target("pe8x8")
X = [("x", [1, 3, 8, 8])]
MODERN = Path(__file__).parent / "fixtures" / "modern"
R2, IR2 = f32(math.sqrt(2)), f32(1 / math.sqrt(2))


@pytest.fixture(autouse=True)
def _prove_fixpoints(monkeypatch):
    monkeypatch.setattr(rewrite, "CHECK_FIXPOINT", True)


def _conv_then(nodes, inits=(), opset=13, seed=3):
    """conv(x) -> c, then ``nodes`` on c giving y."""
    rng = np.random.default_rng(seed)
    return inferred_model([N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])] + nodes, X, ["y"],
                          [("w", rand(rng, 8, 3, 3, 3)), ("b", rand(rng, 8))] + list(inits), opset=opset)


def _ops(res) -> list[tuple[str, str | None]]:
    return [(op.name.split(".")[1], op.attrs.get("act")) for op in res.graph.ops()
            if not op.has_trait("structural")]


def _layers(res) -> list:
    """The cost-model layers of a compile, in order."""
    return [r.schedule.layer for r in res.network.scheduled]


def _checked(m, target=None):
    res = driver.compile((m, "t.onnx"), target=target, schedule={"jobs": 1})
    rep = check(res.graph, res.model, res.source, samples=2)
    assert rep.ok, rep.format()
    return res


def _ort(m, x: np.ndarray) -> np.ndarray:
    sess = ort_session(m, "t.onnx")
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


# ----------------------------------------------------------------------------- the kernel
def _unary_model(nodes, opset, n=4096):
    return inferred_model(nodes, [("x", [1, n])], ["y"], [("r2", R2), ("one", f32(1)), ("half", f32(0.5))],
                          opset=opset)


def test_the_kernel_is_onnxruntime_s_gelu_and_the_decomposed_graph():
    """The float64-inside kernel against onnxruntime's Gelu-20 (both approximations) and
    against the exported Div, Erf, Add, Mul, Mul graph, over the range where GELU bends
    and its tails."""
    x = np.concatenate([np.linspace(-12, 12, 4000, dtype=f32), f32([0, -0.0, 1e-30, -1e-30, 40, -40]),
                        np.random.default_rng(0).standard_normal(90).astype(f32)]).reshape(1, -1)
    n = x.shape[1]
    exact = _ort(_unary_model([N("Gelu", ["x"], ["y"])], 20, n), x)
    tanh = _ort(_unary_model([N("Gelu", ["x"], ["y"], approximate="tanh")], 20, n), x)
    parts = _ort(_unary_model([N("Div", ["x", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                               N("Mul", ["x", "a"], ["m"]), N("Mul", ["m", "half"], ["y"])], 13, n), x)
    ours = gelu(x)
    assert ours.dtype == np.float32 and gelu(x.astype(np.float64)).dtype == np.float64
    # the function itself, one rounding to fp32 of the double-precision value
    ref = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(float).ravel()]).reshape(x.shape)
    np.testing.assert_allclose(ours, ref, rtol=6e-8, atol=1e-45)
    # onnxruntime computes in fp32: where 1 + erf(x / sqrt(2)) cancels (x < -5) its error
    # is fp32's epsilon times |x|, a few 1e-7 absolute
    np.testing.assert_allclose(ours, exact, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(ours, parts, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(gelu(x, approximate="tanh"), tanh, rtol=2e-6, atol=1e-6)
    # the two approximations are two functions: they differ where GELU bends
    assert np.max(np.abs(gelu(x) - gelu(x, approximate="tanh"))) > 1e-4
    # the op kernels and the fused epilogue compute the same
    np.testing.assert_array_equal(KERNELS["sqnxt.gelu"](None, [x]), ours)
    np.testing.assert_array_equal(activate(x.copy(), "gelu"), ours)
    np.testing.assert_array_equal(activate(x.copy(), "gelu_tanh"), KERNELS["sqnxt.gelu_tanh"](None, [x]))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_onnx_gelu_20_is_imported_and_fused_into_the_conv(approximate):
    m = _conv_then([N("Gelu", ["c"], ["y"], approximate=approximate)], opset=20)
    kind = "gelu" if approximate == "none" else "gelu_tanh"
    res = _checked(m, PE8)
    assert _ops(res) == [("conv", kind)]
    assert res.statistics["fuse-relu"] == {f"{kind}-fused-into-conv": 1}
    assert (_layers(res)[0].epilogue.act_ops, _layers(res)[0].epilogue.act_funcs) == ACTIVATIONS[kind].epilogue
    for prec, (rtol, atol) in (("fp32", (1e-4, 1e-5)), ("int16", (0.0, 2.5e-3))):
        rep = check(res.graph, res.model, res.source, samples=1, rtol=rtol, atol=atol,
                    executor=lambda g, f, prec=prec: execute_tiled(g, f, precision=prec).outputs)
        assert rep.ok, (prec, rep.format())


def test_gelu_fuses_into_an_fc():
    rng = np.random.default_rng(4)
    m = inferred_model([N("Gemm", ["x", "w", "b"], ["g"], transB=1), N("Gelu", ["g"], ["y"])], [("x", [1, 24])],
                       ["y"], [("w", rand(rng, 10, 24)), ("b", rand(rng, 10))], opset=20)
    res = _checked(m, PE8)
    assert _ops(res) == [("fc", "gelu")]


# ----------------------------------------------------------------------------- gelu-from-parts
CONSTS = [("r2", R2), ("ir2", IR2), ("one", f32(1)), ("half", f32(0.5)), ("two", f32(2))]
#: (case, nodes on "c" giving "y"): GELU as exporters write it
SPELLINGS = [
    ("torchscript", [N("Div", ["c", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                     N("Mul", ["c", "a"], ["m"]), N("Mul", ["m", "half"], ["y"])]),
    ("half-first", [N("Mul", ["c", "half"], ["h"]), N("Div", ["c", "r2"], ["d"]), N("Erf", ["d"], ["e"]),
                    N("Add", ["one", "e"], ["a"]), N("Mul", ["h", "a"], ["y"])]),
    ("half-first-left", [N("Mul", ["half", "c"], ["h"]), N("Mul", ["c", "ir2"], ["d"]), N("Erf", ["d"], ["e"]),
                         N("Add", ["e", "one"], ["a"]), N("Mul", ["a", "h"], ["y"])]),
    ("mul-by-inverse-sqrt2", [N("Mul", ["ir2", "c"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                              N("Mul", ["a", "c"], ["m"]), N("Mul", ["half", "m"], ["y"])]),
    ("half-on-the-erf-side", [N("Div", ["c", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                              N("Mul", ["a", "half"], ["q"]), N("Mul", ["c", "q"], ["y"])]),
    ("div-by-2-last", [N("Div", ["c", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                       N("Mul", ["c", "a"], ["m"]), N("Div", ["m", "two"], ["y"])]),
]


@pytest.mark.parametrize("case,nodes", SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_each_spelling_becomes_one_gelu_fused_into_the_conv(case, nodes):
    m = _conv_then(nodes, CONSTS)
    res = _checked(m, PE16)
    assert res.statistics["canonicalize"]["gelu-from-parts"] == 1
    assert _ops(res) == [("conv", "gelu")]
    # the cycles of the same network written with one Gelu op
    one = _checked(_conv_then([N("Gelu", ["c"], ["y"])], opset=20), PE16)
    assert res.network.totals()["total_cycles"] == one.network.totals()["total_cycles"]
    assert _layers(res) == _layers(one)


def test_an_unfused_gelu_is_one_eltwise_layer_costing_what_the_gelu_op_costs():
    """After an add (the adder applies relu / relu6 only) the GELU stays a layer: one
    eltwise layer of ``Elementwise(3, 1)``, the cycles of the network written with Gelu."""
    tail = [N("Add", ["c", "c"], ["s"])]
    spelled = [N("Div", ["s", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
               N("Mul", ["s", "a"], ["m"]), N("Mul", ["m", "half"], ["y"])]
    res = _checked(_conv_then(tail + spelled, CONSTS), PE16)
    one = _checked(_conv_then(tail + [N("Gelu", ["s"], ["y"])], opset=20), PE16)
    assert [n for n, _ in _ops(res)] == ["conv", "add", "gelu"] == [n for n, _ in _ops(one)]
    el = _layers(res)[-1].element
    assert (el.fn, el.ops, el.funcs) == ("gelu", 3, 1)
    assert res.network.totals()["total_cycles"] == one.network.totals()["total_cycles"]


#: (case, nodes on "c" giving "y", extra outputs): not GELU, or its parts used elsewhere
NOT_GELU = [
    ("half-is-0.6", [N("Div", ["c", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                     N("Mul", ["c", "a"], ["m"]), N("Mul", ["m", "p6"], ["y"])], ()),
    ("sqrt3-not-sqrt2", [N("Div", ["c", "r3"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                         N("Mul", ["c", "a"], ["m"]), N("Mul", ["m", "half"], ["y"])], ()),
    ("plus-2", [N("Div", ["c", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "two"], ["a"]),
                N("Mul", ["c", "a"], ["m"]), N("Mul", ["m", "half"], ["y"])], ()),
    ("erf-of-another-tensor", [N("Relu", ["c"], ["r"]), N("Div", ["r", "r2"], ["d"]), N("Erf", ["d"], ["e"]),
                               N("Add", ["e", "one"], ["a"]), N("Mul", ["c", "a"], ["m"]),
                               N("Mul", ["m", "half"], ["y"])], ()),
    ("erf-shared", [N("Div", ["c", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                    N("Mul", ["c", "a"], ["m"]), N("Mul", ["m", "half"], ["y"])], ("e",)),
    ("product-shared", [N("Div", ["c", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                        N("Mul", ["c", "a"], ["m"]), N("Mul", ["m", "half"], ["y"])], ("m",)),
    ("three-factors-of-x", [N("Div", ["c", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                            N("Mul", ["c", "a"], ["m"]), N("Mul", ["m", "c"], ["y"])], ()),
]


@pytest.mark.parametrize("case,nodes,extra", NOT_GELU, ids=[s[0] for s in NOT_GELU])
def test_what_is_not_gelu_stays(case, nodes, extra):
    rng = np.random.default_rng(5)
    consts = CONSTS + [("p6", f32(0.6)), ("r3", f32(math.sqrt(3)))]
    m = inferred_model([N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])] + nodes, X, ["y", *extra],
                       [("w", rand(rng, 8, 3, 3, 3)), ("b", rand(rng, 8))] + consts)
    res = _checked(m, PE8)
    assert "gelu-from-parts" not in res.statistics["canonicalize"]
    assert not res.graph.ops_named("sqnxt.gelu") and ("erf", None) in _ops(res)


# ----------------------------------------------------------------------------- the program
def test_the_activation_codes_name_every_kind():
    """Every activation an epilogue applies has a descriptor code; the kinds before GELU
    kept theirs (programs encoded before still decode)."""
    assert set(ACTIVATIONS) <= set(isa.ACTS)
    assert isa.ACTS[:9] == ("none", "relu", "relu6", "leaky_relu", "hard_sigmoid", "hard_swish", "sigmoid",
                            "tanh", "swish")
    assert {"gelu", "gelu_tanh"} <= set(isa.ELEMENT_FNS) and len(isa.ELEMENT_FNS) <= 64


@pytest.mark.parametrize("tail,name", [
    ([N("Gelu", ["c"], ["y"])], "fused"),
    ([N("Gelu", ["c"], ["y"], approximate="tanh")], "fused-tanh"),
    ([N("Add", ["c", "c"], ["s"]), N("Gelu", ["s"], ["y"])], "eltwise"),
    ([N("Add", ["c", "c"], ["s"]), N("Gelu", ["s"], ["y"], approximate="tanh")], "eltwise-tanh"),
])
@pytest.mark.parametrize("precision", ["fp32", "int16"])
def test_program_check(cli, save, tail, name, precision):
    """``check --program``: lowered to the accelerator's program (the act / fn code), run
    by the functional simulator, compared with onnxruntime."""
    path = save(_conv_then(tail, opset=20))
    for home in ("planned", "dram"):
        r = cli("check", path, "-t", "pe8x8", "--program", "--precision", precision, "--activation-home", home)
        assert r.exit_code == 0, (name, home, r.stdout, r.stderr)
        assert "functional simulator" in r.stdout and "PASS" in r.stdout


@pytest.mark.parametrize("tail,kind,act,fn", [
    ([N("Gelu", ["c"], ["y"])], "conv", "gelu", "none"),
    ([N("Add", ["c", "c"], ["s"]), N("Gelu", ["s"], ["y"], approximate="tanh")], "eltwise", "none", "gelu_tanh"),
])
def test_the_program_s_descriptor_carries_the_gelu_code(tail, kind, act, fn):
    from sqnxt_compiler.program.lower import lower

    res = driver.compile((_conv_then(tail, opset=20), "t.onnx"), target=PE8, schedule={"jobs": 1})
    descs = [d for d in lower(res.graph, PE8).program.layers if d.kind == kind]
    assert [(d.act, d.fn) for d in descs] == [(act, fn)]


# ----------------------------------------------------------------------------- ConvNeXt
def _chlast_linear_gelu(bias_shape=(24,), act=("Gelu", 20)):
    """ConvNeXt's MLP on NHWC: Linear (MatMul + Add), GELU, Linear, back to NCHW."""
    rng = np.random.default_rng(6)
    kind, opset = act
    return inferred_model([N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                           N("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]), N("MatMul", ["t", "B"], ["mm"]),
                           N("Add", ["bias", "mm"], ["a"]), N(kind, ["a"], ["g"]),
                           N("MatMul", ["g", "B2"], ["m2"]), N("Add", ["m2", "c2"], ["a2"]),
                           N("Transpose", ["a2"], ["y"], perm=[0, 3, 1, 2])], [("x", [1, 3, 6, 6])], ["y"],
                          [("w", rand(rng, 8, 3, 3, 3)), ("B", rand(rng, 8, 24)), ("bias", rand(rng, *bias_shape)),
                           ("B2", rand(rng, 24, 8)), ("c2", rand(rng, 1, 1, 1, 8))], opset=opset)


def test_the_bias_of_a_channels_last_matmul_is_its_layer_s_bias_and_gelu_its_activation():
    res = _checked(_chlast_linear_gelu(), PE8)
    assert res.statistics["canonicalize"]["bias-into-matmul"] == 2
    mm = res.graph.ops_named("sqnxt.matmul")
    assert [(len(op.operands), op.attrs["act"]) for op in mm] == [(3, "gelu"), (3, "none")]
    ls = [L for L in _layers(res) if L.kind == "conv" and L.R == 1]
    assert [(L.epilogue.bias, L.epilogue.act_ops, L.epilogue.act_funcs) for L in ls] == [(True, 3, 1), (True, 0, 0)]
    for prec, (rtol, atol) in (("fp32", (1e-4, 1e-5)), ("int16", (0.0, 2.5e-3))):
        rep = check(res.graph, res.model, res.source, samples=1, rtol=rtol, atol=atol,
                    executor=lambda g, f, prec=prec: execute_tiled(g, f, precision=prec).outputs)
        assert rep.ok, (prec, rep.format())


@pytest.mark.parametrize("precision", ["fp32", "int16"])
def test_program_check_of_a_channels_last_matmul_with_bias_and_gelu(cli, save, precision):
    """The matmul's bias loaded into the bias memory and GELU applied as results leave the
    array, in the functional simulator (channels-last tensors go through DRAM: COMPUTE
    reads resident tensors channel-major)."""
    r = cli("check", save(_chlast_linear_gelu()), "-t", "pe8x8", "--program", "--precision", precision,
            "--activation-home", "dram")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert "functional simulator" in r.stdout and "PASS" in r.stdout


def test_a_bias_that_is_not_per_column_stays_an_add():
    """A (6, 24) addend varies along W too: not a bias; the matmul keeps no activation
    (the add is between), and the numbers stay onnxruntime's."""
    res = _checked(_chlast_linear_gelu(bias_shape=(6, 24)), PE8)
    assert res.statistics["canonicalize"].get("bias-into-matmul") == 1      # the second Linear's only
    assert [op.attrs["act"] for op in res.graph.ops_named("sqnxt.matmul")] == ["none", "none"]
    assert res.graph.ops_named("sqnxt.gelu")


def test_an_activation_is_not_fused_into_a_matmul_of_two_activations():
    """No layer stands for a matmul of two activations: an activation fused there would
    vanish from the costs, so it stays a layer."""
    m = inferred_model([N("MatMul", ["x", "z"], ["p"]), N("Gelu", ["p"], ["y"])],
                       [("x", [1, 4, 6]), ("z", [1, 6, 5])], ["y"], opset=20)
    res = _checked(m, PE8)
    assert res.graph.ops_named("sqnxt.gelu") and res.graph.ops_named("sqnxt.matmul")[0].attrs["act"] == "none"
    assert res.statistics["fuse-relu"] == {"skipped-unmodelled-producer": 1}


CONVNEXT_BEFORE = {"layers": 18, "cycles": 14220}      # pe16x16, before issue 25's GELU work


@pytest.mark.parametrize("name", ["convnext_ts13", "convnext_dynamo18"])
def test_convnext_fixtures(name):
    """GELU one activation fused into the first Linear with its bias, the second Linear's
    bias and layer scale its layer's: 10 layers instead of 18 on pe16x16, the same cycles
    for both exporters, and still onnxruntime's numbers (plain, tiled fp32 and int16)."""
    res = driver.compile(str(MODERN / f"{name}.onnx"), target=PE16, schedule={"jobs": 1})
    assert res.statistics["canonicalize"]["gelu-from-parts"] == 1
    assert res.statistics["canonicalize"]["bias-into-matmul"] == 2
    assert res.statistics["canonicalize"]["scale-into-matmul"] == 1
    assert res.statistics["fuse-relu"] == {"gelu-fused-into-matmul": 1}
    tot = res.network.totals()
    assert len(_layers(res)) == 10 and tot["unmodelled_ops"] == 0
    assert tot["total_cycles"] < 0.5 * CONVNEXT_BEFORE["cycles"]
    # conv, dw conv, to NHWC, LayerNorm, Linear + bias + GELU, Linear + bias, scaled by the
    # layer scale, to NCHW, residual add, global pool, head
    assert [L.kind for L in _layers(res)] == ["conv", "conv", "move", "eltwise", "conv", "conv", "move",
                                              "add", "gap", "fc"]
    rep = check(res.graph, res.model, res.source, samples=2)
    assert rep.ok, rep.format()
    for prec, (rtol, atol) in (("fp32", (1e-4, 1e-5)), ("int16", (0.0, 2.5e-3))):
        rep = check(res.graph, res.model, res.source, samples=1, rtol=rtol, atol=atol,
                    executor=lambda g, f, prec=prec: execute_tiled(g, f, precision=prec).outputs)
        assert rep.ok, (prec, rep.format())


def test_a_layer_scale_after_a_channels_last_matmul_scales_its_columns():
    """mul(matmul(x, B, b), c) with c per column -> matmul(x, B*c, b*c), and without a bias
    too: one layer, onnxruntime's numbers, the cycles of the same network with the scale
    already in B."""
    rng = np.random.default_rng(31)
    B, b, c = (rng.standard_normal(s).astype(np.float32) for s in ((6, 5), (5,), (5,)))
    for with_bias in (True, False):
        nodes = [helper.make_node("MatMul", ["x", "B"], ["m"])]
        last = "m"
        if with_bias:
            nodes.append(helper.make_node("Add", ["m", "b"], ["mb"]))
            last = "mb"
        nodes.append(helper.make_node("Mul", ["c", last], ["y"]))
        inits = [("B", B), ("c", c)] + ([("b", b)] if with_bias else [])
        m = make_model(nodes, [("x", (1, 4, 4, 6))], [("y", (1, 4, 4, 5))], inits)
        res = driver.compile((m, "t.onnx"), target=PE16, schedule={"jobs": 1})
        assert res.statistics["canonicalize"]["scale-into-matmul"] == 1
        assert [L.kind for L in _layers(res)] == ["conv"]
        rep = check(res.graph, res.model, "t.onnx", samples=2)
        assert rep.ok, rep.format()
        pre = [helper.make_node("MatMul", ["x", "B"], ["m"])] + (
            [helper.make_node("Add", ["m", "b"], ["y"])] if with_bias else [])
        pre[-1].output[0] = "y"
        inits2 = [("B", B * c)] + ([("b", b * c)] if with_bias else [])
        twin = driver.compile((make_model(pre, [("x", (1, 4, 4, 6))], [("y", (1, 4, 4, 5))], inits2), "u.onnx"),
                              target=PE16, schedule={"jobs": 1})
        assert res.network.totals()["total_cycles"] == twin.network.totals()["total_cycles"]


def test_both_convnext_exports_cost_the_same():
    a, b = (driver.compile(str(MODERN / f"convnext_{e}.onnx"), target=PE16, schedule={"jobs": 1})
            for e in ("ts13", "dynamo18"))
    assert a.network.totals()["total_cycles"] == b.network.totals()["total_cycles"]
    assert [L.shape_key() for L in _layers(a)] == [L.shape_key() for L in _layers(b)]
