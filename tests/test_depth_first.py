"""Depth-first end to end (target field dram.depth_first; docs/memory-planning.md, "Fused
stacks"): the planner takes fused stacks where the plan is no worse, compile records them
(schedule.json v13 against its schema, the loop nest, the summary), check --tiled runs them
band by band against onnxruntime in fp32 and int16 with every band layer's transfers as the
cost model counts them, the memory image sees the stack's region, and what cannot run them
yet (the program, the export to other tools) says so in one line."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import jsonschema
import onnx
import pytest

from test_stack import two_blocks
from sqnxt_compiler import driver
from sqnxt_compiler.diagnostics import CheckFailed
from sqnxt_compiler.reference.check import random_inputs
from sqnxt_compiler.reference.tiled import execute_tiled
from sqnxt_compiler.report.schedule_json import schema
from sqnxt_compiler.targets import load_target

ROOT = Path(__file__).resolve().parents[1]


def tiny_toml(tmp_path: Path, depth_first: bool, buffer_bytes: int = 1500) -> Path:
    """pe8x8 with a small buffer, planned, depth-first on or off, as a target file."""
    text = (ROOT / "targets" / "pe8x8.toml").read_text()
    text = re.sub(r"(?m)^name = .*$", f'name = "tiny{buffer_bytes}{"df" if depth_first else ""}"', text)
    text = re.sub(r"(?m)^global_buffer_bytes = .*$", f"global_buffer_bytes = {buffer_bytes}", text)
    text = re.sub(r"(?m)^depth_first = \w+", f"depth_first = {'true' if depth_first else 'false'}", text)
    p = tmp_path / f"tiny{'_df' if depth_first else ''}.toml"
    p.write_text(text)
    return p


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("df")
    path = d / "two.onnx"
    onnx.save(two_blocks(), path)
    return d, str(path)


def test_compile_records_the_stacks_it_chose(cli, model):
    d, path = model
    out = d / "out"
    r = cli("compile", path, "-t", tiny_toml(d, True), "-o", out)
    assert r.exit_code == 0, r.stderr
    doc = json.loads((out / "schedule.json").read_text())
    jsonschema.validate(doc, schema())
    stacks = doc["plan"]["stacks"]
    assert doc["version"] == 13 and stacks
    members = [x for x in doc["layers"] if x["stack"] is not None]
    assert len(members) == sum(len(s["layers"]) for s in stacks)
    for i, s in enumerate(stacks):
        mine = [x for x in members if x["stack"]["index"] == i]
        assert [x["layer"] for x in mine] == s["layers"]
        # the members' costs add up to the stack's figures
        assert sum(x["cost"]["total_cycles"] for x in mine) == s["total_cycles"]
        assert sum(x["cost"]["energy"]["total"] for x in mine) == s["energy"]
        assert sum(x["cost"]["dram"]["total"] for x in mine) == s["dram_words"]
        assert {x["homes"]["tiles_at"] for x in mine} == {s["tiles_at"]}
        assert [x["homes"]["output"] for x in mine] == ["band"] * (len(mine) - 1) + ["dram"]
    band = [t for t in doc["plan"]["tensors"] if t["home"] == "band"]
    assert len(band) == sum(len(s["layers"]) - 1 for s in stacks)
    # never worse than the plan without stacks, on cycles nor on energy
    w, tot = doc["plan"]["without_stacks"], doc["totals"]
    assert tot["total_cycles"] <= w["total_cycles"] and tot["energy"]["total"] <= w["energy"]
    assert tot["total_cycles"] < w["total_cycles"]          # and here better
    plain = cli("compile", path, "-t", tiny_toml(d, False), "--emit", "schedule", "-o", d / "plain.json")
    assert plain.exit_code == 0, plain.stderr
    flat = json.loads((d / "plain.json").read_text())
    assert flat["plan"]["stacks"] == [] and flat["plan"]["without_stacks"] is None
    assert all(x["stack"] is None for x in flat["layers"])
    assert flat["totals"]["total_cycles"] == w["total_cycles"] and flat["totals"]["dram_words"]["total"] == \
        w["dram_words"]
    nest = (out / "loopnest.txt").read_text()
    assert nest.count("== fused stack ") == len(stacks) and "its stack's band window" in nest
    summary = (out / "summary.txt").read_text()
    assert re.search(rf"depth-first: {len(stacks)} fused stacks run {len(members)} layers band by band", summary)


@pytest.mark.parametrize("precision", ["fp32", "int16"])
def test_check_tiled_runs_the_stacks_band_by_band(cli, model, precision):
    d, path = model
    r = cli("check", path, "-t", tiny_toml(d, True), "--tiled", "--precision", precision)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout


def test_every_band_layer_moves_what_the_cost_model_counts(model, tmp_path):
    _d, path = model
    t = replace(load_target("pe8x8"), global_buffer_bytes=1500, depth_first=True)
    res = driver.compile(path, target=t)
    members = [op for op in res.graph.ops() if "stack" in op.attrs]
    assert members
    run = execute_tiled(res.graph, random_inputs(res.graph, 0))
    bands = {id(s): s for op in members for s in op.attrs["stack"].stack.schedules}
    scheds = [op.attrs["schedule"].schedule for op in res.graph.ops() if "schedule" in op.attrs]
    assert len(run.layers) > len(scheds)                     # a stats record per band layer
    by_name = {s.layer.name: s for s in bands.values()}
    checked = 0
    for st in run.layers:
        s = by_name.get(st.layer.name)
        if s is None:
            continue
        for k in ("input", "weights", "outputs", "psum_reads", "residual", "bias"):
            assert st.transfers[k] == s.cost.transfers[k], (st.name, k)
        checked += 1
    assert checked >= len(members)


def test_the_memory_image_sees_a_moved_stack_region(model):
    _d, path = model
    t = replace(load_target("pe8x8"), global_buffer_bytes=1500, depth_first=True)
    res = driver.compile(path, target=t)
    second = next(op for op in res.graph.ops() if "stack" in op.attrs and op.attrs["stack"].member == 1)
    plan = second.attrs["plan"]
    from sqnxt_compiler.reference.memory import MemoryImage

    # a word of the stack's region taken by something else between its first two members

    image = MemoryImage(res.graph)
    image.start(res.graph)
    for op in res.graph.ops():
        if op is second:
            image.claim(plan.tiles, 1, 12345, "a stray tile", op)
            with pytest.raises(CheckFailed, match="fused stack's region .* were overwritten between its members"):
                image.step(op)
            break
        image.step(op)


def test_the_program_and_the_export_say_they_cannot_run_stacks(cli, model):
    d, path = model
    tgt = tiny_toml(d, True)
    r = cli("compile", path, "-t", tgt, "--emit", "program", "-o", d / "prog")
    assert r.exit_code == 4 and "fused stacks" in r.stderr and "depth_first = false" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (d / "prog").exists()
    r = cli("export", path, "-t", tgt, "--to", "zigzag", "--activation-home", "planned", "-o", d / "zz")
    assert r.exit_code == 4 and "fused stacks" in r.stderr and not (d / "zz").exists()
    # the export's default (every layer alone) has no plan, so no stacks: it writes
    assert cli("export", path, "-t", tgt, "--to", "zigzag", "-o", d / "zz").exit_code == 0


def test_the_memory_timeline_shows_the_bands(cli, model):
    d, path = model
    r = cli("report", path, "-t", tiny_toml(d, True), "-o", d / "rep")
    assert r.exit_code == 0, r.stderr
    mem = json.loads((d / "rep" / "report.json").read_text())["targets"][0]["memory"]
    assert cli("compile", path, "-t", tiny_toml(d, True), "--emit", "schedule", "-o", d / "rep.json").exit_code == 0
    doc = json.loads((d / "rep.json").read_text())
    assert [m for m in mem if m["bands"]] and all(m["tiles"] > 0 for m in mem)
    for m, L in zip(mem, doc["layers"]):
        assert m["bands"] + m["tiles"] == L["cost"]["footprint"]["total"]
        assert bool(m["bands"]) == (L["stack"] is not None)
