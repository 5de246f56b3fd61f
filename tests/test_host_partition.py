"""The host partition (docs/ir.md, "The host partition"): a detection or classification
tail (TopK, ArgMax, comparisons, Where, Mod, GatherElements, a Cast of indices) runs on
the host CPU: imported as ops with the ``host`` trait, checked against onnxruntime (plain,
tiled, program), kept in DRAM by the memory planner, reported as host work (summary,
schedule.json, loopnest.txt), adding no accelerator cycles."""
from __future__ import annotations

import json

import jsonschema
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T, helper as h, numpy_helper as nh

from sqnxt_compiler.frontend import import_model
from sqnxt_compiler.ir.core import OPS
from sqnxt_compiler.reference.executor import run
from sqnxt_compiler.report.schedule_json import schema

RNG = np.random.default_rng(7)


def _w(*shape):
    return (RNG.standard_normal(shape) * 0.3).astype(np.float32)


W1, W2, WF = _w(8, 3, 3, 3), _w(16, 8, 3, 3), _w(10, 16)
WS, WB, WM = _w(4, 8, 1, 1), _w(4, 8, 1, 1), _w(4, 4, 1, 1)
X = h.make_tensor_value_info("x", T.FLOAT, [1, 3, 16, 16])


def _model(nodes, outs, inits, name):
    m = h.make_model(h.make_graph(nodes, name, [X], outs, inits), opset_imports=[h.make_opsetid("", 13)])
    onnx.checker.check_model(m, full_check=True)
    return m


def classifier(tail: bool = True) -> onnx.ModelProto:
    """conv, conv, global pool, fc -> logits (1, 10); the tail: TopK 3, ArgMax, a Cast of the
    indices, Mod, Equal, Greater, And, Where."""
    inits = [nh.from_array(W1, "w1"), nh.from_array(W2, "w2"), nh.from_array(WF, "wf"),
             nh.from_array(np.array([3], np.int64), "k"), nh.from_array(np.array(0.0, np.float32), "zero"),
             nh.from_array(np.array(2, np.int64), "two"), nh.from_array(np.array(0, np.int64), "zero_i")]
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv2"),
             h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             h.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
             h.make_node("Flatten", ["g"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "wf"], ["logits"], transB=1, name="fc")]
    outs = [h.make_tensor_value_info("logits", T.FLOAT, [1, 10])]
    if tail:
        nodes += [h.make_node("TopK", ["logits", "k"], ["tv", "ti"], name="topk"),
                  h.make_node("ArgMax", ["logits"], ["am"], axis=1, keepdims=0, name="argmax"),
                  h.make_node("Cast", ["ti"], ["tif"], to=T.FLOAT, name="cast"),
                  h.make_node("Mod", ["ti", "two"], ["par"], name="mod"),
                  h.make_node("Equal", ["par", "zero_i"], ["even"], name="eq"),
                  h.make_node("Greater", ["tv", "zero"], ["pos"], name="gt"),
                  h.make_node("And", ["even", "pos"], ["both"], name="and"),
                  h.make_node("Where", ["pos", "tv", "tif"], ["sel"], name="where")]
        outs += [h.make_tensor_value_info("tv", T.FLOAT, [1, 3]), h.make_tensor_value_info("am", T.INT64, [1]),
                 h.make_tensor_value_info("both", T.BOOL, [1, 3]), h.make_tensor_value_info("sel", T.FLOAT, [1, 3])]
    return _model(nodes, outs, inits, "cls")


