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


def small_conv_net(path: Path, seed: int = 7, batch=1) -> str:
    """conv 3x3 (8 -> 16), relu, conv 1x1 (16 -> 8) on (batch, 8, 14, 14), saved to
    ``path`` (the cache tests' network; ``batch`` may be a symbol); returns the path."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"])]
    inits = [("w1", rng.standard_normal((16, 8, 3, 3)).astype(np.float32)),
             ("w2", rng.standard_normal((8, 16, 1, 1)).astype(np.float32))]
    onnx.save(make_model(nodes, [("x", (batch, 8, 14, 14))], [("y", (batch, 8, 14, 14))], inits), path)
    return str(path)


def user_cache(monkeypatch, tmp_path, outputs: bool = False) -> Path:
    """Point sqnxtc's default cache root at ``tmp_path/xdg/sqnxtc`` (the suite sets
    SQNXTC_NO_CACHE: unset here) and return that root.  ``outputs``: the compile-output
    cache too (off by default here: a replayed compile would not exercise the caches below
    it, which these tests are about)."""
    monkeypatch.delenv("SQNXTC_NO_CACHE", raising=False)
    monkeypatch.delenv("SQNXTC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if outputs:
        monkeypatch.delenv("SQNXTC_NO_OUTPUT_CACHE", raising=False)
    else:
        monkeypatch.setenv("SQNXTC_NO_OUTPUT_CACHE", "1")
    return tmp_path / "xdg" / "sqnxtc"


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
    from sqnxt_compiler import driver
    from sqnxt_compiler.reference.check import check

    res = driver.compile((model, "test.onnx"), pipeline=passes)
    report = check(res.graph, res.model, "test.onnx", samples=samples, rtol=rtol, atol=atol)
    return res.graph, report


class ZooModels:
    """Zoo models built once per test session (``sqnxt_compiler.zoo.build``), kept as
    ONNX files under ``root``; every accessor hands out fresh objects, so a test may
    mutate what it gets.  The conftest fixtures ``zoo_models`` (this, session-scoped) and
    ``cached_zoo_build`` (``sqnxt_compiler.zoo.build`` answered from here, so ``zoo:NAME``
    on the command line or in the driver does not rebuild) share one instance.

    The build goes through the real :func:`sqnxt_compiler.zoo.registry.build`; the
    builder's own numpy logits on the calibration images (which build discards) are
    recorded on the way for the tests that compare onnxruntime with them.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self._files: dict[tuple[str, int, float], Path] = {}
        self._calibration: dict[tuple[str, int, float], np.ndarray] = {}

    def _key(self, name: str, seed: int, weight_sparsity: float) -> tuple[str, int, float]:
        from sqnxt_compiler.zoo.registry import _check_build_args, lookup
        seed, fraction = _check_build_args(seed, weight_sparsity)
        return lookup(name).name, seed, fraction

    def _ensure(self, name, seed, weight_sparsity) -> tuple[str, int, float]:
        from sqnxt_compiler.zoo import registry
        from sqnxt_compiler.zoo.serialize import write_model

        key = self._key(name, seed, weight_sparsity)
        if key in self._files:
            return key
        real, outputs = registry.run_definition, []

        def recording(*args, **kwargs):
            b, model = real(*args, **kwargs)
            outputs.append(b.calibration_output)
            return b, model
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(registry, "run_definition", recording)
            model = registry.build(key[0], seed=key[1], weight_sparsity=key[2])
        assert len(outputs) == 1 and outputs[0] is not None, "zoo build did not calibrate once"
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{key[0]}__seed{key[1]}__sparsity{key[2]!r}.onnx"
        with open(path, "wb") as fh:
            write_model(model, fh)
        self._files[key], self._calibration[key] = path, outputs[0]
        return key

    def path(self, name: str, *, seed: int = 0, weight_sparsity: float = 0.0) -> Path:
        """The file holding ``build(name, seed=..., weight_sparsity=...)``'s bytes (read-only)."""
        return self._files[self._ensure(name, seed, weight_sparsity)]

    def model(self, name: str, *, seed: int = 0, weight_sparsity: float = 0.0) -> onnx.ModelProto:
        """A fresh copy of ``build(name, seed=..., weight_sparsity=...)``."""
        return onnx.load(str(self.path(name, seed=seed, weight_sparsity=weight_sparsity)))

    def serialized(self, name: str, *, seed: int = 0, weight_sparsity: float = 0.0) -> bytes:
        """``build(name, ...).SerializeToString()``."""
        return self.path(name, seed=seed, weight_sparsity=weight_sparsity).read_bytes()

    def calibration_output(self, name: str, *, seed: int = 0, weight_sparsity: float = 0.0) -> np.ndarray:
        """The builder's numpy logits on the model's calibration images (a copy)."""
        return self._calibration[self._ensure(name, seed, weight_sparsity)].copy()

    def build(self, name: str, *, seed: int = 0, weight_sparsity: float = 0.0) -> onnx.ModelProto:
        """A drop-in for :func:`sqnxt_compiler.zoo.build` answered from the cache (unknown
        names and bad arguments raise what ``build`` raises)."""
        return self.model(name, seed=seed, weight_sparsity=weight_sparsity)
