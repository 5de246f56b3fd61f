"""sqnxtc compile --target: the schedule pass attaches each layer's mapping, the outputs
agree with the cost model, and the run is deterministic."""
import json
import os

import pytest

from sqnxt_compiler.cost.model import evaluate
from sqnxt_compiler import driver
from sqnxt_compiler.ir import print_graph
from sqnxt_compiler.layers import layer_of
from sqnxt_compiler.report.network import collect
from sqnxt_compiler.report.schedule_json import VERSION
from sqnxt_compiler.targets import load_target


@pytest.fixture(scope="module")
def sqnxt23():
    t = load_target("pe16x16")
    return driver.compile("zoo:1.0-SqNxt-23", pipeline="default,schedule", target=t), t


def test_every_modelled_op_gets_a_schedule_that_the_cost_model_reproduces(sqnxt23):
    res, t = sqnxt23
    n = 0
    for op in res.graph.ops():
        layer = layer_of(op)
        if layer is None:
            assert "schedule" not in op.attrs
            continue
        s = op.attrs["schedule"].schedule
        # the op's layer, with the operand homes the memory plan gave it
        assert s.layer.shape_key() == layer.shape_key() and s.layer.epilogue == layer.epilogue
        assert s.status == "optimal" and s.gap == 0.0
        assert evaluate(s.layer, t, s.mapping) == s.cost  # the attached figures are the model's own
        assert s.cost.fits
        n += 1
    assert n == 113  # 111 conv (21 with their residual add fused, conv1 with pool1) + pool5 (gap) + fc


def test_ir_prints_the_schedule(sqnxt23):
    res, _ = sqnxt23
    text = print_graph(res.graph)
    conv1 = next(line for line in text.splitlines() if 'loc("conv1")' in line and "sqnxt.conv(" in line)
    assert "schedule = {cycles = " in conv1 and 'status = "optimal"' in conv1


def test_network_totals_are_sums_over_layers(sqnxt23):
    res, t = sqnxt23
    net = collect(res.graph, t)
    tot = net.totals()
    assert tot["total_cycles"] == sum(r.schedule.cost.total_cycles for r in net.scheduled)
    assert tot["energy"]["total"] == sum(tot["energy"][k] for k in ("mac", "rf", "array", "buffer", "dram"))
    assert tot["macs"] == 277_999_808  # the zoo's count without bias MACs (docs/zoo.md)
    assert 0 < tot["utilization"] <= 1


def test_jobs_change_how_fast_not_what(cli, tmp_path):
    """A planned compile solved serially (-j 1) and in two threads (-j 2, and the pass
    option spelled in the pipeline) writes the same bytes; each run really solves."""
    from report_support import fresh_solves

    outs = []
    for how in (["-j", "1"], ["-j", "2"], ["--passes", "default,schedule{jobs=2}"]):
        d = tmp_path / str(len(outs))
        r, solved = fresh_solves(lambda: cli("compile", "zoo:1.0-SqNxt-23", "-t", "pe16x16", *how,
                                             "-o", str(d) + "/"))
        assert r.exit_code == 0, r.output
        assert solved > 100     # layers alone and the planner's candidates, none cached
        outs.append({f: (d / f).read_bytes() for f in os.listdir(d)})
    assert outs[0] == outs[1] == outs[2]
    assert b'"plan"' in outs[0]["schedule.json"]
    for bad, code in ((["-j", "-1"], 2), (["--passes", "default,schedule{jobs=-2}"], 2)):
        r = cli("compile", "zoo:1.0-SqNxt-23", "-t", "pe16x16", *bad)
        assert r.exit_code == code and "jobs" in r.output and "Traceback" not in r.output, r.output


def test_compile_writes_all_formats_deterministically(cli, tmp_path):
    from report_support import fresh_solves

    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        r, solved = fresh_solves(lambda d=d: cli("compile", "zoo:1.0-SqNxt-23", "--target", "pe8x8",
                                                 "-o", str(d) + "/"))
        assert r.exit_code == 0, r.output
        assert solved > 0   # each compile really schedules: no cache answers the second
        assert "total:" in r.stdout
    program = ["program.bin", "program.s"] if driver.lowers_by_default() else []
    assert sorted(os.listdir(a)) == sorted(["ir.txt", "layers.csv", "loopnest.txt", "schedule.json", "summary.txt"]
                                           + program)
    for f in os.listdir(a):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    doc = json.loads((a / "schedule.json").read_text())
    assert doc["format"] == "sqnxtc-schedule" and doc["version"] == VERSION
    assert doc["target"]["name"] == "pe8x8"
    assert doc["totals"]["total_cycles"] == sum(l["cost"]["total_cycles"] for l in doc["layers"])


def test_emit_one_format_to_a_file(cli, tmp_path):
    out = tmp_path / "s.json"
    r = cli("compile", "zoo:1.0-SqNxt-23", "--target", "pe16x16", "--emit", "schedule", "-o", out)
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["options"]["objective"] == "cycles"


def test_objective_energy_never_costs_more_energy(cli):
    a = json.loads(cli("compile", "zoo:1.0-SqNxt-23", "-t", "pe16x16", "--emit", "schedule").stdout)
    b = json.loads(cli("compile", "zoo:1.0-SqNxt-23", "-t", "pe16x16", "--emit", "schedule",
                       "--objective", "energy").stdout)
    for la, lb in zip(a["layers"], b["layers"]):
        assert lb["cost"]["energy"]["total"] <= la["cost"]["energy"]["total"]
        assert la["cost"]["total_cycles"] <= lb["cost"]["total_cycles"]


@pytest.mark.parametrize("args,code,text", [
    (["--passes", "default,schedule"], 2, "no --target"),
    (["--target", "nosuch"], 5, "unknown target 'nosuch'"),
    (["--emit", "schedule"], 2, "needs --target"),
])
def test_compile_option_errors(cli, args, code, text):
    r = cli("compile", "zoo:1.0-SqNxt-23", *args)
    assert r.exit_code == code
    assert text in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_output_path_that_is_a_file_is_refused_for_several_formats(cli, tmp_path):
    f = tmp_path / "x"
    f.write_text("keep")
    r = cli("compile", "zoo:1.0-SqNxt-23", "-t", "pe16x16", "-o", f)
    assert r.exit_code == 7 and "not a directory" in r.stderr
    assert f.read_text() == "keep"
