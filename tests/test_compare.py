"""sqnxtc compare: params, MACs, cycles and energy per model and target, normalized to the
best model of each column, as markdown, CSV and JSON; the figures are the schedules'."""
import csv
import io
import json

import pytest

from conftest import clear_process_caches
from report_support import outputs, tiny_params, tiny_path
from sqnxt_compiler.report.compare import csv_header

TARGETS = ("pe16x16", "pe8x8")


@pytest.fixture(scope="module")
def models():
    return [tiny_path(0, 24), tiny_path(1, 16)]


@pytest.fixture(scope="module")
def as_json(models):
    from click.testing import CliRunner

    from sqnxt_compiler.cli import main

    r = CliRunner().invoke(main, ["compare", *models, "-t", "pe16x16", "-t", "pe8x8",
                                  "--format", "json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_figures_are_the_schedules_and_params_follow_the_rule(models, as_json):
    assert as_json["format"] == "sqnxtc-compare" and as_json["targets"] == list(TARGETS)
    rows = as_json["models"]
    assert [r["model"] for r in rows] == models
    assert [r["params"] for r in rows] == [tiny_params(24), tiny_params(16)]
    for r, m in zip(rows, models):
        for t in TARGETS:
            doc = outputs(m, t, "cycles")[1]
            assert r["macs"] == sum(L["cost"]["macs"] for L in doc["layers"] if L["kind"] in ("conv", "fc"))
            assert r["targets"][t]["total_cycles"] == doc["totals"]["total_cycles"]
            assert r["targets"][t]["energy"] == doc["totals"]["energy"]["total"]


def test_each_column_is_normalized_to_its_best_model(as_json):
    rows = as_json["models"]
    cols = [("params", lambda r: r["params"], lambda r: r["params_norm"]),
            ("macs", lambda r: r["macs"], lambda r: r["macs_norm"])]
    for t in TARGETS:
        cols += [(t + " cycles", lambda r, t=t: r["targets"][t]["total_cycles"],
                  lambda r, t=t: r["targets"][t]["cycles_norm"]),
                 (t + " energy", lambda r, t=t: r["targets"][t]["energy"],
                  lambda r, t=t: r["targets"][t]["energy_norm"])]
    for name, val, norm in cols:
        best = min(val(r) for r in rows)
        assert [norm(r) for r in rows] == [round(val(r) / best, 4) for r in rows], name
        assert min(norm(r) for r in rows) == 1.0, name
    # the narrower network is the best of every column here
    assert as_json["best"]["params"] == rows[1]["model"]
    assert as_json["best"]["targets"]["pe8x8"]["total_cycles"] == rows[1]["model"]


def test_csv_and_markdown_show_the_same_figures(cli, models, as_json, tmp_path):
    r = cli("compare", *models, "-t", "pe16x16", "-t", "pe8x8", "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == csv_header(list(TARGETS))
    for line, js in zip(rows[1:], as_json["models"]):
        assert line[:5] == [js["model"], str(js["params"]), str(js["params_norm"]), str(js["macs"]),
                            str(js["macs_norm"])]
        assert line[5:7] == [str(js["targets"]["pe16x16"]["total_cycles"]),
                             str(js["targets"]["pe16x16"]["cycles_norm"])]
    out = tmp_path / "t.md"
    r = cli("compare", *models, "-t", "pe16x16", "-t", "pe8x8", "-o", out)
    assert r.exit_code == 0 and r.stdout == ""
    md = out.read_text().splitlines()
    assert md[0].startswith("| model | params | x best | MACs | x best | pe16x16 cycles |")
    assert len([ln for ln in md if ln.startswith("| /")]) == 2
    body = md[2]
    js = as_json["models"][0]
    assert f"{js['targets']['pe16x16']['total_cycles']:,}" in body
    assert f"{js['targets']['pe16x16']['cycles_norm']:.2f}x" in body


def test_zoo_model_macs_equal_the_zoo_count():
    """compare's MACs are schedule.json's totals.macs: for a zoo model, the zoo's own
    count from the ONNX file (without bias MACs).  The row is the sweep task's."""
    from sqnxt_compiler.report.compare import compare_data
    from sqnxt_compiler.report.schedule_json import tool_versions
    from sqnxt_compiler.sweep.spec import Point, TargetPoint
    from sqnxt_compiler.sweep.task import run_point
    from sqnxt_compiler.zoo.registry import get_info

    doc = outputs("zoo:1.0-SqNxt-23", "pe16x16", "cycles")[1]
    row = run_point(Point("zoo:1.0-SqNxt-23", TargetPoint("pe16x16"), "cycles"), "k", None)["row"]
    data = compare_data({"zoo:1.0-SqNxt-23": {"pe16x16": row}}, ["pe16x16"], "cycles", tool_versions())
    got = data["models"][0]
    assert got["macs"] == get_info("1.0-SqNxt-23").macs == 277_999_808
    assert got["targets"]["pe16x16"]["total_cycles"] == doc["totals"]["total_cycles"]
    assert got["params"] == doc["model"]["params"] and got["graph"] == doc["model"]["graph"]
    assert got["params_norm"] == got["macs_norm"] == got["targets"]["pe16x16"]["cycles_norm"] == 1.0
    assert data["tool"] == doc["tool"]


def test_compare_rejects_bad_targets_and_models_in_one_line(cli, tmp_path):
    r = cli("compare", tiny_path(), "-t", "pe16x16", "-t", "pe16x16", "--format", "csv")
    assert r.exit_code == 0  # the same target twice is given once
    assert r.stdout.splitlines()[0] == ",".join(csv_header(["pe16x16"]))
    r = cli("compare", str(tmp_path / "missing.onnx"), "-t", "pe16x16")
    assert r.exit_code == 3 and len(r.stderr.strip().splitlines()) == 1
    r = cli("compare", tiny_path())
    assert r.exit_code == 2


def _fresh(cli, *args):
    """``sqnxtc compare ARGS`` with every in-process cache cleared first (no --cache-dir:
    no disk cache); (result, layers really solved)."""
    from sqnxt_compiler.schedule import solver

    clear_process_caches()
    before = solver.STATS["solved"]
    r = cli("compare", *args)
    return r, solver.STATS["solved"] - before


def test_compare_is_a_small_sweep_on_every_scheduler(cli, models, tmp_path):
    """One implementation: the same table serially (no Dask) and on a Dask LocalCluster of
    two threads, each from cold caches; and its figures are the rows `sqnxtc sweep` writes
    for the same models and targets."""
    args = [*models, "-t", "pe16x16", "-t", "pe8x8", "--format", "csv", "--no-progress"]
    serial, n1 = _fresh(cli, *args)
    dask, n2 = _fresh(cli, *args, "--scheduler", "inprocess", "--workers", "2")
    assert serial.exit_code == 0 and dask.exit_code == 0, serial.output + dask.output
    assert n1 > 0 and n2 > 0           # both solved: neither answered from the other's cache
    assert serial.stdout == dask.stdout
    r = cli("sweep", "-m", models[0], "-m", models[1], "-t", "pe16x16", "-t", "pe8x8",
            "--scheduler", "serial", "--no-progress", "-o", tmp_path / "sw")
    assert r.exit_code == 0, r.output
    swept = {(x["model"], x["target"]): x for x in csv.DictReader(open(tmp_path / "sw" / "sweep.csv"))}
    for line in list(csv.DictReader(io.StringIO(serial.stdout))):
        for t in TARGETS:
            x = swept[(line["model"], t)]
            assert (line[f"{t}_cycles"], line[f"{t}_energy"]) == (x["cycles"], x["energy"])
            assert (line["params"], line["macs"]) == (x["params"], x["macs"])


@pytest.mark.parametrize("scheduler", ["serial", "inprocess"])
def test_compare_stops_with_the_first_failing_model_in_order(cli, models, tmp_path, scheduler):
    bad = tmp_path / "nope.onnx"
    bad.write_bytes(b"not onnx")
    r = cli("compare", models[0], str(bad), str(tmp_path / "missing.onnx"), "-t", "pe8x8",
            "--scheduler", scheduler, *(["--workers", "2"] if scheduler == "inprocess" else []), "--no-progress")
    assert r.exit_code == 3 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqnxtc: error: ") and "nope.onnx" in lines[0], r.stderr


def test_compare_passes_its_flags_to_every_point(cli, models):
    """--activation-home and --objective reach each point: the figures are those of a
    compile of the model with the same options."""
    from sqnxt_compiler import driver
    from sqnxt_compiler.cli.options import load_target_with

    r = cli("compare", models[1], "-t", "pe8x8", "--activation-home", "planned", "--objective", "energy",
            "--format", "json", "--no-progress")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert got["objective"] == "energy"
    doc = driver.compile(models[1], target=load_target_with("pe8x8", "planned"),
                         schedule={"objective": "energy"}).document
    x = got["models"][0]["targets"]["pe8x8"]
    assert (x["total_cycles"], x["energy"], x["dram_words"]) == (
        doc["totals"]["total_cycles"], doc["totals"]["energy"]["total"], doc["totals"]["dram_words"]["total"])
    dram = driver.compile(models[1], target=load_target_with("pe8x8", "dram"),
                          schedule={"objective": "energy"}).document
    assert dram["totals"]["dram_words"]["total"] > x["dram_words"]   # the flag made a difference


def test_a_bad_scheduler_is_a_usage_error(cli, models):
    r = cli("compare", models[0], "-t", "pe8x8", "--scheduler", "mpi://x")
    assert r.exit_code == 2 and "--scheduler 'mpi://x'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("compare", models[0], "-t", "pe8x8", "--workers", "3")   # serial starts no workers
    assert r.exit_code == 2 and "--workers 3" in r.stderr and len(r.stderr.strip().splitlines()) == 1
