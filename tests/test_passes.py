"""Each graph pass on small hand-built graphs: exact statistics, op counts after, and
numerics vs onnxruntime after each pass alone and after the whole default pipeline;
plus seeded random conv nets through the default pipeline."""
from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from onnx import helper

from sqnxt_compiler.frontend import import_model
from sqnxt_compiler.pipeline import PassManager, parse_pipeline
from sqnxt_compiler.reference.check import check
from support import inferred_model, int64s, make_model

N = helper.make_node


def W(rng, *shape, positive=False):
    a = rng.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


I = int64s
model = inferred_model


def bn_params(rng, c, p="bn"):
    return [(p + "_g", W(rng, c) * 2), (p + "_b", W(rng, c)), (p + "_m", W(rng, c)),
            (p + "_v", W(rng, c, positive=True) * 3)]


def bn(i, o, p="bn"):
    return N("BatchNormalization", [i, p + "_g", p + "_b", p + "_m", p + "_v"], [o])


def run(m, pipeline):
    """Import ``m``, run ``pipeline``; return (graph, {pass: stats}, check report)."""
    res = import_model(m, "t.onnx")
    passes = parse_pipeline(pipeline)
    PassManager(passes, stream=io.StringIO()).run(res.graph)
    report = check(res.graph, res.model, "t.onnx", samples=2)
    assert report.ok, f"{pipeline}\n{report.format()}"
    return res.graph, {p.name: dict(p.stats) for p in passes}, report


def counts(graph, *names):
    c = graph.count_by_name()
    return {n: c.get(n, 0) for n in names}


def each_pass_and_pipeline(m):
    """Every pass alone and the whole pipeline keep the model's numerics."""
    for p in ("canonicalize", "fold-bn", "fuse-relu", "fuse-add", "fuse-pool", "default", "none"):
        run(m, p)


# ------------------------------------------------------------------------ canonicalize
def test_canonicalize_drops_identity_and_dropout():
    m = model([N("Identity", ["x"], ["a"]), N("Dropout", ["a"], ["b"]), N("Relu", ["b"], ["c"]),
               N("Identity", ["c"], ["y"])], [("x", [1, 3, 4, 4])])
    g, st, _ = run(m, "canonicalize")
    assert st["canonicalize"] == {"identity-removed": 2, "dropout-removed": 1}
    assert g.count_by_name() == {"sqnxt.input": 1, "sqnxt.output": 1, "sqnxt.relu": 1}
    assert g.output_op.attrs["names"] == ("y",)
    each_pass_and_pipeline(m)


def test_canonicalize_folds_constants():
    rng = np.random.default_rng(1)
    # (c1 * c2 + c3) is all-constant: two folds, then one add with the input remains
    m = model([N("Mul", ["c1", "c2"], ["p"]), N("Add", ["p", "c3"], ["q"]),
               N("Add", ["x", "q"], ["y"])], [("x", [1, 3, 4, 4])],
              inits=[("c1", W(rng, 3, 1, 1)), ("c2", W(rng, 3, 1, 1)), ("c3", W(rng, 1))])
    g, st, _ = run(m, "canonicalize")
    # dead afterwards: c1, c2, c3 and the constant the first fold made
    assert st["canonicalize"] == {"constants-folded": 2, "dead-ops-erased": 4}
    assert counts(g, "sqnxt.mul", "sqnxt.add", "sqnxt.constant") == {
        "sqnxt.mul": 0, "sqnxt.add": 1, "sqnxt.constant": 1}
    each_pass_and_pipeline(m)


@pytest.mark.parametrize("opset", [11, 13])
def test_canonicalize_folds_shape_chains(opset):
    nodes = [N("Shape", ["x"], ["s"]), N("Gather", ["s", "i0"], ["n"], axis=0)]
    inits = [("i0", np.array(0, np.int64)), ("m1", I(-1))]
    if opset < 13:
        nodes.append(N("Unsqueeze", ["n"], ["nu"], axes=[0]))
    else:
        nodes.append(N("Unsqueeze", ["n", "a0"], ["nu"]))
        inits.append(("a0", I(0)))
    nodes += [N("Concat", ["nu", "m1"], ["shp"], axis=0), N("Reshape", ["x", "shp"], ["y"])]
    m = model(nodes, [("x", [1, 4, 3, 3])], [("y", [1, 36])], inits, opset=opset)
    g, st, _ = run(m, "canonicalize")
    # shape, gather, unsqueeze, concat each become a constant
    assert st["canonicalize"]["constants-folded"] == 4
    assert g.count_by_name() == {"sqnxt.constant": 1, "sqnxt.input": 1, "sqnxt.output": 1,
                                 "sqnxt.reshape": 1}
    spec = g.ops_named("sqnxt.reshape")[0].operands[1].owner.const_value()
    assert spec.tolist() == [1, -1]
    each_pass_and_pipeline(m)


