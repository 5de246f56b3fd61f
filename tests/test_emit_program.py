"""``sqnxtc compile --emit program`` (program.s, program.bin), the driver's switch that puts
``lower-program`` in the default pipeline, and the simulated cycles a lowered compile
carries: ``schedule.json`` (``layers[].simulated``, ``totals.simulated``), the summary, the
goldens (format 3) and ``sqnxtc regress``."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction

import onnx
import pytest

from report_support import validate
from support import ROOT
from test_program_lower import small_net, target

from sqnxt_compiler import driver, regress
from sqnxt_compiler.diagnostics import ExitCode, UsageError
from sqnxt_compiler.program import decode, encode, format_program, parse_program
from sqnxt_compiler.program.timing import simulate
from sqnxt_compiler.report.golden import FORMAT, compare, format_golden, golden_of, parse_golden
from sqnxt_compiler.targets import load_target

PROGRAM = ["program.bin", "program.s"]
OTHERS = ["ir.txt", "layers.csv", "loopnest.txt", "schedule.json", "summary.txt"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("emit") / "small.onnx"
    onnx.save(small_net(), str(p))
    return str(p)


def _run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "sqnxt_compiler", *map(str, args)], capture_output=True,
                          cwd=cwd)


def _one_error_line(p, code):
    assert p.returncode == int(code), p.stderr
    lines = p.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqnxtc: error: "), p.stderr
    assert "Traceback" not in p.stderr.decode()


def _ls(d):
    return sorted(x.name for x in d.iterdir())


# ---- --emit program --------------------------------------------------------------------
def test_emit_program_round_trips_through_disasm_and_asm(cli, model_path, tmp_path):
    out = tmp_path / "out"
    r = cli("compile", model_path, "-t", "pe16x16", "-j", "1", "--emit", "program", "-o", out)
    assert r.exit_code == 0, r.output
    assert _ls(out) == PROGRAM
    text, data = (out / "program.s").read_text(), (out / "program.bin").read_bytes()
    # disasm(program.bin) == program.s, asm(program.s) == program.bin, byte for byte
    d = cli("disasm", out / "program.bin")
    assert d.exit_code == 0 and d.stdout == text
    a = cli("asm", out / "program.s", "-o", tmp_path / "again.bin")
    assert a.exit_code == 0 and (tmp_path / "again.bin").read_bytes() == data
    assert encode(parse_program(text)) == data and format_program(decode(data)) == text
    # it is the program the lower-program pass builds, each layer's start annotated
    res = driver.compile(small_net(), target=load_target("pe16x16"),
                         pipeline=driver.lowered_pipeline("default", load_target("pe16x16"), {"jobs": 1}, None))
    prog = res.program.program
    assert data == encode(prog)
    names = re.findall(r'^# ---- layer (\d+): "([^"]*)"', text, re.M)
    assert names == [(str(i), L.name) for i, L in enumerate(prog.layers)]
    assert len(prog.layers) == len([op for op in res.graph.ops() if "schedule" in op.attrs]) > 5
    # without -o (and with -o -) the text goes to standard output
    for extra in ((), ("-o", "-")):
        s = cli("compile", model_path, "-t", "pe16x16", "-j", "1", "--emit", "program", *extra)
        assert s.exit_code == 0 and s.stdout == text


def test_emit_program_is_deterministic_across_fresh_processes(model_path, tmp_path):
    outs = []
    for k in range(2):
        d = tmp_path / f"o{k}"
        p = _run("compile", model_path, "-t", "pe8x8", "-j", "1", "--cache-dir", tmp_path / f"cache{k}",
                 "--emit", "program", "--emit", "schedule", "--emit", "summary", "-o", d)
        assert p.returncode == 0, p.stderr
        outs.append({f: (d / f).read_bytes() for f in _ls(d)})
    assert sorted(outs[0]) == sorted(PROGRAM + ["schedule.json", "summary.txt"])
    assert outs[0] == outs[1]
    assert str(tmp_path).encode() not in outs[0]["schedule.json"]


def test_o_dir_contents_follow_the_pipeline(monkeypatch, cli, model_path, tmp_path):
    monkeypatch.setattr(driver, "LOWER_BY_DEFAULT", False)   # the switch off, whatever it is
    # not lowered: the formats of before; lowered (--passes names it): the program's files too
    plain, low = tmp_path / "plain", tmp_path / "low"
    r = cli("compile", model_path, "-t", "pe16x16", "-j", "1", "--passes", "default,schedule", "-o", plain)
    assert r.exit_code == 0, r.output
    assert _ls(plain) == OTHERS
    assert json.loads((plain / "schedule.json").read_text())["totals"]["simulated"] is None
    r = cli("compile", model_path, "-t", "pe16x16", "-j", "1", "--passes", "default,schedule,lower-program",
            "-o", low)
    assert r.exit_code == 0, r.output
    assert _ls(low) == sorted(OTHERS + PROGRAM)
    doc = json.loads((low / "schedule.json").read_text())
    assert doc["pipeline"].endswith("plan-memory{network-time-limit=10.0},lower-program")
    assert doc["totals"]["simulated"]["total_cycles"] > 0
    # the same outputs as --emit program adds to a pipeline that does not lower
    r = cli("compile", model_path, "-t", "pe16x16", "-j", "1", "--emit", "program", "--emit", "schedule",
            "-o", tmp_path / "emit")
    assert r.exit_code == 0, r.output
    for f in PROGRAM + ["schedule.json"]:
        assert (tmp_path / "emit" / f).read_bytes() == (low / f).read_bytes(), f
    # a directory of earlier outputs is replaced whole: no stale program files stay
    r = cli("compile", model_path, "-t", "pe16x16", "-j", "1", "--passes", "default,schedule", "-o", low)
    assert r.exit_code == 0 and _ls(low) == OTHERS


def test_emit_program_bad_uses_are_usage_errors(monkeypatch, cli, model_path, tmp_path):
    monkeypatch.setattr(driver, "LOWER_BY_DEFAULT", False)   # the switch off, whatever it is
    r = cli("compile", model_path, "--emit", "program")
    assert r.exit_code == int(ExitCode.USAGE) and "needs --target" in r.stderr
    r = cli("compile", model_path, "-t", "pe16x16", "--emit", "program", "--emit", "ir", "-o", "-")
    assert r.exit_code == int(ExitCode.USAGE)
    res = driver.compile(small_net(), target=load_target("pe8x8"), schedule={"jobs": 1})
    with pytest.raises(UsageError, match="needs the lower-program pass"):
        driver.render(res, ["program"])


def test_an_unlowerable_network_is_one_line_exit_4_and_writes_nothing(tmp_path):
    # a target whose buffer (2^21 words) the ISA's 20-bit buffer addresses cannot reach:
    # whatever layers the lowering covers, this network cannot be lowered
    src = tmp_path / "in"
    src.mkdir()
    onnx.save(small_net(), str(src / "m.onnx"))
    toml = (ROOT / "targets" / "pe8x8.toml").read_text()
    toml = re.sub(r"(?m)^name = .*$", 'name = "pe8x8-4m"', toml)
    toml = re.sub(r"(?m)^global_buffer_bytes = \d+", f"global_buffer_bytes = {4 << 20}", toml)
    (src / "big.toml").write_text(toml)
    for args in (("--emit", "program", "-o", "out"),
                 ("--passes", "default,schedule,lower-program", "-o", "out"),
                 ("--emit", "program")):
        # relative paths: the one-line error shortens a long line, and the reason must show
        p = _run("compile", "m.onnx", "-t", "big.toml", "-j", "1", *args, cwd=src)
        _one_error_line(p, ExitCode.UNSUPPORTED)
        assert b"m.onnx: cannot lower to a program: target 'pe8x8-4m': a buffer of" in p.stderr
        assert b"20-bit buffer addresses" in p.stderr
        assert p.stdout == b""
        assert _ls(src) == ["big.toml", "m.onnx"]      # no partial output


# ---- the simulated figures --------------------------------------------------------------
@pytest.fixture(scope="module")
def lowered():
    """small_net on pe16x16 (planned), lowered; the compile and sqnxtc sim's figures of it."""
    tgt = load_target("pe16x16")
    res = driver.compile(small_net(), target=tgt, pipeline=driver.lowered_pipeline("default", tgt, {"jobs": 1}, None))
    return res, tgt


