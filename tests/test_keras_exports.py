"""Exporters other than PyTorch cost the same (issue 25): the tf2onnx exports of Keras
applications in tests/fixtures/keras (made by tests/fixtures/make_keras.py) against their
PyTorch twins (make_keras_twins.py: the same convs, one to one), compiled as `sqnxtc compile`
does; benchmarks/bench_exporters.py prints the whole table."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqnxt_compiler import driver
from sqnxt_compiler.reference.check import check
from sqnxt_compiler.targets import load_target

KERAS = Path(__file__).resolve().parent / "fixtures" / "keras"
MANIFEST = json.loads((KERAS / "manifest.json").read_text())["fixtures"]
TWIN = {e["architecture"]: e["file"] for e in MANIFEST if e["exporter"] != "tf2onnx"}
RAW13 = [e for e in MANIFEST if e["exporter"] == "tf2onnx" and e["opset"] == 13 and not e["simplified_by"]]
OTHER = [e for e in MANIFEST if e["exporter"] == "tf2onnx" and e not in RAW13]


def _cycles(path: Path, target: str) -> tuple[int, int]:
    """(network cycles, scheduled layers) as `sqnxtc compile FILE -t TARGET` reports them."""
    res = driver.compile(str(path), target=load_target(target))
    scheds = [op.attrs["schedule"].schedule for op in res.graph.ops() if "schedule" in op.attrs]
    return sum(s.cost.total_cycles for s in scheds), len(scheds)


def _within(entry, target):
    k, nk = _cycles(KERAS / entry["file"], target)
    t, nt = _cycles(KERAS / TWIN[entry["architecture"]], target)
    assert nk == nt, (entry["file"], target, nk, nt)
    assert abs(k / t - 1) <= 0.03, (entry["file"], target, k, t)


@pytest.mark.parametrize("target", ["pe16x16", "pe8x8"])
@pytest.mark.parametrize("entry", RAW13, ids=lambda e: e["architecture"])
def test_a_keras_export_costs_what_its_pytorch_twin_costs(entry, target):
    """The same layers, and cycles within 3%, on both targets: every spelling of tf2onnx
    (BatchNorm as Mul + Add, hard-swish from relu6, zero Pad before MaxPool, the NHWC input
    transpose) is rewritten into the forms the PyTorch export has."""
    _within(entry, target)


@pytest.mark.slow
@pytest.mark.parametrize("entry", OTHER, ids=lambda e: e["file"][:-5])
def test_opset_17_and_simplified_exports_cost_the_same(entry):
    _within(entry, "pe16x16")


def test_the_nhwc_input_transpose_is_the_hosts_and_the_program_runs():
    """The input's NHWC -> NCHW transpose becomes host work (the host writes the input in
    the layout the network reads), listed as such; the program runs it before the first
    layer, and its outputs match onnxruntime."""
    path = KERAS / "mobilenetv3small_tf2onnx_op13.onnx"
    target = load_target("pe16x16")
    res = driver.compile(str(path), target=target)
    layouts = [op for op in res.graph.ops() if op.name == "sqnxt.input_layout"]
    assert len(layouts) == 1 and layouts[0].operands[0].owner.name == "sqnxt.input"
    assert not any(op.name == "sqnxt.transpose" for op in res.graph.ops())
    from sqnxt_compiler.driver import lowered_pipeline
    from sqnxt_compiler.program.funcsim import run_program

    low = driver.compile(str(path), pipeline=lowered_pipeline("default", target, None, None), target=target)
    lowered = low.graph.attrs["program"].lowered
    report = check(low.graph, low.model, str(path), samples=1,
                   executor=lambda g, feeds: run_program(lowered, g, feeds).outputs)
    assert report.ok, report.format()
