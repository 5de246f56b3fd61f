"""The host tail (docs/ir.md, "The host tail"): a model with NonMaxSuppression or NonZero
(a data-dependent output shape) is cut before them; the head is compiled, costed and
checked like any network, the tail runs on the host after the program: onnxruntime runs
it on sqnxtc's values at the cut in ``check``, and the reports list it with the DRAM words
it reads."""
from __future__ import annotations

import json

import jsonschema
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T, helper as h, numpy_helper as nh

from sqnxt_compiler import driver
from sqnxt_compiler.frontend import import_model
from sqnxt_compiler.frontend.cut import split_model, tail_nodes
from sqnxt_compiler.reference.check import check
from sqnxt_compiler.report.schedule_json import schema

RNG = np.random.default_rng(11)
N = 64          # anchors: the 8x8 map of a 16x16 input at stride 2


def _w(name, *shape):
    return nh.from_array((RNG.standard_normal(shape) * 0.3).astype(np.float32), name)


WEIGHTS = [_w("w1", 8, 3, 3, 3), _w("b1", 8), _w("wb", 4, 8, 1, 1), _w("bb", 4), _w("ws", 3, 8, 1, 1),
           _w("bs", 3)]


def detector(score_thr: float = 0.3, big: bool = False, nonzero: bool = False) -> onnx.ModelProto:
    """A tiny single-shot detector: conv backbone, a box head ([1, 64, 4] after a reshape and
    transpose) and a score head (sigmoid, [1, 3, 64]); the tail: NonMaxSuppression (its
    IoU threshold a Constant node only the tail reads), the box index column, a squeeze of
    the boxes and a Gather of the kept boxes.  ``scores`` is a model output too.  ``big``:
    a 1 MiB 1x1 conv in the backbone (read lazily from a file).  ``nonzero``: the tail is
    ``NonZero(scores > thr)`` and a Gather of the flat scores instead."""
    inits = list(WEIGHTS) + [nh.from_array(np.array([1, 4, N], np.int64), "s_box"),
                             nh.from_array(np.array([1, 3, N], np.int64), "s_score"),
                             nh.from_array(np.array([10], np.int64), "max_out"),
                             nh.from_array(np.array([score_thr], np.float32), "score_thr"),
                             nh.from_array(np.array(2, np.int64), "two"),
                             nh.from_array(np.array([0], np.int64), "zero")]
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], strides=[2, 2]),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1")]
    feat = "r1"
    if big:
        inits += [_w("wbig", 512, 8, 1, 1), _w("wback", 8, 512, 1, 1)]
        nodes += [h.make_node("Conv", ["r1", "wbig"], ["e1"], name="expand"),
                  h.make_node("Relu", ["e1"], ["e2"], name="relu_e"),
                  h.make_node("Conv", ["e2", "wback"], ["e3"], name="back")]
        feat = "e3"
    nodes += [h.make_node("Conv", [feat, "wb", "bb"], ["box_map"], name="box_head"),
              h.make_node("Conv", [feat, "ws", "bs"], ["score_map"], name="score_head"),
              h.make_node("Reshape", ["box_map", "s_box"], ["box_r"], name="box_reshape"),
              h.make_node("Transpose", ["box_r"], ["boxes"], name="box_t", perm=[0, 2, 1]),
              h.make_node("Sigmoid", ["score_map"], ["sig"], name="sig"),
              h.make_node("Reshape", ["sig", "s_score"], ["scores"], name="score_reshape")]
    if nonzero:
        nodes += [h.make_node("Greater", ["scores", "score_thr"], ["hit"], name="thresh"),
                  h.make_node("NonZero", ["hit"], ["where"], name="nz"),
                  h.make_node("Flatten", ["scores"], ["flat"], name="flat", axis=0),
                  h.make_node("Gather", ["where", "two"], ["col"], name="col", axis=0),
                  h.make_node("Gather", ["flat", "col"], ["picked"], name="pick", axis=1)]
        out = h.make_tensor_value_info("picked", T.FLOAT, [1, "n"])
    else:
        nodes += [h.make_node("Constant", [], ["iou"], name="iou_c",
                              value=nh.from_array(np.array([0.5], np.float32))),
                  h.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "score_thr"], ["sel"],
                              name="nms"),
                  h.make_node("Gather", ["sel", "two"], ["box_idx"], name="pick_col", axis=1),
                  h.make_node("Squeeze", ["boxes", "zero"], ["boxes2"], name="sq"),
                  h.make_node("Gather", ["boxes2", "box_idx"], ["det_boxes"], name="gather_boxes", axis=0)]
        out = h.make_tensor_value_info("det_boxes", T.FLOAT, ["n", 4])
    g = h.make_graph(nodes, "det", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 16, 16])],
                     [out, h.make_tensor_value_info("scores", T.FLOAT, [1, 3, N])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    onnx.checker.check_model(m, full_check=True)
    return m


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("tail")
    out = {}
    for name, m in (("det", detector()), ("big", detector(big=True)), ("nz", detector(nonzero=True))):
        out[name] = d / f"{name}.onnx"
        onnx.save(m, str(out[name]))
    return out


def test_the_cut_rule():
    m = onnx.shape_inference.infer_shapes(detector(), strict_mode=True)
    names = [n.name for i, n in enumerate(m.graph.node) if i in tail_nodes(m.graph)]
    # NMS, everything after it, and the Constant only it reads; the squeeze of the boxes
    # reads no tail value: it stays in the head (its result is at the cut)
    assert names == ["iou_c", "nms", "pick_col", "gather_boxes"]
    s = split_model(m, "m.onnx")
    assert [t.name for t in s.tail.reads] == ["boxes", "scores", "boxes2"]
    assert [o.name for o in s.head.graph.output] == ["scores", "boxes", "boxes2"]
    assert [i.name for i in s.tail_model.graph.input] == ["boxes", "scores", "boxes2"]
    assert [o.name for o in s.tail_model.graph.output] == ["det_boxes"]
    assert {t.name for t in s.tail_model.graph.initializer} == {"max_out", "score_thr", "two"}
    assert "wb" not in {t.name for t in s.tail_model.graph.initializer}
    onnx.checker.check_model(s.head, full_check=True)
    onnx.checker.check_model(s.tail_model)
    assert split_model(onnx.shape_inference.infer_shapes(_no_tail()), "m.onnx") is None


def _no_tail() -> onnx.ModelProto:
    """The detector without its tail, the cut as its outputs (the head, written by hand)."""
    m = detector()
    keep = [n for n in m.graph.node if n.name not in ("iou_c", "nms", "pick_col", "gather_boxes")]
    del m.graph.node[:]
    m.graph.node.extend(keep)
    del m.graph.output[0]
    m.graph.output.extend([h.make_tensor_value_info("boxes", T.FLOAT, [1, N, 4]),
                           h.make_tensor_value_info("boxes2", T.FLOAT, [N, 4])])
    return m


@pytest.mark.parametrize("target", ["pe16x16", "pe8x8"])
def test_compile_reports_the_tail(cli, paths, tmp_path, target):
    r = cli("compile", paths["det"], "-t", target, "-o", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    assert "host tail: 4 nodes from 'nms' (NonMaxSuppression) run on the host" in r.stderr
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "a host tail" in summary.splitlines()[0]
    # boxes2 is a view of boxes: the host reads their words once (256 + 192)
    assert "host tail: 4 nodes from nms (NonMaxSuppression) run on the host after the program" in summary
    assert "they read 448 DRAM words (boxes, scores, boxes2)" in summary
    doc = json.loads((tmp_path / "out" / "schedule.json").read_text())
    jsonschema.validate(doc, schema())
    t = doc["host_tail"]
    assert t["cut_at"] == [{"node": "nms", "op": "NonMaxSuppression"}]
    assert [o["node"] for o in t["ops"]] == ["iou_c", "nms", "pick_col", "gather_boxes"]
    assert [(x["tensor"], x["shape"], x["words"], x["storage"]) for x in t["reads"]] == \
        [("boxes", [1, 64, 4], 256, "boxes"), ("scores", [1, 3, 64], 192, "score_map"),
         ("boxes2", [64, 4], 256, "boxes")]
    assert t["words_in"] == 448 and t["outputs"] == ["det_boxes"] and t["inputs"] == []
    nest = (tmp_path / "out" / "loopnest.txt").read_text()
    assert "== host tail from nms (NonMaxSuppression): 4 nodes" in nest and "reads 448 words" in nest
    # the accelerator's figures are the head's: the network without its tail, the cut as
    # its outputs, costs the same
    p = tmp_path / "head.onnx"
    onnx.save(_no_tail(), str(p))
    assert cli("compile", p, "-t", target, "-o", tmp_path / "head").exit_code == 0
    head = json.loads((tmp_path / "head" / "schedule.json").read_text())
    assert head["host_tail"] is None
    for k in ("total_cycles", "dram_words", "energy", "layers"):
        assert doc["totals"][k] == head["totals"][k]
    assert [(x["layer"], x["cost"]["total_cycles"]) for x in doc["layers"]] == \
        [(x["layer"], x["cost"]["total_cycles"]) for x in head["layers"]]


def test_without_a_tail_schedule_json_says_null(cli, tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(_no_tail(), str(p))
    r = cli("compile", p, "-t", "pe8x8", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    assert json.loads((tmp_path / "out" / "schedule.json").read_text())["host_tail"] is None
    assert "host tail" not in (tmp_path / "out" / "summary.txt").read_text()


@pytest.mark.parametrize("target", ["pe16x16", "pe8x8"])
@pytest.mark.parametrize("how", [[], ["--tiled"], ["--tiled", "--precision", "int16"]])
def test_check_at_the_cut_and_after_the_tail(cli, paths, target, how):
    r = cli("check", paths["det"], "-t", target, *how)
    assert r.exit_code == 0, r.stdout + r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line and line[0] != "-"}
    assert {"scores", "boxes", "boxes2", "det_boxes"} <= set(rows)
    assert "(host tail)" in rows["det_boxes"] and rows["det_boxes"].rstrip().endswith("ok")
    assert "PASS" in r.stdout


def test_check_program_with_activations_in_dram(cli, paths):
    r = cli("check", paths["det"], "-t", "pe8x8", "--program", "--activation-home", "dram")
    assert r.exit_code == 0 and "det_boxes (host tail)" in r.stdout and "PASS" in r.stdout, r.stdout + r.stderr


def test_the_tail_runs_on_sqnxtcs_values():
    """A wrong weight in the compiled head: the values at the cut are wrong, and so is the
    tail onnxruntime runs on them (its boxes are sqnxtc's, not onnxruntime's)."""
    res = driver.compile((detector(), "m.onnx"))
    conv = next(op for op in res.graph.ops() if op.name == "sqnxt.conv" and op.loc.node == "box_head")
    wop = conv.operands[1].owner
    wop.attrs["value"] = wop.attrs["value"] * 1.5
    report = check(res.graph, res.model, "m.onnx", samples=1, tail=res.tail)
    bad = {o.name for o in report.outputs if not o.ok}
    assert bad == {"boxes", "boxes2", "det_boxes (host tail)"}


def test_the_tail_is_compared_with_the_whole_model():
    """Right values at the cut, but a reference whose tail selects differently (a higher
    score threshold): only the tail's output fails."""
    res = driver.compile((detector(), "m.onnx"))
    res.tail.full = detector(score_thr=0.6)
    report = check(res.graph, res.model, "m.onnx", samples=2, tail=res.tail)
    assert {o.name for o in report.outputs if not o.ok} == {"det_boxes (host tail)"}
    good = check(res.graph, res.model, "m.onnx", samples=2, tail=driver.compile((detector(), "m.onnx")).tail)
    assert good.ok


def test_values_known_at_compile_time_at_the_cut(cli, tmp_path):
    """A Constant node the head reads too (the IoU threshold also scales the scores) and a
    shape computation (NMS's box count from Shape(boxes)) stay in the head; at the cut they
    are compile-time values: no DRAM words for the host."""
    m = detector()
    g = m.graph
    nodes = list(g.node)
    iou = next(n for n in nodes if n.name == "iou_c")
    nms = next(n for n in nodes if n.name == "nms")
    rs = next(n for n in nodes if n.name == "score_reshape")
    rs.input[0] = "sig_half"
    nms.input[2] = "n_boxes"
    g.initializer.extend([nh.from_array(np.array([1], np.int64), "one_i"),
                          nh.from_array(np.array([2], np.int64), "two_i")])
    extra = [h.make_node("Mul", ["sig", "iou"], ["sig_half"], name="halve"),
             h.make_node("Shape", ["boxes"], ["bshape"], name="bshape"),
             h.make_node("Slice", ["bshape", "one_i", "two_i"], ["n_boxes"], name="nbox")]
    order = ["conv1", "relu1", "box_head", "score_head", "box_reshape", "box_t", "sig", "iou_c"]
    new = [n for name in order for n in nodes if n.name == name] + extra + \
        [n for n in nodes if n.name not in order]
    del g.node[:]
    g.node.extend(new)
    onnx.checker.check_model(m, full_check=True)
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    r = cli("compile", p, "-t", "pe8x8", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    t = json.loads((tmp_path / "out" / "schedule.json").read_text())["host_tail"]
    st = {x["tensor"]: x["storage"] for x in t["reads"]}
    assert st["n_boxes"] == "(constant)" and st["iou"] == "(constant)" and st["boxes"] == "boxes"
    assert t["words_in"] == 256 + 192
    assert [o["node"] for o in t["ops"]] == ["nms", "pick_col", "gather_boxes"]
    r = cli("check", p, "-t", "pe8x8", "--tiled")
    assert r.exit_code == 0 and "det_boxes (host tail)" in r.stdout and "PASS" in r.stdout, r.stdout + r.stderr


def test_lazily_read_weights(cli, paths):
    """A 1 MiB weight is read lazily from the file: onnxruntime's head gets its data."""
    res = driver.compile(str(paths["big"]))
    assert res.model is not None and any(t.name == "wbig" and t.raw_data for t in res.model.graph.initializer)
    r = cli("check", paths["big"], "-t", "pe16x16")
    assert r.exit_code == 0 and "PASS" in r.stdout, r.stdout + r.stderr


def test_a_nonzero_tail(cli, paths):
    r = cli("check", paths["nz"], "-t", "pe8x8", "--tiled")
    assert r.exit_code == 0 and "picked (host tail)" in r.stdout and "PASS" in r.stdout, r.stdout + r.stderr
    r = cli("compile", paths["nz"], "-t", "pe8x8")
    assert "host tail: 3 nodes from 'nz' (NonZero)" in r.stderr


def test_array_work_in_the_tail_is_named(cli, tmp_path):
    """A MatMul after the NonZero runs on the host, uncosted: a note names it."""
    m = detector(nonzero=True)
    m.graph.initializer.extend([nh.from_array(np.array([2], np.int64), "ax2"),
                                nh.from_array(np.ones((1, 4), np.float32), "row")])
    m.graph.node.extend([h.make_node("Unsqueeze", ["picked", "ax2"], ["p3"], name="unsq"),
                         h.make_node("MatMul", ["p3", "row"], ["spread"], name="spread_mm")])
    m.graph.output[0].CopyFrom(h.make_tensor_value_info("spread", T.FLOAT, [1, "n", 4]))
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    r = cli("compile", p)
    assert r.exit_code == 0, r.stderr
    assert "host tail: 5 nodes from 'nz' (NonZero)" in r.stderr
    assert "the host tail holds 1 array op ('spread_mm' (MatMul)): they run on the host and are not costed" \
        in r.stderr
    r = cli("check", p, "-t", "pe8x8")
    assert r.exit_code == 0 and "spread (host tail)" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("op", ["NonMaxSuppression", "NonZero"])
def test_nothing_before_the_tail_is_refused(cli, tmp_path, op):
    if op == "NonMaxSuppression":
        ins = [h.make_tensor_value_info("boxes", T.FLOAT, [1, 10, 4]),
               h.make_tensor_value_info("scores", T.FLOAT, [1, 1, 10])]
        node = h.make_node(op, ["boxes", "scores", "mo"], ["sel"], name="my_nms")
        out = h.make_tensor_value_info("sel", T.INT64, ["n", 3])
        inits = [nh.from_array(np.array([5], np.int64), "mo")]
    else:
        ins = [h.make_tensor_value_info("x", T.FLOAT, [1, 10])]
        node = h.make_node(op, ["x"], ["sel"], name="my_nms")
        out = h.make_tensor_value_info("sel", T.INT64, [2, "n"])
        inits = []
    p = tmp_path / "m.onnx"
    onnx.save(h.make_model(h.make_graph([node], "g", ins, [out], inits),
                           opset_imports=[h.make_opsetid("", 13)]), str(p))
    r = cli("compile", p, "-o", tmp_path / "out")
    assert r.exit_code == 4 and not (tmp_path / "out").exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"node 'my_nms ({op})'" in lines[0] and "nothing for the accelerator" in lines[0]
    assert "Traceback" not in r.stderr


def test_ops_lists_the_dynamic_shape_ops_as_host_tail(cli):
    r = cli("ops")
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    assert rows["NonMaxSuppression"].endswith("host tail") and rows["NonZero"].endswith("host tail")


def test_the_ir_carries_the_tail():
    g = import_model(detector(), "m.onnx").graph
    t = g.attrs["host_tail"]
    assert t.cut_at == (("nms", "NonMaxSuppression"),) and t.outputs == ("det_boxes",)
    from sqnxt_compiler.ir.printer import print_graph
    assert 'host_tail = {cut_at = ["nms (NonMaxSuppression)"]' in print_graph(g)


DETECT = sorted((__import__("pathlib").Path(__file__).parent / "fixtures" / "detect").glob("*.onnx"))


def test_the_detect_fixtures_exist():
    assert [p.name for p in DETECT] == ["ssdlite_nms_ts13.onnx", "ssdlite_topk_nms_ts13.onnx"]


@pytest.mark.parametrize("target", ["pe16x16", "pe8x8"])
@pytest.mark.parametrize("path", DETECT, ids=lambda p: p.stem)
def test_real_exports(cli, path, target):
    """PyTorch exports of an SSDLite whose NonMaxSuppression the exporter wrote
    (tests/fixtures/make_detect.py): compiled with nothing unmodelled, the tail reported,
    checked plain and tiled at the cut and after the tail, with detections to compare."""
    r = cli("compile", path, "-t", target)
    assert r.exit_code == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert "0 ops not modelled" in first and "a host tail" in first
    assert "host tail: 17 nodes from /NonMaxSuppression (NonMaxSuppression)" in r.stdout
    for how in ([], ["--tiled"]):
        r = cli("check", path, "-t", target, *how)
        assert r.exit_code == 0 and "PASS" in r.stdout, r.stdout + r.stderr
        rows = [line.split() for line in r.stdout.splitlines() if "(host tail)" in line]
        assert [x[0] for x in rows] == ["det_boxes", "det_labels", "det_scores"]
        n = int(rows[0][3].split("x")[0])
        assert n > 0 and rows[0][-1] == "ok"        # detections, equal to onnxruntime's


def test_int16_reselection_is_told_apart_from_an_error(cli):
    """In 16-bit fixed point, values at the cut within the tolerance reorder near-equal
    scores: the tail selects other boxes (the cut is faithful: onnxruntime's own cut gives
    its outputs), reported as a reselection, not a mismatch."""
    r = cli("check", DETECT[0], "-t", "pe8x8", "--tiled", "--precision", "int16")
    assert r.exit_code == 0, r.stdout + r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith("det_boxes (host tail)"))
    assert "ok (reselected: the cut within tolerance" in row
    err = float(row.split()[4])
    assert err > 0.01          # really other boxes, beyond any tolerance
    assert "PASS (a host tail selected differently" in r.stdout
