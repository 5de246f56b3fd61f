"""Every zoo preset is a valid ONNX model that runs in onnxruntime with sane numbers.

Built models come from the session's ``zoo_models`` (each built once per run, shared with
the other zoo sweeps); the determinism test builds fresh copies to compare with them."""
from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from sqnxt_compiler.zoo import build, get_info, list_models
from sqnxt_compiler.zoo.builder import calibration_input
from sqnxt_compiler.zoo.registry import lookup
from sqnxt_compiler.zoo.serialize import iter_model_bytes, write_model
from sqnxt_compiler.zoo.stats import count_model

NAMES = [i.name for i in list_models()]
NODE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(/[A-Za-z0-9_]+)*$")


def session(path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def fresh_input(size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 3, size, size), dtype=np.float32)


@pytest.mark.slow  # the whole zoo through onnxruntime (VGG-19: 20 GMACs per image)
@pytest.mark.parametrize("name", NAMES)
def test_preset_is_valid_and_runs(name, zoo_models):
    """Full checker, interface conventions, names, counts, and onnxruntime numerics.

    The builder's numpy calibration pass must agree with onnxruntime on the calibration
    images (this checks the zoo's own kernels: ceil-mode pools, LRN, grouped convs), and a
    fresh random image must give finite logits of order one that depend on the input.
    """
    info = get_info(name)
    p = lookup(name)
    path = zoo_models.path(name)  # build(name), written with write_model
    model = zoo_models.model(name)
    onnx.checker.check_model(str(path), full_check=True)

    g = model.graph
    assert model.opset_import[0].domain == "" and model.opset_import[0].version == 13
    assert [i.name for i in g.input] == ["input"]
    assert [o.name for o in g.output] == ["output"]
    in_dims = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    out_dims = [d.dim_value for d in g.output[0].type.tensor_type.shape.dim]
    assert in_dims == [1, 3, info.input_size, info.input_size]
    assert out_dims == [1, 1000]
    assert g.node[-1].op_type != "Softmax"

    node_names = [n.name for n in g.node]
    assert len(set(node_names)) == len(node_names)
    assert all(NODE_NAME.match(n) for n in node_names), [n for n in node_names if not NODE_NAME.match(n)]
    owners = {n.name for n in g.node}
    for t in g.initializer:
        node, _, suffix = t.name.rpartition(".")
        assert node in owners and suffix in ("weight", "bias", "scale", "mean", "var"), t.name
        assert t.data_type == onnx.TensorProto.FLOAT

    counts = count_model(model)
    assert (counts.params, counts.macs, counts.macs_with_bias) == (info.params, info.macs, info.macs_with_bias)
    assert len([n for n in g.node if n.op_type in ("Conv", "Gemm")]) == info.layers

    sess = session(path)
    del model
    calib = calibration_input(0, info.input_size, p.calibration_images)
    got = np.concatenate([sess.run(None, {"input": calib[i:i + 1]})[0] for i in range(len(calib))])
    np.testing.assert_allclose(got, zoo_models.calibration_output(name), rtol=1e-3, atol=1e-3)

    y = sess.run(None, {"input": fresh_input(info.input_size, 7)})[0]
    y2 = sess.run(None, {"input": fresh_input(info.input_size, 8)})[0]
    assert y.shape == (1, 1000) and y.dtype == np.float32
    assert np.isfinite(y).all()
    assert 0.25 < float(y.std()) < 4.0, float(y.std())
    assert float(np.abs(y).max()) < 50.0
    assert float(np.linalg.norm(y - y2) / np.linalg.norm(y)) > 1e-3  # depends on the input


def test_activations_stay_normalized_through_a_deep_model(tmp_path, zoo_models):
    """In 1.0-SqNxt-44-IDA (220 conv layers) no intermediate tensor blows up or vanishes.

    Every BatchNorm output and every block sum is exposed as a graph output and measured on
    an image the calibration never saw.
    """
    model = zoo_models.model("1.0-SqNxt-44-IDA")
    probes = [n.output[0] for n in model.graph.node if n.op_type in ("BatchNormalization", "Add")]
    assert len([n for n in model.graph.node if n.op_type == "Conv"]) > 200
    for name in probes:
        model.graph.output.append(onnx.ValueInfoProto(name=name))
    path = tmp_path / "probe.onnx"
    with open(path, "wb") as fh:
        write_model(model, fh)
    outs = session(path).run(probes, {"input": fresh_input(227, 11)})
    for name, a in zip(probes, outs):
        std = float(a.std())
        assert np.isfinite(a).all(), name
        if name.endswith("/expand/bn"):
            # the last BatchNorm of a residual branch is scaled by 0.1 (see builder)
            assert 0.02 < std < 0.5, (name, std)
        else:
            assert 0.2 < std < 10.0, (name, std)


def test_numerics_are_well_conditioned(zoo_models):
    """A 1e-3 relative input perturbation moves 2.0-SqNxt-44's logits by < 1e-2 relative."""
    sess = session(zoo_models.path("2.0-SqNxt-44"))
    x = fresh_input(227, 3)
    d = np.random.default_rng(4).standard_normal(x.shape, dtype=np.float32) * np.float32(1e-3)
    y = sess.run(None, {"input": x})[0]
    yp = sess.run(None, {"input": x + d})[0]
    assert float(np.linalg.norm(yp - y) / np.linalg.norm(y)) < 1e-2


def test_build_is_deterministic_and_seeded(zoo_models):
    a = zoo_models.serialized("1.0-SqNxt-23")  # an earlier build's bytes
    assert build("1.0-SqNxt-23", seed=0).SerializeToString() == a
    assert build("1.0-SqNxt-23", seed=1).SerializeToString() != a
    sparse = zoo_models.serialized("1.0-SqNxt-23", weight_sparsity=0.4)
    assert sparse != a
    assert build("1.0-SqNxt-23", weight_sparsity=0.4).SerializeToString() == sparse


def _weights(model):
    convfc = {n.input[1] for n in model.graph.node if n.op_type in ("Conv", "Gemm")}
    return {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name in convfc}


def test_weight_sparsity_zeroes_that_fraction_of_conv_and_fc_weights(zoo_models):
    dense = _weights(zoo_models.model("1.0-SqNxt-23"))
    assert sum(int((w == 0).sum()) for w in dense.values()) == 0
    model = zoo_models.model("1.0-SqNxt-23", weight_sparsity=0.4)
    sparse = _weights(model)
    zeros = sum(int((w == 0).sum()) for w in sparse.values())
    total = sum(w.size for w in sparse.values())
    assert abs(zeros / total - 0.4) < 0.01
    bn_scales = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith(".scale")]
    assert all((s != 0).all() for s in bn_scales)  # only conv/fc weights are sparsified
    y = session(zoo_models.path("1.0-SqNxt-23", weight_sparsity=0.4)).run(
        None, {"input": fresh_input(227, 5)})[0]
    assert np.isfinite(y).all() and 0.25 < float(y.std()) < 4.0


@pytest.mark.parametrize("name", ["1.0-SqNxt-23", "1.0-SqNxt-34-IDA", "SqueezeNet-1.1", "MobileNet-1.0-224"])
def test_streamed_bytes_equal_serialize_to_string(name):
    model = build(name, seed=2, weight_sparsity=0.3)
    assert b"".join(iter_model_bytes(model)) == model.SerializeToString()