def detector(tail: bool = True, mid: bool = False) -> onnx.ModelProto:
    """conv -> a score head and a box head (1, 4, 64 each); the tail: scores > 0.1 ->
    Where(keep, scores, -1) -> TopK 5 on axis 2 -> GatherElements of the boxes.  ``mid``:
    the masked scores also feed a conv (a host op in the middle of the network)."""
    inits = [nh.from_array(W1, "w1"), nh.from_array(WS, "ws"), nh.from_array(WB, "wb"),
             nh.from_array(np.array([1, 4, 64], np.int64), "shp")]
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv1"),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("Conv", ["r1", "ws"], ["hs"], name="score_head"),
             h.make_node("Conv", ["r1", "wb"], ["hb"], name="box_head"),
             h.make_node("Reshape", ["hs", "shp"], ["scores"], name="flat_s"),
             h.make_node("Reshape", ["hb", "shp"], ["boxes"], name="flat_b")]
    if not tail:
        return _model(nodes, [h.make_tensor_value_info("scores", T.FLOAT, [1, 4, 64]),
                              h.make_tensor_value_info("boxes", T.FLOAT, [1, 4, 64])], inits, "det")
    inits += [nh.from_array(np.array(0.1, np.float32), "thr"), nh.from_array(np.array(-1.0, np.float32), "neg"),
              nh.from_array(np.array([5], np.int64), "k")]
    nodes += [h.make_node("Greater", ["scores", "thr"], ["keep"], name="thresh"),
              h.make_node("Where", ["keep", "scores", "neg"], ["masked"], name="mask"),
              h.make_node("TopK", ["masked", "k"], ["top", "idx"], axis=2, name="topk"),
              h.make_node("GatherElements", ["boxes", "idx"], ["sel_boxes"], axis=2, name="gather_boxes")]
    outs = [h.make_tensor_value_info("top", T.FLOAT, [1, 4, 5]), h.make_tensor_value_info("idx", T.INT64, [1, 4, 5]),
            h.make_tensor_value_info("sel_boxes", T.FLOAT, [1, 4, 5])]
    if mid:
        inits += [nh.from_array(WM, "wm"), nh.from_array(np.array([1, 4, 8, 8], np.int64), "shp4")]
        nodes += [h.make_node("Reshape", ["masked", "shp4"], ["m4"], name="back"),
                  h.make_node("Conv", ["m4", "wm"], ["after"], name="after")]
        outs.append(h.make_tensor_value_info("after", T.FLOAT, [1, 4, 8, 8]))
    return _model(nodes, outs, inits, "det")


#: model -> (host ops as (layer, op, words_in, words_out, elements) in program order)
EXPECTED_HOST = {
    "cls": [("topk/values", "sqnxt.topk", 10, 3, 10), ("topk/indices", "sqnxt.topk", 10, 3, 10),
            ("argmax", "sqnxt.argmax", 10, 1, 10), ("cast", "sqnxt.convert", 3, 3, 3),
            ("mod", "sqnxt.mod", 3, 3, 3), ("eq", "sqnxt.equal", 3, 3, 3), ("gt", "sqnxt.greater", 3, 3, 3),
            ("and", "sqnxt.and", 6, 3, 3), ("where", "sqnxt.where", 9, 3, 3)],
    "det": [("thresh", "sqnxt.greater", 256, 256, 256), ("mask", "sqnxt.where", 512, 256, 256),
            ("topk/values", "sqnxt.topk", 256, 20, 256), ("topk/indices", "sqnxt.topk", 256, 20, 256),
            ("gather_boxes", "sqnxt.gather_elements", 276, 20, 256)],
}
BUILD = {"cls": classifier, "det": detector}


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("host")
    out = {}
    for name, m in (("cls", classifier()), ("cls_plain", classifier(False)), ("det", detector()),
                    ("det_plain", detector(False)), ("det_mid", detector(mid=True))):
        out[name] = str(d / f"{name}.onnx")
        onnx.save(m, out[name])
    return out


def _compiled(cli, path, target, home, out):
    r = cli("compile", path, "-t", target, "--activation-home", home, "-o", f"{out}/")
    assert r.exit_code == 0, r.stderr
    doc = json.loads((out / "schedule.json").read_text())
    jsonschema.validate(doc, schema())
    return doc, (out / "summary.txt").read_text(), (out / "loopnest.txt").read_text()


