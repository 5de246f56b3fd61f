"""Real-world exports this project did not build (PyTorch opsets 11-18, Caffe-style graphs):
each imports unchanged and, compiled with the default pipeline, matches onnxruntime; the
ones the manifest marks 'reject' fail with a one-line located error and exit code 4."""
import json

import pytest

from support import FIXTURES

MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]
OK = [f for f in MANIFEST if f["expect"] == "ok"]
REJECT = [f for f in MANIFEST if f["expect"] != "ok"]
# torch exports nn.LocalResponseNorm as a decomposition with If/ConstantOfShape/Pad/Pow,
# not as the ONNX LRN op: sqnxtc rejects it, naming the first op it does not support.
LRN_DECOMPOSED = {f["file"] for f in OK if "If" in f["ops"]}


@pytest.mark.parametrize("fx", [f for f in OK if f["file"] not in LRN_DECOMPOSED],
                         ids=lambda f: f["file"])
def test_check_passes(cli, fx):
    r = cli("check", FIXTURES / fx["file"], "--samples", 2)
    assert r.exit_code == 0, r.output
    assert "PASS" in r.stdout


@pytest.mark.parametrize("fx", [f for f in OK if f["file"] not in LRN_DECOMPOSED],
                         ids=lambda f: f["file"])
def test_default_pipeline_leaves_no_bn_gemm_or_relu(cli, fx):
    r = cli("compile", FIXTURES / fx["file"])
    assert r.exit_code == 0, r.output
    for gone in ("sqnxt.batchnorm(", "sqnxt.gemm(", "sqnxt.relu(", "sqnxt.dropout(", "sqnxt.matmul("):
        assert gone not in r.stdout, gone


@pytest.mark.parametrize("fx", REJECT, ids=lambda f: f["file"])
def test_rejected_dynamic_shape(cli, fx):
    r = cli("check", FIXTURES / fx["file"])
    assert r.exit_code == 4
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "dynamic dimension" in lines[0] and fx["file"] in lines[0]


@pytest.mark.parametrize("name", sorted(LRN_DECOMPOSED))
def test_lrn_decomposition_rejected_by_name(cli, name):
    r = cli("compile", FIXTURES / name)
    assert r.exit_code == 4
    # every unsupported kind of the decomposition in the one line, each with its first node
    # (ConstantOfShape, Transpose, Pad and Pow are imported, Equal runs on the host: what is
    # left is its control flow)
    line, = r.stderr.strip().splitlines()
    assert "unsupported op 'If' (node '/lrn/If')" in line
    assert "`sqnxtc ops`" in line


def test_symbolic_batch_is_bound_with_a_note(cli):
    r = cli("compile", FIXTURES / "torch_dynamic_batch_op13.onnx")
    assert r.exit_code == 0
    assert "symbolic batch dimension 'batch' bound to 1" in r.stderr
    assert "tensor<1x3x32x32xf32>" in r.stdout


@pytest.mark.parametrize("target", ["pe16x16", "pe8x8"])
@pytest.mark.parametrize("fx", [f for f in OK if f["file"] not in LRN_DECOMPOSED],
                         ids=lambda f: f["file"])
def test_planned_compile_is_never_worse_and_sound(cli, fx, target):
    """Every export compiles with the memory planner on both targets (a 2304-word
    activation exactly filled pe8x8's buffer once and crashed it), never worse than all
    through DRAM, every layer and the plan proven optimal."""
    import json as _json

    r = cli("compile", FIXTURES / fx["file"], "-t", target, "--activation-home", "planned",
            "--emit", "schedule")
    assert r.exit_code == 0, r.output
    doc = _json.loads(r.stdout)
    p, tot = doc["plan"], doc["totals"]
    assert p["status"] == "optimal" and set(tot["status"]) == {"optimal"}
    assert tot["total_cycles"] <= p["all_dram"]["total_cycles"]   # the objective: cycles