@pytest.mark.parametrize("front", ["flatten", "reshape", "none"])
def test_canonicalize_gemm_to_fc_absorbs_flatten(front):
    rng = np.random.default_rng(2)
    nodes = [N("GlobalAveragePool", ["x"], ["p"])]
    inits = [("B", W(rng, 7, 6)), ("C", W(rng, 7))]
    if front == "flatten":
        nodes.append(N("Flatten", ["p"], ["f"]))
    elif front == "reshape":
        nodes.append(N("Reshape", ["p", "s"], ["f"]))
        inits.append(("s", I(1, -1)))
    else:
        nodes = [N("Flatten", ["x"], ["f"])]
        inits = [("B", W(rng, 7, 6 * 16)), ("C", W(rng, 7))]
    nodes.append(N("Gemm", ["f", "B", "C"], ["y"], transB=1, alpha=0.5, beta=1.5))
    m = model(nodes, [("x", [1, 6, 4, 4])], inits=inits)
    g, st, _ = run(m, "canonicalize")
    assert st["canonicalize"]["fc-from-gemm"] == 1
    c = g.count_by_name()
    assert c.get("sqnxt.gemm", 0) == 0 and c["sqnxt.fc"] == 1
    assert c.get("sqnxt.flatten", 0) == 0 and c.get("sqnxt.reshape", 0) == 0
    fc = g.ops_named("sqnxt.fc")[0]
    assert fc.operands[0].owner.name in ("sqnxt.global_avgpool", "sqnxt.input")
    each_pass_and_pipeline(m)


def test_canonicalize_gemm_flatten_with_other_user_is_kept():
    rng = np.random.default_rng(3)
    m = model([N("Flatten", ["x"], ["f"]), N("Gemm", ["f", "B"], ["g"]),
               N("Concat", ["g", "f"], ["y"], axis=1)], [("x", [1, 2, 2, 2])],
              inits=[("B", W(rng, 8, 3))])
    g, st, _ = run(m, "canonicalize")
    assert st["canonicalize"] == {"fc-from-gemm": 1, "dead-ops-erased": 1}  # the old B
    assert counts(g, "sqnxt.flatten", "sqnxt.fc", "sqnxt.gemm") == {
        "sqnxt.flatten": 1, "sqnxt.fc": 1, "sqnxt.gemm": 0}
    each_pass_and_pipeline(m)


def test_canonicalize_matmul_add_to_fc():
    rng = np.random.default_rng(4)
    m = model([N("MatMul", ["x", "B"], ["m"]), N("Add", ["c", "m"], ["y"])], [("x", [1, 6])],
              inits=[("B", W(rng, 6, 3)), ("c", W(rng, 1, 3))])
    g, st, _ = run(m, "canonicalize")
    assert st["canonicalize"] == {"fc-from-matmul-add": 1, "dead-ops-erased": 2}
    assert counts(g, "sqnxt.matmul", "sqnxt.add", "sqnxt.fc") == {
        "sqnxt.matmul": 0, "sqnxt.add": 0, "sqnxt.fc": 1}
    assert len(g.ops_named("sqnxt.fc")[0].operands) == 3
    each_pass_and_pipeline(m)


def test_canonicalize_bare_matmul_to_fc():
    rng = np.random.default_rng(5)
    m = model([N("MatMul", ["x", "B"], ["y"])], [("x", [1, 6])], inits=[("B", W(rng, 6, 3))])
    g, st, _ = run(m, "canonicalize")
    assert st["canonicalize"] == {"fc-from-matmul": 1, "dead-ops-erased": 1}
    assert len(g.ops_named("sqnxt.fc")[0].operands) == 2
    each_pass_and_pipeline(m)


