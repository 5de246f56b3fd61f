"""Keras layers on channels-last tensors of rank 3 (and 4) as tf2onnx writes them cost what
their PyTorch twins cost (issue 25):

* Keras 3's ``LayerNormalization`` of an (N, L, C) sequence: tf2onnx writes its two means
  as ``GlobalAveragePool`` of the rank-3 tensor (a mean over the last axis, kept as size
  1).  The frontend lowers a GlobalAveragePool of a rank other than 4 to ``sqnxt.reduce``
  (mean over axes 2..), and canonicalize's ``layer-norm-from-moments`` makes the moments
  one ``sqnxt.layer_norm``; over the last two axes of a rank-4 tensor it writes a
  GlobalAveragePool of rank 4 (a ``global_avgpool``), which the pattern now reads as a mean
  too (so does PyTorch's pre-opset-17 LayerNorm over (H, W) once ``gap-from-reduce-mean``
  made its ReduceMean one).
* ``Dense`` on such a tensor (Keras' Tensordot): ``Reshape (L, C) -> MatMul -> Reshape (1,
  L, K) -> Add(bias) [-> act]``.  canonicalize's ``matmul-through-reshape`` makes it the
  channels-last ``sqnxt.matmul`` PyTorch's Linear exports, with the bias Add as its bias
  operand, and fuse-relu folds the activation; before, it was an ``fc`` of the (L, C)
  matrix (costed as one row: L times too few MACs) plus an element-wise layer for the bias
  and the activation.

The fixtures (tests/fixtures/keras/rank*_tf2onnx_*.onnx, made by
tests/fixtures/make_keras_rank3.py from tiny Keras models, the ``rank3`` section of
manifest.json) are compared with twins built here in the PyTorch exporter's spelling
(torch 2.13, TorchScript exporter: ``MatMul(x, W^T)``, ``Add(bias, .)``, ``Relu`` /
``Sigmoid`` + ``Mul``; ``LayerNormalization`` at opset 17, ``ReduceMean, Sub, Pow,
ReduceMean, Add, Sqrt, Div, Mul, Add`` before) with the very weights sqnxtc read from the
Keras file: onnxruntime gives the twin the Keras file's outputs, and sqnxtc the twin's
layers and cycles.  The node-level graphs below reproduce the exact patterns, and the
cases the rewrite must leave alone."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from sqnxt_compiler import driver
from sqnxt_compiler.pipeline import rewrite
from sqnxt_compiler.reference.check import check
from sqnxt_compiler.targets import load_target
from support import inferred_model, int64s, make_model, rand

N = helper.make_node
f32 = np.float32
KERAS = Path(__file__).resolve().parent / "fixtures" / "keras"
FIXTURES = json.loads((KERAS / "manifest.json").read_text())["rank3"]["fixtures"]
TARGETS = ("pe16x16", "pe8x8")


@pytest.fixture(autouse=True)
def _prove_fixpoints(monkeypatch):
    monkeypatch.setattr(rewrite, "CHECK_FIXPOINT", True)


def compiled(model, source="t.onnx"):
    """The default pipeline (no target), checked against onnxruntime."""
    res = driver.compile((model, source))
    rep = check(res.graph, res.model, res.source, samples=2)
    assert rep.ok, rep.format()
    return res


def layers(res) -> list[tuple]:
    """(op, act, number of operands) of every op left but the structural ones, in order."""
    return [(op.name.split(".")[1], op.attrs.get("act"), len(op.operands))
            for op in res.graph.ops() if not op.has_trait("structural")]


def costed(model, target: str) -> dict:
    """The network totals of ``sqnxtc compile -t target`` (one solver thread)."""
    res = driver.compile((model, "t.onnx"), target=load_target(target), schedule={"jobs": 1})
    return res.network.totals()


def _const(v):
    return v.owner.const_value()


def torch_twin(res, opset: int) -> onnx.ModelProto:
    """The PyTorch spelling of the compiled network ``res`` (layer_norm, matmul by a constant
    with bias and act, add), with its weights: what ``torch.onnx.export`` writes for
    ``nn.LayerNorm``, ``nn.Linear`` (+ ``nn.ReLU`` / ``nn.SiLU``) and a residual ``+``."""
    nodes, inits, names = [], [], {}
    (inp,) = [op for op in res.graph.ops() if op.name == "sqnxt.input"]
    names[inp.result.name] = "x"

    def const(name, value):
        inits.append((name, np.asarray(value)))
        return name

    for i, op in enumerate(res.graph.ops()):
        if op.has_trait("structural"):
            continue
        a = [names[v.name] for v in op.operands if v.owner.name != "sqnxt.constant"]
        y = f"t{i}"
        if op.name == "sqnxt.layer_norm":
            scale = _const(op.operands[1])
            shift = _const(op.operands[2]) if len(op.operands) > 2 else None
            axis, eps = op.attrs["axis"], op.attrs["epsilon"]
            if opset >= 17:
                ins = [a[0], const(f"g{i}", scale)] + ([const(f"b{i}", shift)] if shift is not None else [])
                nodes.append(N("LayerNormalization", ins, [y], axis=axis - op.operands[0].type.rank, epsilon=eps))
            else:
                axes = list(range(axis - op.operands[0].type.rank, 0))
                nodes += [N("ReduceMean", [a[0]], [f"{y}m"], axes=axes), N("Sub", [a[0], f"{y}m"], [f"{y}d"]),
                          N("Pow", [f"{y}d", const(f"two{i}", f32(2))], [f"{y}p"]),
                          N("ReduceMean", [f"{y}p"], [f"{y}v"], axes=axes),
                          N("Add", [f"{y}v", const(f"eps{i}", f32(eps))], [f"{y}ve"]),
                          N("Sqrt", [f"{y}ve"], [f"{y}s"]), N("Div", [f"{y}d", f"{y}s"], [f"{y}n"])]
                last = f"{y}n"
                if not np.all(scale == 1):
                    nodes.append(N("Mul", [last, const(f"g{i}", scale)], [f"{y}g"]))
                    last = f"{y}g"
                nodes.append(N("Add", [last, const(f"b{i}", shift)], [y]) if shift is not None
                             else N("Identity", [last], [y]))
        elif op.name == "sqnxt.matmul":
            nodes.append(N("MatMul", [a[0], const(f"w{i}", _const(op.operands[1]))], [f"{y}mm"]))
            nodes.append(N("Add", [const(f"b{i}", _const(op.operands[2])), f"{y}mm"], [f"{y}b"]))
            act = op.attrs["act"]
            if act == "relu":
                nodes.append(N("Relu", [f"{y}b"], [y]))
            elif act == "swish":
                nodes += [N("Sigmoid", [f"{y}b"], [f"{y}sg"]), N("Mul", [f"{y}b", f"{y}sg"], [y])]
            else:
                assert act == "none", act
                nodes.append(N("Identity", [f"{y}b"], [y]))
        elif op.name == "sqnxt.add":
            nodes.append(N("Add", a, [y]))
        else:
            raise AssertionError(f"no twin for {op.name}")
        names[op.result.name] = y
    (out,) = [op for op in res.graph.ops() if op.name == "sqnxt.output"]
    nodes.append(N("Identity", [names[out.operands[0].name]], ["y"]))
    return inferred_model(nodes, [("x", list(inp.result.type.shape))], ["y"], inits, opset=opset)


def ort_run(model, x) -> np.ndarray:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


# ------------------------------------------------------------------ the tf2onnx fixtures
#: per architecture: (LayerNorms, Dense layers, the layers left: (op, act, operands))
EXPECTED = {
    "rank3_mlp": (2, 2, [("layer_norm", None, 3), ("matmul", "relu", 3), ("matmul", "none", 3),
                         ("add", "none", 2), ("layer_norm", None, 2)]),
    "rank4_mlp": (1, 2, [("matmul", "swish", 3), ("layer_norm", None, 3), ("matmul", "none", 3)]),
}


def test_the_fixtures_are_what_tf2onnx_writes():
    """Each file holds the spellings this test is about (and is small): GlobalAveragePool of
    a rank-3 (or rank-4 NHWC) tensor for the LayerNorm moments, Reshape -> MatMul -> Reshape
    -> Add(bias) for every Dense."""
    assert sum((KERAS / e["file"]).stat().st_size for e in FIXTURES) < 100_000
    for e in FIXTURES:
        m = onnx.load(str(KERAS / e["file"]))
        ops = [n.op_type for n in m.graph.node]
        assert ops.count("GlobalAveragePool") == 2 * EXPECTED[e["architecture"]][0], e["file"]
        for i, op in enumerate(ops):
            if op == "MatMul":
                assert ops[i - 1:i + 3] == ["Reshape", "MatMul", "Reshape", "Add"], e["file"]
        gaps = [n for n in m.graph.node if n.op_type == "GlobalAveragePool"]
        assert gaps[0].input[0] == m.graph.input[0].name or e["architecture"] != "rank3_mlp"
        assert len(m.graph.input[0].type.tensor_type.shape.dim) == len(e["input_shape"])


@pytest.mark.parametrize("entry", FIXTURES, ids=lambda e: e["file"][:-5])
def test_a_keras_rank3_export_becomes_the_pytorch_layers_and_costs_the_same(entry):
    """Imported (the rank-3 GlobalAveragePool no longer refused), every LayerNorm one
    layer_norm, every Dense one matmul with its bias and activation; the same outputs as
    onnxruntime; on both targets nothing unmodelled, the twin's layers, MACs and cycles."""
    path = KERAS / entry["file"]
    n_ln, n_dense, expected = EXPECTED[entry["architecture"]]
    res = compiled(onnx.load(str(path)), str(path))
    stats = res.statistics["canonicalize"]
    assert stats["layer-norm-from-moments"] == n_ln
    assert stats["matmul-through-reshape"] == n_dense and stats["bias-into-matmul"] == n_dense
    assert layers(res) == expected
    assert not res.graph.ops_named("sqnxt.fc") and not res.graph.ops_named("sqnxt.reshape")
    # the twins, with the weights sqnxtc read: onnxruntime gives them the Keras file's outputs
    x = np.random.default_rng(5).standard_normal(entry["input_shape"]).astype(f32)
    want = ort_run(path.read_bytes(), x)
    for opset in (13, 17):
        twin = torch_twin(res, opset)
        np.testing.assert_allclose(ort_run(twin, x), want, rtol=1e-4, atol=2e-5)
        t = compiled(twin)
        assert layers(t) == expected, opset
    dense_macs = sum(math.prod(op.result.type.shape[1:-1]) * math.prod(op.operands[1].type.shape)
                     for op in res.graph.ops_named("sqnxt.matmul"))
    for target in TARGETS:
        k, t = costed(onnx.load(str(path)), target), costed(torch_twin(res, 17), target)
        assert k["unmodelled_ops"] == 0 and t["unmodelled_ops"] == 0
        assert (k["layers"], k["macs"], k["total_cycles"]) == (t["layers"], t["macs"], t["total_cycles"]), target
        assert k["macs"] == dense_macs          # every row of every Dense (an fc of (L, C) counted one)
        assert k["layers"] == len(expected)


