"""How tf2onnx spells a layer, rewritten into the form the later passes already handle
(passes/fold_bn.py, passes/canonicalize.py): a BatchNorm the exporter folded into a
per-channel Mul + Add after a conv or fc, hard-swish as ``x * relu6(x + 3) / 6``, a zero
Pad in front of a MaxPool, transposes that cancel or compose, LayerNorm as tf's moments.

Each spelling is a graph built with onnx.helper as tf2onnx writes it (operand order,
constant shapes, Clip bounds as inputs at opset >= 11 and attributes before), and each
test holds: the pass rewrites it (its statistic, the op gone from the IR), the compiled
model equals onnxruntime, and on pe16x16 it costs the cycles of the same network written
the PyTorch way (BN folded or kept, a HardSwish op, a MaxPool with its own pads, an
opset-17 LayerNormalization).  The negative cases (a shared producer, a non-constant or
not-per-channel constant, a pad that may cover negative values, ...) are left alone and
still equal onnxruntime.  Every compile proves the rewrite driver's fixpoint
(``rewrite.CHECK_FIXPOINT``): a pattern whose ``reach`` is too small fails here."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from sqnxt_compiler import driver
from sqnxt_compiler.pipeline import rewrite
from sqnxt_compiler.reference.check import check
from sqnxt_compiler.targets import load_target
from support import inferred_model, int64s, rand

N = helper.make_node
f32 = np.float32
PE16 = load_target("pe16x16")
C = 8                                   # channels of the conv in every test network
X = [("x", [1, 3, 8, 8])]


@pytest.fixture(autouse=True)
def _prove_fixpoints(monkeypatch):
    monkeypatch.setattr(rewrite, "CHECK_FIXPOINT", True)


def compiled(m):
    """The default pipeline on ``m`` (no target), checked against onnxruntime."""
    res = driver.compile((m, "t.onnx"))
    rep = check(res.graph, res.model, res.source, samples=2)
    assert rep.ok, rep.format()
    return res


def layers(res) -> list[tuple]:
    """(op, act, pool kind) of every op left but the structural ones, in order."""
    return [(op.name.split(".")[1], op.attrs.get("act"), (op.attrs.get("pool") or {}).get("kind"))
            for op in res.graph.ops() if not op.has_trait("structural")]


def cycles(m) -> int:
    res = driver.compile((m, "t.onnx"), target=PE16, schedule={"jobs": 1})
    tot = res.network.totals()
    assert tot["unmodelled_ops"] == 0
    return tot["total_cycles"]


def same_cost(tf_model, torch_model) -> None:
    """The tf2onnx spelling compiles to the layers of the PyTorch one and costs its cycles."""
    a, b = compiled(tf_model), compiled(torch_model)
    assert layers(a) == layers(b)
    assert cycles(tf_model) == cycles(torch_model)


def conv(out="c", bias=True, inp="x", pads=(1, 1, 1, 1)):
    return N("Conv", [inp, "w", "b"] if bias else [inp, "w"], [out], pads=list(pads))


def conv_inits(rng, bias=True):
    return [("w", rand(rng, C, 3, 3, 3))] + ([("b", rand(rng, C))] if bias else [])


# ------------------------------------------------------------------ 1. BN as Mul + Add
def _bn_consts(rng, shape):
    s = (rand(rng, C, positive=True) * 0.8).reshape(shape)
    t = rand(rng, C).reshape(shape)
    return s, t


#: (case, nodes after the conv "c" giving "y", constants(rng) -> inits, conv has a bias, fold-bn's stats)
BN_SPELLINGS = [
    ("mul-add-1C11", lambda: [N("Mul", ["c", "s"], ["m"]), N("Add", ["m", "t"], ["y"])],
     lambda rng: list(zip(("s", "t"), _bn_consts(rng, (1, C, 1, 1)))), True,
     {"mul-folded-into-conv": 1, "add-folded-into-conv": 1}),
    ("constant-first-C11", lambda: [N("Mul", ["s", "c"], ["m"]), N("Add", ["t", "m"], ["y"])],
     lambda rng: list(zip(("s", "t"), _bn_consts(rng, (C, 1, 1)))), True,
     {"mul-folded-into-conv": 1, "add-folded-into-conv": 1}),
    ("sub-negated-bias", lambda: [N("Mul", ["c", "s"], ["m"]), N("Sub", ["m", "t"], ["y"])],
     lambda rng: list(zip(("s", "t"), _bn_consts(rng, (1, C, 1, 1)))), False,
     {"mul-folded-into-conv": 1, "sub-folded-into-conv": 1}),
    ("sub-from-constant", lambda: [N("Sub", ["t", "c"], ["y"])],
     lambda rng: [("t", _bn_consts(rng, (C, 1, 1))[1])], True, {"sub-folded-into-conv": 1}),
    ("div-then-add", lambda: [N("Div", ["c", "s"], ["m"]), N("Add", ["m", "t"], ["y"])],
     lambda rng: list(zip(("s", "t"), _bn_consts(rng, (1, C, 1, 1)))), True,
     {"div-folded-into-conv": 1, "add-folded-into-conv": 1}),
    ("scalars", lambda: [N("Mul", ["c", "s"], ["m"]), N("Add", ["m", "t"], ["y"])],
     lambda rng: [("s", f32(1.7)), ("t", np.full((1, 1, 1, 1), -0.3, f32))], True,
     {"mul-folded-into-conv": 1, "add-folded-into-conv": 1}),
    ("equal-along-H-and-W", lambda: [N("Mul", ["c", "s"], ["y"])],
     lambda rng: [("s", np.broadcast_to(_bn_consts(rng, (1, C, 1, 1))[0], (1, C, 8, 8)).copy())], True,
     {"mul-folded-into-conv": 1}),
    ("lone-mul", lambda: [N("Mul", ["c", "s"], ["y"])],
     lambda rng: [("s", _bn_consts(rng, (1, C, 1, 1))[0])], False, {"mul-folded-into-conv": 1}),
    ("lone-bias-add", lambda: [N("Add", ["c", "t"], ["y"])],
     lambda rng: [("t", _bn_consts(rng, (C, 1, 1))[1])], False, {"add-folded-into-conv": 1}),
    ("then-relu", lambda: [N("Mul", ["c", "s"], ["m"]), N("Add", ["m", "t"], ["a"]), N("Relu", ["a"], ["y"])],
     lambda rng: list(zip(("s", "t"), _bn_consts(rng, (1, C, 1, 1)))), True,
     {"mul-folded-into-conv": 1, "add-folded-into-conv": 1}),
]


def _affine_model(nodes, inits, bias, seed=3):
    rng = np.random.default_rng(seed)
    return inferred_model([conv(bias=bias)] + nodes, X, ["y"], conv_inits(rng, bias) + inits(rng))


def _torch_conv(act=None, bias=True, seed=30):
    """The PyTorch spelling: a conv (BN already folded into its weights), an optional relu."""
    rng = np.random.default_rng(seed)
    nodes = [conv(out="c" if act else "y", bias=bias)] + ([N("Relu", ["c"], ["y"])] if act else [])
    return inferred_model(nodes, X, ["y"], conv_inits(rng, bias))


@pytest.mark.parametrize("case,nodes,inits,bias,stats", BN_SPELLINGS, ids=[s[0] for s in BN_SPELLINGS])
def test_a_bn_folded_by_the_exporter_folds_into_the_conv(case, nodes, inits, bias, stats):
    m = _affine_model(nodes(), inits, bias)
    res = compiled(m)
    assert res.statistics["fold-bn"] == stats
    relu = case == "then-relu"
    assert layers(res) == [("conv", "relu" if relu else "none", None)]
    conv_op = res.graph.ops_named("sqnxt.conv")[0]
    gains_bias = any(k.split("-")[0] in ("add", "sub") for k in stats)
    assert len(conv_op.operands) == (3 if bias or gains_bias else 2)
    assert cycles(m) == cycles(_torch_conv(act="relu" if relu else None, bias=bias or gains_bias))


def test_the_folded_weights_are_the_formula():
    rng = np.random.default_rng(4)
    s, t = _bn_consts(rng, (1, C, 1, 1))
    w, b = rand(rng, C, 3, 3, 3), rand(rng, C)
    m = inferred_model([conv(), N("Mul", ["s", "c"], ["m"]), N("Sub", ["m", "t"], ["y"])], X, ["y"],
                       [("w", w), ("b", b), ("s", s), ("t", t)])
    conv_op = compiled(m).graph.ops_named("sqnxt.conv")[0]
    np.testing.assert_allclose(conv_op.operands[1].owner.const_value(), w * s.reshape(C, 1, 1, 1), rtol=1e-6)
    np.testing.assert_allclose(conv_op.operands[2].owner.const_value(), b * s.reshape(C) - t.reshape(C),
                               rtol=1e-5, atol=1e-6)


def test_a_bn_after_a_dense_layer_folds_into_the_fc_per_output_feature():
    """tf2onnx's Keras Dense + BatchNormalization: Gemm, then Mul and Add by (K,) constants."""
    rng = np.random.default_rng(5)
    k = 10
    tf_model = inferred_model(
        [N("Flatten", ["x"], ["f"]), N("Gemm", ["f", "B", "bias"], ["g"]), N("Mul", ["g", "s"], ["m"]),
         N("Add", ["m", "t"], ["y"])], X, ["y"],
        [("B", rand(rng, 192, k)), ("bias", rand(rng, k)), ("s", rand(rng, k, positive=True)), ("t", rand(rng, 1, k))])
    res = compiled(tf_model)
    assert res.statistics["fold-bn"] == {"mul-folded-into-fc": 1, "add-folded-into-fc": 1}
    assert layers(res) == [("fc", "none", None)]
    torch_model = inferred_model([N("Flatten", ["x"], ["f"]), N("Gemm", ["f", "B", "bias"], ["y"], transB=1)],
                                 X, ["y"], [("B", rand(rng, k, 192)), ("bias", rand(rng, k))])
    same_cost(tf_model, torch_model)


