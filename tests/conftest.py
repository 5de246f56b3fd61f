"""Shared pytest fixtures (helpers live in support.py)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def save(tmp_path):
    def _save(model, name="m.onnx"):
        p = tmp_path / name
        onnx.save(model, str(p))
        return str(p)
    return _save


@pytest.fixture
def cli():
    """Invoke ``sqnxtc`` in-process; returns click's Result (stdout, stderr, exit_code)."""
    from sqnxt_compiler.cli import main

    def _run(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return _run