@pytest.mark.parametrize("target", ["pe16x16", "pe8x8"])
@pytest.mark.parametrize("home", ["planned", "dram"])
@pytest.mark.parametrize("model", ["cls", "det"])
def test_host_tail_compiles_checks_and_reports(cli, paths, tmp_path, model, target, home):
    doc, summary, loops = _compiled(cli, paths[model], target, home, tmp_path / "a")
    plain, _, _ = _compiled(cli, paths[f"{model}_plain"], target, home, tmp_path / "b")
    # the tail adds no accelerator cycles and loses no layer
    assert [(x["layer"], x["cost"]["total_cycles"]) for x in doc["layers"]] == \
           [(x["layer"], x["cost"]["total_cycles"]) for x in plain["layers"]]
    assert doc["totals"]["total_cycles"] == plain["totals"]["total_cycles"]
    assert doc["totals"]["dram_words"] == plain["totals"]["dram_words"]
    # host work: listed with its words, not as unmodelled
    want = EXPECTED_HOST[model]
    assert doc["unmodelled"] == [] and doc["totals"]["unmodelled_ops"] == 0
    assert [(x["layer"], x["op"], x["words_in"], x["words_out"], x["elements"]) for x in doc["host"]] == want
    assert not any(x["feeds_array"] for x in doc["host"])
    t = doc["totals"]
    assert (t["host_ops"], t["host_words_in"], t["host_words_out"], t["host_elements"], t["host_splits"]) == \
           (len(want), sum(w[2] for w in want), sum(w[3] for w in want), sum(w[4] for w in want), 0)
    indices = sorted([x["index"] for x in doc["layers"]] + [x["index"] for x in doc["host"]])
    assert indices == list(range(len(indices)))          # one numbering, nothing dropped
    first = summary.splitlines()[0]
    assert f"{len(want)} host ops" in first and "0 ops not modelled" in first
    line = next(x for x in summary.splitlines() if "host work:" in x)
    assert f"read {t['host_words_in']} DRAM words, write {t['host_words_out']}" in line and "0 program splits" in line
    for name, op, w_in, w_out, el in want:
        assert f"== {name}  ({op})  host: no accelerator cycles ==" in loops
        assert f"host:    reads {w_in} words from DRAM, writes {w_out} words to DRAM, {el} elements" in loops
    # what the host reads is in DRAM: the planner never keeps it in the buffer
    if home == "planned":
        homes = {x["name"]: x for x in doc["plan"]["tensors"]}
        read_by_host = {"cls": ["fc"], "det": ["score_head", "box_head"]}[model]
        for n in read_by_host:
            assert homes[n]["home"] == "dram"
        if model == "det":     # not graph outputs: only the host makes them DRAM tensors
            assert homes["score_head"]["reason"] == "read from DRAM by the host: sqnxt.greater 'thresh'"
            assert homes["box_head"]["reason"] == "read from DRAM by the host: sqnxt.gather_elements 'gather_boxes'"
            assert any(x["home"] == "buffer" for x in homes.values())    # conv1 is still planned
    else:
        assert doc["plan"] is None
    # numerics against onnxruntime, tile by tile as scheduled
    r = cli("check", paths[model], "-t", target, "--activation-home", home, "--tiled")
    assert r.exit_code == 0 and "PASS" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("model", ["cls", "det"])
def test_plain_check_and_program(cli, paths, model):
    r = cli("check", paths[model])
    assert r.exit_code == 0 and "PASS" in r.stdout, r.stdout
    for name in ("idx", "am"):
        if name in {o.name for o in onnx.load(paths[model]).graph.output}:
            assert next(x for x in r.stdout.splitlines() if x.startswith(name)).split()[-1] == "ok"
    # the host ops run after the program, in the functional simulator, on its DRAM values
    r = cli("check", paths[model], "-t", "pe8x8", "--program")
    assert r.exit_code == 0 and "PASS" in r.stdout, r.stdout + r.stderr


def test_host_op_in_the_middle(cli, paths, tmp_path):
    doc, summary, loops = _compiled(cli, paths["det_mid"], "pe8x8", "planned", tmp_path / "a")
    base, _, _ = _compiled(cli, paths["det"], "pe8x8", "planned", tmp_path / "b")
    feeding = {x["layer"] for x in doc["host"] if x["feeds_array"]}
    assert feeding == {"thresh", "mask"}
    assert doc["totals"]["host_splits"] == 1 and "1 program split " in summary
    assert "the program splits" in loops
    # the layer after the host reads the host's result from DRAM; the others cost as before
    after = next(x for x in doc["layers"] if x["layer"] == "after")
    assert after["homes"]["inputs"] == ["dram"]
    assert [(x["layer"], x["cost"]["total_cycles"]) for x in doc["layers"] if x["layer"] != "after"] == \
           [(x["layer"], x["cost"]["total_cycles"]) for x in base["layers"]]
    r = cli("check", paths["det_mid"], "-t", "pe8x8", "--tiled")
    assert r.exit_code == 0 and "PASS" in r.stdout, r.stdout
    # a program cannot wait for the host between layers: not lowered, one line, exit 4
    r = cli("check", paths["det_mid"], "-t", "pe8x8", "--program")
    assert r.exit_code == 4
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "host op 'thresh' (sqnxt.greater): not lowered: layer 'after' reads its result" \
        in lines[0] and "Traceback" not in r.stderr