def test_bn_as_mul_add_costs_what_a_kept_batchnorm_costs():
    """The same network with the BN kept (PyTorch, training-mode export): fold-bn folds both."""
    rng = np.random.default_rng(6)
    bn_inits = [("g", rand(rng, C)), ("be", rand(rng, C)), ("mu", rand(rng, C)), ("var", rand(rng, C, positive=True))]
    torch_model = inferred_model([conv(), N("BatchNormalization", ["c", "g", "be", "mu", "var"], ["n"]),
                                  N("Relu", ["n"], ["y"])], X, ["y"], conv_inits(rng) + bn_inits)
    tf_model = _affine_model([N("Mul", ["c", "s"], ["m"]), N("Add", ["m", "t"], ["a"]), N("Relu", ["a"], ["y"])],
                             lambda rng: list(zip(("s", "t"), _bn_consts(rng, (1, C, 1, 1)))), True)
    assert compiled(torch_model).statistics["fold-bn"] == {"bn-folded-into-conv": 1}
    same_cost(tf_model, torch_model)


def test_a_shared_conv_result_is_not_folded():
    rng = np.random.default_rng(7)
    s, t = _bn_consts(rng, (1, C, 1, 1))
    m = inferred_model([conv(), N("Mul", ["c", "s"], ["m"]), N("Add", ["m", "t"], ["y"]), N("Relu", ["c"], ["z"])],
                       X, ["y", "z"], conv_inits(rng) + [("s", s), ("t", t)])
    res = compiled(m)
    # the mul declines (the conv has two users); the add's operand is the mul, no conv
    assert res.statistics["fold-bn"] == {"skipped-multi-use": 1}
    assert sorted(n for n, *_ in layers(res)) == ["add", "conv", "mul", "relu"]


