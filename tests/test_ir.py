"""The IR: Graph API, deterministic order and printing, verifier rules (each broken on
purpose), and the type-inference formulas checked against onnxruntime's output shapes."""
from __future__ import annotations

import itertools

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper

from sqnxt_compiler.diagnostics import Location
from sqnxt_compiler.ir import Graph, IRVerificationError, TensorType, print_graph, verify
from sqnxt_compiler.ir.core import OPS
from sqnxt_compiler.ir.ops import conv_out, pool_out
from support import make_model


# ---------------------------------------------------------------------------- helpers
def build(seed: int = 0):
    """input(1x4x6x6) -> conv 3x3 (w, b) -> relu -> add(relu, relu) -> output."""
    rng = np.random.default_rng(seed)
    g = Graph("t", source="t.onnx")
    x = g.add_op("sqnxt.input", (), {"name": "x", "type": TensorType((1, 4, 6, 6))},
                 loc=Location(node="x"), result_names=["x"]).result
    w = g.constant(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w")
    b = g.constant(rng.standard_normal(4).astype(np.float32), "b")
    conv = g.add_op("sqnxt.conv", [x, w, b], {"pads": (1, 1, 1, 1)}, loc=Location(node="conv1"),
                    result_names=["c"])
    relu = g.add_op("sqnxt.relu", [conv.result], loc=Location(node="relu1"), result_names=["r"])
    add = g.add_op("sqnxt.add", [relu.result, relu.result], loc=Location(node="add1"),
                   result_names=["s"])
    out = g.add_op("sqnxt.output", [add.result], {"names": ("s",)}, loc=Location(node="outputs"))
    return g, dict(x=x, w=w, b=b, conv=conv, relu=relu, add=add, out=out)


def broken(fn):
    """Build a valid graph, break it with ``fn(graph, parts)``, return the verifier's error."""
    g, p = build()
    verify(g)  # valid before
    fn(g, p)
    with pytest.raises(IRVerificationError) as ei:
        verify(g, after="test-pass")
    return str(ei.value)


def ort_shapes(model, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return [o.shape for o in s.run(None, feeds)]


# ---------------------------------------------------------------------------- Graph API
def test_add_op_infers_type_and_fills_defaults():
    g, p = build()
    conv = p["conv"]
    assert conv.result.type == TensorType((1, 4, 6, 6))
    assert conv.attrs == {"strides": (1, 1), "pads": (1, 1, 1, 1), "groups": 1, "act": "none",
                          "residual": 0, "post_act": "none"}
    assert p["relu"].result.type == conv.result.type
    with pytest.raises(KeyError, match="sqnxt.bogus"):
        g.add_op("sqnxt.bogus", [p["x"]])


def test_unique_names():
    g, p = build()
    r2 = g.add_op("sqnxt.relu", [p["x"]], result_names=["r"]).result
    r3 = g.add_op("sqnxt.relu", [p["x"]], result_names=["r"]).result
    assert len({p["relu"].result.name, r2.name, r3.name}) == 3
    odd = g.add_op("sqnxt.relu", [p["x"]], result_names=["a/b:c"]).result
    assert odd.name == "a_b_c"


def test_uses_and_users_with_value_used_twice():
    g, p = build()
    r = p["relu"].result
    assert g.uses(r) == [(p["add"], 0), (p["add"], 1)]
    assert g.users(r) == [p["add"]]
    assert g.uses(p["add"].result) == [(p["out"], 0)]
    assert g.uses(p["out"].operands[0]) and r.owner is p["relu"]
    assert g.g.edges[p["relu"].id, p["add"].id]["ports"] == [0, 1]


def test_replace_all_uses_moves_both_ports():
    g, p = build()
    r, c = p["relu"].result, p["conv"].result
    n = g.replace_all_uses(r, c)
    assert n == 2
    assert p["add"].operands == [c, c]
    assert g.uses(r) == []
    assert g.uses(c) == [(p["relu"], 0), (p["add"], 0), (p["add"], 1)]
    assert not g.g.has_edge(p["relu"].id, p["add"].id)
    verify(g)
    assert g.erase_dead() == 1  # the relu is now dead
    assert p["relu"] not in g
    verify(g)


def test_set_operand_moves_one_port():
    g, p = build()
    c = p["conv"].result
    g.set_operand(p["add"], 1, c)
    assert p["add"].operands == [p["relu"].result, c]
    assert g.g.edges[p["relu"].id, p["add"].id]["ports"] == [0]
    assert g.g.edges[p["conv"].id, p["add"].id]["ports"] == [1]
    verify(g)
    g.set_operand(p["add"], 0, c)
    assert not g.g.has_edge(p["relu"].id, p["add"].id)
    assert sorted(g.g.edges[p["conv"].id, p["add"].id]["ports"]) == [0, 1]
    verify(g)


def test_set_operands_replaces_all():
    g, p = build()
    g.set_operands(p["conv"], [p["x"], p["w"]])  # drop the bias
    assert len(p["conv"].operands) == 2 and not g.uses(p["b"])
    verify(g)
    assert g.erase_dead() == 1 and p["b"].owner not in g


def test_erase_refuses_used_values():
    g, p = build()
    n = len(g)
    with pytest.raises(ValueError, match="still used"):
        g.erase(p["relu"])
    with pytest.raises(ValueError, match="still used"):
        g.erase(p["w"].owner)
    assert len(g) == n and p["relu"] in g
    verify(g)


def test_erase_dead_removes_chains_not_inputs_or_outputs():
    g, p = build()
    a = g.add_op("sqnxt.relu", [p["x"]])
    b = g.add_op("sqnxt.relu", [a.result])
    g.add_op("sqnxt.clip", [b.result], {"min": 0.0, "max": 1.0})
    unused_const = g.constant(np.zeros(3, np.float32), "dead_c")
    assert g.erase_dead() == 4
    assert a not in g and b not in g and unused_const.owner not in g
    assert p["x"].owner in g and p["out"] in g
    assert g.erase_dead() == 0
    verify(g)


def test_erased_names_can_be_reused():
    g, p = build()
    d = g.add_op("sqnxt.relu", [p["x"]], result_names=["tmp"])
    g.erase(d)
    assert g.add_op("sqnxt.relu", [p["x"]], result_names=["tmp"]).result.name == "tmp"


def test_count_by_name_and_queries():
    g, p = build()
    assert g.count_by_name() == {"sqnxt.add": 1, "sqnxt.constant": 2, "sqnxt.conv": 1,
                                 "sqnxt.input": 1, "sqnxt.output": 1, "sqnxt.relu": 1}
    assert g.inputs == [p["x"].owner]
    assert g.output_op is p["out"] and g.outputs == [p["add"].result]
    assert g.ops_named("sqnxt.constant") == [p["w"].owner, p["b"].owner]


# ---------------------------------------------------------------------------- order, printing
def test_order_is_topological():
    g, _ = build()
    pos = {op.id: i for i, op in enumerate(g.ops())}
    assert len(pos) == len(g)
    for op in g.ops():
        for v in op.operands:
            assert pos[v.owner.id] < pos[op.id]


def test_printing_is_deterministic():
    t1, t2 = print_graph(build(0)[0]), print_graph(build(0)[0])
    assert t1 == t2
    assert print_graph(build(1)[0]) != t1  # other weights: other CRCs


def test_printing_shows_types_attrs_and_locations():
    text = print_graph(build()[0])
    lines = text.splitlines()
    assert lines[0] == "sqnxt.graph @t(%x: tensor<1x4x6x6xf32>) {" and lines[-1] == "}"
    conv = next(l for l in lines if "sqnxt.conv(" in l)
    assert conv.strip() == (
        '%c = sqnxt.conv(%x, %w, %b) {act = "none", groups = 1, pads = [1, 1, 1, 1], '
        'post_act = "none", residual = 0, strides = [1, 1]} : (tensor<1x4x6x6xf32>, tensor<4x4x3x3xf32>, tensor<4xf32>) '
        '-> tensor<1x4x6x6xf32>  loc("conv1")')
    assert any(l.strip().startswith("sqnxt.output(%s)") for l in lines)


def test_constants_printed_just_before_first_user():
    g, p = build()
    # a constant created early but first used late must still print next to its user
    late = g.constant(np.ones(4, np.float32).reshape(1, 4, 1, 1), "late")
    s2 = g.add_op("sqnxt.add", [p["add"].result, late], result_names=["s2"])
    g.set_operand(p["out"], 0, s2.result)
    g.erase_dead()
    verify(g)
    lines = [l.strip() for l in print_graph(g).splitlines()]
    idx = {l.split(" = ")[0]: i for i, l in enumerate(lines) if " = " in l}
    for const, user in (("%w", "%c"), ("%b", "%c"), ("%late", "%s2")):
        assert idx[const] < idx[user]
        between = lines[idx[const] + 1:idx[user]]
        assert all("sqnxt.constant" in l for l in between), (const, between)
    # and not before the op that precedes its user
    assert idx["%late"] > idx["%s"]


def test_order_follows_creation_among_independent_ops():
    g = Graph("t")
    x = g.add_op("sqnxt.input", (), {"name": "x", "type": TensorType((1, 2, 3, 3))},
                 result_names=["x"]).result
    a = g.add_op("sqnxt.relu", [x], result_names=["a"])
    b = g.add_op("sqnxt.clip", [x], {"min": 0.0, "max": 1.0}, result_names=["b"])
    s = g.add_op("sqnxt.add", [b.result, a.result], result_names=["s"])
    g.add_op("sqnxt.output", [s.result], {"names": ("s",)})
    assert [op.name for op in g.ops()] == ["sqnxt.input", "sqnxt.relu", "sqnxt.clip", "sqnxt.add",
                                           "sqnxt.output"]


def test_the_remembered_order_follows_every_change():
    """ops() computes the order once per structure: after each kind of change (add, erase,
    rewire, an edit of the networkx graph behind the methods' back) it equals the order
    computed afresh, and callers get their own list."""
    g, p = build()
    first = g.ops()
    first.clear()                                   # a caller's list is its own
    assert g.ops() == g._topological() and len(g.ops()) == len(g)
    late = g.constant(np.ones(4, np.float32).reshape(1, 4, 1, 1), "late")
    assert g.ops() == g._topological() and late.owner in g.ops()
    s2 = g.add_op("sqnxt.add", [p["add"].result, late], result_names=["s2"])
    assert g.ops() == g._topological()
    g.set_operand(p["out"], 0, s2.result)
    assert g.ops() == g._topological() and g.ops().index(s2) < g.ops().index(p["out"])
    g.erase(p["out"])
    assert g.ops() == g._topological() and p["out"] not in g.ops()
    g.g.remove_node(s2.id)                          # not through the methods
    assert s2 not in g.ops() and g.ops() == g._topological()


# ---------------------------------------------------------------------------- verifier negatives
def test_verifier_accepts_valid_graph():
    g, _ = build()
    verify(g)


def _set(obj, key, value):
    obj[key] = value


CASES = {
    "undeclared-op": (lambda g, p: setattr(p["relu"], "name", "sqnxt.mish"),
                      "node 'relu1' (sqnxt.mish)", "undeclared op 'sqnxt.mish'"),
    "operand-count": (lambda g, p: g.set_operands(p["relu"], [p["conv"].result, p["x"]]),
                      "node 'relu1' (sqnxt.relu)", "2 operands, declared 1"),
    "result-count": (lambda g, p: p["relu"].results.clear(),
                     "node 'relu1' (sqnxt.relu)", "0 results, declared 1"),
    "undeclared-attr": (lambda g, p: _set(p["relu"].attrs, "alpha", 0.1),
                        "node 'relu1' (sqnxt.relu)", "undeclared attribute 'alpha'"),
    "attr-kind": (lambda g, p: _set(p["conv"].attrs, "groups", 1.0),
                  "node 'conv1' (sqnxt.conv)", "attribute 'groups' must be of kind int"),
    "attr-kind-tuple": (lambda g, p: _set(p["conv"].attrs, "pads", [1, 1, 1, 1]),
                        "node 'conv1' (sqnxt.conv)", "attribute 'pads' must be of kind ints"),
    "bad-choice": (lambda g, p: _set(p["conv"].attrs, "act", "mish"),
                   "node 'conv1' (sqnxt.conv)", "attribute 'act' = 'mish' not in"),
    "missing-required": (lambda g, p: p["out"].attrs.clear(),
                         "node 'outputs' (sqnxt.output)", "missing required attribute 'names'"),
    "result-type": (lambda g, p: setattr(p["conv"].result, "type", TensorType((1, 4, 4, 4))),
                    "node 'conv1' (sqnxt.conv)",
                    "result types (tensor<1x4x4x4xf32>) differ from inferred (tensor<1x4x6x6xf32>)"),
    "result-dtype": (lambda g, p: setattr(p["relu"].result, "type", TensorType((1, 4, 6, 6), "f16")),
                     "node 'relu1' (sqnxt.relu)", "differ from inferred"),
    "conv-groups": (lambda g, p: _set(p["conv"].attrs, "groups", 3),
                    "node 'conv1' (sqnxt.conv)", "groups=3 must divide input channels 4"),
    "conv-groups-weight": (lambda g, p: _set(p["conv"].attrs, "groups", 2),
                           "node 'conv1' (sqnxt.conv)", "expects 8 input channels, input has 4"),
    "stale-edge": (lambda g, p: g.g.add_edge(p["w"].owner.id, p["relu"].id, ports=[0]),
                   "node 'relu1' (sqnxt.relu)", "stale dependency edge"),
    "missing-edge": (lambda g, p: g.g.remove_edge(p["relu"].id, p["add"].id),
                     "node 'add1' (sqnxt.add)", "has no dependency edge"),
    "operand-poked": (lambda g, p: p["add"].operands.__setitem__(1, p["conv"].result),
                      "node 'add1' (sqnxt.add)", "operand 1 (%c) has no dependency edge"),
    "foreign-value": (lambda g, p: p["relu"].operands.__setitem__(0, build(1)[1]["conv"].result),
                      "node 'relu1' (sqnxt.relu)", "not produced in this graph"),
    "duplicate-name": (lambda g, p: setattr(p["relu"].result, "name", "c"),
                       "(sqnxt.", "value name %c defined twice"),
    "result-backpointer": (lambda g, p: setattr(p["relu"].result, "index", 3),
                           "node 'relu1' (sqnxt.relu)", "does not point back"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_verifier_rejects(case):
    fn, where, what = CASES[case]
    msg = broken(fn)
    assert msg.startswith("t.onnx: "), msg
    assert where in msg, msg
    assert what in msg, msg
    assert "after pass 'test-pass'" in msg


def test_verifier_rejects_cycle():
    def make_cycle(g, p):
        g.set_operand(p["conv"], 0, p["relu"].result)  # conv <- relu <- conv
    msg = broken(make_cycle)
    assert "cycle through ops" in msg and msg.startswith("t.onnx")
    assert str(build()[1]["conv"].id) in msg


def test_verifier_rejects_two_outputs():
    def second_output(g, p):
        g.add_op("sqnxt.output", [p["relu"].result], {"names": ("r",)})
    msg = broken(second_output)
    assert "2 sqnxt.output ops (expected 1)" in msg


def test_verifier_rejects_no_output():
    msg = broken(lambda g, p: g.g.remove_node(p["out"].id))
    assert "0 sqnxt.output ops" in msg


def test_verifier_rejects_output_with_user():
    def use_output(g, p):
        late = g.add_op("sqnxt.relu", [p["x"]], loc=Location(node="late"))
        g.g.add_edge(p["out"].id, late.id, ports=[])  # a dependency on the terminator
    msg = broken(use_output)
    assert "node 'outputs' (sqnxt.output)" in msg and "must have no users" in msg


def test_verification_error_is_internal_error_code():
    from sqnxt_compiler.diagnostics import ExitCode
    g, p = build()
    p["relu"].attrs["x"] = 1
    with pytest.raises(IRVerificationError) as ei:
        verify(g)
    assert ei.value.code == ExitCode.INTERNAL
    assert "after pass" not in str(ei.value)


def test_every_declared_op_has_summary_and_valid_attr_kinds():
    from sqnxt_compiler.ir.core import ATTR_KINDS
    assert len(OPS) >= 30
    for name, d in OPS.items():
        assert name.startswith("sqnxt.") and d.summary
        for spec in d.attrs.values():
            assert spec.kind in ATTR_KINDS
            if spec.default is not None:
                assert ATTR_KINDS[spec.kind](spec.default), (name, spec)
            if spec.choices is not None and spec.default is not None:
                assert spec.default in spec.choices


# ---------------------------------------------------------------------------- type inference
def test_conv_out_formula_cases():
    assert conv_out(8, 3, 1, 1, 1) == 8
    assert conv_out(8, 3, 2, 1, 1) == 4
    assert conv_out(7, 3, 2, 0, 0) == 3
    assert conv_out(227, 7, 2, 0, 0) == 111
    assert conv_out(5, 2, 2, 0, 1) == 3


def test_pool_out_ceil_rule_cases():
    # floor vs ceil
    assert pool_out(6, 3, 2, 0, 0, 0) == 2 and pool_out(6, 3, 2, 0, 0, 1) == 3
    assert pool_out(111, 3, 2, 0, 0, 1) == 55 and pool_out(55, 3, 2, 0, 0, 1) == 27
    # the last window would start in the end padding: dropped (naive ceil gives 5)
    naive = -(-(7 + 1 + 1 - 2) // 2) + 1
    assert naive == 5 and pool_out(7, 2, 2, 1, 1, 1) == 4
    # and with no padding, a kernel smaller than the stride
    assert pool_out(6, 1, 2, 0, 0, 1) == 3


def _grid(size):
    for k, s in itertools.product((1, 2, 3), (1, 2, 3)):
        for pads in ((0, 0), (1, 0), (0, 1), (1, 1), (2, 1)):
            if max(pads) < k and size + sum(pads) >= k:
                yield k, s, pads


@pytest.mark.parametrize("size", [5, 6, 7, 8])
def test_pool_out_matches_onnxruntime(size):
    """One model per input size with a MaxPool per (k, s, pads, ceil) combination; every
    output shape onnxruntime computes equals pool_out (including the window-in-padding case)."""
    nodes, outs, want = [], [], []
    for i, (k, s, (pb, pe)) in enumerate(_grid(size)):
        for ceil in (0, 1):
            name = f"y{i}_{ceil}"
            nodes.append(helper.make_node("MaxPool", ["x"], [name], kernel_shape=[k, 1],
                                          strides=[s, 1], pads=[pb, 0, pe, 0], ceil_mode=ceil))
            outs.append((name, [1, 1, "h", 3]))
            want.append(pool_out(size, k, s, pb, pe, ceil))
    m = make_model(nodes, [("x", [1, 1, size, 3])], outs, opset=13)
    shapes = ort_shapes(m, {"x": np.zeros((1, 1, size, 3), np.float32)})
    got = [sh[2] for sh in shapes]
    assert got == want
    assert all(sh[3] == 3 for sh in shapes)
    assert len(want) > 40


@pytest.mark.parametrize("size", [5, 8])
def test_conv_out_matches_onnxruntime(size):
    nodes, outs, inits, want = [], [], [], []
    for i, (k, s, (pb, pe)) in enumerate(_grid(size)):
        nodes.append(helper.make_node("Conv", ["x", f"w{i}"], [f"y{i}"], strides=[s, 1],
                                      pads=[pb, 0, pe, 0]))
        inits.append((f"w{i}", np.ones((1, 1, k, 1), np.float32)))
        outs.append((f"y{i}", [1, 1, "h", 3]))
        want.append(conv_out(size, k, s, pb, pe))
    m = make_model(nodes, [("x", [1, 1, size, 3])], outs, inits, opset=13)
    got = [sh[2] for sh in ort_shapes(m, {"x": np.zeros((1, 1, size, 3), np.float32)})]
    assert got == want


@pytest.mark.parametrize("ceil", [0, 1])
def test_ir_pool_types_use_pool_out(ceil):
    g = Graph("t")
    x = g.add_op("sqnxt.input", (), {"name": "x", "type": TensorType((1, 2, 7, 6))}).result
    mp = g.add_op("sqnxt.maxpool", [x], {"kernel": (2, 3), "strides": (2, 2), "pads": (1, 0, 1, 1),
                                         "ceil_mode": ceil})
    ap = g.add_op("sqnxt.avgpool", [x], {"kernel": (2, 3), "strides": (2, 2), "pads": (1, 0, 1, 1),
                                         "ceil_mode": ceil})
    want = (1, 2, pool_out(7, 2, 2, 1, 1, ceil), pool_out(6, 3, 2, 0, 1, ceil))
    assert mp.result.type.shape == want == ap.result.type.shape


def test_ir_shape_inference_other_ops():
    g = Graph("t")
    x = g.add_op("sqnxt.input", (), {"name": "x", "type": TensorType((1, 8, 5, 5))}).result
    w = g.constant(np.zeros((6, 4, 3, 3), np.float32), "w")
    c = g.add_op("sqnxt.conv", [x, w], {"strides": (2, 1), "pads": (1, 0, 1, 2), "groups": 2})
    assert c.result.type.shape == (1, 6, 3, 5)
    gap = g.add_op("sqnxt.global_avgpool", [c.result])
    assert gap.result.type.shape == (1, 6, 1, 1)
    fl = g.add_op("sqnxt.flatten", [x], {"axis": 2})
    assert fl.result.type.shape == (8, 25)
    fc = g.add_op("sqnxt.fc", [gap.result, g.constant(np.zeros((3, 6), np.float32), "fw")])
    assert fc.result.type.shape == (1, 3)
    cat = g.add_op("sqnxt.concat", [x, x], {"axis": 1})
    assert cat.result.type.shape == (1, 16, 5, 5)
    sh = g.add_op("sqnxt.shape", [x], {"start": 1})
    assert sh.result.type == TensorType((3,), "i64")
    r = g.add_op("sqnxt.reshape", [x, g.constant(np.array([0, -1], np.int64), "s")])
    assert r.result.type.shape == (1, 200)
    add = g.add_op("sqnxt.add", [x, g.constant(np.zeros((8, 1, 1), np.float32), "bb")])
    assert add.result.type.shape == (1, 8, 5, 5)
