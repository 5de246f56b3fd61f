"""Large weights are read from the file when first used, not held twice
(sqnxt_compiler/frontend/weights.py): the same graph as a full parse, the same checks."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from sqnxt_compiler import driver
from sqnxt_compiler.diagnostics import InputError
from sqnxt_compiler.frontend import import_model, load
from sqnxt_compiler.frontend.weights import MIN_LAZY_BYTES, read_model
from sqnxt_compiler.reference.check import check
from sqnxt_compiler.targets import load_target

N = helper.make_node


def _model(k: int = 600):
    """conv -> flatten -> gemm whose weight (k x 1024 floats, over 1 MiB at k=600) is lazy."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    fc = rng.standard_normal((k, 1024)).astype(np.float32)
    g = helper.make_graph(
        [N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), N("Relu", ["c"], ["r"]),
         N("Flatten", ["r"], ["f"]), N("Gemm", ["f", "fc", "b"], ["y"], transB=1)], "big",
        [helper.make_tensor_value_info("x", 1, ["N", 3, 8, 8])], [helper.make_tensor_value_info("y", 1, ["N", k])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc"),
         numpy_helper.from_array(np.arange(k, dtype=np.float32), "b")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_the_large_weight_is_a_stand_in_read_on_use(tmp_path):
    p = tmp_path / "big.onnx"
    onnx.save(_model(), str(p))
    model, lazy = read_model(str(p))
    assert sorted(lazy) == ["fc"] and lazy["fc"].dims == (600, 1024)
    stand = next(t for t in model.graph.initializer if t.name == "fc")
    assert not stand.raw_data and list(stand.dims) == [600, 1024]
    small = next(t for t in model.graph.initializer if t.name == "w")
    assert len(small.raw_data) == 16 * 27 * 4          # small ones are parsed as they are
    full = onnx.load(str(p))
    want = numpy_helper.to_array(next(t for t in full.graph.initializer if t.name == "fc"))
    np.testing.assert_array_equal(lazy["fc"].load(), want)
    assert model.ByteSize() < MIN_LAZY_BYTES < full.ByteSize()


def test_lazy_and_full_imports_give_the_same_ir_and_schedules(tmp_path):
    p = tmp_path / "big.onnx"
    onnx.save(_model(), str(p))
    lazy = load(str(p))
    full = import_model(onnx.load(str(p)), str(p))
    from sqnxt_compiler.ir.printer import print_graph
    assert print_graph(lazy.graph) == print_graph(full.graph)
    assert lazy.model is None and full.model is not None      # onnxruntime reads the file
    from conftest import clear_process_caches
    from sqnxt_compiler.schedule.solver import STATS

    t = load_target("pe8x8")
    clear_process_caches()
    a = driver.compile(str(p), target=t)
    clear_process_caches()          # the second compile solves again, not from the first's cache
    before = STATS["solved"]
    b = driver.compile((onnx.load(str(p)), str(p)), target=t)
    assert STATS["solved"] > before
    assert [op.attrs["schedule"].schedule.to_dict() for op in a.graph.ops() if "schedule" in op.attrs] == \
        [op.attrs["schedule"].schedule.to_dict() for op in b.graph.ops() if "schedule" in op.attrs]
    rep = check(a.graph, a.model, a.source, samples=1)
    assert rep.ok, rep.format()


def test_a_weight_whose_bytes_disagree_with_its_shape_is_still_the_checkers(tmp_path):
    m = _model()
    t = next(t for t in m.graph.initializer if t.name == "fc")
    t.raw_data = t.raw_data[:-4]                   # one float short
    p = tmp_path / "short.onnx"
    onnx.save(m, str(p))
    assert read_model(str(p))[1] == {}             # not a stand-in: left to protobuf
    with pytest.raises(InputError, match="raw_data size"):
        load(str(p))


def test_an_invalid_utf8_name_in_a_large_weight_is_left_to_protobuf(tmp_path):
    p = tmp_path / "big.onnx"
    onnx.save(_model(), str(p))
    data = p.read_bytes().replace(b"\x42\x02fc", b"\x42\x02\xff\xfe", 1)   # name field 8, "fc"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data)
    assert read_model(str(bad))[1] == {}
    with pytest.raises(InputError, match=r"invalid UTF-8 in model.graph.initializer\[1\].name"):
        load(str(bad))


@pytest.mark.parametrize("cut", [10, 1000, -10])
def test_truncated_files_fail_as_before(tmp_path, cut):
    p = tmp_path / "big.onnx"
    onnx.save(_model(), str(p))
    data = p.read_bytes()
    q = tmp_path / "cut.onnx"
    q.write_bytes(data[:cut])
    with pytest.raises(InputError):
        load(str(q))