def test_a_non_constant_scale_is_not_folded():
    rng = np.random.default_rng(8)
    m = inferred_model([conv(), N("Mul", ["c", "g"], ["y"])], X + [("g", [1, C, 1, 1])], ["y"], conv_inits(rng))
    res = compiled(m)
    assert res.statistics["fold-bn"] == {}
    assert [n for n, *_ in layers(res)] == ["conv", "mul"]


@pytest.mark.parametrize("shape", [(C,), (1, 1, 8, 8), (1, C, 8, 1)], ids=["C-on-W", "spatial", "varies-on-H"])
def test_a_constant_that_is_not_per_channel_is_not_folded(shape):
    """A (C,) constant broadcasts on W, not on the channels (the conv's W is 8 = C here)."""
    rng = np.random.default_rng(9)
    m = inferred_model([conv(), N("Mul", ["c", "s"], ["y"])], X, ["y"], conv_inits(rng) + [("s", rand(rng, *shape))])
    res = compiled(m)
    assert res.statistics["fold-bn"] == {"skipped-not-per-channel": 1}
    assert [n for n, *_ in layers(res)] == ["conv", "mul"]


@pytest.mark.parametrize("case", ["infinite-scale", "zero-divisor"])
def test_a_scale_that_is_not_finite_is_not_folded(case):
    """inf * 0 in the folded weights would be NaN where the unfolded layer gives 0 or inf."""
    rng = np.random.default_rng(24)
    c = _bn_consts(rng, (1, C, 1, 1))[0]
    c[0, 2] = np.inf if case == "infinite-scale" else 0.0
    m = inferred_model([conv(), N("Mul" if case == "infinite-scale" else "Div", ["c", "s"], ["y"])], X, ["y"],
                       conv_inits(rng) + [("s", c)])
    res = compiled(m)
    assert res.statistics["fold-bn"] == {"skipped-not-finite": 1}
    assert len(layers(res)) == 2


def test_an_add_that_carries_a_fused_activation_is_not_folded():
    rng = np.random.default_rng(25)
    m = inferred_model([conv(), N("Add", ["c", "t"], ["a"]), N("Relu", ["a"], ["y"])], X, ["y"],
                       conv_inits(rng) + [("t", _bn_consts(rng, (1, C, 1, 1))[1])])
    res = driver.compile((m, "t.onnx"), pipeline="fuse-relu,fold-bn")     # relu(add) fused into the add first
    assert res.statistics["fuse-relu"] == {"relu-fused-into-add": 1}
    assert res.statistics["fold-bn"] == {"skipped-not-affine": 1}
    assert check(res.graph, res.model, res.source, samples=2).ok
    assert compiled(m).statistics["fold-bn"] == {"add-folded-into-conv": 1}    # the default order folds it


def test_an_activation_between_blocks_the_fold():
    rng = np.random.default_rng(10)
    s, t = _bn_consts(rng, (1, C, 1, 1))
    m = inferred_model([conv(), N("Relu", ["c"], ["r"]), N("Mul", ["r", "s"], ["m"]), N("Add", ["m", "t"], ["y"])],
                       X, ["y"], conv_inits(rng) + [("s", s), ("t", t)])
    res = compiled(m)          # default pipeline: the relu is an op of its own when fold-bn runs
    assert res.statistics["fold-bn"] == {}
    assert [n for n, *_ in layers(res)] == ["conv", "mul", "add"]
    res = driver.compile((m, "t.onnx"), pipeline="fuse-relu,fold-bn")      # relu fused first
    assert res.statistics["fold-bn"] == {"skipped-activation-between": 1}
    assert check(res.graph, res.model, res.source, samples=2).ok


# ------------------------------------------------------------------ 2. hard-swish, swish
def _act_model(nodes, inits=(), opset=13, seed=11):
    rng = np.random.default_rng(seed)
    return inferred_model([conv()] + nodes, X, ["y"], conv_inits(rng) + list(inits), opset=opset)


RELU6_IN = [("zero", f32(0)), ("six", f32(6))]          # Clip's bounds as inputs (opset >= 11)
#: (case, nodes on "c" giving "y", constants, opset, canonicalize's rewrites): hard-swish as
#: Keras writes it, through tf2onnx (Keras' ``y * hard_sigmoid(y)``, ``hard_sigmoid`` being
#: ``relu6(y + 3) / 6``, is two rewrites: the hard_sigmoid, then the product)
KERAS = {"hard-sigmoid-from-relu6": 1, "hard-swish-from-mul": 1}
HSWISH = [
    ("keras-app", [N("Add", ["c", "three"], ["a"]), N("Clip", ["a", "zero", "six"], ["r"]),
                   N("Mul", ["r", "sixth"], ["h"]), N("Mul", ["c", "h"], ["y"])],
     [("three", np.full((1, 1, 1, 1), 3, f32)), ("sixth", f32(1 / 6))] + RELU6_IN, 13, KERAS),
    ("div-6-swapped", [N("Add", ["three", "c"], ["a"]), N("Clip", ["a", "zero", "six"], ["r"]),
                       N("Div", ["r", "six"], ["h"]), N("Mul", ["h", "c"], ["y"])],
     [("three", f32(3))] + RELU6_IN, 17, KERAS),
    ("product-then-div", [N("Add", ["c", "three"], ["a"]), N("Clip", ["a", "zero", "six"], ["r"]),
                          N("Mul", ["c", "r"], ["p"]), N("Div", ["p", "six"], ["y"])],
     [("three", f32(3))] + RELU6_IN, 13, {"hard-swish-from-relu6": 1}),
    ("product-then-sixth", [N("Add", ["c", "three"], ["a"]), N("Clip", ["a"], ["r"], min=0.0, max=6.0),
                            N("Mul", ["r", "c"], ["p"]), N("Mul", ["sixth", "p"], ["y"])],
     [("three", f32(3)), ("sixth", np.array([0.1666667], f32))], 10, {"hard-swish-from-relu6": 1}),
    ("hard-sigmoid", [N("HardSigmoid", ["c"], ["h"], alpha=1 / 6, beta=0.5), N("Mul", ["h", "c"], ["y"])], [], 13,
     {"hard-swish-from-mul": 1}),
]


