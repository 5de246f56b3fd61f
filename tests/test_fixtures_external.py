"""Fast sanity checks of the external ONNX fixture corpus (tests/fixtures/external).

The fixtures were produced outside this project's own builder (PyTorch's
exporter, and caffe2onnx-style hand-written graphs) by
tests/fixtures/make_external.py, which needs torch and is not run here.  This
test only needs onnx, onnxruntime and numpy: for every manifest entry it checks
that the file is there unchanged, is valid ONNX, contains the ops the manifest
says, and (for ``expect: ok``) runs in onnxruntime with a finite output that
matches the stored reference (torch's eval output, or the Caffe-semantics torch
twin for the caffe-style graphs).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

HERE = Path(__file__).resolve().parent / "fixtures" / "external"
MANIFEST = json.loads((HERE / "manifest.json").read_text())
ENTRIES = MANIFEST["fixtures"]
IDS = [e["file"] for e in ENTRIES]


def _dims(vi):
    return [d.dim_param if d.HasField("dim_param") else int(d.dim_value)
            for d in vi.type.tensor_type.shape.dim]


def _graph_inputs(model):
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _session(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3  # caffe-style files declare initializers as inputs; ORT warns per tensor
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def test_manifest_lists_every_file():
    on_disk = sorted(p.name for p in HERE.glob("*.onnx"))
    assert on_disk == sorted(IDS)
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_file_unchanged_and_small(entry):
    path = HERE / entry["file"]
    assert path.is_file()
    data = path.read_bytes()
    assert len(data) == entry["bytes"] < 1_000_000
    # fixtures must be imported exactly as produced: any edit shows here
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_checker_and_ops(entry):
    model = onnx.load(str(HERE / entry["file"]))
    onnx.checker.check_model(model, full_check=True)
    assert sorted({n.op_type for n in model.graph.node}) == entry["ops"]
    counts = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    assert counts == entry["op_counts"]
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == entry["opset"]
    assert model.ir_version == entry["ir_version"]
    assert [{"name": i.name, "shape": _dims(i)} for i in _graph_inputs(model)] == entry["inputs"]
    assert [{"name": o.name, "shape": _dims(o)} for o in model.graph.output] == entry["outputs"]
    if entry["family"] == "pytorch":
        assert model.producer_name == "pytorch"
    assert entry["expect"] in ("ok", "reject")
    if entry["expect"] == "reject":
        assert entry.get("reason")


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["expect"] == "ok"],
                         ids=[e["file"] for e in ENTRIES if e["expect"] == "ok"])
def test_runs_in_onnxruntime(entry):
    ref = entry["reference"]
    x = np.random.default_rng(ref["seed"]).standard_normal(ref["shape"], dtype=np.float32)
    sess = _session(HERE / entry["file"])
    (out,) = sess.run(None, {entry["inputs"][0]["name"]: x})
    assert np.all(np.isfinite(out))
    assert list(out.shape) == ref["output_shape"]
    expected = np.asarray(ref["output"], dtype=np.float32).reshape(ref["output_shape"])
    assert np.max(np.abs(out - expected)) <= MANIFEST["tolerance"]


def test_corpus_covers_the_brief():
    by = {e["file"]: e for e in ENTRIES}
    torch_opsets = {e["opset"] for e in ENTRIES if e["family"] == "pytorch"}
    assert {11, 13, 17, 18} <= torch_opsets
    for op in (11, 13, 17):
        assert "BatchNormalization" not in by[f"torch_resnetish_op{op}_bnfolded.onnx"]["ops"]
    assert "BatchNormalization" in by["torch_resnetish_op13_bnkept.onnx"]["ops"]
    assert "Clip" in by["torch_mobilenetish_op13.onnx"]["ops"]
    for f in ("torch_squeezenetish_op11.onnx", "torch_squeezenetish_op18.onnx"):
        assert {"Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "MatMul", "Softmax"} <= set(by[f]["ops"])
    assert by["torch_dynamic_batch_op13.onnx"]["inputs"][0]["shape"][0] == "batch"
    hw = by["torch_dynamic_hw_op13.onnx"]
    assert hw["expect"] == "reject" and all(isinstance(d, str) for d in hw["inputs"][0]["shape"][2:])
    assert "Sum" in by["caffe_style_sqnxt_block_op9.onnx"]["ops"]
    assert by["caffe_style_alexnetish_op7.onnx"]["opset"] == 7
    assert {"LRN", "Softmax", "Gemm"} <= set(by["caffe_style_alexnetish_op7.onnx"]["ops"])