def test_canonicalize_leaves_gemm_with_computed_B():
    m = model([N("Gemm", ["x", "z"], ["y"], transB=1)], [("x", [1, 4]), ("z", [1, 4])])
    g, st, _ = run(m, "canonicalize")
    assert st["canonicalize"] == {}
    assert counts(g, "sqnxt.gemm", "sqnxt.fc") == {"sqnxt.gemm": 1, "sqnxt.fc": 0}
    each_pass_and_pipeline(m)


def test_canonicalize_leaves_gemm_with_row_bias_and_transposed_A():
    rng = np.random.default_rng(6)
    m = model([N("Reshape", ["x", "s"], ["a"]), N("Gemm", ["a", "B", "C"], ["y"], transA=1)],
              [("x", [1, 12])], inits=[("s", I(4, 3)), ("B", W(rng, 4, 5)), ("C", W(rng, 3, 1))])
    g, st, _ = run(m, "canonicalize")
    assert "fc-from-gemm" not in st["canonicalize"]
    assert counts(g, "sqnxt.gemm", "sqnxt.fc") == {"sqnxt.gemm": 1, "sqnxt.fc": 0}
    each_pass_and_pipeline(m)


# ------------------------------------------------------------------------ fold-bn
def _conv_bn(rng, bias=True, extra_user=False, relu_between=False):
    nodes = [N("Conv", ["x", "w"] + (["b"] if bias else []), ["c"], pads=[1, 1, 1, 1])]
    inits = [("w", W(rng, 5, 3, 3, 3))] + ([("b", W(rng, 5))] if bias else []) + bn_params(rng, 5)
    src = "c"
    if relu_between:
        nodes.append(N("Relu", ["c"], ["r"]))
        src = "r"
    nodes.append(bn(src, "n"))
    if extra_user:
        nodes.append(N("Add", ["n", "c"], ["y"]))
    else:
        nodes.append(N("Identity", ["n"], ["y"]))
    return model(nodes, [("x", [1, 3, 6, 6])], inits=inits)


@pytest.mark.parametrize("bias", [True, False])
def test_fold_bn_into_conv(bias):
    m = _conv_bn(np.random.default_rng(7), bias=bias)
    g, st, _ = run(m, "fold-bn")
    assert st["fold-bn"] == {"bn-folded-into-conv": 1}
    assert counts(g, "sqnxt.batchnorm", "sqnxt.conv") == {"sqnxt.batchnorm": 0, "sqnxt.conv": 1}
    conv = g.ops_named("sqnxt.conv")[0]
    assert len(conv.operands) == 3  # a bias appears even when the conv had none
    # the folded weights are the formula's: W' = W * gamma / sqrt(var + eps)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    s = inits["bn_g"].astype(np.float64) / np.sqrt(inits["bn_v"].astype(np.float64) + 1e-5)
    np.testing.assert_allclose(conv.operands[1].owner.const_value(),
                               inits["w"] * s[:, None, None, None], rtol=1e-6)
    b0 = inits["b"] if bias else 0
    np.testing.assert_allclose(conv.operands[2].owner.const_value(),
                               s * (b0 - inits["bn_m"]) + inits["bn_b"], rtol=1e-5, atol=1e-6)
    each_pass_and_pipeline(m)


def test_fold_bn_into_fc():
    rng = np.random.default_rng(8)
    m = model([N("Flatten", ["x"], ["f"]), N("Gemm", ["f", "B", "C"], ["g"], transB=1),
               bn("g", "y")], [("x", [1, 2, 2, 2])],
              inits=[("B", W(rng, 5, 8)), ("C", W(rng, 5))] + bn_params(rng, 5))
    g, st, _ = run(m, "canonicalize,fold-bn")
    assert st["fold-bn"] == {"bn-folded-into-fc": 1}
    assert counts(g, "sqnxt.batchnorm", "sqnxt.fc") == {"sqnxt.batchnorm": 0, "sqnxt.fc": 1}
    g2, st2, _ = run(m, "fold-bn")  # before canonicalize the producer is a gemm: left alone
    assert st2["fold-bn"] == {"skipped-no-conv-or-fc": 1}
    assert g2.count_by_name()["sqnxt.batchnorm"] == 1
    each_pass_and_pipeline(m)


