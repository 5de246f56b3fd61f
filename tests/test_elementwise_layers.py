"""Element-wise, reduction and data-movement ops are layers (sqnxt_compiler/layers.py,
docs/cost-model.md "Element-wise and data-movement layers"): what each op maps to, how its
operands are read, what the memory planner may keep resident, and that only ops with no
mapping stay "not modelled"."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from sqnxt_compiler import driver
from sqnxt_compiler.cost import ElementFn, Layer
from sqnxt_compiler.cost.features import element_cycles
from sqnxt_compiler.diagnostics import UnsupportedError
from sqnxt_compiler.layers import grid, layer_of, network_layers, operand_role
from sqnxt_compiler.reference.check import check
from sqnxt_compiler.schedule.liveness import network_of
from sqnxt_compiler.targets import load_target
from support import inferred_model, rand

N = helper.make_node


def _compile(model, tmp_path, target="pe8x8", passes="default"):
    p = tmp_path / "m.onnx"
    onnx.save(model, str(p))
    return driver.compile(str(p), pipeline=passes, target=load_target(target))


def _se_block():
    """conv -> swish (x * sigmoid(x)) -> squeeze-excitation (gap, 1x1 convs, hard-sigmoid
    scale) -> a per-channel PReLU -> concat with the conv output -> channel shuffle."""
    rng = np.random.default_rng(0)
    nodes = [N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             N("Sigmoid", ["c"], ["sg"], name="sig"), N("Mul", ["c", "sg"], ["sw"], name="swish"),
             N("GlobalAveragePool", ["sw"], ["g"], name="gap"),
             N("Conv", ["g", "w1"], ["s1"], name="fc1"), N("Relu", ["s1"], ["r1"], name="relu1"),
             N("Conv", ["r1", "w2"], ["s2"], name="fc2"), N("HardSigmoid", ["s2"], ["hs"], name="hsig"),
             N("Mul", ["sw", "hs"], ["se"], name="scale"),
             N("PRelu", ["se", "slope"], ["pr"], name="prelu"),
             N("Concat", ["pr", "c"], ["cat"], axis=1, name="cat"),
             N("Reshape", ["cat", "s5"], ["r5"]), N("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4], name="shuffle"),
             N("Reshape", ["t5", "s4"], ["y"])]
    inits = [("w", rand(rng, 8, 3, 3, 3)), ("w1", rand(rng, 4, 8, 1, 1)), ("w2", rand(rng, 8, 4, 1, 1)),
             ("slope", rand(rng, 8, 1, 1)), ("s5", np.array([1, 2, 8, 6, 6], np.int64)),
             ("s4", np.array([1, 16, 6, 6], np.int64))]
    return inferred_model(nodes, [("x", [1, 3, 6, 6])], ["y"], inits)


def test_every_op_of_a_modern_block_is_a_layer_with_its_documented_counts(tmp_path):
    res = _compile(_se_block(), tmp_path, passes="canonicalize,schedule")    # nothing fused
    layers = {op.loc.node: L for op, L in network_layers(res.graph)}
    assert None not in layers.values()
    assert [(L.kind, L.element.fn, L.element.ops, L.element.funcs, L.element.params, L.n_inputs) for L in
            (layers["sig"], layers["swish"], layers["hsig"], layers["scale"], layers["prelu"])] == [
        ("eltwise", "sigmoid", 0, 1, 0, 1), ("eltwise", "mul", 1, 0, 0, 2), ("eltwise", "hard_sigmoid", 3, 0, 0, 1),
        ("eltwise", "mul", 1, 0, 1, 1), ("eltwise", "prelu", 2, 0, 1, 1)]
    # the shuffle's rank-5 tensor runs over (g * C/g, H, W); the concat over the output
    assert (layers["shuffle"].kind, layers["shuffle"].K, layers["shuffle"].P) == ("move", 16, 6)
    assert (layers["cat"].kind, layers["cat"].K, layers["cat"].n_inputs) == ("move", 16, 1)
    free = sorted(op.name for op in res.graph.ops() if op.has_trait("free") and not op.has_trait("structural"))
    assert free == ["sqnxt.reshape", "sqnxt.reshape"]     # the shuffle's views: no data moved


def test_sigmoid_costs_the_targets_nonlinear_cycles():
    t = load_target("pe8x8")
    sig = Layer("s", "eltwise", C=8, K=8, H=4, W=4, R=1, S=1, P=4, Q=4, element=ElementFn("sigmoid", funcs=1))
    assert element_cycles(sig, t) == t.nonlinear_cycles == 4
    from dataclasses import replace
    slow = replace(t, nonlinear_cycles=40)
    from sqnxt_compiler.cost import Mapping, evaluate
    m = Mapping("OS", 4, 4, 1, 8, ("k", "c", "y", "x"))
    # z = 40 > the drain (8 cycles on pe8x8): each of the 8 channel passes costs 40
    assert evaluate(sig, slow, m).compute_cycles - evaluate(sig, t, m).compute_cycles == 8 * (40 - 8)


def test_operand_roles_and_grid():
    assert grid((1, 8, 5, 7)) == (8, 5, 7) and grid((1, 2, 4, 5, 7)) == (8, 5, 7)
    assert grid((1, 10)) == (10, 1, 1) and grid((1, 3, 9)) == (3, 1, 9)
    out = (1, 8, 5, 7)
    assert [operand_role(s, out) for s in [(1, 8, 5, 7), (1, 8, 1, 1), (8, 1, 1), (1,), (1, 1, 5, 7)]] == [
        "full", "param", "param", "scalar", "other"]


@pytest.mark.parametrize("kw,msg", [
    (dict(kind="eltwise"), "layer 'e' \\(eltwise\\): fn names the op"),
    (lambda: dict(kind="eltwise", element=ElementFn("", ops=1)), "fn names the op"),
    (lambda: dict(kind="conv", element=ElementFn("relu")), "layer 'e' \\(conv\\): fn names the op"),
    (lambda: dict(kind="move", element=ElementFn("concat", ops=1)), "only eltwise takes element ops"),
    (lambda: dict(kind="eltwise", element=ElementFn("relu", ops=-1)), "element ops must be a non-negative"),
    (lambda: dict(kind="eltwise", element=ElementFn("relu"), stride_h=2, P=2), "an element-wise layer has"),
])
def test_inconsistent_element_layers_are_rejected(kw, msg):
    base = dict(name="e", C=4, K=4, H=4, W=4, R=1, S=1, P=4, Q=4)
    with pytest.raises(UnsupportedError, match=msg):
        Layer(**{**base, **(kw() if callable(kw) else kw)})


def test_reductions_map_to_gap_pool_or_a_one_channel_conv(tmp_path):
    nodes = [N("ReduceMean", ["x"], ["a"], axes=[2, 3], name="spatial"),
             N("ReduceMax", ["x"], ["b"], axes=[1], name="channels"),
             N("ReduceSum", ["x", "ax"], ["c"], name="rows")]
    m = inferred_model(nodes, [("x", [1, 4, 6, 5])], ["a", "b", "c"], [("ax", np.array([3], np.int64))])
    res = _compile(m, tmp_path)
    by = {op.loc.node: L for op, L in network_layers(res.graph)}
    assert (by["spatial"].kind, by["spatial"].R, by["spatial"].S) == ("gap", 6, 5)
    assert (by["channels"].kind, by["channels"].C, by["channels"].K) == ("conv", 4, 1)
    assert (by["rows"].kind, by["rows"].S, by["rows"].Q, by["rows"].P) == ("avgpool", 5, 1, 6)


def test_a_parameter_vector_and_concat_parts_come_from_dram(tmp_path):
    """The SE scale vector is read as per-channel parameters and a concat copy's parts as
    parts: neither reader reads them in place, so neither is ever kept resident.  (The
    default pipeline writes this concat in place: tests/test_concat_in_place.py; here it is
    the copy, as without concat-in-place.)"""
    res = _compile(_se_block(), tmp_path, target="pe16x16",
                   passes="canonicalize,fold-bn,fuse-relu,fuse-add,fuse-pool")
    ops = [(op, L) for op, L in network_layers(res.graph)]
    net = network_of(res.graph, ops)
    by = {t.name: t for t in net.tensors}
    # fc2 carries the fused hard sigmoid, conv the fused swish
    assert not by["fc2"].plannable and "read from DRAM by sqnxt.mul 'scale'" in by["fc2"].reason
    assert not by["prelu"].plannable and "sqnxt.concat 'cat'" in by["prelu"].reason
    # the conv's output is read whole by gap and the scale, but also as a part of the concat
    assert not by["conv"].plannable and "sqnxt.concat 'cat'" in by["conv"].reason
    assert by["gap"].plannable and by["scale"].plannable and by["cat"].plannable


def test_ops_with_no_mapping_are_still_listed_as_not_modelled(tmp_path, cli):
    nodes = [N("Relu", ["x"], ["r"]), N("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
             N("MatMul", ["r", "t"], ["y"], name="gram")]         # two activations: no mapping
    m = inferred_model(nodes, [("x", [1, 4, 9])], ["y"])
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    r = cli("compile", p, "-t", "pe8x8", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "1 op not modelled (gram)" in r.stdout.splitlines()[0]
    import json
    doc = json.loads((tmp_path / "out" / "schedule.json").read_text())
    assert [(u["layer"], u["op"]) for u in doc["unmodelled"]] == [("gram", "sqnxt.matmul")]
    mm = next(op for op in driver.compile(str(p)).graph.ops() if op.name == "sqnxt.matmul")
    assert layer_of(mm) is None


def test_a_reduction_of_any_rank_is_a_sum_of_slices_or_a_gap_over_its_outputs(tmp_path):
    nodes = [N("Relu", ["x"], ["r"]), N("ReduceSum", ["r", "ax"], ["y"], keepdims=0, name="red5"),
             N("ReduceMax", ["r"], ["z"], axes=[3, 4], name="last2")]
    m = inferred_model(nodes, [("x", [1, 2, 4, 3, 5])], ["y", "z"], [("ax", np.array([1], np.int64))])
    res = _compile(m, tmp_path)
    by = {op.loc.node: L for op, L in network_layers(res.graph)}
    L = by["red5"]       # the radix sum: 2 slices of 4x3x5 added
    assert (L.kind, L.element.fn, L.K, L.P, L.Q, L.n_inputs, L.element.ops, L.macs) == (
        "eltwise", "reduce", 4, 3, 5, 2, 1, 60)
    L = by["last2"]      # over the last two axes: each of the 8 outputs reduces 15 inputs
    assert (L.kind, L.K, L.H, L.R, L.macs) == ("gap", 8, 15, 15, 120)
    from sqnxt_compiler.reference.tiled import execute_tiled
    rep = check(res.graph, res.model, res.source, samples=1,
                executor=lambda g, f: execute_tiled(g, f).outputs)
    assert rep.ok, rep.format()


def test_a_slice_of_everything_is_removed_not_copied(tmp_path):
    """GhostNet's cat([a, cheap(a)])[:, :out] with out = all channels: no copy layer."""
    nodes = [N("Relu", ["x"], ["r"]), N("Concat", ["r", "x"], ["c"], axis=1),
             N("Slice", ["c", "st", "en", "ax"], ["y"], name="whole"),
             N("Slice", ["c", "st", "half", "ax"], ["z"], name="part")]
    inits = [("st", np.array([0], np.int64)), ("en", np.array([2 ** 62], np.int64)),
             ("half", np.array([4], np.int64)), ("ax", np.array([1], np.int64))]
    m = inferred_model(nodes, [("x", [1, 4, 5, 5])], ["y", "z"], inits)
    res = _compile(m, tmp_path)
    names = [op.loc.node for op in res.graph.ops() if op.name == "sqnxt.extract_slice"]
    assert names == ["part"]
    rep = check(res.graph, res.model, res.source, samples=1)
    assert rep.ok, rep.format()


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_exported_as_parts_becomes_one_layer(tmp_path, affine):
    """LayerNorm as TorchScript exports it at opset 13 (mean, sub, pow, mean, add eps, sqrt,
    div, then the constant scale and shift): one layer_norm, onnxruntime's numbers."""
    rng = np.random.default_rng(4)
    nodes = [N("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             N("ReduceMean", ["t"], ["m"], axes=[-1]), N("Sub", ["t", "m"], ["d"]),
             N("Pow", ["d", "two"], ["p"]), N("ReduceMean", ["p"], ["v"], axes=[-1]),
             N("Add", ["v", "eps"], ["ve"]), N("Sqrt", ["ve"], ["s"]), N("Div", ["d", "s"], ["n"])]
    inits = [("two", np.float32(2)), ("eps", np.float32(1e-6))]
    last = "n"
    if affine:
        nodes += [N("Mul", ["n", "g"], ["gm"]), N("Add", ["gm", "b"], ["y"])]
        inits += [("g", rand(rng, 6)), ("b", rand(rng, 6))]
        last = "y"
    m = inferred_model(nodes, [("x", [1, 6, 4, 5])], [last], inits)
    res = _compile(m, tmp_path)
    names = [op.name for op in res.graph.ops() if not op.has_trait("structural")]
    # the input's NHWC transpose is the host's layout of it (canonicalize: input_layout)
    assert names == ["sqnxt.input_layout", "sqnxt.layer_norm"], names
    ln = names and next(op for op in res.graph.ops() if op.name == "sqnxt.layer_norm")
    assert ln.attrs["axis"] == 3 and np.isclose(ln.attrs["epsilon"], 1e-6) and len(ln.operands) == 2 + affine
    rep = check(res.graph, res.model, res.source, samples=2)
    assert rep.ok, rep.format()


def _doc_block(tag: str) -> dict[str, str]:
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "cost-model.md").read_text()
    body = text.split(f"```{tag}\n", 1)[1].split("```", 1)[0]
    return dict(line.split(" = ", 1) for line in body.strip().splitlines())