def test_schedule_json_carries_the_simulators_figures_and_validates(lowered):
    res, tgt = lowered
    doc = res.document
    validate(doc)
    timing = simulate(res.program.program, tgt)          # as sqnxtc sim runs it
    assert len(doc["layers"]) == len(timing.layers)
    for L, lay in zip(doc["layers"], timing.layers):
        assert L["layer"] == lay.name
        sim = L["simulated"]
        assert Fraction(sim["cycles"]) == lay.cycles and Fraction(sim["start"]) == lay.start
        assert Fraction(sim["end"]) == lay.end
        for v in sim.values():
            assert isinstance(v, int) or (isinstance(v, str) and Fraction(v).denominator > 1)
    assert doc["totals"]["simulated"] == {"total_cycles": timing.total_cycles,
                                          "instructions": len(res.program.program.insns)}
    # simulated once per compile: every output reads the one timing
    assert res.timing is res.timing and res.simulated is res.simulated
    # strict: a simulated field the schema does not know, or a non-exact figure, is rejected
    from report_support import validator
    bad = json.loads(json.dumps(doc))
    bad["layers"][0]["simulated"]["ratio"] = 1.0
    assert not validator().is_valid(bad)
    bad = json.loads(json.dumps(doc))
    bad["layers"][0]["simulated"]["cycles"] = 1.5
    assert not validator().is_valid(bad)
    bad = json.loads(json.dumps(doc))
    del bad["totals"]["simulated"]
    assert not validator().is_valid(bad)


