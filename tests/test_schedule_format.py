"""schedule.json: the schema, the documentation, reading it back, and the agreement of
every output file (schedule.json, layers.csv, summary.txt, loopnest.txt) on the numbers."""
import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from report_support import (VALIDATED, fresh_solves, outputs, small_target, tiny_params,
                            tiny_path, validate, validator)
from sqnxt_compiler import driver
from sqnxt_compiler.diagnostics import InputError
from sqnxt_compiler.report.network import ENERGY_LEVELS
from sqnxt_compiler.report.schedule_json import FORMAT, VERSION, load_schedule, schema
from sqnxt_compiler.report.tables import HEADER, lookup

ROOT = Path(__file__).resolve().parent.parent

# Every (model, target, objective) the report tests compile: zoo models with plain,
# grouped and depthwise-free SqueezeNext blocks; the small network with every layer kind
# (depthwise, grouped, ceil-mode pool, add, gap, fc, a softmax: eltwise); a 1 KB
# buffer that forces a partial-sum spill (energy objective).
CASES = [
    ("zoo:1.0-SqNxt-23", "pe16x16", "cycles"),
    ("zoo:1.0-SqNxt-23", "pe8x8", "cycles"),
    ("zoo:1.0-G-SqNxt-23", "pe16x16", "energy"),
    ("tiny", "pe16x16", "edp"),
    ("tiny", "pe8x8", "cycles"),
    ("tiny", "pe8x8-1k", "energy"),
]


def case(spec, target, objective):
    spec = tiny_path() if spec == "tiny" else spec
    if target == "pe8x8-1k":
        target = small_target(1024, "pe8x8-1k")
    return outputs(spec, target, objective)


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def produced(request):
    return case(*request.param)


def test_the_schema_is_a_valid_draft_2020_12_schema_of_this_version():
    s = schema()
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["properties"]["version"]["const"] == VERSION
    assert s["properties"]["format"]["const"] == FORMAT


def test_every_schedule_validates_and_the_schema_is_strict(produced):
    _, doc, _ = produced
    validate(doc)
    # strict: an unknown field or a wrong type anywhere is an error
    bad = json.loads(json.dumps(doc))
    bad["layers"][0]["cost"]["surprise"] = 1
    assert not validator().is_valid(bad)
    bad = json.loads(json.dumps(doc))
    bad["layers"][0]["mapping"]["order"] = "xxyk"
    assert not validator().is_valid(bad)
    bad = json.loads(json.dumps(doc))
    bad["totals"]["total_cycles"] = -1
    assert not validator().is_valid(bad)


def test_every_case_was_validated():
    for c in CASES:
        case(*c)
    names = {v.split(" on ")[0] for v in VALIDATED}
    assert {"zoo:1.0-SqNxt-23", "zoo:1.0-G-SqNxt-23", tiny_path()} <= names
    assert {v.split(" on ")[1] for v in VALIDATED} >= {"pe16x16 (cycles)", "pe8x8 (cycles)",
                                                         "pe16x16 (energy)", "pe16x16 (edp)"}


def test_the_partial_sum_case_spills():
    _, doc, _ = case("tiny", "pe8x8-1k", "energy")
    spill = [L for L in doc["layers"] if L["cost"]["refetch"]["output_visits"] > 1]
    assert spill, "the 1 KB target no longer forces a partial-sum spill: pick another case"
    L = spill[0]
    assert L["cost"]["dram"]["psum_writes"] == L["cost"]["dram"]["psum_reads"] > 0


def _schema_properties(node, out):
    if isinstance(node, dict):
        for k, v in node.get("properties", {}).items():
            out.add(k)
            _schema_properties(v, out)
        for k in ("items", "additionalProperties", "oneOf", "$defs"):
            sub = node.get(k)
            if isinstance(sub, dict):
                for v in (sub.values() if k == "$defs" else [sub]):
                    _schema_properties(v, out)
            elif isinstance(sub, list):
                for v in sub:
                    _schema_properties(v, out)
    return out