def test_the_flat_grid_worked_example():
    """docs/cost-model.md, "The flat grid": the grid by hand and by flat_grid, the layer
    an add of (1, 960, 2) and a constant (960, 2) becomes, and both grids' schedules."""
    from onnx import TensorProto as T, numpy_helper as nh
    from sqnxt_compiler.layers import flat_grid
    from sqnxt_compiler.schedule.solver import schedule_layer

    doc = _doc_block("worked-example-flat-grid")
    n = int(doc["n"])
    q = max(d for d in range(1, 65) if n % d == 0)
    p = max(d for d in range(1, 65) if (n // q) % d == 0)
    assert (n // (p * q), p, q) == flat_grid(n) == tuple(map(int, doc["flat_grid"].split()))
    assert flat_grid(7) == (1, 1, 7) and flat_grid(64 * 64 * 3) == (3, 64, 64)
    t = load_target(doc["target"])
    pv = nh.from_array(np.random.default_rng(0).standard_normal((960, 2)).astype(np.float32), "p")
    m = helper.make_model(helper.make_graph(
        [N("Add", ["x", "p"], ["y"], name="decode")], "g", [helper.make_tensor_value_info("x", T.FLOAT, [1, 960, 2])],
        [helper.make_tensor_value_info("y", T.FLOAT, [1, 960, 2])], [pv]), opset_imports=[helper.make_opsetid("", 13)])
    res = driver.compile((m, "m.onnx"), target=t, schedule={"jobs": 1})
    (row,) = [r for r in res.network.rows if r.schedule is not None]
    L = row.schedule.layer
    assert (L.kind, L.K, L.P, L.Q, L.n_inputs) == ("eltwise", 1, 30, 64, 2)
    assert row.schedule.cost.total_cycles == int(doc["flat_grid_cycles"])
    old = Layer("decode", "eltwise", C=960, K=960, H=1, W=2, R=1, S=1, P=1, Q=2, n_inputs=2,
                element=ElementFn("add", ops=1))
    assert schedule_layer(old, t).cost.total_cycles == int(doc["output_grid_cycles"])
    assert check(res.graph, res.model, "m.onnx", samples=1).ok


def test_the_flat_grid_only_for_position_independent_functions(tmp_path):
    """A softmax reads its row (its rows at most), a per-channel parameter vector is per
    grid channel, and a grid with rows stays: none takes the flat grid."""
    from onnx import TensorProto as T, numpy_helper as nh

    def layer(nodes, inits, xs=(1, 960, 4)):
        m = helper.make_model(helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", T.FLOAT, list(xs))],
                                                [helper.make_tensor_value_info("y", T.FLOAT, list(xs))], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
        res = driver.compile((m, "m.onnx"), target=load_target("pe8x8"), schedule={"jobs": 1})
        (row,) = [r for r in res.network.rows if r.schedule is not None]
        return row.schedule.layer.K, row.schedule.layer.P, row.schedule.layer.Q

    # a softmax reads its row: never the flat grid (1, 60, 64); over the last axis its rows
    assert layer([N("Softmax", ["x"], ["y"], axis=-1)], []) == (1, 960, 4)
    vec = nh.from_array(np.random.default_rng(1).standard_normal((960, 1)).astype(np.float32), "v")
    assert layer([N("Mul", ["x", "v"], ["y"])], [vec]) == (960, 1, 4)
    assert layer([N("Sigmoid", ["x"], ["y"])], []) == (1, 60, 64)
    assert layer([N("Sigmoid", ["x"], ["y"])], [], xs=(1, 8, 5, 7)) == (8, 5, 7)


def test_a_move_over_a_one_row_grid_runs_over_rows(cli, tmp_path):
    """A slice of (1, 960, 4) to (1, 960, 2): grid (960, 1, 2) -> (1, 960, 2), its channels
    as rows (docs/cost-model.md, "The flat grid"), cheaper, and every execution agrees with
    onnxruntime; a concat's parts keep the output's grid."""
    from onnx import TensorProto as T

    def model(nodes, out_shape, inputs=(("x", (1, 960, 4)),)):
        return helper.make_model(helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info(n, T.FLOAT, list(s)) for n, s in inputs],
            [helper.make_tensor_value_info("y", T.FLOAT, list(out_shape))],
            [helper.make_tensor("st", T.INT64, [1], [0]), helper.make_tensor("en", T.INT64, [1], [2]),
             helper.make_tensor("ax", T.INT64, [1], [2])]), opset_imports=[helper.make_opsetid("", 13)])

    m = model([N("Slice", ["x", "st", "en", "ax"], ["s"], name="cut"), N("Sigmoid", ["s"], ["y"], name="sg")],
              (1, 960, 2))
    res = driver.compile((m, "m.onnx"), target=load_target("pe16x16"), schedule={"jobs": 1})
    rows = {r.name: r.schedule for r in res.network.rows if r.schedule is not None}
    L = rows["cut"].layer
    assert (L.kind, L.K, L.P, L.Q) == ("move", 1, 960, 2)
    from sqnxt_compiler.schedule.solver import schedule_layer
    old = Layer("cut", "move", C=960, K=960, H=1, W=2, R=1, S=1, P=1, Q=2, element=ElementFn("extract_slice"))
    assert rows["cut"].cost.total_cycles * 4 < schedule_layer(old, load_target("pe16x16")).cost.total_cycles
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    for how in (["-t", "pe8x8", "--tiled"], ["-t", "pe16x16", "--tiled", "--precision", "int16"],
                ["-t", "pe8x8", "--program", "--activation-home", "dram"]):
        r = cli("check", p, *how)
        assert r.exit_code == 0 and "PASS" in r.stdout, (how, r.stdout + r.stderr)
    cat = model([N("Concat", ["a", "b"], ["y"], axis=2, name="cat")], (1, 960, 4),
                inputs=(("a", (1, 960, 2)), ("b", (1, 960, 2))))
    res = driver.compile((cat, "m.onnx"), target=load_target("pe8x8"), schedule={"jobs": 1})
    L = next(r.schedule.layer for r in res.network.rows if r.schedule is not None)
    assert (L.K, L.P, L.Q) == (960, 1, 4)


@pytest.mark.parametrize("axis", [-1, 1])
def test_a_softmax_over_the_last_axis_of_a_sequence_runs_over_rows(cli, tmp_path, axis):
    """Softmax of (1, 960, 4) over its last axis (an SSD's class scores per anchor): grid
    (1, 960, 4), each row reducing its columns; over axis 1 it keeps (960, 1, 4).  Both
    agree with onnxruntime in the tiled execution and the program (the COMPUTE's axes)."""
    from onnx import TensorProto as T

    m = helper.make_model(helper.make_graph(
        [N("Softmax", ["x"], ["y"], axis=axis, name="sm")], "g",
        [helper.make_tensor_value_info("x", T.FLOAT, [1, 960, 4])],
        [helper.make_tensor_value_info("y", T.FLOAT, [1, 960, 4])]), opset_imports=[helper.make_opsetid("", 13)])
    res = driver.compile((m, "m.onnx"), target=load_target("pe8x8"), schedule={"jobs": 1})
    L = next(r.schedule.layer for r in res.network.rows if r.schedule is not None)
    assert (L.K, L.P, L.Q) == ((1, 960, 4) if axis == -1 else (960, 1, 4))
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    hows = [["-t", "pe8x8", "--tiled"], ["-t", "pe16x16", "--tiled", "--precision", "int16"]]
    if axis == -1:
        hows += [["-t", "pe8x8", "--program", "--activation-home", "dram"], ["-t", "pe16x16", "--program"],
                 ["-t", "pe8x8", "--program", "--precision", "int16"]]
    for how in hows:
        r = cli("check", p, *how)
        assert r.exit_code == 0 and "PASS" in r.stdout, (how, r.stdout + r.stderr)