def test_ops_lists_host_ops(cli):
    r = cli("ops")
    assert r.exit_code == 0
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    for onnx_op in ("TopK", "ArgMax", "ArgMin", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
                    "Not", "And", "Or", "Where", "Mod", "GatherElements"):
        assert rows[onnx_op].endswith("  host"), rows[onnx_op]
    assert rows["Cast"].endswith("free / host")
    # the dynamic-shape ops start a host tail (tests/test_host_tail.py)
    assert rows["NonMaxSuppression"].endswith("host tail") and "dynamic output shape" in rows["NonZero"]
    # every host op the IR declares is reachable from some ONNX op
    host = {n for n, d in OPS.items() if "host" in d.traits}
    assert host and all(any(n in line for line in rows.values()) for n in host)


# ------------------------------------------------------------------ kernels vs onnxruntime
def _one(node, inputs, outputs, inits=(), opset=13):
    m = h.make_model(h.make_graph([node], "k", inputs, outputs, list(inits)),
                     opset_imports=[h.make_opsetid("", opset)])
    return onnx.shape_inference.infer_shapes(m, strict_mode=True)


def _vi(name, arr):
    return h.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape))


def _same_as_ort(model, feeds):
    """The imported graph's outputs (numpy executor) equal onnxruntime's exactly."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    ours = run(import_model(model).graph, feeds)
    for name, r in ref.items():
        assert ours[name].dtype == r.dtype and ours[name].shape == r.shape, name
        np.testing.assert_array_equal(ours[name], r, err_msg=name)
    return ours


TIES = np.array([[3, 1, 3, 2, 3, 1, 0, 2]], np.float32).reshape(1, 2, 4)


@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("axis", [-1, 1])
def test_topk_ties_lower_index_first(largest, axis):
    x = np.tile(TIES, (1, 2, 1))
    k = np.array([2], np.int64)
    n = h.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest)
    m = _one(n, [_vi("x", x)], [h.make_tensor_value_info("v", T.FLOAT, None),
                                 h.make_tensor_value_info("i", T.INT64, None)], [nh.from_array(k, "k")])
    ours = _same_as_ort(m, {"x": x})
    if axis == -1 and largest:
        assert ours["i"][0, 0].tolist() == [0, 2]      # [3, 1, 3, 2]: the 3s in index order


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_arg_reduce_select_last_index(op, last, keepdims):
    x = np.tile(TIES, (1, 2, 1))
    n = h.make_node(op, ["x"], ["y"], axis=2, keepdims=keepdims, select_last_index=last)
    ours = _same_as_ort(_one(n, [_vi("x", x)], [h.make_tensor_value_info("y", T.INT64, None)]), {"x": x})
    if op == "ArgMax" and keepdims:
        assert ours["y"][0, 0, 0] == (2 if last else 0)     # [3, 1, 3, 2]


@pytest.mark.parametrize("fmod,dtype", [(0, np.int64), (1, np.int64), (1, np.float32), (0, np.int32)])
def test_mod_signs(fmod, dtype):
    a = np.array([[-7, 7, -7, 7, 5, -5]], dtype)
    b = np.array([[3, -3, -3, 3, 5, 2]], dtype)
    n = h.make_node("Mod", ["a", "b"], ["y"], fmod=fmod)
    _same_as_ort(_one(n, [_vi("a", a), _vi("b", b)], [h.make_tensor_value_info("y", onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), None)]),
                 {"a": a, "b": b})


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_gather_elements_negative_indices(axis):
    x = RNG.standard_normal((1, 3, 4)).astype(np.float32)
    n_ax = x.shape[axis]
    shape = (1, 3, 4)
    shape = tuple(5 if i == axis % 3 else (d - 1 if i else d) for i, d in enumerate(shape))  # smaller elsewhere
    idx = RNG.integers(-n_ax, n_ax, size=shape).astype(np.int64)
    assert (idx < 0).any()
    n = h.make_node("GatherElements", ["x", "i"], ["y"], axis=axis)
    _same_as_ort(_one(n, [_vi("x", x), _vi("i", idx)], [h.make_tensor_value_info("y", T.FLOAT, list(shape))]),
                 {"x": x, "i": idx})


def test_comparisons_logic_where_broadcast():
    a = np.array([1, 2, 3, 4], np.float32).reshape(1, 1, 4)
    b = np.array([2, 3, 1], np.float32).reshape(1, 3, 1)
    nodes = [h.make_node("Equal", ["a", "b"], ["eq"]), h.make_node("Less", ["a", "b"], ["lt"]),
             h.make_node("Greater", ["a", "b"], ["gt"]), h.make_node("LessOrEqual", ["a", "b"], ["le"]),
             h.make_node("GreaterOrEqual", ["a", "b"], ["ge"]), h.make_node("Not", ["lt"], ["nlt"]),
             h.make_node("And", ["le", "ge"], ["both"]), h.make_node("Or", ["lt", "gt"], ["either"]),
             h.make_node("Xor", ["eq", "nlt"], ["x1"]), h.make_node("Where", ["gt", "a", "b"], ["w"])]
    outs = [h.make_tensor_value_info(n, T.BOOL, [1, 3, 4]) for n in ("eq", "lt", "gt", "le", "ge", "nlt", "both",
                                                                "either", "x1")]
    m = h.make_model(h.make_graph(nodes, "c", [_vi("a", a), _vi("b", b)],
                                  outs + [h.make_tensor_value_info("w", T.FLOAT, [1, 3, 4])]),
                     opset_imports=[h.make_opsetid("", 13)])
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    ours = _same_as_ort(m, {"a": a, "b": b})
    assert ours["w"].shape == (1, 3, 4) and ours["eq"].dtype == np.bool_


def test_constant_host_ops_fold_at_import():
    """An exporter's Equal -> Where on shapes is computed at import: no host op remains."""
    shape = nh.from_array(np.array([1, -1], np.int64), "s")
    nodes = [h.make_node("Equal", ["s", "m1"], ["is_m1"]), h.make_node("Where", ["is_m1", "six", "s"], ["t"]),
             h.make_node("Reshape", ["x", "t"], ["y"])]
    inits = [shape, nh.from_array(np.array(-1, np.int64), "m1"), nh.from_array(np.array(6, np.int64), "six")]
    x = np.zeros((1, 6), np.float32)
    m = h.make_model(h.make_graph(nodes, "f", [_vi("x", x)], [h.make_tensor_value_info("y", T.FLOAT, [1, 6])], inits),
                     opset_imports=[h.make_opsetid("", 13)])
    g = import_model(m).graph
    assert not any(op.has_trait("host") for op in g.ops())
    assert next(op for op in g.ops() if op.name == "sqnxt.reshape").result.type.shape == (1, 6)