@pytest.mark.parametrize("case,nodes,inits,opset,rewrites", HSWISH, ids=[h[0] for h in HSWISH])
def test_hard_swish_spellings_become_one_hard_swish_fused_into_the_conv(case, nodes, inits, opset, rewrites):
    m = _act_model(nodes, inits, opset)
    res = compiled(m)
    st = res.statistics["canonicalize"]
    assert {k: v for k, v in st.items() if k.startswith("hard-")} == rewrites
    assert res.statistics["fuse-relu"] == {"hard_swish-fused-into-conv": 1}
    assert layers(res) == [("conv", "hard_swish", None)]
    torch_model = _act_model([N("HardSwish", ["c"], ["y"])], opset=14, seed=12)
    same_cost(m, torch_model)


def test_keras_hard_sigmoid_becomes_a_hard_sigmoid_fused_into_the_conv():
    """The squeeze-excitation gate of Keras' MobileNetV3: relu6(conv + 3) / 6, the scale of
    a mul (PyTorch: Hardsigmoid, exported as HardSigmoid(alpha = 1/6))."""
    gate = [N("Add", ["c", "three"], ["a"]), N("Clip", ["a", "zero", "six"], ["r"]),
            N("Mul", ["r", "sixth"], ["h"]), N("Mul", ["x", "h"], ["y"])]
    rng = np.random.default_rng(21)
    w1 = [("w", rand(rng, 3, 3, 3, 3)), ("b", rand(rng, 3))]
    tf_model = inferred_model([conv(pads=(1, 1, 1, 1))] + gate, X, ["y"],
                              w1 + [("three", np.full((1, 1, 1, 1), 3, f32)), ("sixth", f32(1 / 6))] + RELU6_IN)
    res = compiled(tf_model)
    assert res.statistics["canonicalize"]["hard-sigmoid-from-relu6"] == 1
    assert res.statistics["fuse-relu"] == {"hard_sigmoid-fused-into-conv": 1}
    (conv_op,) = res.graph.ops_named("sqnxt.conv")
    assert (conv_op.attrs["act"], conv_op.attrs["act_beta"]) == ("hard_sigmoid", 0.5)
    assert np.float32(conv_op.attrs["act_alpha"]) == np.float32(1 / 6)
    torch_model = inferred_model([conv(pads=(1, 1, 1, 1)), N("HardSigmoid", ["c"], ["h"], alpha=1 / 6, beta=0.5),
                                  N("Mul", ["x", "h"], ["y"])], X, ["y"], w1)
    same_cost(tf_model, torch_model)


@pytest.mark.parametrize("case", ["add-2", "clip-0-5", "other-x", "shared-clip", "hard-sigmoid-0.2"])
def test_what_is_not_hard_swish_stays(case):
    three = [("three", f32(2 if case == "add-2" else 3))]
    hi = f32(5) if case == "clip-0-5" else f32(6)
    nodes = [N("Add", ["c", "three"], ["a"]), N("Clip", ["a", "zero", "hi"], ["r"]),
             N("Div", ["r", "six"], ["h"]), N("Mul", ["x2" if case == "other-x" else "c", "h"], ["y"])]
    inits = three + [("zero", f32(0)), ("hi", hi), ("six", f32(6))]
    outputs = ["y"]
    if case == "other-x":               # x2 * hard_sigmoid(c): the gate is one, the product is no hard-swish
        nodes.insert(0, N("Relu", ["c"], ["x2"]))
    if case == "shared-clip":
        nodes.append(N("Relu", ["r"], ["z"]))
        outputs.append("z")
    if case == "hard-sigmoid-0.2":
        nodes = [N("HardSigmoid", ["c"], ["h"], alpha=0.2, beta=0.5), N("Mul", ["c", "h"], ["y"])]
        inits = []
    rng = np.random.default_rng(13)
    m = inferred_model([conv()] + nodes, X, outputs, conv_inits(rng) + inits)
    res = compiled(m)
    st = res.statistics["canonicalize"]
    assert "hard-swish-from-relu6" not in st and "hard-swish-from-mul" not in st
    assert st.get("hard-sigmoid-from-relu6", 0) == (1 if case == "other-x" else 0)
    assert not res.graph.ops_named("sqnxt.hard_swish")
    assert all(op.attrs["act"] != "hard_swish" for op in res.graph.ops_named("sqnxt.conv"))
    assert res.graph.ops_named("sqnxt.mul")


def test_swish_fuses_with_the_mul_operands_in_either_order():
    a = _act_model([N("Sigmoid", ["c"], ["s"]), N("Mul", ["c", "s"], ["y"])])       # tf2onnx's order
    b = _act_model([N("Sigmoid", ["c"], ["s"]), N("Mul", ["s", "c"], ["y"])], seed=14)
    for m in (a, b):
        res = compiled(m)
        assert res.statistics["fuse-relu"] == {"swish-fused-into-conv": 1}
        assert layers(res) == [("conv", "swish", None)]
    assert cycles(a) == cycles(b)