def test_fold_bn_skips_multi_use_conv():
    m = _conv_bn(np.random.default_rng(9), extra_user=True)
    g, st, _ = run(m, "fold-bn")
    assert st["fold-bn"] == {"skipped-multi-use": 1}
    assert counts(g, "sqnxt.batchnorm", "sqnxt.conv") == {"sqnxt.batchnorm": 1, "sqnxt.conv": 1}
    each_pass_and_pipeline(m)


def test_fold_bn_leaves_bn_without_conv():
    rng = np.random.default_rng(10)
    m = model([N("Relu", ["x"], ["r"]), bn("r", "y")], [("x", [1, 5, 4, 4])],
              inits=bn_params(rng, 5))
    g, st, _ = run(m, "fold-bn")
    assert st["fold-bn"] == {"skipped-no-conv-or-fc": 1}
    assert g.count_by_name()["sqnxt.batchnorm"] == 1
    each_pass_and_pipeline(m)


def test_fold_bn_skips_conv_with_fused_activation():
    # conv -> relu -> bn: after fuse-relu the conv carries act=relu, the bn must stay
    m = _conv_bn(np.random.default_rng(11), relu_between=True)
    g, st, _ = run(m, "fuse-relu,fold-bn")
    assert st["fuse-relu"] == {"relu-fused-into-conv": 1}
    assert st["fold-bn"] == {"skipped-activation-between": 1}
    assert g.count_by_name()["sqnxt.batchnorm"] == 1
    each_pass_and_pipeline(m)


# ------------------------------------------------------------------------ fuse-relu
def _act(kind, name_in, name_out):
    if kind == "relu":
        return N("Relu", [name_in], [name_out])
    lo, hi = {"relu6": (0.0, 6.0), "clip04": (0.0, 4.0)}[kind]
    return N("Clip", [name_in], [name_out], min=lo, max=hi)


def _producer(kind, rng):
    """(nodes, inits, inputs) computing 'p' with a conv, an fc (gemm), or an add."""
    if kind == "conv":
        return ([N("Conv", ["x", "w", "b"], ["p"], pads=[1, 1, 1, 1])],
                [("w", W(rng, 4, 3, 3, 3) * 3), ("b", W(rng, 4))], [("x", [1, 3, 5, 5])])
    if kind == "fc":
        return ([N("Flatten", ["x"], ["f"]), N("Gemm", ["f", "B", "C"], ["p"], transB=1)],
                [("B", W(rng, 6, 12) * 3), ("C", W(rng, 6))], [("x", [1, 3, 2, 2])])
    return ([N("Add", ["x", "z"], ["p"])], [], [("x", [1, 3, 5, 5]), ("z", [1, 3, 5, 5])])


@pytest.mark.parametrize("act", ["relu", "relu6"])
@pytest.mark.parametrize("prod", ["conv", "fc", "add"])
def test_fuse_relu(prod, act):
    rng = np.random.default_rng(12)
    nodes, inits, inputs = _producer(prod, rng)
    m = model(nodes + [_act(act, "p", "y")], inputs, inits=inits, opset=10)
    pipeline = "canonicalize,fuse-relu" if prod == "fc" else "fuse-relu"
    g, st, _ = run(m, pipeline)
    op_name = {"conv": "sqnxt.conv", "fc": "sqnxt.fc", "add": "sqnxt.add"}[prod]
    assert st["fuse-relu"] == {f"{act}-fused-into-{op_name.split('.')[1]}": 1}
    c = g.count_by_name()
    assert c.get("sqnxt.relu", 0) == 0 and c.get("sqnxt.clip", 0) == 0
    assert g.ops_named(op_name)[0].attrs["act"] == act
    each_pass_and_pipeline(m)


def test_fuse_relu_leaves_clip_0_4():
    rng = np.random.default_rng(13)
    nodes, inits, inputs = _producer("conv", rng)
    m = model(nodes + [_act("clip04", "p", "y")], inputs, inits=inits, opset=10)
    g, st, _ = run(m, "fuse-relu")
    assert st["fuse-relu"] == {"skipped-clip-bounds": 1}
    assert g.count_by_name()["sqnxt.clip"] == 1
    assert g.ops_named("sqnxt.conv")[0].attrs["act"] == "none"
    each_pass_and_pipeline(m)


