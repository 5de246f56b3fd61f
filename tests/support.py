"""Test helpers (importable: tests/ is on pytest's pythonpath): build small ONNX graphs,
compile them, compare with onnxruntime."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "external"


def make_model(nodes, inputs, outputs, inits=(), opset=13, name="t"):
    """An ONNX model from nodes; ``inputs``/``outputs`` are (name, shape) pairs (float32)."""
    g = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = min(m.ir_version, 8)
    return m


def inferred_model(nodes, inputs, outputs=("y",), inits=(), opset=13):
    """Like make_model, but an output given by name alone gets the shape ONNX infers."""
    outs = [o if isinstance(o, tuple) else (o, None) for o in outputs]
    m = make_model(nodes, inputs, outs, inits, opset)
    if any(s is None for _, s in outs):
        inf = onnx.shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)
        by_name = {o.name: o for o in inf.graph.output}
        for o, (_, s) in zip(m.graph.output, outs):
            if s is None:
                o.CopyFrom(by_name[o.name])
    return m


def int64s(*v):
    """An int64 vector (shapes, axes, indices)."""
    return np.array(v, dtype=np.int64)


def rand(rng, *shape, positive=False):
    a = rng.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


def compile_and_check(model, passes="default", samples=2, rtol=1e-4, atol=1e-5):
    """Import + run ``passes`` + compare with onnxruntime; returns (graph, report)."""
    from sqnxt_compiler.frontend import import_model
    from sqnxt_compiler.pipeline import PassManager, parse_pipeline
    from sqnxt_compiler.reference.check import check

    res = import_model(model, "test.onnx")
    PassManager(parse_pipeline(passes), stream=sys.stderr).run(res.graph)
    report = check(res.graph, res.model, "test.onnx", samples=samples, rtol=rtol, atol=atol)
    return res.graph, report