def test_schedule_json_summary_and_sim_agree(cli, model_path, tmp_path):
    js = tmp_path / "sim.json"
    s = cli("sim", model_path, "-t", "pe16x16", "-j", "1", "--json", js, "--layers", "all")
    assert s.exit_code == 0, s.output
    sim = json.loads(js.read_text())
    out = tmp_path / "o"
    r = cli("compile", model_path, "-t", "pe16x16", "-j", "1", "--passes", "default,schedule,lower-program",
            "--top", "100", "-o", out)
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "schedule.json").read_text())
    assert doc["pipeline"] == sim["pipeline"]
    assert [(L["layer"], L["simulated"]) for L in doc["layers"]] == [
        (x["name"], {"cycles": x["simulated_cycles"], "start": x["start"], "end": x["end"]}) for x in sim["layers"]]
    assert doc["totals"]["simulated"]["total_cycles"] == sim["total"]["simulated_cycles"]
    assert doc["totals"]["simulated"]["instructions"] == sim["instructions"]
    # the summary: a simulated column beside the cycles (rounded as sim's table), a total line
    summary = (out / "summary.txt").read_text()
    assert r.stdout == summary
    head = next(i for i, ln in enumerate(summary.splitlines()) if ln.strip().startswith("layer "))
    assert summary.splitlines()[head].split()[6:8] == ["cycles", "simulated"]
    by_name = {x["name"]: x for x in sim["layers"]}
    rows = summary.splitlines()[head + 1:head + 1 + len(doc["layers"])]
    assert len(rows) == len(doc["layers"])
    for line in rows:
        name, cyc, simc = line.split()[0], int(line.split()[5]), int(line.split()[6])
        assert cyc == by_name[name]["analytical_cycles"]
        assert simc == round(Fraction(by_name[name]["simulated_cycles"]))
    ratio = f"{sim['total']['simulated_cycles'] / sim['total']['analytical_cycles']:.3f}"
    assert (f"simulated: {sim['total']['simulated_cycles']} cycles (the program's {sim['instructions']} "
            f"instructions in the timing simulator, docs/isa.md), ratio {ratio}") in summary
    assert f"ratio {ratio};" in s.stdout