def test_fuse_relu_leaves_multi_use_producer():
    rng = np.random.default_rng(14)
    nodes, inits, inputs = _producer("conv", rng)
    m = model(nodes + [N("Relu", ["p"], ["r"]), N("Add", ["r", "p"], ["y"])], inputs, inits=inits)
    g, st, _ = run(m, "fuse-relu")
    assert st["fuse-relu"] == {"skipped-multi-use": 1}
    assert counts(g, "sqnxt.relu", "sqnxt.conv") == {"sqnxt.relu": 1, "sqnxt.conv": 1}
    assert g.ops_named("sqnxt.conv")[0].attrs["act"] == "none"
    each_pass_and_pipeline(m)


def test_fuse_relu_second_activation_and_no_producer():
    rng = np.random.default_rng(15)
    nodes, inits, inputs = _producer("conv", rng)
    # conv -> relu -> relu6 ; and a relu straight on the input
    m = model(nodes + [N("Relu", ["p"], ["r"]), N("Clip", ["r"], ["q"], min=0.0, max=6.0),
                       N("Relu", ["z"], ["rz"]), N("Sum", ["q", "rz"], ["y"])],
              inputs + [("z", [1, 4, 5, 5])], inits=inits, opset=10)
    g, st, _ = run(m, "fuse-relu")
    assert st["fuse-relu"] == {"relu-fused-into-conv": 1, "skipped-already-activated": 1,
                               "skipped-no-producer": 1}
    assert counts(g, "sqnxt.relu", "sqnxt.clip") == {"sqnxt.relu": 1, "sqnxt.clip": 1}
    each_pass_and_pipeline(m)


# ------------------------------------------------------------------------ fuse-add
def _block(rng, *, act_before="relu", act_after="relu", other="x", bias=True):
    """x (1,4,5,5) -> conv 3x3 (+act_before) -> add(., other) (-> act_after) -> y."""
    ins = ["x", "w", "b"] if bias else ["x", "w"]
    nodes = [N("Conv", ins, ["p"], pads=[1, 1, 1, 1])]
    cur = "p"
    if act_before != "none":
        nodes.append(_act(act_before, "p", "pa"))
        cur = "pa"
    nodes.append(N("Add", [cur, other], ["s"]))
    cur = "s"
    if act_after != "none":
        nodes.append(_act(act_after, "s", "sa"))
        cur = "sa"
    nodes.append(N("Identity", [cur], ["y"]))
    inits = [("w", W(rng, 4, 4, 3, 3)), ("b", W(rng, 4))][: 2 if bias else 1]
    return nodes, inits


@pytest.mark.parametrize("act_before,act_after", [("relu", "relu"), ("none", "relu6"), ("relu6", "none"),
                                                  ("none", "none")])
def test_fuse_add_keeps_the_activation_order(act_before, act_after):
    rng = np.random.default_rng(40)
    nodes, inits = _block(rng, act_before=act_before, act_after=act_after)
    m = model(nodes, [("x", [1, 4, 5, 5])], inits=inits, opset=10)
    g, st, _ = run(m, "default")
    assert st["fuse-add"] == {"add-fused-into-conv": 1}
    assert counts(g, "sqnxt.add", "sqnxt.relu", "sqnxt.clip") == {"sqnxt.add": 0, "sqnxt.relu": 0,
                                                                  "sqnxt.clip": 0}
    (conv,) = g.ops_named("sqnxt.conv")
    assert (conv.attrs["act"], conv.attrs["residual"], conv.attrs["post_act"]) == (act_before, 1, act_after)
    assert conv.operands[-1] is g.inputs[0].result and len(conv.operands) == 4
    each_pass_and_pipeline(m)


def test_fuse_add_then_fuse_relu_puts_the_relu_after_the_add():
    rng = np.random.default_rng(41)
    nodes, inits = _block(rng, act_before="relu6", act_after="relu", bias=False)
    m = model(nodes, [("x", [1, 4, 5, 5])], inits=inits, opset=10)
    g, st, _ = run(m, "canonicalize,fuse-add,fuse-relu")
    assert st["fuse-add"] == {"skipped-no-producer": 1}      # the clip sits between conv and add
    g, st, _ = run(m, "canonicalize,fuse-relu,fuse-add,fuse-relu")
    (conv,) = g.ops_named("sqnxt.conv")
    assert (conv.attrs["act"], conv.attrs["post_act"], len(conv.operands)) == ("relu6", "relu", 3)
    # without the first fuse-relu the relu after the add lands in post_act of a bare conv
    nodes, inits = _block(rng, act_before="none", act_after="relu")
    m = model(nodes, [("x", [1, 4, 5, 5])], inits=inits, opset=10)
    g, st, _ = run(m, "canonicalize,fuse-add,fuse-relu")
    (conv,) = g.ops_named("sqnxt.conv")
    assert st["fuse-relu"] == {"relu-fused-into-conv": 1}
    assert (conv.attrs["act"], conv.attrs["post_act"]) == ("none", "relu")