def test_host_reports_are_deterministic(cli, paths, tmp_path):
    for d in ("a", "b"):
        r = cli("compile", paths["det_mid"], "-t", "pe16x16", "--no-cache", "-o", f"{tmp_path / d}/")
        assert r.exit_code == 0, r.stderr
    for f in ("schedule.json", "summary.txt", "loopnest.txt", "layers.csv", "ir.txt"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert "sqnxt.topk" in (tmp_path / "a" / "ir.txt").read_text()


def _bad(kind):
    x = h.make_tensor_value_info("x", T.FLOAT, [1, 4])
    if kind == "gather-index":
        node = h.make_node("GatherElements", ["x", "i"], ["y"], axis=1, name="bad")
        return h.make_graph([node], "g", [x], [h.make_tensor_value_info("y", T.FLOAT, [1, 2])],
                            [nh.from_array(np.array([[1, 9]], np.int64), "i")])
    outs = [h.make_tensor_value_info("v", T.FLOAT, [1, 2]), h.make_tensor_value_info("i", T.INT64, [1, 2])]
    if kind == "topk-k-from-data":
        node = h.make_node("TopK", ["x", "k"], ["v", "i"], axis=1, name="bad")
        return h.make_graph([node], "g", [x, h.make_tensor_value_info("k", T.INT64, [1])], outs)
    node = h.make_node("TopK", ["x", "k"], ["v", "i"], axis=1, sorted=0, name="bad")
    return h.make_graph([node], "g", [x], outs, [nh.from_array(np.array([2], np.int64), "k")])


@pytest.mark.parametrize("kind,code,words", [
    ("gather-index", 3, "index 9 out of range for axis 1 of size 4"),
    ("topk-k-from-data", 4, "TopK k must be known at compile time"),
    ("topk-unsorted", 4, "TopK with sorted = 0"),
])
def test_bad_host_ops_are_one_located_line(cli, tmp_path, kind, code, words):
    p = tmp_path / "m.onnx"
    onnx.save(h.make_model(_bad(kind), opset_imports=[h.make_opsetid("", 13)]), str(p))
    r = cli("compile", p)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == code and len(lines) == 1
    assert f"{p}: node 'bad'" in lines[0] and words in lines[0]
