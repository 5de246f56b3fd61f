"""InstanceNormalization and GroupNormalization (docs/ir.md, "Normalizations"): each
channel, or group of channels, normalized over its spatial axes as a ``sqnxt.layer_norm``
over the trailing axis of (N, groups, rest), its scale and bias per channel as a mul and an
add; checked against onnxruntime in every execution, and PyTorch's GroupNorm export (an
InstanceNormalization of ones and zeros between two reshapes) costs one layer per norm."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T, helper as h, numpy_helper as nh

from sqnxt_compiler import driver
from sqnxt_compiler.targets import load_target

RNG = np.random.default_rng(9)
X = h.make_tensor_value_info("x", T.FLOAT, [1, 3, 16, 16])


def _w(name, *shape, scale=0.3, offset=0.0):
    return nh.from_array((RNG.standard_normal(shape) * scale + offset).astype(np.float32), name)


def _model(nodes, inits, out_shape=(1, 8, 16, 16), opset=13):
    m = h.make_model(h.make_graph(nodes, "g", [X], [h.make_tensor_value_info("y", T.FLOAT, list(out_shape))],
                                  inits), opset_imports=[h.make_opsetid("", opset)])
    onnx.checker.check_model(m, full_check=True)
    return m


def instance_norm() -> onnx.ModelProto:
    """conv -> InstanceNormalization (a scale and bias per channel) -> relu (a style-transfer block)."""
    return _model([h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
                   h.make_node("InstanceNormalization", ["c", "s", "b"], ["n"], epsilon=1e-5, name="inorm"),
                   h.make_node("Relu", ["n"], ["y"], name="relu")],
                  [_w("w", 8, 3, 3, 3), _w("s", 8, offset=1.0), _w("b", 8)])


def torch_group_norm(groups: int = 2) -> onnx.ModelProto:
    """nn.GroupNorm as the TorchScript exporter writes it: Reshape (1, G, -1),
    InstanceNormalization with a scale of ones and a bias of zeros, Reshape back, Mul, Add."""
    return _model([h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
                   h.make_node("Reshape", ["c", "g_shape"], ["r"], name="to_groups"),
                   h.make_node("InstanceNormalization", ["r", "ones", "zeros"], ["n"], epsilon=1e-5, name="gn"),
                   h.make_node("Reshape", ["n", "x_shape"], ["r2"], name="back"),
                   h.make_node("Mul", ["r2", "gamma"], ["m"], name="gamma_mul"),
                   h.make_node("Add", ["m", "beta"], ["y"], name="beta_add")],
                  [_w("w", 8, 3, 3, 3), nh.from_array(np.array([1, groups, -1], np.int64), "g_shape"),
                   nh.from_array(np.ones(groups, np.float32), "ones"), nh.from_array(np.zeros(groups, np.float32), "zeros"),
                   nh.from_array(np.array([1, 8, 16, 16], np.int64), "x_shape"),
                   _w("gamma", 8, 1, 1, offset=1.0), _w("beta", 8, 1, 1)])


def group_normalization(opset: int) -> onnx.ModelProto:
    """ONNX GroupNormalization: opset 18 (scale and bias per group), 21 (per channel)."""
    n = 4 if opset < 21 else 8
    return _model([h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
                   h.make_node("GroupNormalization", ["c", "s", "b"], ["y"], num_groups=4, epsilon=1e-5, name="gn")],
                  [_w("w", 8, 3, 3, 3), _w("s", n, offset=1.0), _w("b", n)], opset=opset)


MODELS = {"instance": instance_norm, "torch-groupnorm-2": torch_group_norm,
          "torch-groupnorm-1": lambda: torch_group_norm(1), "groupnorm-op21": lambda: group_normalization(21)}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_imported_as_a_layer_norm(name):
    g = driver.compile((MODELS[name](), "m.onnx")).graph
    names = [op.name for op in g.ops()]
    assert names.count("sqnxt.layer_norm") == 1
    ln = next(op for op in g.ops() if op.name == "sqnxt.layer_norm")
    assert ln.attrs["axis"] == 2 and ln.operands[0].type.rank == 3
    if name.startswith("torch"):      # ones and zeros: no mul, no add of the InstanceNormalization's own
        groups = int(name[-1])
        assert ln.operands[0].type.shape == (1, groups, 8 // groups * 256)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("how", [[], ["-t", "pe16x16", "--tiled"], ["-t", "pe8x8", "--tiled"],
                                 ["-t", "pe8x8", "--tiled", "--precision", "int16"]])
def test_matches_onnxruntime(cli, tmp_path, name, how):
    p = tmp_path / "m.onnx"
    onnx.save(MODELS[name](), str(p))
    r = cli("check", p, *how)
    assert r.exit_code == 0 and "PASS" in r.stdout, r.stdout + r.stderr
    if how:
        r = cli("compile", p, *how[:2])
        assert r.exit_code == 0 and "0 ops not modelled" in r.stdout.splitlines()[0], r.stdout


def test_a_group_norm_runs_over_a_grid_of_rows():
    """The normalized row of a group, 4 x 256 = 1024 elements, is costed as 16 x 64
    (docs/cost-model.md, "The flat grid": row_grid), not one row of 1024."""
    from sqnxt_compiler.layers import row_grid
    res = driver.compile((torch_group_norm(2), "m.onnx"), target=load_target("pe16x16"), schedule={"jobs": 1})
    L = next(r.schedule.layer for r in res.network.rows if r.name == "gn")
    assert (L.K, L.P, L.Q) == (2, 16, 64) and row_grid(1024) == (16, 64) and row_grid(8192) == (128, 64)
    assert row_grid(67) == (1, 67)


def test_refusals_are_one_line(cli, tmp_path):
    m = h.make_model(h.make_graph(
        [h.make_node("InstanceNormalization", ["v", "s", "b"], ["y"], name="inorm2d")], "g",
        [h.make_tensor_value_info("v", T.FLOAT, [1, 8])], [h.make_tensor_value_info("y", T.FLOAT, [1, 8])],
        [_w("s", 8), _w("b", 8)]), opset_imports=[h.make_opsetid("", 13)])
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    r = cli("compile", p)
    assert r.exit_code != 0 and r.exit_code != 70 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