def test_fuse_add_picks_the_later_conv_when_both_operands_are_convs():
    rng = np.random.default_rng(42)
    nodes = [N("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]), N("Conv", ["x", "w2"], ["b"]),
             N("Add", ["a", "b"], ["y"])]
    m = model(nodes, [("x", [1, 4, 5, 5])], inits=[("w1", W(rng, 6, 4, 3, 3)), ("w2", W(rng, 6, 4, 1, 1))])
    g, st, _ = run(m, "fuse-add")
    assert st["fuse-add"] == {"add-fused-into-conv": 1}
    convs = g.ops_named("sqnxt.conv")
    assert convs[0].attrs["residual"] == 0 and convs[1].attrs["residual"] == 1
    assert convs[1].operands[-1] is convs[0].result     # the earlier conv's output is the residual
    each_pass_and_pipeline(m)


def test_fuse_add_into_fc():
    rng = np.random.default_rng(43)
    nodes = [N("Flatten", ["x"], ["f"]), N("Gemm", ["f", "B", "C"], ["p"], transB=1),
             N("Add", ["z", "p"], ["s"]), N("Relu", ["s"], ["y"])]
    m = model(nodes, [("x", [1, 3, 2, 2]), ("z", [1, 6])], inits=[("B", W(rng, 6, 12)), ("C", W(rng, 6))])
    g, st, _ = run(m, "default")
    assert st["fuse-add"] == {"add-fused-into-fc": 1}
    (fc,) = g.ops_named("sqnxt.fc")
    assert fc.attrs["residual"] == 1 and fc.attrs["post_act"] == "relu"
    each_pass_and_pipeline(m)


@pytest.mark.parametrize("case,reason", [("broadcast", "skipped-broadcast"),
                                         ("three", "skipped-not-two-operands"),
                                         ("inputs", "skipped-no-producer"),
                                         ("multi-use", "skipped-multi-use")])
def test_fuse_add_leaves_what_it_cannot_rewrite(case, reason):
    rng = np.random.default_rng(44)
    conv = N("Conv", ["x", "w"], ["p"], pads=[1, 1, 1, 1])
    inits = [("w", W(rng, 4, 4, 3, 3))]
    inputs = [("x", [1, 4, 5, 5])]
    opset = 13
    if case == "broadcast":
        nodes = [conv, N("Add", ["p", "c"], ["y"])]
        inits.append(("c", W(rng, 4, 1, 1)))
    elif case == "three":
        nodes = [conv, N("Sum", ["p", "x", "x"], ["y"])]
    elif case == "inputs":
        nodes = [N("Add", ["x", "z"], ["y"])]
        inputs.append(("z", [1, 4, 5, 5]))
    else:
        nodes = [conv, N("Add", ["p", "x"], ["s"]), N("Mul", ["s", "p"], ["y"])]
    m = model(nodes, inputs, inits=inits, opset=opset)
    g, st, _ = run(m, "fuse-add")
    assert st["fuse-add"] == {reason: 1}
    assert all(op.attrs.get("residual", 0) == 0 for op in g.ops())
    each_pass_and_pipeline(m)


def test_fold_bn_leaves_a_batchnorm_after_a_fused_add():
    rng = np.random.default_rng(45)
    nodes, inits = _block(rng, act_before="none", act_after="none")
    nodes[-1] = bn("s", "y")
    m = model(nodes, [("x", [1, 4, 5, 5])], inits=inits + bn_params(rng, 4))
    g, st, _ = run(m, "fuse-add,fold-bn")
    assert st["fold-bn"] == {"skipped-residual-add-between": 1}
    assert counts(g, "sqnxt.batchnorm")["sqnxt.batchnorm"] == 1


# ------------------------------------------------------------------------ fuse-pool
@pytest.mark.parametrize("pool", [
    N("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    N("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1]),
    N("AveragePool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    N("AveragePool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
      count_include_pad=1, ceil_mode=1),
], ids=["max-ceil", "max-pad", "avg-pad", "avg-incl-ceil"])
def test_fuse_pool(pool):
    rng = np.random.default_rng(50)
    nodes = [N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]), bn("c", "n"),
             N("Relu", ["n"], ["r"]), pool]
    m = model(nodes, [("x", [1, 3, 15, 13])], inits=[("w", W(rng, 8, 3, 3, 3)), ("b", W(rng, 8))]
              + bn_params(rng, 8))
    g, st, _ = run(m, "default")
    kind = "max" if pool.op_type == "MaxPool" else "avg"
    assert st["fuse-pool"] == {f"{kind}pool-fused-into-conv": 1}
    (conv,) = g.ops_named("sqnxt.conv")
    assert conv.attrs["act"] == "relu" and conv.attrs["pool"]["kind"] == kind
    assert counts(g, "sqnxt.maxpool", "sqnxt.avgpool") == {"sqnxt.maxpool": 0, "sqnxt.avgpool": 0}
    assert conv.result.type.shape == tuple(d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim)
    each_pass_and_pipeline(m)


