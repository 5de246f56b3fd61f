"""fuse-relu folds every activation the epilogue applies into the conv / fc before it
(passes/fuse_relu.py), the numbers stay onnxruntime's (plain and tiled, fp32 and int16),
and the cost model charges the activation's operations, not a layer (docs/cost-model.md,
"Fused activations")."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import helper

from sqnxt_compiler import driver
from sqnxt_compiler.cost import Epilogue, Layer, Mapping, evaluate
from sqnxt_compiler.reference.check import check
from sqnxt_compiler.reference.tiled import execute_tiled
from sqnxt_compiler.schedule import exhaustive_best
from sqnxt_compiler.schedule.solver import schedule_layer
from sqnxt_compiler.targets import load_target
from support import inferred_model, rand

N = helper.make_node
T8 = load_target("pe8x8")

#: (case, activation node(s) on "c" giving "y", opset, the act the conv carries after fusion)
ACTS = [
    ("relu", [N("Relu", ["c"], ["y"])], 13, "relu"),
    ("leaky", [N("LeakyRelu", ["c"], ["y"], alpha=0.1)], 13, "leaky_relu"),
    ("hard-sigmoid", [N("HardSigmoid", ["c"], ["y"], alpha=0.25, beta=0.4)], 13, "hard_sigmoid"),
    ("hard-swish", [N("HardSwish", ["c"], ["y"])], 14, "hard_swish"),
    ("hard-swish-opset13", [N("HardSigmoid", ["c"], ["h"], alpha=1 / 6, beta=0.5), N("Mul", ["c", "h"], ["y"])],
     13, "hard_swish"),
    ("sigmoid", [N("Sigmoid", ["c"], ["y"])], 13, "sigmoid"),
    ("tanh", [N("Tanh", ["c"], ["y"])], 13, "tanh"),
    ("swish", [N("Sigmoid", ["c"], ["s"]), N("Mul", ["s", "c"], ["y"])], 13, "swish"),
]


def _conv_then(nodes, opset):
    rng = np.random.default_rng(7)
    return inferred_model([N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])] + nodes,
                          [("x", [1, 3, 8, 8])], ["y"], [("w", rand(rng, 8, 3, 3, 3)), ("b", rand(rng, 8))],
                          opset=opset)


@pytest.mark.parametrize("case,nodes,opset,act", ACTS, ids=[a[0] for a in ACTS])
def test_each_activation_fuses_into_the_conv_and_matches_onnxruntime(case, nodes, opset, act, tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(_conv_then(nodes, opset), str(p))
    res = driver.compile(str(p), target=T8)
    names = [op.name for op in res.graph.ops() if not op.has_trait("structural")]
    assert names == ["sqnxt.conv"], names
    conv = next(op for op in res.graph.ops() if op.name == "sqnxt.conv")
    assert conv.attrs["act"] == act
    rep = check(res.graph, res.model, res.source, samples=2)
    assert rep.ok, rep.format()
    for prec, (rtol, atol) in (("fp32", (1e-4, 1e-5)), ("int16", (0.0, 2.5e-3))):
        rep = check(res.graph, res.model, res.source, samples=1, rtol=rtol, atol=atol,
                    executor=lambda g, f, prec=prec: execute_tiled(g, f, precision=prec).outputs)
        assert rep.ok, (prec, rep.format())


def test_an_activation_after_an_add_or_with_other_users_stays_a_layer(tmp_path):
    rng = np.random.default_rng(1)
    nodes = [N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), N("Add", ["c", "x"], ["s"]),
             N("Sigmoid", ["s"], ["y"]),                                   # after an add
             N("Conv", ["x", "w"], ["d"], pads=[1, 1, 1, 1]), N("Tanh", ["d"], ["t"]),
             N("Add", ["d", "t"], ["z"])]                                   # d has two users
    m = inferred_model(nodes, [("x", [1, 3, 8, 8])], ["y", "z"], [("w", rand(rng, 3, 3, 3, 3))])
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    res = driver.compile(str(p), target=T8)
    names = sorted(op.name for op in res.graph.ops() if not op.has_trait("structural"))
    assert "sqnxt.sigmoid" in names and "sqnxt.tanh" in names
    rep = check(res.graph, res.model, res.source, samples=1)
    assert rep.ok, rep.format()


def test_a_fused_activation_costs_its_operations_not_cycles():
    plain = Layer("c", "conv", C=16, K=32, H=14, W=14, R=3, S=3, P=14, Q=14, pad_top=1, pad_left=1,
                  pad_bottom=1, pad_right=1)
    swish = replace(plain, epilogue=Epilogue(act_ops=1, act_funcs=1))
    m = Mapping("OS", 8, 8, 16, 8, ("k", "c", "y", "x"))
    a, b = evaluate(plain, T8, m), evaluate(swish, T8, m)
    extra = 32 * 14 * 14 * (1 + T8.nonlinear_cycles)
    assert b.accesses["mac"] - a.accesses["mac"] == extra == swish.act_cost(T8.nonlinear_cycles)
    assert b.energy["mac"] - a.energy["mac"] == extra * T8.e_mac
    assert b.energy["total"] - a.energy["total"] == extra * T8.e_mac
    assert b.total_cycles == a.total_cycles and b.dram == a.dram


@pytest.mark.parametrize("objective", ["energy", "edp"])
def test_the_solver_agrees_with_the_exhaustive_search_on_activated_layers(objective):
    for L in (Layer("a", "conv", C=24, K=40, H=10, W=10, R=3, S=3, P=10, Q=10, pad_top=1, pad_left=1,
                    pad_bottom=1, pad_right=1, epilogue=Epilogue(act_ops=2, act_funcs=0)),
              Layer("b", "fc", C=200, K=48, H=1, W=1, R=1, S=1, P=1, Q=1, epilogue=Epilogue(act_ops=0, act_funcs=1))):
        s = schedule_layer(L, T8, objective=objective)
        m, r = exhaustive_best(L, T8, objective)
        assert (s.mapping, s.cost) == (m, r) and s.status == "optimal"