def test_an_unlowered_compile_has_no_simulated_figures(monkeypatch, cli, model_path):
    monkeypatch.setattr(driver, "LOWER_BY_DEFAULT", False)   # the switch off, whatever it is
    r = cli("compile", model_path, "-t", "pe8x8", "-j", "1", "--passes", "default,schedule", "--emit", "schedule")
    doc = json.loads(r.stdout)
    validate(doc)
    assert doc["totals"]["simulated"] is None and all(L["simulated"] is None for L in doc["layers"])
    s = cli("compile", model_path, "-t", "pe8x8", "-j", "1", "--passes", "default,schedule").stdout
    assert "simulated" not in s


# ---- the switch ---------------------------------------------------------------------------
@pytest.mark.parametrize("on", [False, True])
def test_the_switch_decides_whether_the_default_pipeline_lowers(monkeypatch, on):
    monkeypatch.setattr(driver, "LOWER_BY_DEFAULT", on)
    assert driver.lowers_by_default() is on
    planned, dram = load_target("pe16x16"), target("pe16x16", "dram")
    names = [p.name for p in driver.build_pipeline("default", target=planned)]
    assert names[-3:] == (["schedule", "plan-memory", "lower-program"] if on else ["concat-in-place", "schedule", "plan-memory"])
    names = [p.name for p in driver.build_pipeline("default", target=dram)]
    assert names[-2:] == (["schedule", "lower-program"] if on else ["concat-in-place", "schedule"])
    # a pipeline that spells out its schedule pass is lowered the same (as plan-memory is
    # inserted); one that names lower-program keeps it once; no target: no lowering
    names = [p.name for p in driver.build_pipeline("default,schedule{jobs=2}", target=planned)]
    assert names[-3:] == (["schedule", "plan-memory", "lower-program"] if on else ["concat-in-place", "schedule", "plan-memory"])
    names = [p.name for p in driver.build_pipeline("default,schedule,lower-program", target=planned)]
    assert names[-3:] == ["schedule", "plan-memory", "lower-program"] and names.count("lower-program") == 1
    assert "lower-program" not in [p.name for p in driver.build_pipeline("default")]
    # lowered_pipeline adds it exactly once either way
    names = [p.name for p in driver.lowered_pipeline("default", planned, None, None)]
    assert names.count("lower-program") == 1 and names[-2:] == ["plan-memory", "lower-program"]


