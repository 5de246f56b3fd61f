"""``sqnxtc sim`` (the cost model's cycles against the timing simulator's, per layer),
``sqnxtc check --program`` (the lowered program in the functional simulator against
onnxruntime) and the target fields the simulator reads (``program.queue_depth``,
``dram.channels``)."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

from support import ROOT, inferred_model, rand
from test_program_lower import small_net, target

from sqnxt_compiler import driver
from sqnxt_compiler.driver import lowered_pipeline
from sqnxt_compiler.diagnostics import ExitCode
from sqnxt_compiler.program.timing import simulate
from sqnxt_compiler.targets import load_target

TARGETS = ("pe16x16", "pe8x8")
TOTAL = re.compile(r"^total: analytical (\d+) cycles \(sum of the layers\), simulated (\d+) cycles, "
                   r"ratio (\S+); (\d+) of (\d+) layers within \+/-3%$", re.M)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("sim") / "small.onnx"
    onnx.save(small_net(), str(p))
    return str(p)


def _layers(graph):
    return [op.attrs["schedule"].schedule for op in graph.ops() if "schedule" in op.attrs]


def _table_rows(out: str) -> list[list[str]]:
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("layer "))
    end = next(i for i, ln in enumerate(lines) if ln.startswith("total: "))
    return [ln.split() for ln in lines[start + 1:end]]


@pytest.mark.parametrize("tname", TARGETS)
def test_sim_table_and_totals(cli, model_path, tname, tmp_path):
    r = cli("sim", model_path, "-t", tname, "-j", "1")
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    # the schedule of the same compile: every layer listed, analytical = its cycles
    sched = json.loads(cli("compile", model_path, "-t", tname, "-j", "1", "--emit", "schedule", "-o", "-").stdout)
    rows = _table_rows(r.stdout)
    assert [row[0] for row in rows] == [L["layer"] for L in sched["layers"]]
    assert [int(row[2]) for row in rows] == [L["cost"]["total_cycles"] for L in sched["layers"]]
    assert [row[1] for row in rows] == [L["kind"] for L in sched["layers"]]
    (ana, simulated, ratio, within, n), = TOTAL.findall(r.stdout)
    assert int(ana) == sum(L["cost"]["total_cycles"] for L in sched["layers"]) == sched["totals"]["total_cycles"]
    assert int(n) == len(rows) == len(sched["layers"])
    # the simulated total is timing.simulate of the lowered program, called directly
    tgt = load_target(tname)
    res = driver.compile(small_net(), target=tgt, pipeline=lowered_pipeline("default", tgt, {"jobs": 1}, None))
    low = res.graph.attrs["program"].lowered
    timing = simulate(low.program, tgt)
    assert int(simulated) == timing.total_cycles
    assert ratio == f"{timing.total_cycles / int(ana):.3f}"
    assert int(within) == sum(abs(lay.cycles / s.cost.total_cycles - 1) <= 0.03
                              for lay, s in zip(timing.layers, _layers(res.graph)))
    assert len(rows) == len(timing.layers)
    # simulated per layer: the layer's end - start, rounded
    assert [int(row[3]) for row in rows] == [round(lay.cycles) for lay in timing.layers]


def test_sim_trace_json_and_determinism(cli, model_path, tmp_path):
    outs = []
    for k in range(2):
        trace, js = tmp_path / f"t{k}.json", tmp_path / f"s{k}.json"
        r = cli("sim", model_path, "-t", "pe16x16", "-j", "1", "--trace", trace, "--json", js)
        assert r.exit_code == 0, r.stderr
        outs.append((r.stdout, trace.read_bytes(), js.read_bytes()))
    assert outs[0] == outs[1]                                  # byte-identical
    stdout, trace_bytes, js_bytes = outs[0]
    trace = json.loads(trace_bytes)
    names = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    for engine in ("load", "compute", "store"):
        assert list(names.values()).count(engine) == 1         # one track per engine
    assert "DRAM" in names.values()
    doc = json.loads(js_bytes)
    assert {"format", "model", "target", "fingerprint", "activation_home", "pipeline", "queue_depth",
            "dram_channels", "instructions", "tolerance", "layers", "total"} <= set(doc)
    assert doc["target"] == "pe16x16" and doc["queue_depth"] == 256 and doc["dram_channels"] == 1
    assert doc["fingerprint"] == f"sha256:{load_target('pe16x16').fingerprint()}"
    L = doc["layers"][0]
    assert {"index", "name", "op", "kind", "analytical_cycles", "simulated_cycles", "ratio", "within", "start",
            "end", "instructions", "busy", "wait"} <= set(L)
    assert set(L["wait"]) == {"load", "compute", "store"}
    assert set(L["wait"]["compute"]) == {"load", "store", "fetch"}
    tot = doc["total"]
    assert tot["analytical_cycles"] == sum(x["analytical_cycles"] for x in doc["layers"])
    assert tot["simulated_cycles"] == trace["otherData"]["total_cycles"]
    assert tot["layers"] == len(doc["layers"]) == len(_table_rows(stdout))
    assert tot["within"] == sum(x["within"] for x in doc["layers"])
    for x in doc["layers"]:
        assert x["ratio"] == pytest.approx(_frac(x["simulated_cycles"]) / x["analytical_cycles"], abs=1e-6)


def _frac(v) -> float:
    if isinstance(v, int):
        return float(v)
    a, b = v.split("/")
    return int(a) / int(b)


def test_sim_layers_limit(cli, model_path):
    r = cli("sim", model_path, "-t", "pe16x16", "-j", "1", "--layers", "3")
    assert r.exit_code == 0, r.stderr
    rows = _table_rows(r.stdout)
    assert len(rows) == 3 and "the 3 layers of 9 with the largest |ratio - 1|" in r.stdout
    every = _table_rows(cli("sim", model_path, "-t", "pe16x16", "-j", "1", "--layers", "all").stdout)
    worst = sorted(every, key=lambda row: -abs(float(row[4]) - 1))[:3]
    assert {row[0] for row in rows} == {row[0] for row in worst}
    assert TOTAL.findall(r.stdout)[0][4] == str(len(every))     # totals cover every layer
    bad = cli("sim", model_path, "-t", "pe16x16", "--layers", "0")
    assert bad.exit_code == int(ExitCode.USAGE)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "sqnxt_compiler", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT)


def _one_error_line(p, code):
    assert p.returncode == int(code), p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqnxtc: error: "), p.stderr
    assert "Traceback" not in p.stderr


def concat_net():
    """A conv's output concatenated with itself: one tensor cannot be stored into two
    slices of the concat, so the concat is not lowered (docs/isa.md, "Lowering of each
    layer kind")."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"]), helper.make_node("Concat", ["a", "a"], ["y"], axis=1)]
    return inferred_model(nodes, [("x", [1, 8, 6, 6])], ["y"], [("wa", rand(rng, 8, 8, 1, 1))])


def test_sim_unlowerable_model_is_one_line_exit_4(tmp_path):
    m = tmp_path / "concat.onnx"
    onnx.save(concat_net(), str(m))
    trace, js = tmp_path / "t.json", tmp_path / "s.json"
    p = _run("sim", m, "-t", "pe16x16", "-j", "1", "--trace", trace, "--json", js)
    _one_error_line(p, ExitCode.UNSUPPORTED)
    assert "cannot lower to a program" in p.stderr and "not lowered" in p.stderr
    assert p.stdout == ""
    assert sorted(x.name for x in tmp_path.iterdir()) == ["concat.onnx"]     # no partial output


def test_sim_missing_file_is_bad_input(tmp_path):
    p = _run("sim", tmp_path / "nope.onnx", "-t", "pe16x16")
    _one_error_line(p, ExitCode.BAD_INPUT)
    assert "nope.onnx" in p.stderr


def test_sim_needs_a_target(cli, model_path):
    r = cli("sim", model_path)
    assert r.exit_code == int(ExitCode.USAGE)


@pytest.mark.parametrize("home", ["planned", "dram"])
def test_check_program_passes(cli, model_path, home):
    r = cli("check", model_path, "-t", "pe16x16", "--program", "--activation-home", home, "--samples", "1")
    assert r.exit_code == 0, r.stderr
    assert "functional simulator" in r.stdout and "PASS" in r.stdout


@pytest.mark.parametrize("args, words", [
    (("--tiled",), "--tiled"),
])
def test_check_program_usage_errors(tmp_path, model_path, args, words):
    p = _run("check", model_path, "-t", "pe16x16", "--program", *args)
    _one_error_line(p, ExitCode.USAGE)
    assert words in p.stderr


def test_check_program_needs_a_target(model_path):
    p = _run("check", model_path, "--program")
    _one_error_line(p, ExitCode.USAGE)


# ---- the target fields ----------------------------------------------------------------------

def test_targets_show_lists_the_program_fields(cli):
    out = cli("targets", "show", "pe16x16").stdout
    assert re.search(r"(?m)^\[program\]\n  queue_depth\s+256 instructions", out)
    assert re.search(r"(?m)^  channels\s+1 channels", out)
    t = load_target("pe16x16")
    assert (t.queue_depth, t.dram_channels) == (256, 1)


def _target_file(tmp_path, value: str, key: str = "queue_depth", name: str = "pe16x16") -> str:
    """The bundled target with ``key`` (``queue_depth`` of [program], ``channels`` of
    [dram]) set to ``value``, as a file."""
    text = (ROOT / "targets" / f"{name}.toml").read_text()
    text, n = re.subn(rf"(?m)^{key} = \S+", f"{key} = {value}", text)
    assert n == 1, key
    p = tmp_path / "t.toml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("value, field", [("0", "program.queue_depth"), ("1.5", "program.queue_depth")])
def test_bad_queue_depth_is_a_bad_target(tmp_path, model_path, value, field):
    p = _run("sim", model_path, "-t", _target_file(tmp_path, value))
    _one_error_line(p, ExitCode.BAD_TARGET)
    assert f"field '{field}'" in p.stderr and "t.toml" in p.stderr


def test_bad_channels_is_a_bad_target(tmp_path):
    r = _run("targets", "show", _target_file(tmp_path, "0", "channels"))
    _one_error_line(r, ExitCode.BAD_TARGET)
    assert "field 'dram.channels'" in r.stderr


def test_queue_depth_1_stalls_fetch(cli, model_path, tmp_path):
    """pe8x8 (planned): queues of 1 instruction stall fetch (the engines wait for it), never
    shortening the program; here the stalls hide behind the DMA (the loads run ahead of
    their steps: docs/isa.md, "Load placement"), so the total may stay the same.
    tests/test_timing.py lengthens a program by its queue depth, by hand."""
    base = cli("sim", model_path, "-t", "pe8x8", "-j", "1", "--json", tmp_path / "a.json")
    one = cli("sim", model_path, "-t", _target_file(tmp_path, "1", name="pe8x8"), "-j", "1",
              "--json", tmp_path / "b.json")
    assert base.exit_code == 0 and one.exit_code == 0, one.stderr
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["queue_depth"] == 1 and "queue depth 1," in one.stdout
    # the schedule is the same (the cost model reads no queue), the simulation is not
    assert b["total"]["analytical_cycles"] == a["total"]["analytical_cycles"]
    assert b["total"]["simulated_cycles"] >= a["total"]["simulated_cycles"]
    fetch = sum(_frac(w) for e in ("load", "compute", "store") for w in [b["total"]["wait"][e]["fetch"]])
    assert fetch > 0
    assert all(_frac(a["total"]["wait"][e]["fetch"]) == 0 for e in ("load", "compute", "store"))


def test_two_channels_simulate(cli, model_path, tmp_path):
    p = _target_file(tmp_path, "2", "channels")
    r = cli("sim", model_path, "-t", p, "-j", "1", "--json", tmp_path / "c.json")
    assert r.exit_code == 0, r.stderr
    assert "2 DRAM channels" in r.stdout
    assert json.loads((tmp_path / "c.json").read_text())["dram_channels"] == 2


def test_default_target_is_the_cost_models_machine():
    t = target("pe8x8", "dram")
    assert t.queue_depth == 256 and t.dram_channels == 1


def test_sim_output_path_errors_come_first(tmp_path, model_path):
    p = _run("sim", model_path, "-t", "pe16x16", "--trace", tmp_path)           # a directory
    _one_error_line(p, ExitCode.OUTPUT)
    p = _run("sim", model_path, "-t", "pe16x16", "--json", "-")
    _one_error_line(p, ExitCode.USAGE)
    same = tmp_path / "x.json"
    p = _run("sim", model_path, "-t", "pe16x16", "--json", same, "--trace", same)
    _one_error_line(p, ExitCode.USAGE)
    assert not same.exists()