def test_the_documentation_names_every_field_and_csv_column():
    doc = (ROOT / "docs" / "schedule-format.md").read_text()
    documented = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_.]*)`", doc))
    documented |= {part for d in documented for part in d.split(".")}
    missing = sorted(_schema_properties(schema(), set()) - documented)
    assert not missing, f"fields not in docs/schedule-format.md: {missing}"
    missing = sorted(set(HEADER) - documented)
    assert not missing, f"CSV columns not in docs/schedule-format.md: {missing}"
    assert f"version {VERSION}" in doc.lower()


def test_document_has_the_promised_top_level_facts(produced):
    _, doc, net = produced
    assert doc["format"] == FORMAT and doc["version"] == VERSION
    assert doc["tool"]["sqnxtc"] and doc["tool"]["ortools"]
    # the pipeline as it ran, the schedule pass's options spelled out, agreeing with "options"
    opts = ",".join(f"{k.replace('_', '-')}={str(v).lower()}" for k, v in
                    (("objective", doc["options"]["objective"]), ("time_limit", doc["options"]["time_limit"]),
                     ("fallback", doc["options"]["fallback"]),
                     ("measured_sparsity", doc["options"]["measured_sparsity"])))
    plan = ",plan-memory{network-time-limit=10.0}" if net.target.activation_home == "planned" else ""
    lower = ",lower-program" if driver.lowers_by_default() else ""
    assert doc["pipeline"] == "canonicalize,fold-bn,fuse-relu,fuse-add,fuse-pool,concat-in-place,schedule{" + opts + "}" + plan + lower
    assert doc["target"]["fields"]["array.pe_rows"] == net.target.pe_rows
    for L in doc["layers"]:
        c = L["cost"]
        assert c["total_cycles"] >= max(c["compute_cycles"], c["dma_cycles"]) or \
            not net.target.double_buffering
        assert [lp["loop"] for lp in L["loops"]] == list(L["mapping"]["order"])
        for lp in L["loops"]:
            assert (lp["count"] - 1) * lp["tile"] + lp["last"] == lp["bound"]
            assert 1 <= lp["last"] <= lp["tile"]
            assert lp["count"] == c["tiles_n"][lp["loop"]]


def test_tiny_params_follow_the_documented_rule():
    _, doc, _ = case("tiny", "pe8x8", "cycles")
    assert doc["model"]["params"] == tiny_params()
    assert doc["unmodelled"] == []      # its softmax is an eltwise layer
    assert next(L for L in doc["layers"] if L["op"] == "sqnxt.softmax")["shape"]["element"] == {
        "fn": "softmax", "ops": 2, "funcs": 1, "params": 0}


# ---- numbers agree between files -------------------------------------------------------
def _csv_rows(text):
    rows = list(csv.DictReader(io.StringIO(text)))
    return rows


def test_totals_equal_sums_over_layers_and_csv_and_summary(produced):
    texts, doc, _ = produced
    layers, tot = doc["layers"], doc["totals"]
    rows = _csv_rows(texts["csv"])
    assert list(rows[0].keys()) == list(HEADER)
    assert len(rows) == len(layers) == tot["layers"]

    def jsum(path, kinds=None):
        return sum(lookup(L, path) for L in layers if kinds is None or L["kind"] in kinds)

    def csum(col, kinds=None):
        return sum(int(r[col]) for r in rows if kinds is None or r["kind"] in kinds)

    for key, path, col in [("total_cycles", "cost.total_cycles", "total_cycles"),
                           ("compute_cycles", "cost.compute_cycles", "compute_cycles"),
                           ("dma_cycles", "cost.dma_cycles", "dma_cycles")]:
        assert tot[key] == jsum(path) == csum(col), key
    for lv in ENERGY_LEVELS + ("total",):
        assert tot["energy"][lv] == jsum(f"cost.energy.{lv}") == csum(f"energy_{lv}"), lv
    assert tot["energy"]["total"] == sum(tot["energy"][lv] for lv in ENERGY_LEVELS)
    for k in ("input_reads", "weight_reads", "output_writes", "psum_writes", "psum_reads", "total"):
        assert tot["dram_words"][k] == jsum(f"cost.dram.{k}") == csum(f"dram_{k}"), k
    mac = ("conv", "fc")
    assert tot["macs"] == jsum("cost.macs", mac) == csum("macs", mac)
    assert tot["macs"] + tot["element_ops"] == jsum("cost.macs") == csum("macs")
    assert tot["mac_layers"] == sum(1 for L in layers if L["kind"] in mac)
    assert tot["distinct_layers"] <= tot["layers"]
    assert tot["max_gap"] == max(float(r["gap"]) for r in rows)
    # every CSV cell is the JSON value of the same layer
    for L, r in zip(layers, rows):
        assert r["layer"] == L["layer"] and r["dataflow"] == L["mapping"]["dataflow"]
        assert int(r["tile_x"]) == L["mapping"]["tiles"]["x"] and r["order"] == L["mapping"]["order"]
        assert float(r["utilization"]) == L["cost"]["utilization"]
        assert int(r["buf_total_words"]) == L["cost"]["footprint"]["total"]
    # the terminal summary prints the same totals
    s = texts["summary"]
    assert f"total: {tot['total_cycles']} cycles ({tot['time_us']} us" in s
    assert f"utilization {tot['utilization']:.3f}" in s
    assert f"{tot['layers']} layers ({tot['distinct_layers']} distinct shapes)" in s
    for line in s.splitlines()[4:4 + min(10, len(layers))]:
        name, cyc = line.split()[0], int(line.split()[5])
        assert next(L for L in layers if L["layer"] == name)["cost"]["total_cycles"] == cyc
    # its stage line is the report's stage breakdown
    from sqnxt_compiler.report.plots import stages
    line = next(ln for ln in s.splitlines() if "by stage" in ln)
    assert line.split(": ", 1)[1] == ", ".join(
        f"{st['P']}: {100 * st['cycles'] / tot['total_cycles']:.1f}%" for st in stages(doc))
    # and so does the loop nest's network block
    assert f"cycles {tot['total_cycles']} (compute {tot['compute_cycles']}" in texts["loops"]


def _compile_files(cli, out, env=None):
    """``sqnxtc compile`` of the tiny net for pe8x8 into ``out``, in this process (caches
    cleared, solves counted) or, with ``env``, in a fresh process; returns the files."""
    args = ["compile", tiny_path(), "-t", "pe8x8", "-o", str(out) + "/"]
    if env is None:
        r, solved = fresh_solves(lambda: cli(*args))
        assert r.exit_code == 0 and solved >= 7, (r.output, solved)   # every layer really solved
    else:
        p = subprocess.run([sys.executable, "-c", "from sqnxt_compiler.cli import main; main()", *args], env=env,
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    return {f.name: f.read_bytes() for f in sorted(Path(out).iterdir())}


def test_outputs_are_deterministic(cli, tmp_path):
    """Same input, same options: byte-identical files, from compiles that each solve every
    layer (no cache answers the second) and from fresh processes with other hash seeds."""
    a = _compile_files(cli, tmp_path / "a")
    b = _compile_files(cli, tmp_path / "b")
    assert len(a) == (7 if driver.lowers_by_default() else 5) and a == b   # + program.s, program.bin
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        assert _compile_files(cli, tmp_path / f"p{seed}", env) == a


# ---- reading back ----------------------------------------------------------------------
def test_load_schedule_reads_back_what_compile_wrote(cli, tmp_path):
    p = tmp_path / "s.json"
    r = cli("compile", tiny_path(), "-t", "pe8x8", "--emit", "schedule", "-o", p)
    assert r.exit_code == 0, r.output
    doc = load_schedule(p)
    assert doc == json.loads(p.read_text())
    assert doc == outputs(tiny_path(), "pe8x8", "cycles")[1]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(version=1), "schedule format version 1 is not supported"),
    (lambda d: d.update(version=99), "schedule format version 99 is not supported"),
    (lambda d: d.update(format="timeloop-map"), "not a sqnxtc schedule (format 'timeloop-map'"),
    (lambda d: d.pop("layers"), "incomplete schedule: missing 'layers'"),
])
def test_load_schedule_rejects_other_versions_and_formats(tmp_path, mutate, message):
    doc = json.loads(json.dumps(outputs(tiny_path(), "pe8x8", "cycles")[1]))
    mutate(doc)
    p = tmp_path / "old.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(InputError) as ei:
        load_schedule(p)
    text = str(ei.value)
    assert text.startswith(f"{p}: ") and message in text and "\n" not in text
    if "version" in message:
        assert f"reads version {VERSION} only" in text


def test_load_schedule_rejects_non_json_and_missing(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(InputError, match="invalid JSON"):
        load_schedule(p)
    with pytest.raises(InputError, match="no such schedule file"):
        load_schedule(tmp_path / "none.json")
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="not UTF-8"):
        load_schedule(p)