@pytest.mark.parametrize("case,reason", [("fc-or-input", "skipped-no-producer"),
                                         ("multi-use", "skipped-multi-use"),
                                         ("residual", "skipped-already-fused")])
def test_fuse_pool_leaves_what_it_cannot_rewrite(case, reason):
    rng = np.random.default_rng(51)
    conv = N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])
    inits = [("w", W(rng, 4, 4, 3, 3))]
    pool = N("MaxPool", ["p"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    if case == "fc-or-input":
        nodes = [N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    elif case == "multi-use":
        nodes = [conv, N("MaxPool", ["c"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
                 N("GlobalAveragePool", ["c"], ["g"]), N("Add", ["m", "g"], ["y"])]
    else:   # conv + add fused first: the pool after it stays
        nodes = [conv, N("Add", ["c", "x"], ["p"]), pool]
    m = model(nodes, [("x", [1, 4, 6, 6])], inits=inits)
    g, st, _ = run(m, "canonicalize,fuse-add,fuse-pool")
    assert st["fuse-pool"] == {reason: 1}
    assert all(op.attrs.get("pool") is None for op in g.ops())
    each_pass_and_pipeline(m)


def test_nothing_folds_or_fuses_across_a_fused_pool():
    """An activation or BN after a pooled conv would run before the pool: left alone."""
    rng = np.random.default_rng(52)
    nodes = [N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             N("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             N("Relu", ["p"], ["r"]), bn("r", "n"), N("Identity", ["n"], ["y"])]
    m = model(nodes, [("x", [1, 4, 6, 6])], inits=[("w", W(rng, 4, 4, 3, 3))] + bn_params(rng, 4))
    g, st, _ = run(m, "canonicalize,fuse-pool,fuse-relu,fold-bn")
    assert st["fuse-pool"] == {"maxpool-fused-into-conv": 1}
    assert st["fuse-relu"] == {"skipped-pool-between": 1}
    assert st["fold-bn"] == {"skipped-no-conv-or-fc": 1}
    nodes = [N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             N("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2]), bn("p", "y")]
    m = model(nodes, [("x", [1, 4, 6, 6])], inits=[("w", W(rng, 4, 4, 3, 3))] + bn_params(rng, 4))
    g, st, _ = run(m, "canonicalize,fuse-pool,fold-bn")
    assert st["fold-bn"] == {"skipped-pool-between": 1}
    assert counts(g, "sqnxt.batchnorm")["sqnxt.batchnorm"] == 1


# ------------------------------------------------------------------------ whole pipeline
def test_default_pipeline_on_a_block_counts_everything():
    rng = np.random.default_rng(16)
    nodes = [N("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), bn("c1", "b1", "p1"),
             N("Relu", ["b1"], ["r1"]), N("Dropout", ["r1"], ["d1"]),
             N("Conv", ["d1", "w2", "cb2"], ["c2"]), bn("c2", "b2", "p2"),
             N("Add", ["b2", "x"], ["s"]), N("Clip", ["s", "lo", "hi"], ["a"]),
             N("GlobalAveragePool", ["a"], ["g"]), N("Flatten", ["g"], ["f"]),
             N("Gemm", ["f", "B", "C"], ["l"], transB=1), N("Softmax", ["l"], ["y"])]
    inits = ([("w1", W(rng, 6, 4, 3, 3)), ("w2", W(rng, 4, 6, 1, 1)), ("cb2", W(rng, 4)),
              ("lo", np.float32(0)), ("hi", np.float32(6)), ("B", W(rng, 10, 4)), ("C", W(rng, 10))]
             + bn_params(rng, 6, "p1") + bn_params(rng, 4, "p2"))
    m = model(nodes, [("x", [1, 4, 8, 8])], inits=inits)
    g, st, _ = run(m, "default")
    # dead: the gemm's B and C, and the Clip bounds (inputs at opset 13, attributes in the IR)
    assert st["canonicalize"] == {"dropout-removed": 1, "fc-from-gemm": 1, "dead-ops-erased": 4}
    assert st["fold-bn"] == {"bn-folded-into-conv": 2}
    assert st["fuse-relu"] == {"relu-fused-into-conv": 1, "relu6-fused-into-add": 1}
    assert st["fuse-add"] == {"add-fused-into-conv": 1}
    conv2 = g.ops_named("sqnxt.conv")[1]
    assert (conv2.attrs["act"], conv2.attrs["residual"], conv2.attrs["post_act"]) == ("none", 1, "relu6")
    assert g.count_by_name() == {"sqnxt.constant": 6, "sqnxt.conv": 2,
                                 "sqnxt.fc": 1, "sqnxt.global_avgpool": 1, "sqnxt.input": 1,
                                 "sqnxt.output": 1, "sqnxt.softmax": 1}
    each_pass_and_pipeline(m)


def _random_net(seed):
    """A small random conv net: conv(+bias?)-bn?-act? layers, an optional residual add,
    maybe a pool, then GAP-flatten-gemm or a 1x1 conv head."""
    rng = np.random.default_rng(seed)
    c = c0 = int(rng.integers(2, 5))
    size = int(rng.integers(6, 11))
    nodes, inits, cur, k = [], [], "x", 0
    for layer in range(int(rng.integers(2, 5))):
        cout = int(rng.integers(2, 7))
        ks = int(rng.choice([1, 3]))
        groups = c if (ks == 3 and cout == c and rng.random() < 0.3) else 1
        name = f"l{layer}"
        ins = [cur, name + "_w"]
        inits.append((name + "_w", W(rng, cout, c // groups, ks, ks)))
        if rng.random() < 0.5:
            ins.append(name + "_b")
            inits.append((name + "_b", W(rng, cout)))
        stride = int(rng.choice([1, 2])) if size > 6 else 1
        nodes.append(N("Conv", ins, [name + "_c"], pads=[ks // 2] * 4, group=groups,
                       strides=[stride] * 2))
        size = -(-size // stride)
        out = name + "_c"
        if rng.random() < 0.7:
            nodes.append(bn(out, name + "_n", name + "bn"))
            inits += bn_params(rng, cout, name + "bn")
            out = name + "_n"
        if cout == c and stride == 1 and rng.random() < 0.5:
            nodes.append(N("Add", [out, cur], [name + "_s"]))
            out = name + "_s"
        r = rng.random()
        if r < 0.4:
            nodes.append(N("Relu", [out], [name + "_r"]))
            out = name + "_r"
        elif r < 0.6:
            nodes.append(N("Clip", [out], [name + "_r"], min=0.0, max=6.0))
            out = name + "_r"
        cur, c, k = out, cout, k + 1
    if rng.random() < 0.5:
        nodes.append(N("MaxPool", [cur], ["pool"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1))
        cur = "pool"
    nodes += [N("GlobalAveragePool", [cur], ["g"]), N("Flatten", ["g"], ["f"]),
              N("Gemm", ["f", "B", "C"], ["y"], transB=1)]
    inits += [("B", W(rng, 5, c)), ("C", W(rng, 5))]
    return model(nodes, [("x", [1, c0, size, size])], inits=inits, opset=10)


@pytest.mark.parametrize("seed", range(12))
def test_random_conv_nets_match_onnxruntime(seed):
    m = _random_net(seed)
    g, st, _ = run(m, "default")
    c = g.count_by_name()
    for gone in ("sqnxt.batchnorm", "sqnxt.relu", "sqnxt.gemm", "sqnxt.flatten"):
        assert gone not in c, (seed, c)
    run(m, "none")
