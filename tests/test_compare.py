"""sqnxtc compare: params, MACs, cycles and energy per model and target, normalized to the
best model of each column, as markdown, CSV and JSON; the figures are the schedules'."""
import csv
import io
import json

import pytest

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
    count from the ONNX file (without bias MACs)."""
    from sqnxt_compiler.report.compare import compare_data
    from sqnxt_compiler.zoo.registry import get_info

    doc = outputs("zoo:1.0-SqNxt-23", "pe16x16", "cycles")[1]
    row = compare_data({"zoo:1.0-SqNxt-23": {"pe16x16": doc}}, ["pe16x16"], "cycles")["models"][0]
    assert row["macs"] == get_info("1.0-SqNxt-23").macs == 277_999_808
    assert row["targets"]["pe16x16"]["total_cycles"] == doc["totals"]["total_cycles"]
    assert row["params_norm"] == row["macs_norm"] == row["targets"]["pe16x16"]["cycles_norm"] == 1.0


def test_compare_rejects_bad_targets_and_models_in_one_line(cli, tmp_path):
    r = cli("compare", tiny_path(), "-t", "pe16x16", "-t", "pe16x16", "--format", "csv")
    assert r.exit_code == 0  # the same target twice is given once
    assert r.stdout.splitlines()[0] == ",".join(csv_header(["pe16x16"]))
    r = cli("compare", str(tmp_path / "missing.onnx"), "-t", "pe16x16")
    assert r.exit_code == 3 and len(r.stderr.strip().splitlines()) == 1
    r = cli("compare", tiny_path())
    assert r.exit_code == 2