def test_a_sigmoid_with_another_user_is_not_half_of_a_swish():
    m = _act_model([N("Sigmoid", ["c"], ["s"]), N("Mul", ["s", "c"], ["y0"]), N("Add", ["y0", "s"], ["y"])])
    res = compiled(m)
    assert "swish-fused-into-conv" not in res.statistics["fuse-relu"]
    assert [n for n, *_ in layers(res)] == ["conv", "sigmoid", "mul", "add"]


# ------------------------------------------------------------------ 3. Pad before MaxPool
PADS_HW = int64s(0, 0, 1, 1, 0, 0, 1, 1)


def _pad_pool(pre, pads=PADS_HW, pool=None, value=None, opset=13, seed=15, extra=()):
    """conv -> pre (nodes from "c" to "r") -> Pad -> MaxPool 3x3 stride 2 (tf2onnx's ZeroPadding2D + MaxPooling2D)."""
    rng = np.random.default_rng(seed)
    pad_ins = ["r", "pads"] + (["v"] if value is not None else [])
    inits = (conv_inits(rng) + list(extra) + ([("pads", pads)] if opset >= 11 else [])
             + ([("v", f32(value))] if value is not None else []))
    pad = (N("Pad", pad_ins, ["p"]) if opset >= 11 else
           N("Pad", ["r"], ["p"], pads=[int(v) for v in pads], value=0.0 if value is None else value))
    pool = pool or N("MaxPool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2])
    return inferred_model([conv()] + pre + [pad, pool], X, ["y"], inits, opset=opset)


def _torch_pool(act="Relu", pool_pads=(1, 1, 1, 1), seed=16):
    rng = np.random.default_rng(seed)
    nodes = [conv(), N(act, ["c"], ["r"]) if act == "Relu" else N("Clip", ["c", "zero", "six"], ["r"]),
             N("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=list(pool_pads))]
    return inferred_model(nodes, X, ["y"], conv_inits(rng) + (RELU6_IN if act != "Relu" else []))


@pytest.mark.parametrize("case", ["relu", "relu6", "opset10", "tf-same-end-only"])
def test_a_zero_pad_of_a_nonnegative_tensor_folds_into_the_maxpool(case):
    pre = [N("Relu", ["c"], ["r"])] if case != "relu6" else [N("Clip", ["c", "zero", "six"], ["r"])]
    pads = int64s(0, 0, 0, 0, 0, 0, 1, 1) if case == "tf-same-end-only" else PADS_HW
    m = _pad_pool(pre, pads=pads, opset=10 if case == "opset10" else 13, extra=RELU6_IN if case == "relu6" else ())
    res = compiled(m)
    assert res.statistics["canonicalize"]["pad-into-maxpool"] == 1
    assert res.statistics["fuse-pool"] == {"maxpool-fused-into-conv": 1}
    assert layers(res) == [("conv", "relu6" if case == "relu6" else "relu", "max")]
    assert res.graph.ops_named("sqnxt.conv")[0].attrs["pool"]["pads"] == tuple(
        int(v) for v in (pads[2], pads[3], pads[6], pads[7]))
    torch_pads = (0, 0, 1, 1) if case == "tf-same-end-only" else (1, 1, 1, 1)
    assert cycles(m) == cycles(_torch_pool("Clip" if case == "relu6" else "Relu", torch_pads))


def test_a_pad_after_a_maxpool_of_a_relu_folds_too():
    pre = [N("Relu", ["c"], ["r0"]), N("MaxPool", ["r0"], ["r"], kernel_shape=[2, 2], strides=[1, 1])]
    res = compiled(_pad_pool(pre))
    assert res.statistics["canonicalize"]["pad-into-maxpool"] == 1
    assert [n for n, *_ in layers(res)] == ["conv", "maxpool"]


def test_a_minus_infinity_pad_folds_whatever_the_sign():
    res = compiled(_pad_pool([N("Identity", ["c"], ["r"])], value=float("-inf")))
    assert res.statistics["canonicalize"]["pad-into-maxpool"] == 1
    assert layers(res) == [("conv", "none", "max")]


def test_a_zero_pad_of_a_possibly_negative_tensor_stays():
    """The conv's output may be negative: max over a zero border is not max over the pool's
    own (ignored) padding."""
    res = compiled(_pad_pool([N("Identity", ["c"], ["r"])]))
    assert res.statistics["canonicalize"]["skipped-maxpool-input-maybe-negative"] == 1
    assert "pad-into-maxpool" not in res.statistics["canonicalize"]
    assert [n for n, *_ in layers(res)] == ["conv", "pad", "maxpool"]


@pytest.mark.parametrize("case", ["ceil-drops-a-window", "pads-reach-the-kernel"])
def test_a_pad_the_maxpool_cannot_take_stays(case):
    relu = [N("Relu", ["c"], ["r"])]
    if case == "ceil-drops-a-window":    # 8 + 2 rows, 3x3 stride 2 ceil: 5 windows, merged 4
        m = _pad_pool(relu, pads=int64s(0, 0, 0, 0, 0, 0, 2, 2),
                      pool=N("MaxPool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1))
    else:                                # 1 + the pool's own 2 = 3, not below the kernel
        m = _pad_pool(relu, pool=N("MaxPool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[2, 2, 2, 2]))
    res = compiled(m)
    assert res.statistics["canonicalize"]["skipped-maxpool-pads"] == 1
    assert [n for n, *_ in layers(res)] == ["conv", "pad", "maxpool"]


@pytest.mark.parametrize("case", ["channel-pad", "reflect"])
def test_a_pad_that_is_not_a_zero_border_on_h_and_w_stays(case):
    relu = [N("Relu", ["c"], ["r"])]
    if case == "channel-pad":
        m = _pad_pool(relu, pads=int64s(0, 1, 1, 1, 0, 1, 1, 1))
    else:
        m = _pad_pool(relu)
        m.graph.node[2].attribute.append(helper.make_attribute("mode", "reflect"))
    res = compiled(m)
    assert "pad-into-maxpool" not in res.statistics["canonicalize"]
    assert [n for n, *_ in layers(res)] == ["conv", "pad", "maxpool"]


# ------------------------------------------------------------------ 4. transposes
def _transposes(perms, extra=(), outputs=("y",), seed=17):
    rng = np.random.default_rng(seed)
    nodes, cur = [conv()], "c"
    for i, p in enumerate(perms):
        nodes.append(N("Transpose", [cur], [f"t{i}"], perm=list(p)))
        cur = f"t{i}"
    nodes += [N("Relu", [cur], ["y"])] + list(extra)
    return inferred_model(nodes, X, list(outputs), conv_inits(rng))


def test_transposes_that_cancel_are_removed():
    """tf2onnx's NCHW <-> NHWC pair around a layer it converted."""
    m = _transposes([(0, 2, 3, 1), (0, 3, 1, 2)])
    res = compiled(m)
    assert res.statistics["canonicalize"]["transposes-cancelled"] == 1
    assert not res.graph.ops_named("sqnxt.transpose")
    same_cost(m, _transposes([]))


def test_two_transposes_compose_into_one():
    m = _transposes([(0, 2, 3, 1), (0, 2, 1, 3)])
    res = compiled(m)
    assert res.statistics["canonicalize"]["transposes-composed"] == 1
    (t,) = res.graph.ops_named("sqnxt.transpose")
    assert t.attrs["perm"] == (0, 3, 2, 1)          # x's axis p1[p2[i]]
    same_cost(m, _transposes([(0, 3, 2, 1)]))


def test_an_identity_transpose_is_removed_and_a_first_transpose_with_other_users_is_kept():
    res = compiled(_transposes([(0, 1, 2, 3)]))
    assert res.statistics["canonicalize"]["identity-transpose-removed"] == 1
    assert not res.graph.ops_named("sqnxt.transpose")
    m = _transposes([(0, 2, 3, 1), (0, 3, 1, 2)], extra=[N("Relu", ["t0"], ["z"])], outputs=("y", "z"))
    res = compiled(m)
    assert res.statistics["canonicalize"]["transposes-cancelled"] == 1
    (t,) = res.graph.ops_named("sqnxt.transpose")    # the NHWC one still feeds z
    assert t.attrs["perm"] == (0, 2, 3, 1)


def test_a_transposed_constant_is_folded():
    """tf2onnx's HWIO kernel transposed to OIHW in the graph."""
    rng = np.random.default_rng(18)
    m = inferred_model([N("Transpose", ["w_hwio"], ["w"], perm=[3, 2, 0, 1]),
                        N("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                       X, ["y"], [("w_hwio", rand(rng, 3, 3, 3, C))])
    res = compiled(m)
    assert res.statistics["canonicalize"]["constants-folded"] == 1
    assert [n for n, *_ in layers(res)] == ["conv"]


NHWC = [("x", [1, 8, 8, 3])]


def _nhwc_input(pre, transpose_first=False, seed=22):
    """tf2onnx's NHWC input: Keras' preprocessing (``pre``: nodes from "x" to "q") then the
    NCHW transpose and a conv; ``transpose_first``: the transpose, then ``pre`` (from "x"
    to "q" in NCHW, the constants' channel axis moved to 1: what the rewrite should give)."""
    rng = np.random.default_rng(seed)
    scale, shift = f32(1 / 127.5), rand(rng, 3)
    inits = conv_inits(rng) + [("s", scale), ("t", shift.reshape(1, 1, 1, 3) if not transpose_first
                                                 else shift.reshape(1, 3, 1, 1))]
    t = N("Transpose", ["x"] if transpose_first else ["q"], ["xt"] if transpose_first else ["n"], perm=[0, 3, 1, 2])
    if transpose_first:
        pre = [N(n.op_type, [i if i != "x" else "xt" for i in n.input], list(n.output)) for n in pre]
        nodes = [t] + pre + [conv(inp="q")]
    else:
        nodes = pre + [t, conv(inp="n")]
    return inferred_model(nodes + [N("Relu", ["c"], ["y"])], NHWC, ["y"], inits)


def test_a_transpose_moves_ahead_of_the_preprocessing_of_an_nhwc_input():
    """Keras' Rescaling + Normalization in front of tf2onnx's NCHW transpose run in NCHW,
    as in the PyTorch export: one rewrite for the chain, the constants transposed."""
    pre = [N("Mul", ["x", "s"], ["p"]), N("Add", ["t", "p"], ["q"])]
    m = _nhwc_input(pre)
    res = compiled(m)
    assert res.statistics["canonicalize"]["transpose-hoisted"] == 1
    # the hoisted transpose reads the graph input: the host's layout of it (input_layout)
    assert res.statistics["canonicalize"]["input-transpose-to-host"] == 1
    assert [n for n, *_ in layers(res)] == ["input_layout", "mul", "add", "conv"]
    add = res.graph.ops_named("sqnxt.add")[0]
    assert add.operands[0].owner.const_value().shape == (1, 3, 1, 1)
    same_cost(m, _nhwc_input(pre, transpose_first=True))


@pytest.mark.parametrize("case", ["not-from-an-input", "non-constant", "shared"])
def test_a_transpose_stays_behind_what_it_cannot_move_ahead_of(case):
    rng = np.random.default_rng(23)
    inputs, outputs, inits = NHWC, ["y"], [("s", f32(0.5))]
    if case == "not-from-an-input":     # softmax (reads along an axis), mul, transpose: the softmax stays first
        nodes = [N("Softmax", ["x"], ["r"], axis=-1), N("Mul", ["r", "s"], ["q"])]
    elif case == "non-constant":
        nodes = [N("Mul", ["x", "z"], ["q"])]
        inputs = NHWC + [("z", [1, 8, 8, 3])]
    else:                               # the mul also feeds an output
        nodes = [N("Mul", ["x", "s"], ["q"])]
        outputs = ["y", "q"]
    m = inferred_model(nodes + [N("Transpose", ["q"], ["n"], perm=[0, 3, 1, 2]), conv(inp="n")]
                       + [N("Relu", ["c"], ["y"])], inputs, outputs, conv_inits(rng) + inits)
    res = compiled(m)
    assert "transpose-hoisted" not in res.statistics["canonicalize"]
    ops = [n for n, *_ in layers(res)]
    assert ops.index("mul") < ops.index("transpose")


def _nhwc_island(residual: bool, seed=24):
    """What tf2onnx leaves between two convs when its transpose optimizer gives up (Keras'
    MobileNetV3Large): conv, to NHWC, mul by the BN scale (per channel, last axis), relu,
    a zero pad of H and W in NHWC, back to NCHW, a depthwise 3x3 conv; with ``residual`` an
    NHWC residual add of two transposed convs before it."""
    rng = np.random.default_rng(seed)
    nodes = [conv()]
    inits = conv_inits(rng) + [("g", rand(rng, C)), ("pads", int64s(0, 1, 1, 0, 0, 1, 1, 0)),
                               ("wd", rand(rng, C, 1, 3, 3))]
    nodes.append(N("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]))
    cur = "t"
    if residual:
        inits.append(("w2", rand(rng, C, C, 1, 1)))
        nodes += [N("Conv", ["c", "w2"], ["c2"]), N("Transpose", ["c2"], ["t2"], perm=[0, 2, 3, 1]),
                  N("Add", ["t", "t2"], ["sum"])]
        cur = "sum"
    nodes += [N("Mul", [cur, "g"], ["m"]), N("Relu", ["m"], ["r"]), N("Pad", ["r", "pads"], ["p"]),
              N("Transpose", ["p"], ["back"], perm=[0, 3, 1, 2]),
              N("Conv", ["back", "wd"], ["y"], group=C)]
    return inferred_model(nodes, X, ["y"], inits)


@pytest.mark.parametrize("residual", [False, True])
def test_an_nhwc_island_between_two_convs_closes(residual):
    """The transposes move through the mul, the relu and the pad (pads permuted, the BN
    scale made per channel of NCHW: sunk or hoisted, whichever the driver offers first),
    meet and cancel; a residual add of two transposed tensors takes one transpose after it
    instead: no transpose is left, and the layers are the NCHW network's."""
    res = compiled(_nhwc_island(residual))
    stats = res.statistics["canonicalize"]
    assert not res.graph.ops_named("sqnxt.transpose")
    assert stats.get("transpose-hoisted", 0) + stats.get("transpose-sunk", 0) >= 1
    assert stats.get("transposes-cancelled", 0) >= 1
    if residual:
        assert stats["transposes-through-binary"] == 1
    pad = res.graph.ops_named("sqnxt.pad")
    assert not pad or tuple(pad[0].attrs["pads"]) == (0, 0, 1, 1, 0, 0, 1, 1)   # H, W of NCHW
    assert cycles(_nhwc_island(residual)) < 0.8 * _island_cycles_without_the_rewrites(residual)


def _se_island(seed=25):
    """Keras' MobileNetV3 squeeze-excitation as tf2onnx writes it when its transpose
    optimizer gives up: conv, to NHWC, BN scale, relu read twice (the SE pooling, a mean
    over axes 1 and 2 kept, back to NCHW for two 1x1 convs, to NHWC, hard-sigmoid; and the
    excite mul), pad, back to NCHW, a depthwise conv."""
    rng = np.random.default_rng(seed)
    inits = conv_inits(rng) + [("g", rand(rng, C)), ("pads", int64s(0, 1, 1, 0, 0, 1, 1, 0)),
                               ("wd", rand(rng, C, 1, 3, 3)), ("s1", rand(rng, 4, C, 1, 1)),
                               ("s2", rand(rng, C, 4, 1, 1))]
    nodes = [conv(), N("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]), N("Mul", ["t", "g"], ["m"]),
             N("Relu", ["m"], ["r"]), N("ReduceMean", ["r"], ["se"], axes=[1, 2], keepdims=1),
             N("Transpose", ["se"], ["se_t"], perm=[0, 3, 1, 2]), N("Conv", ["se_t", "s1"], ["q1"]),
             N("Relu", ["q1"], ["q1r"]), N("Conv", ["q1r", "s2"], ["q2"]),
             N("Transpose", ["q2"], ["q2t"], perm=[0, 2, 3, 1]),
             N("HardSigmoid", ["q2t"], ["hs"], alpha=1 / 6, beta=0.5), N("Mul", ["r", "hs"], ["x2"]),
             N("Pad", ["x2", "pads"], ["p"]), N("Transpose", ["p"], ["back"], perm=[0, 3, 1, 2]),
             N("Conv", ["back", "wd"], ["y"], group=C)]
    return inferred_model(nodes, X, ["y"], inits)


def test_a_squeeze_excitation_island_closes():
    """The first transpose sinks through the BN scale and the relu (``transpose-sunk``), the
    SE pooling takes it as a global pool in NCHW (``reduce-through-transpose``), the excite
    mul takes both transposes (``transposes-through-binary``), and every pair cancels: no
    transpose left, onnxruntime's numbers."""
    res = compiled(_se_island())
    stats = res.statistics["canonicalize"]
    assert not res.graph.ops_named("sqnxt.transpose")
    assert stats["transpose-sunk"] >= 2 and stats["reduce-through-transpose"] == 1
    assert stats["transposes-through-binary"] == 1
    assert res.graph.ops_named("sqnxt.global_avgpool")


def _island_cycles_without_the_rewrites(residual) -> int:
    """The island's cycles with its transposes left as moves (canonicalize's transpose
    patterns off): what the rewrites save is real."""
    from sqnxt_compiler.passes import canonicalize as cz
    saved = cz.PATTERNS
    try:
        cz.PATTERNS = tuple(p for p in saved if type(p).__name__ not in ("TransposePair", "TransposesThroughBinary"))
        return cycles(_nhwc_island(residual))
    finally:
        cz.PATTERNS = saved


# ------------------------------------------------------------------ 5. LayerNorm
T = [("x", [1, 8, 16])]


def _moments(square="mul"):
    """tf.nn.moments over the last axis (squared_difference: Sub, then Mul(d, d))."""
    sq = N("Mul", ["d", "d"], ["sq"]) if square == "mul" else N("Pow", ["d", "two"], ["sq"])
    return [N("ReduceMean", ["x"], ["m"], axes=[-1]), N("Sub", ["x", "m"], ["d"]), sq,
            N("ReduceMean", ["sq"], ["v"], axes=[-1]), N("Add", ["v", "eps"], ["ve"])]


def _ln_inits(seed=19):
    rng = np.random.default_rng(seed)
    return [("eps", f32(1e-3)), ("g", rand(rng, 16)), ("be", rand(rng, 16)), ("two", f32(2)), ("half", f32(-0.5))]


LN = [
    ("tf-batch-normalization", "layer-norm-from-moments",
     [N("Sqrt", ["ve"], ["s"]), N("Reciprocal", ["s"], ["r"]), N("Mul", ["r", "g"], ["i"]), N("Mul", ["x", "i"], ["a"]),
      N("Mul", ["m", "i"], ["mi"]), N("Sub", ["be", "mi"], ["o"]), N("Add", ["a", "o"], ["y"])]),
    ("keras3-neg-mean", "layer-norm-from-moments",
     [N("Neg", ["m"], ["nm"]), N("Sqrt", ["ve"], ["s"]), N("Reciprocal", ["s"], ["r"]), N("Mul", ["r", "g"], ["i"]),
      N("Mul", ["x", "i"], ["a"]), N("Mul", ["nm", "i"], ["mi"]), N("Add", ["mi", "be"], ["o"]),
      N("Add", ["a", "o"], ["y"])]),
    ("rsqrt-as-pow", "layer-norm-from-parts",
     [N("Pow", ["ve", "half"], ["r"]), N("Mul", ["d", "r"], ["n"]), N("Mul", ["n", "g"], ["a"]),
      N("Add", ["be", "a"], ["y"])]),
    ("torch-before-17", "layer-norm-from-parts",
     [N("Sqrt", ["ve"], ["s"]), N("Div", ["d", "s"], ["n"]), N("Mul", ["n", "g"], ["a"]),
      N("Add", ["a", "be"], ["y"])]),
]


@pytest.mark.parametrize("case,key,tail", LN, ids=[c[0] for c in LN])
def test_layer_norm_spellings_become_one_layer_norm(case, key, tail):
    square = "pow" if case == "torch-before-17" else "mul"
    inits = _ln_inits()
    if case == "keras3-neg-mean":       # Keras' gamma and beta as tf2onnx writes them: (1, 1, C)
        inits = [(n, a.reshape(1, 1, 16) if n in ("g", "be") else a) for n, a in inits]
    m = inferred_model(_moments(square) + tail, T, ["y"], inits)
    res = compiled(m)
    assert res.statistics["canonicalize"][key] == 1
    assert [n for n, *_ in layers(res)] == ["layer_norm"]
    (ln,) = res.graph.ops_named("sqnxt.layer_norm")
    assert ln.attrs["axis"] == 2 and np.float32(ln.attrs["epsilon"]) == np.float32(1e-3)
    torch_model = inferred_model([N("LayerNormalization", ["x", "g", "be"], ["y"], axis=-1, epsilon=1e-3)],
                                 T, ["y"], _ln_inits(20)[1:3], opset=17)
    same_cost(m, torch_model)


@pytest.mark.parametrize("case", ["mean-not-trailing", "var-as-e-x2-minus-mean2", "other-x"])
def test_what_is_not_a_layer_norm_stays(case):
    nodes = _moments() + LN[0][2]
    inputs = list(T)
    if case == "mean-not-trailing":
        nodes[0] = N("ReduceMean", ["x"], ["m"], axes=[1])
        nodes[3] = N("ReduceMean", ["sq"], ["v"], axes=[1])
    elif case == "var-as-e-x2-minus-mean2":      # Keras 3's tf backend moments: not (x - mean)^2
        nodes = [N("ReduceMean", ["x"], ["m"], axes=[-1]), N("Mul", ["x", "x"], ["xx"]),
                 N("ReduceMean", ["xx"], ["ex2"], axes=[-1]), N("Mul", ["m", "m"], ["m2"]),
                 N("Sub", ["ex2", "m2"], ["v"]),
                 N("Add", ["v", "eps"], ["ve"])] + LN[0][2]
    else:                                        # x * inv reads another tensor than the statistics
        nodes[-4] = N("Mul", ["x2", "i"], ["a"])
        inputs.append(("x2", [1, 8, 16]))
    m = inferred_model(nodes, inputs, ["y"], _ln_inits())
    res = compiled(m)
    assert not res.graph.ops_named("sqnxt.layer_norm")
    assert "layer-norm-from-moments" not in res.statistics["canonicalize"]
