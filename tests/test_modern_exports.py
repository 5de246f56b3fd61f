"""Real PyTorch exports of CNN building blocks (tests/fixtures/make_modern.py: 19
families, ShuffleNet v1/v2, MobileNet v3, EfficientNet, CBAM, ESPNet, HRNet, TF-same
padding with a ResNet-D shortcut, a two-output extractor, SE-ResNet, DenseNet, GhostNet,
ResNeSt, ConvNeXt, MixNet, DPN, NASNet, Tiny-YOLO, SqueezeNet), each by the TorchScript
exporter at opset 13 and the dynamo exporter at opset 18: every one imports unchanged,
leaves no compute or data movement unmodelled, matches onnxruntime with the plain executor
and runs tiled as scheduled, in fp32 and in int16."""
import hashlib
import json
from pathlib import Path

import pytest

MODERN = Path(__file__).resolve().parent / "fixtures" / "modern"
MANIFEST = json.loads((MODERN / "manifest.json").read_text())
FIXTURES = MANIFEST["fixtures"]


def test_the_corpus_is_what_the_generator_recorded():
    """Every family by both exporters, nothing the generator failed to export, and the
    files are the bytes it recorded."""
    assert MANIFEST["not_exported"] == []
    families = {f["family"] for f in FIXTURES}
    assert len(families) == 19 and len(FIXTURES) == 38
    for f in FIXTURES:
        assert hashlib.sha256((MODERN / f["file"]).read_bytes()).hexdigest() == f["sha256"], f["file"]
    ops = set().union(*(f["ops"] for f in FIXTURES))
    for op in ("Sigmoid", "HardSigmoid", "HardSwish", "PRelu", "Transpose", "Split", "Slice", "Resize",
               "ReduceMean", "ReduceMax", "ReduceSum", "Pad", "ConstantOfShape", "Softmax", "Erf",
               "LayerNormalization", "MatMul", "LeakyRelu", "Concat", "BatchNormalization"):
        assert op in ops, op


@pytest.mark.parametrize("fx", FIXTURES, ids=lambda f: f["file"])
def test_a_real_export_compiles_and_matches_onnxruntime(cli, fx, tmp_path):
    path = MODERN / fx["file"]
    r = cli("compile", path, "-t", "pe16x16", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "out" / "schedule.json").read_text())
    assert doc["unmodelled"] == [] and "0 ops not modelled" in r.stdout.splitlines()[0]
    r = cli("check", path, "--samples", 2)
    assert r.exit_code == 0 and "PASS" in r.stdout, r.output
    rows = [line.split()[0] for line in r.stdout.splitlines() if line.split() and line.split()[-1] == "ok"]
    assert len(rows) == fx["outputs"]


@pytest.mark.parametrize("precision", ["fp32", "int16"])
@pytest.mark.parametrize("fx", FIXTURES, ids=lambda f: f["file"])
def test_a_real_export_runs_tiled_as_scheduled(cli, fx, precision):
    target = "pe16x16" if fx["exporter"] == "ts13" else "pe8x8"
    r = cli("check", MODERN / fx["file"], "-t", target, "--tiled", "--precision", precision, "--samples", 1)
    assert r.exit_code == 0 and "PASS" in r.stdout, r.output
