"""Fuzzing (hypothesis), on a bounded budget in CI and a longer one on request:

* **random valid CNNs** (tests/fuzz_nets.py: convs dense, grouped, depthwise and dilated,
  every auto_pad mode, pools with ceil mode, BN, activations, residual adds, concats, a
  classifier head; opsets 11-18): the compiled IR must match onnxruntime, and the network
  scheduled on a small target must run tile by tile with the cost model's counts and the
  plain executor's values;
* **odd-sized nets rich in pools** (``pool_net_specs``: 15x15 to 41x41, every combination
  of ceil mode, ``count_include_pad`` and asymmetric pads, residual adds, concats) compiled
  on the bundled targets, which plan the network: the plan must verify and the IR match
  onnxruntime (the shape of net that once crashed CP-SAT inside the planner);
* **byte-level mutants of real exports**: every outcome of ``sqnxtc compile -o DIR`` is
  exit 0 with every output, or a documented non-zero exit (never 70) with one line on
  stderr and nothing left behind.

Budget: ``--fuzz-examples N`` (default 270 nets, 30 odd-sized pool nets and 80 mutants of
each of 3 exports, about 30 s on one core; e.g. ``./scripts/test.sh tests/test_fuzz.py --fuzz-examples 2000 -n 0`` for a long
run). The default run is derandomized (the same examples every time, so CI is
reproducible); a run with ``--fuzz-examples`` draws new ones. A failing example is printed
as its spec; keep it as an ``@example`` below.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fuzz_nets import build, mutate, net_specs, pool_net_specs
from support import ROOT
from tiled_support import assert_close_to_plain, assert_invariants
from sqnxt_compiler import driver
from sqnxt_compiler.diagnostics import ExitCode, UnsupportedError
from sqnxt_compiler.reference.check import check, random_inputs
from sqnxt_compiler.reference.executor import run
from sqnxt_compiler.reference.tiled import TOLERANCES, execute_tiled, run_tiled
from sqnxt_compiler.targets import load_target

DOCUMENTED = {int(c) for c in ExitCode} - {int(ExitCode.INTERNAL), 0}
MUTANT_SOURCES = ["mixnet_ts13.onnx", "shufflenetv1_dynamo18.onnx", "ghostnet_ts13.onnx"]


def budget(config, default: int) -> dict:
    """hypothesis settings for ``default`` examples, or ``--fuzz-examples`` of them."""
    n = config.getoption("--fuzz-examples")
    common = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))
    if n is None:
        return dict(max_examples=default, derandomize=True, **common)
    return dict(max_examples=n, derandomize=False, **common)


def _target(name: str):
    """pe8x8, or a 4x4 array with a 1 KB buffer (small, ragged tiles, split channels) with
    activations through DRAM or planned."""
    t = load_target("pe8x8")
    if name == "pe8x8":
        return t
    return dataclasses.replace(t, name=name, pe_rows=4, pe_cols=4, rf_words_per_pe=4, pipeline_fill_cycles=8,
                               global_buffer_bytes=1024, port_words_per_cycle=4, dram_latency_cycles=10,
                               activation_home=name.split("-")[1])


def _fuzz_nets(spec, target_name, int16):
    model = build(spec)
    target = _target(target_name)
    try:
        res = driver.compile((model, "fuzz.onnx"), pipeline="default,schedule", target=target)
    except UnsupportedError as exc:  # documented limits a valid ONNX graph can hit
        assert "padding is negative" in str(exc) or "onnxruntime does not run it" in str(exc), (spec, str(exc))
        return
    rep = check(res.graph, res.model, "fuzz.onnx", samples=1)
    assert rep.ok, (spec, rep.format())
    feeds = random_inputs(res.graph, 0)
    r = execute_tiled(res.graph, feeds, trace=True)
    assert_close_to_plain(r.outputs, run(res.graph, feeds))
    assert_invariants(r.layers, res.graph)
    if int16:
        rtol, atol = TOLERANCES["int16"]
        rep = check(res.graph, res.model, "fuzz.onnx", samples=1, rtol=rtol, atol=atol,
                    executor=lambda g, f: run_tiled(g, f, precision="int16"))
        assert rep.ok, (spec, target_name, rep.format())


#: Nets that once failed (kept as regression examples).
NET_REGRESSIONS = [
    # a dilated conv with auto_pad SAME: onnxruntime cannot run it; `check` died with exit 70
    {"opset": 11, "input": [1, 4, 4], "layers": [
        {"op": "conv", "K": 1, "groups": 1, "bias": False, "k": 2, "s": 1, "dil": 2, "auto": "SAME_UPPER",
         "pads": [0, 0, 0, 0], "ceil": False, "out": [4, 4]}]},
]


def test_random_cnns_match_onnxruntime_and_the_cost_model(request):
    test = given(spec=net_specs(), target_name=st.sampled_from(("pe8x8", "tiny-dram", "tiny-planned")),
                 int16=st.booleans())(settings(**budget(request.config, 270))(_fuzz_nets))
    for spec in NET_REGRESSIONS:
        test = example(spec=spec, target_name="pe8x8", int16=False)(test)
    test()


def _planned_pool_net(spec, target_name):
    """Compile on a bundled (planned) target: every plan is verified inside the compile
    (an unsound one is exit 70), a CP-SAT failure would be exit 6 or 70: neither may happen."""
    target = load_target(target_name)
    assert target.activation_home == "planned"
    try:
        res = driver.compile((build(spec), "fuzz.onnx"), pipeline="default,schedule", target=target)
    except UnsupportedError as exc:  # documented limits a valid ONNX graph can hit
        assert "padding is negative" in str(exc) or "onnxruntime does not run it" in str(exc), (spec, str(exc))
        return
    assert res.graph.attrs["plan"].status == "optimal", spec
    rep = check(res.graph, res.model, "fuzz.onnx", samples=1)
    assert rep.ok, (spec, rep.format())


def _conv(K, k, pads, out):
    return {"op": "conv", "K": K, "groups": 1, "bias": False, "k": k, "s": 1, "dil": 1, "auto": "NOTSET",
            "pads": pads, "ceil": False, "out": out}


def _pool(op, k, s, pads, ceil, count_include_pad, out):
    return {"op": op, "count_include_pad": count_include_pad, "k": k, "s": s, "dil": 1, "auto": "NOTSET",
            "pads": pads, "ceil": ceil, "out": out}


#: Pool nets that once failed (kept as regression examples).
POOL_NET_REGRESSIONS = [
    # the shape of tests/fixtures/repro/cpsat_crash_g1088.onnx: CP-SAT raised IndexError from its
    # presolve (exit 70) on the planner's solve of the 1x1 conv 54 -> 6 on 9x9 with its input and
    # output resident, started from a hint that named only the decision variables
    {"opset": 11, "input": [8, 37, 37], "layers": [
        _conv(54, 3, [0, 0, 0, 0], [35, 35]), _pool("maxpool", 3, 2, [1, 0, 1, 0], False, False, [18, 17]),
        _pool("avgpool", 1, 2, [0, 0, 0, 0], False, True, [9, 9]), _conv(54, 3, [1, 1, 1, 1], [9, 9]),
        {"op": "add", "with": 3}, _conv(6, 1, [0, 0, 0, 0], [9, 9]), {"op": "relu"},
        _conv(2, 3, [1, 1, 1, 1], [9, 9]), {"op": "concat", "with": 4},
        _pool("avgpool", 4, 3, [0, 3, 3, 0], True, True, [3, 4]), {"op": "gap_fc", "classes": 6}]},
]


def test_odd_sized_pool_nets_plan_on_the_bundled_targets(request):
    test = given(spec=pool_net_specs(), target_name=st.sampled_from(("pe16x16", "pe8x8")))(
        settings(**budget(request.config, 30))(_planned_pool_net))
    for spec in POOL_NET_REGRESSIONS:
        test = example(spec=spec, target_name="pe16x16")(test)
    test()


EDITS = st.lists(st.tuples(st.sampled_from(("set", "set", "set", "insert", "delete", "truncate", "duplicate")),
                           st.floats(0, 1, allow_nan=False), st.integers(0, 255)), min_size=1, max_size=4)


def _mutant_outcome(tmp, source: str, edits) -> None:
    data = (ROOT / "tests" / "fixtures" / "modern" / source).read_bytes()
    work = Path(tempfile.mkdtemp(dir=tmp))
    model = work / "m.onnx"
    model.write_bytes(mutate(data, edits))
    out = work / "out"
    r = CliRunner().invoke(_main(), ["compile", str(model), "-t", "pe8x8", "-o", str(out)],
                           catch_exceptions=False)
    if r.exit_code == 0:
        assert sorted(os.listdir(out)) == ["ir.txt", "layers.csv", "loopnest.txt", "schedule.json",
                                           "summary.txt"], (source, edits)
    else:
        assert r.exit_code in DOCUMENTED, (source, edits, r.exit_code, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert lines and lines[-1].startswith("sqnxtc: error: ") and "Traceback" not in r.stderr, r.stderr
        assert [ln for ln in lines if not ln.startswith("sqnxtc: note: ")] == lines[-1:], r.stderr
        assert sorted(os.listdir(work)) == ["m.onnx"], (source, edits)
    shutil.rmtree(work)


def _main():
    from sqnxt_compiler.cli import main
    return main


#: Mutants that once ended with exit 70 (kept as regression cases).
MUTANT_REGRESSIONS = [
    # an initializer whose data disagrees with its dims: numpy's reshape error
    ("mixnet_ts13.onnx", [("set", 0.5822650865206723, 1)]),
    # an unknown tensor data type: ValueError from ONNX shape inference
    ("ghostnet_ts13.onnx", [("set", 0.13559515709602413, 29)]),
]


@pytest.mark.parametrize("source,edits", MUTANT_REGRESSIONS)
def test_mutants_that_once_failed(tmp_path, source, edits):
    _mutant_outcome(tmp_path, source, edits)


@pytest.mark.parametrize("source", MUTANT_SOURCES)
def test_mutated_real_exports_end_in_a_documented_way(request, tmp_path, source):
    per = budget(request.config, 80)

    @settings(**per)
    @given(edits=EDITS)
    @example(edits=[("truncate", 0.5, 0)])
    @example(edits=[("set", 0.0, 0xFF)])
    def one(edits):
        _mutant_outcome(tmp_path, source, edits)
    one()
