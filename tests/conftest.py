"""Shared pytest fixtures (helpers live in support.py)."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from support import ZooModels

# No test reads or writes the user's schedule cache (~/.cache/sqnxtc): every compile in the
# suite, in this process or a subprocess, solves as a cold one does unless the test gives
# a cache directory of its own (tests/test_schedule_cache_default.py unsets this).
os.environ["SQNXTC_NO_CACHE"] = "1"


def pytest_addoption(parser):
    parser.addoption("--fuzz-examples", type=int, default=None, metavar="N",
                     help="examples per fuzz test (tests/test_fuzz.py), freshly drawn; default: "
                          "a fixed, derandomized CI budget")


def clear_process_caches() -> None:
    """Forget every process-wide cache of the package, so no test answers from what an
    earlier test computed:

    * the solver's in-process schedule memo (``schedule.solver._MEMO``, via ``clear_cache``),
    * the mapping-space cache per (layer.key(), target) (``schedule.space._SPACES``),
    * the zoo's ModelInfo cache (``zoo.registry._info``, a ``functools.lru_cache``).

    The dicts are also cleared directly, so a ``clear_cache`` that stops reaching one of
    them does not go unnoticed; a renamed cache fails here, loudly, in every test.
    (Registries filled at import, e.g. ``ir.core.OPS``, ``reference.executor.KERNELS``,
    ``zoo.registry._PRESETS``, are definitions, not caches, and stay; so do the solver's
    ``STATS`` counts, which ``clear_cache`` documents as kept.)
    """
    from sqnxt_compiler.schedule import solver, space
    from sqnxt_compiler.zoo import registry

    solver.clear_cache()
    solver._MEMO.clear()
    space._SPACES.clear()
    registry._info.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Empty caches before every test, and again after it, so that a module- or
    session-scoped fixture set up between two tests does not start warm either."""
    clear_process_caches()
    yield
    clear_process_caches()


@pytest.fixture(scope="session")
def zoo_models(tmp_path_factory) -> ZooModels:
    """Zoo models, each built once per session (see :class:`support.ZooModels`)."""
    return ZooModels(tmp_path_factory.mktemp("zoo-models"))


@pytest.fixture
def cached_zoo_build(zoo_models, monkeypatch) -> ZooModels:
    """``sqnxt_compiler.zoo.build`` answered from the session's zoo models, so
    ``zoo:NAME`` (which the frontend resolves through that attribute) is built once per
    session however many tests compile it."""
    import sqnxt_compiler.zoo

    monkeypatch.setattr(sqnxt_compiler.zoo, "build", zoo_models.build)
    return zoo_models


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
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, prog_name="sqnxtc")
    return _run