@pytest.mark.parametrize("target", TARGETS)
def test_the_cli_compiles_and_checks_the_rank3_fixture(cli, target):
    """`sqnxtc compile -t`, `sqnxtc check` and `check --tiled` (fp32, no fp64 arbiter) pass
    on both targets, with nothing unmodelled."""
    path = KERAS / "rank3_mlp_tf2onnx_op13.onnx"
    r = cli("compile", path, "-t", target)
    assert r.exit_code == 0, r.output
    assert "5 layers" in r.stdout and "0 ops not modelled" in r.stdout, r.stdout
    for extra in ([], ["-t", target, "--tiled"]):
        r = cli("check", path, "--strict", *extra)
        assert r.exit_code == 0, r.output
        assert "PASS" in r.stdout and "FAIL" not in r.stdout, r.stdout


def test_the_rank4_fixture_checks_tiled_on_both_targets(cli):
    path = KERAS / "rank4_mlp_tf2onnx_op13.onnx"
    for target in TARGETS:
        r = cli("check", path, "--strict", "-t", target, "--tiled")
        assert r.exit_code == 0 and "PASS" in r.stdout, r.output


# ------------------------------------------------------------------ GlobalAveragePool of rank 3, 5
@pytest.mark.parametrize("shape", [[1, 6, 16], [1, 2, 3, 4, 5]])
def test_a_global_average_pool_of_another_rank_is_a_mean_over_axes_2_on(shape):
    m = inferred_model([N("GlobalAveragePool", ["x"], ["y"])], [("x", shape)], ["y"])
    res = compiled(m)
    (red,) = res.graph.ops_named("sqnxt.reduce")
    assert red.attrs["kind"] == "mean" and red.attrs["keepdims"] == 1
    assert tuple(red.attrs["axes"]) == tuple(range(2, len(shape)))
    assert red.result.type.shape == tuple(shape[:2]) + (1,) * (len(shape) - 2)
    assert costed(m, "pe8x8")["unmodelled_ops"] == 0