def test_the_switch_on_compiles_sqnxt23_with_the_program_and_its_figures(monkeypatch, cli, tmp_path,
                                                                          cached_zoo_build):
    """The ON state end to end on a SqueezeNext model: the default -o DIR gets the program,
    schedule.json the simulated figures, the recorded pipeline reproduces the run."""
    monkeypatch.setattr(driver, "LOWER_BY_DEFAULT", True)
    out = tmp_path / "o"
    r = cli("compile", "zoo:1.0-SqNxt-23", "-t", "pe16x16", "-o", out)
    assert r.exit_code == 0, r.output
    assert _ls(out) == sorted(OTHERS + PROGRAM)
    doc = json.loads((out / "schedule.json").read_text())
    validate(doc)
    assert doc["pipeline"].endswith(",lower-program")
    assert len(doc["layers"]) == 113 and all(L["simulated"] is not None for L in doc["layers"])
    assert doc["totals"]["simulated"]["total_cycles"] > 0
    assert "simulated: " in r.stdout
    again = cli("compile", "zoo:1.0-SqNxt-23", "-t", "pe16x16", "--passes", doc["pipeline"], "-o", tmp_path / "b")
    assert again.exit_code == 0, again.output
    for f in _ls(out):
        assert (out / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


# ---- goldens ----------------------------------------------------------------------------
def _set_column(line: str, i: int, value: str) -> str:
    """``line`` with its i-th white-space separated column replaced by ``value``, right-aligned."""
    m = list(re.finditer(r"\S+", line))[i]
    width = m.end() - m.start()
    return line[:m.start()] + f"{value:>{width}}" + line[m.end():]


def test_a_lowered_golden_is_format_3_and_names_a_moved_simulated_figure(lowered):
    res, _ = lowered
    hdr = regress.header("small", res.target, res.pipeline, "cycles")
    g3 = golden_of(res.network, hdr, res.simulated)
    text = format_golden(g3)
    assert g3.header["format"] == str(FORMAT) == "3"
    back = parse_golden(text)
    assert back.layers == g3.layers and back.totals == g3.totals and compare(text, text) == []
    assert [Fraction(L.sim_cycles) for L in back.layers] == [lay.cycles for lay in res.simulated.layers]
    assert back.totals["simulated_cycles"] == str(res.timing.total_cycles)
    keys = list(back.totals)
    assert keys[keys.index("total_cycles") + 1] == "simulated_cycles"
    # one simulated figure changed: that layer, that figure, old -> new
    L = back.layers[1]
    line = next(x for x in text.splitlines() if re.match(r"\s+1\s", x))
    assert line.split()[7] == L.sim_cycles
    old = str(Fraction(L.sim_cycles) + 7)
    moved = text.replace(line, _set_column(line, 7, old))
    assert moved != text
    diffs = compare(moved, text)
    assert [(d.what, d.name, [c[0] for c in d.changes]) for d in diffs] == [("layer", L.name, ["sim_cycles"])]
    assert f"sim_cycles {old} -> {L.sim_cycles}" in str(diffs[0])
    # the total alone
    moved = text.replace(f"simulated_cycles         {res.timing.total_cycles}",
                         f"simulated_cycles         {res.timing.total_cycles + 1}")
    assert [(d.what, d.changes) for d in compare(moved, text)] == [
        ("totals", (("simulated_cycles", str(res.timing.total_cycles + 1), str(res.timing.total_cycles)),))]
    # a golden without the simulated figures (format 2) against a lowered compile: every layer moves
    g2 = golden_of(res.network, hdr)
    assert g2.header["format"] == "2" and "sim_cyc" not in format_golden(g2)
    diffs = compare(format_golden(g2), text)
    assert {d.name for d in diffs if d.what == "layer"} == {L.name for L in back.layers}
    assert all(c[0] == "sim_cycles" and c[1] is None for d in diffs if d.what == "layer" for c in d.changes)
    assert "sim_cycles - -> " in str(diffs[0])


def test_sqnxtc_regress_fails_when_a_simulated_figure_moves(monkeypatch, cli, tmp_path, cached_zoo_build):
    monkeypatch.setattr(driver, "LOWER_BY_DEFAULT", True)
    args = ("--model", "1.0-SqNxt-23", "--target", "pe16x16", "--activation-home", "planned",
            "--goldens", str(tmp_path), "-q")
    r = cli("regress", "--update", *args)
    assert r.exit_code == 0, r.output
    path = tmp_path / "1.0-SqNxt-23__pe16x16__planned.txt"
    text = path.read_text()
    assert "\nformat       3\n" in text and "sim_cyc" in text
    r = cli("regress", *args)
    assert r.exit_code == 0 and "ok (113 layers)" in r.stdout, r.output
    # the simulated cycles of one layer moved (its analytical figures did not)
    line = next(x for x in text.splitlines() if re.match(r"\s+5\s", x))
    sim = line.split()[7]
    new = str(Fraction(sim) + 1)
    path.write_text(text.replace(line, _set_column(line, 7, new)))
    r = cli("regress", *args)
    assert r.exit_code == int(ExitCode.CHECK_FAILED), r.output
    name = line.split()[1]
    assert re.search(rf"^  layer 5 '{re.escape(name)}' \(\w+\): sim_cycles {re.escape(new)} -> {re.escape(sim)} ",
                     r.stdout, re.M), r.stdout
    assert "moved: 1 layer(s)\n" in r.stdout and "golden(s) differ" in r.stderr
    # and the total alone
    tot = re.search(r"^simulated_cycles +(\d+)$", text, re.M)
    path.write_text(text.replace(tot.group(0), f"simulated_cycles         {int(tot.group(1)) + 1}"))
    r = cli("regress", *args)
    assert r.exit_code == int(ExitCode.CHECK_FAILED)
    assert f"totals: simulated_cycles {int(tot.group(1)) + 1} -> {tot.group(1)}" in r.stdout
