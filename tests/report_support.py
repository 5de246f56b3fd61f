"""Helpers shared by the report tests (no tests here): a small network that exercises every
layer kind, small targets, and one cached compile + render of every output format, which
validates each schedule document it produces against the JSON Schema.  Files go to a
directory of this test process (``tempfile.mkdtemp``), removed when the process ends."""
from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import jsonschema
import numpy as np
from onnx import helper

from support import ROOT, make_model
from sqnxt_compiler import driver
from sqnxt_compiler.report.formats import FORMATS
from sqnxt_compiler.report.schedule_json import schema
from sqnxt_compiler.targets import load_target

WORK = Path(tempfile.mkdtemp(prefix="sqnxtc-report-tests-"))
atexit.register(shutil.rmtree, WORK, True)
VALIDATED: list[str] = []   # "source on target (objective)" of every document validated


def validator():
    return jsonschema.Draft202012Validator(schema())


def validate(doc: dict) -> None:
    errors = sorted(validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{e.json_path}: {e.message}" for e in errors[:5])
    VALIDATED.append(f"{doc['model']['source']} on {doc['target']['name']} "
                     f"({doc['options']['objective']})")


# ---- a small network with every kind of layer ------------------------------------------
def tiny_net(seed: int = 0, width: int = 24):
    """input 1x8x23x23 -> conv 3x3/2 (no bias) + BN + Relu -> depthwise 3x3 (bias) ->
    grouped 1x1 (g4, bias) -> Add -> MaxPool 3x3/2 ceil -> conv 3x3 (no bias) -> GAP ->
    Flatten -> Gemm (bias) -> Softmax (not modelled).  Parameters after fold-bn (conv1
    gains a K bias): see TINY_PARAMS."""
    r = np.random.default_rng(seed)
    w = width

    def f(*s):
        return r.standard_normal(s).astype(np.float32) * 0.1

    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "b", "m", "v"], ["bn1"], name="bn1"),
        helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wd", "bd"], ["dw"], name="dw", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], group=w),
        helper.make_node("Conv", ["dw", "wg", "bg"], ["gc"], name="gconv", kernel_shape=[1, 1], group=4),
        helper.make_node("Add", ["r1", "gc"], ["a"], name="add"),
        helper.make_node("MaxPool", ["a"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                         ceil_mode=1),
        helper.make_node("Conv", ["p", "w2"], ["c2"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["fl"], name="flatten"),
        helper.make_node("Gemm", ["fl", "wf", "bf"], ["fc"], name="fc", transB=1),
        helper.make_node("Softmax", ["fc"], ["y"], name="softmax", axis=1),
    ]
    inits = [("w1", f(w, 8, 3, 3)), ("g", np.abs(f(w)) + 1), ("b", f(w)), ("m", f(w)),
             ("v", np.abs(f(w)) + 1), ("wd", f(w, 1, 3, 3)), ("bd", f(w)),
             ("wg", f(w, w // 4, 1, 1)), ("bg", f(w)), ("w2", f(40, w, 3, 3)),
             ("wf", f(10, 40)), ("bf", f(10))]
    return make_model(nodes, [("x", [1, 8, 23, 23])], [("y", [1, 10])], inits, name="tiny")


def tiny_params(width: int = 24) -> int:
    """The params rule by hand: conv/fc weights + biases after fold-bn (conv1 gets a bias)."""
    w = width
    return (w * 8 * 9 + w) + (w * 9 + w) + (w * (w // 4) + w) + 40 * w * 9 + (10 * 40 + 10)


def _put(p: Path, data: bytes) -> str:
    """Write ``p`` atomically unless it already holds ``data``."""
    if not (p.exists() and p.read_bytes() == data):
        fd, tmp = tempfile.mkstemp(dir=WORK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, p)
    return str(p)


def tiny_path(seed: int = 0, width: int = 24) -> str:
    return _put(WORK / f"tiny_{seed}_{width}.onnx", tiny_net(seed, width).SerializeToString())


def small_target(buffer_bytes: int, name: str) -> str:
    """pe8x8 with another global-buffer size, as a .toml file; returns its path."""
    text = (ROOT / "targets" / "pe8x8.toml").read_text()
    text = re.sub(r'(?m)^name = .*$', f'name = "{name}"', text)
    text = re.sub(r'(?m)^global_buffer_bytes = \d+', f"global_buffer_bytes = {buffer_bytes}", text)
    return _put(WORK / f"{name}.toml", text.encode())


# ---- one compile, every format ------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def outputs(spec: str, target: str, objective: str = "cycles") -> tuple[dict, dict, object]:
    """Compile ``spec`` for ``target`` through the driver and render every --emit format as
    ``sqnxtc compile`` does: returns (texts by format name, the parsed schedule.json, the
    NetworkSchedule).  The schedule document is validated against the schema.  Cached per
    arguments (content checks only: a test comparing two compiles must call the driver)."""
    res = driver.compile(spec, target=load_target(target), schedule={"objective": objective})
    texts = driver.render(res, renderable(res))
    doc = json.loads(texts["schedule"])
    validate(doc)
    return texts, doc, res.network


def renderable(res) -> list[str]:
    """Every --emit format ``res`` can give: all of them, but ``program`` only when the
    pipeline lowered (by default only with driver.LOWER_BY_DEFAULT)."""
    return [n for n, f in FORMATS.items() if not f.needs_program or res.program is not None]


def fresh_solves(fn):
    """Run ``fn()`` with every in-process scheduling cache cleared first; return (its
    result, the number of distinct layers the solver really solved during it).  A test
    that compares two compiles runs the second through this and asserts solves > 0, so it
    never compares a cache with itself."""
    from sqnxt_compiler.schedule import solver

    solver.clear_cache()
    before = solver.STATS["solved"]
    out = fn()
    return out, solver.STATS["solved"] - before
