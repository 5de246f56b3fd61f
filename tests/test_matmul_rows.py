"""A product by a constant matrix whose left operand has rows of its own (rank 2 with a
first axis above 1, as a reshape to (L, C) writes before a Dense) is a 1x1 conv over its
rows, never an fc costed as one row (the first axis of an fc is the batch): its MACs are
every row's, and its numbers match onnxruntime in every execution."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T, helper as h, numpy_helper as nh

from sqnxt_compiler import driver
from sqnxt_compiler.targets import load_target

RNG = np.random.default_rng(5)


def _w(name, *shape):
    return nh.from_array((RNG.standard_normal(shape) * 0.3).astype(np.float32), name)


def model(kind: str, rows: int = 6) -> onnx.ModelProto:
    """conv (1, 16, 2, 3) -> NHWC -> reshape (rows, 16 * 6 / rows) -> Gemm or MatMul + Add
    by constants -> relu."""
    C = 16 * 6 // rows
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             h.make_node("Transpose", ["c"], ["ct"], perm=[0, 2, 3, 1], name="nhwc"),
             h.make_node("Reshape", ["ct", "s1"], ["r"], name="rows")]
    if kind == "gemm":
        nodes.append(h.make_node("Gemm", ["r", "B", "bias"], ["g"], transB=1, name="dense"))
        inits = [_w("B", 8, C), _w("bias", 8)]
    else:
        nodes += [h.make_node("MatMul", ["r", "B"], ["m"], name="dense"),
                  h.make_node("Add", ["m", "bias"], ["g"], name="bias_add")]
        inits = [_w("B", C, 8), _w("bias", 8)]
    nodes.append(h.make_node("Relu", ["g"], ["y"], name="relu"))
    inits += [_w("w", 16, 3, 1, 1), nh.from_array(np.array([rows, C], np.int64), "s1")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 2, 3])],
                     [h.make_tensor_value_info("y", T.FLOAT, [rows, 8])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    onnx.checker.check_model(m, full_check=True)
    return m


@pytest.mark.parametrize("kind", ["gemm", "matmul"])
@pytest.mark.parametrize("tname", ["pe16x16", "pe8x8"])
def test_rows_are_costed(kind, tname):
    res = driver.compile((model(kind), "m.onnx"), target=load_target(tname), schedule={"jobs": 1})
    rows = {r.name: r for r in res.network.rows}
    s = rows["dense"].schedule
    assert s.layer.kind == "conv" and (s.layer.P, s.layer.Q) == (1, 6)
    assert s.cost.macs == 6 * 16 * 8 and s.layer.epilogue.bias
    assert "relu" not in rows and "bias_add" not in rows          # folded and fused
    mm = next(op for op in res.graph.ops() if op.name == "sqnxt.matmul")
    assert mm.attrs["act"] == "relu" and len(mm.operands) == 3
    one = driver.compile((model(kind, rows=1), "m.onnx"), target=load_target(tname), schedule={"jobs": 1})
    fc = next(r for r in one.network.rows if r.name == "dense").schedule
    assert fc.layer.kind == "fc" and fc.cost.macs == 96 * 8        # one row: an fc, as before


@pytest.mark.parametrize("kind", ["gemm", "matmul"])
def test_rows_check(cli, tmp_path, kind):
    p = tmp_path / "m.onnx"
    onnx.save(model(kind), str(p))
    for how in ([], ["-t", "pe8x8", "--tiled"], ["-t", "pe16x16", "--tiled", "--precision", "int16"],
                ["-t", "pe8x8", "--program", "--activation-home", "dram"]):
        r = cli("check", p, *how)
        assert r.exit_code == 0 and "PASS" in r.stdout, (how, r.stdout + r.stderr)


def test_the_gemm_rewrite_is_counted():
    res = driver.compile((model("gemm"), "m.onnx"), pipeline="canonicalize")
    ops = [op.name for op in res.graph.ops()]
    assert "sqnxt.matmul" in ops and "sqnxt.fc" not in ops and "sqnxt.gemm" not in ops