def test_sqnxtc_ops_lists_both_forms_of_global_average_pool(cli):
    r = cli("ops")
    assert r.exit_code == 0, r.output
    (row,) = [line for line in r.stdout.splitlines() if line.split() and line.split()[0] == "GlobalAveragePool"]
    assert "sqnxt.global_avgpool" in row and "sqnxt.reduce" in row and row.split()[-1] == "array", row


def test_a_global_average_pool_of_rank_2_is_refused_in_one_line(cli, save):
    m = make_model([N("GlobalAveragePool", ["x"], ["y"], name="gap")], [("x", [1, 6])], [("y", [1, 6])])
    r = cli("compile", save(m))
    assert r.exit_code == 4 and "rank-2" in r.stderr and "'gap'" in r.stderr, r.output


def test_a_keras_layer_norm_of_a_sequence_is_one_layer_norm():
    """The exact nodes tf2onnx writes for Keras 3's LayerNormalization on (1, 6, 16)
    (GlobalAveragePool for both moments, Neg of the mean, gamma and beta (1, 1, C)) ->
    one layer_norm over axis 2, costed as the opset-17 LayerNormalization."""
    rng = np.random.default_rng(31)
    g, b = rand(rng, 1, 1, 16, positive=True), rand(rng, 1, 1, 16)
    nodes = [N("GlobalAveragePool", ["x"], ["m"]), N("Sub", ["x", "m"], ["d"]), N("Mul", ["d", "d"], ["sq"]),
             N("GlobalAveragePool", ["sq"], ["v"]), N("Add", ["v", "eps"], ["ve"]), N("Sqrt", ["ve"], ["s"]),
             N("Reciprocal", ["s"], ["r"]), N("Mul", ["r", "g"], ["i"]), N("Mul", ["x", "i"], ["a"]),
             N("Neg", ["m"], ["nm"]), N("Mul", ["nm", "i"], ["mi"]), N("Add", ["mi", "b"], ["o"]),
             N("Add", ["a", "o"], ["y"])]
    m = inferred_model(nodes, [("x", [1, 6, 16])], ["y"], [("eps", f32(1e-3)), ("g", g), ("b", b)])
    res = compiled(m)
    assert res.statistics["canonicalize"]["layer-norm-from-moments"] == 1
    assert layers(res) == [("layer_norm", None, 3)]
    (ln,) = res.graph.ops_named("sqnxt.layer_norm")
    assert ln.attrs["axis"] == 2
    torch17 = inferred_model([N("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-3)],
                             [("x", [1, 6, 16])], ["y"], [("g", g.reshape(16)), ("b", b.reshape(16))], opset=17)
    for target in TARGETS:
        assert costed(m, target)["total_cycles"] == costed(torch17, target)["total_cycles"]


def test_pytorchs_layer_norm_over_h_and_w_before_opset_17_is_one_layer_norm():
    """ReduceMean over the last two axes of a rank-4 tensor is a global_avgpool first
    (gap-from-reduce-mean); the LayerNorm pattern reads it as the mean it is."""
    rng = np.random.default_rng(32)
    nodes = [N("ReduceMean", ["x"], ["m"], axes=[-2, -1]), N("Sub", ["x", "m"], ["d"]),
             N("Pow", ["d", "two"], ["p"]), N("ReduceMean", ["p"], ["v"], axes=[-2, -1]),
             N("Add", ["v", "eps"], ["ve"]), N("Sqrt", ["ve"], ["s"]), N("Div", ["d", "s"], ["n"]),
             N("Mul", ["n", "g"], ["a"]), N("Add", ["a", "b"], ["y"])]
    m = inferred_model(nodes, [("x", [1, 4, 5, 6])], ["y"],
                       [("two", f32(2)), ("eps", f32(1e-5)), ("g", rand(rng, 5, 6)), ("b", rand(rng, 5, 6))])
    res = compiled(m)
    assert res.statistics["canonicalize"]["layer-norm-from-parts"] == 1
    assert layers(res) == [("layer_norm", None, 3)]
    assert res.graph.ops_named("sqnxt.layer_norm")[0].attrs["axis"] == 2


# ------------------------------------------------------------------ Dense through Reshape
def _tensordot(shape=(1, 6, 16), K=8, act="relu", second=None, first=None, extra_out=False, seed=33):
    """Keras' Dense on an x of ``shape`` as tf2onnx writes it: Reshape (L, C), MatMul,
    Reshape (lead..., K), Add(., bias (K,)), then ``act`` (None: none).  ``first`` /
    ``second``: other reshape targets; ``extra_out``: the MatMul also a graph output."""
    rng = np.random.default_rng(seed)
    C, lead = shape[-1], list(shape[:-1])
    first = [math.prod(lead), C] if first is None else first
    second = lead + [K] if second is None else second
    nodes = [N("Reshape", ["x", "s1"], ["r"]), N("MatMul", ["r", "w"], ["mm"]), N("Reshape", ["mm", "s2"], ["t"]),
             N("Add", ["t", "bias"], ["ba"])]
    if act == "relu":
        nodes.append(N("Relu", ["ba"], ["y"]))
    elif act == "swish":
        nodes += [N("Sigmoid", ["ba"], ["sg"]), N("Mul", ["ba", "sg"], ["y"])]
    else:
        nodes.append(N("Identity", ["ba"], ["y"]))
    inits = [("s1", int64s(*first)), ("w", rand(rng, first[-1], K)), ("s2", int64s(*second)),
             ("bias", rand(rng, second[-1]))]
    return inferred_model(nodes, [("x", list(shape))], ["y"] + (["mm"] if extra_out else []), inits)


def _linear(shape=(1, 6, 16), K=8, act="relu", seed=33):
    """The same layer as PyTorch exports nn.Linear (+ the activation) on that x."""
    src = _tensordot(shape, K, act, seed=seed)
    w, b = (onnx.numpy_helper.to_array(t) for t in src.graph.initializer if t.name in ("w", "bias"))
    nodes = [N("MatMul", ["x", "w"], ["mm"]), N("Add", ["bias", "mm"], ["ba"])]
    nodes += ([N("Relu", ["ba"], ["y"])] if act == "relu" else
              [N("Sigmoid", ["ba"], ["sg"]), N("Mul", ["ba", "sg"], ["y"])] if act == "swish" else
              [N("Identity", ["ba"], ["y"])])
    return inferred_model(nodes, [("x", list(shape))], ["y"], [("w", w), ("bias", b)])


@pytest.mark.parametrize("shape,act", [((1, 6, 16), "relu"), ((1, 6, 16), None), ((1, 4, 5, 16), "swish"),
                                       ((1, 2, 3, 4, 16), "relu")])
def test_a_dense_through_reshape_is_the_channels_last_matmul_with_its_bias_and_activation(shape, act):
    m = _tensordot(shape, act=act)
    res = compiled(m)
    st = res.statistics
    assert st["canonicalize"]["matmul-through-reshape"] == 1 and st["canonicalize"]["bias-into-matmul"] == 1
    if act:
        assert st["fuse-relu"][f"{act}-fused-into-matmul"] == 1
    assert layers(res) == [("matmul", act or "none", 3)]
    (mm,) = res.graph.ops_named("sqnxt.matmul")
    assert mm.operands[0].owner.name == "sqnxt.input"
    twin = _linear(shape, act=act)
    assert layers(compiled(twin)) == layers(res)
    for target in TARGETS:
        k, t = costed(m, target), costed(twin, target)
        assert k["layers"] == 1 and k["macs"] == math.prod(shape) * 8
        assert (k["macs"], k["total_cycles"]) == (t["macs"], t["total_cycles"]), target


@pytest.mark.parametrize("case", ["other-split-back", "matmul-read-twice", "leading-axis-not-1", "not-merging-lead"])
def test_what_is_not_a_dense_through_reshape_stays(case):
    """Left alone: a second reshape to another shape than x's leading axes + K, a MatMul
    another op reads too, a first axis other than 1 (the layer would not count it), a
    first reshape that does not merge x's leading axes into rows of C.  Same numbers."""
    if case == "other-split-back":
        m = _tensordot(second=[1, 3, 2, 8])
    elif case == "matmul-read-twice":
        m = _tensordot(extra_out=True)
    elif case == "leading-axis-not-1":      # (1, 6, 16) -> (2, 3, 16) first, then Tensordot
        rng = np.random.default_rng(34)
        nodes = [N("Reshape", ["x", "s0"], ["x2"]), N("Reshape", ["x2", "s1"], ["r"]),
                 N("MatMul", ["r", "w"], ["mm"]), N("Reshape", ["mm", "s2"], ["t"]),
                 N("Add", ["t", "bias"], ["y"])]
        m = inferred_model(nodes, [("x", [1, 6, 16])], ["y"],
                           [("s0", int64s(2, 3, 16)), ("s1", int64s(6, 16)), ("w", rand(rng, 16, 8)),
                            ("s2", int64s(2, 3, 8)), ("bias", rand(rng, 8))])
    else:                                   # (1, 6, 16) read as rows of 8: (12, 8)
        m = _tensordot(first=[12, 8], second=[1, 12, 8])
    res = compiled(m)
    assert "matmul-through-reshape" not in res.statistics["canonicalize"]
    assert not any(op.name == "sqnxt.matmul" and op.operands[0].type.rank > 2 for op in res.graph.ops())
