"""``sqnxtc sweep`` (sqnxt_compiler/sweep): the spec, the rows against independent
compiles, error rows, the Pareto column against a skyline computed another way, resume
after an interruption, and the same table from threads of this process and from a real
Dask scheduler with two worker processes on 127.0.0.1."""
from __future__ import annotations

import csv
import io
import random
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from report_support import tiny_path
from sqnxt_compiler import driver
from sqnxt_compiler.diagnostics import ExitCode, UsageError
from sqnxt_compiler.sweep import load_spec, pareto_flags, parse_spec, run_sweep
from sqnxt_compiler.sweep.task import build_target
from sqnxt_compiler.targets import load_target


def spec_text(model: str) -> str:
    return f"""
[sweep]
objectives = ["cycles", "energy"]
[models]
files = ["{model}"]
[targets]
base = ["pe8x8"]
[targets.grid]
"array.pe_rows" = [4, 8]
"buffer.global_buffer_bytes" = [32768, 64, 0]
"""


@pytest.fixture
def spec(tmp_path):
    p = tmp_path / "spec.toml"
    p.write_text(spec_text(tiny_path()))
    return load_spec(str(p))


def table(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_points_are_model_major_and_the_grid_varies_last_key_fastest(spec):
    pts = spec.points()
    assert len(pts) == 1 * 2 * 3 * 2
    assert [(dict(p.target.overrides)["array.pe_rows"], dict(p.target.overrides)["buffer.global_buffer_bytes"],
             p.objective) for p in pts[:4]] == [(4, 32768, "cycles"), (4, 32768, "energy"),
                                                 (4, 64, "cycles"), (4, 64, "energy")]
    assert pts[0].target.label == "pe8x8[array.pe_rows=4,buffer.global_buffer_bytes=32768]"


@pytest.mark.parametrize("text,piece", [
    ("[models]\nzoo = []\n", "no models"),
    ("[models]\nzoo = ['1.0-SqNxt-23']\n[sweep]\nobjectives = ['speed']\n", "unknown objective 'speed'"),
    ("[models]\nzoo = ['1.0-SqNxt-23']\n[targets.grid]\n'array.rows' = [1]\n", "unknown target field 'array.rows'"),
    ("[models]\nfiles = ['nope.onnx']\n", "no such file 'nope.onnx'"),
    ("[models]\nzoo = ['1.0-SqNxt-23']\n[extra]\n", "unknown section [extra]"),
    ("[models]\nzoo = ['1.0-SqNxt-23']\nfile = ['x']\n", "unknown key 'models.file'"),
    ("[models\n", "not valid TOML"),
    ("[models]\nzoo = ['1.0-SqNxt-23']\n[sweep]\ntime_limit = -1\n", "'sweep.time_limit' must be"),
    ("[models]\nzoo = ['1.0-SqNxt-23']\n[sweep]\ntime_limit = inf\n", "'sweep.time_limit' must be"),
    ("[models]\nzoo = ['1.0-SqNxt-23']\n[sweep]\nfallback = 'greedy'\n", "'sweep.fallback' must be"),
    ("[models]\nzoo = ['1.0-SqNxt-23']\n[sweep]\nmeasured_sparsity = 1\n", "'sweep.measured_sparsity' must be"),
])
def test_a_bad_spec_is_a_usage_error_naming_the_file(tmp_path, text, piece):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(UsageError) as e:
        load_spec(str(p))
    assert piece in str(e.value)
    assert str(e.value).startswith(str(p))


def test_rows_are_the_compiles_and_failing_points_are_error_rows(spec, tmp_path):
    res = run_sweep(spec, str(tmp_path / "out"), scheduler="inprocess", workers=2, pareto=("cycles", "energy"))
    assert res.computed_rows == 12 and res.reused_rows == 0
    rows = table(tmp_path / "out" / "sweep.csv")
    assert [r["model"] for r in rows] == [tiny_path()] * 12
    for r, p in zip(rows, spec.points()):
        buf = dict(p.target.overrides)["buffer.global_buffer_bytes"]
        if buf == 0:      # not a valid target: exit 5, the field named
            assert (r["status"], r["exit_code"]) == ("error", str(int(ExitCode.BAD_TARGET)))
            assert "buffer.global_buffer_bytes" in r["error"] and r["cycles"] == "" and r["pareto"] == ""
        elif buf == 64:   # valid, but no mapping fits: exit 6
            assert (r["status"], r["exit_code"]) == ("error", str(int(ExitCode.UNSCHEDULABLE)))
            assert "64-byte global buffer" in r["error"]
        else:             # the figures of an independent compile of that point
            t = build_target(p.target)
            assert t.pe_rows == dict(p.target.overrides)["array.pe_rows"]
            doc = driver.compile(tiny_path(), target=t, schedule={"objective": p.objective}).document
            assert r["status"] == "ok" and int(r["cycles"]) == doc["totals"]["total_cycles"]
            assert int(r["energy"]) == doc["totals"]["energy"]["total"]
            assert int(r["dram_words"]) == doc["totals"]["dram_words"]["total"]
            assert int(r["pes"]) == t.pe_rows * t.pe_cols and int(r["buffer_bytes"]) == buf
            assert r["array.pe_rows"] == str(t.pe_rows)
    assert sum(r["pareto"] == "true" for r in rows) >= 2  # one per objective at least


def skyline(points: list[tuple[int, int]]) -> set[int]:
    """Indices of the 2-D Pareto front by a sort and a sweep (smaller is better)."""
    order = sorted(range(len(points)), key=lambda i: points[i])
    out, best = set(), None
    for i in order:
        x, y = points[i]
        if best is None or y < best:
            out.add(i)
            best = y
    # equal points: each is on the front if its twin is
    for i in list(out):
        out |= {j for j in range(len(points)) if points[j] == points[i]}
    return out


def test_pareto_column_against_a_skyline():
    rng = random.Random(5)
    for _ in range(200):
        n = rng.randint(1, 12)
        pts = [(rng.randint(0, 6), rng.randint(0, 6)) for _ in range(n)]
        rows = [{"status": "ok", "objective": "cycles", "cycles": x, "energy": y} for x, y in pts]
        flags = pareto_flags(rows, ("cycles", "energy"))
        assert {i for i, f in enumerate(flags) if f} == skyline(pts), pts
    rows = [{"status": "ok", "objective": "cycles", "cycles": 1, "energy": 1},
            {"status": "ok", "objective": "energy", "cycles": 2, "energy": 2},
            {"status": "error", "objective": "cycles", "cycles": None, "energy": None}]
    assert pareto_flags(rows, ("cycles", "energy")) == [True, True, None]  # per objective


def test_an_interrupted_sweep_resumes_to_the_same_table(spec, tmp_path):
    whole = run_sweep(spec, str(tmp_path / "whole"), scheduler="inprocess", workers=1)
    seen = []

    def stop_after_three(msg):
        seen.append(msg)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, str(tmp_path / "cut"), scheduler="inprocess", workers=1, progress=stop_after_three)
    assert not (tmp_path / "cut" / "sweep.csv").exists()      # never half-written
    kept = len(list((tmp_path / "cut" / "rows").glob("*.json")))
    assert 3 <= kept < 12
    again = run_sweep(spec, str(tmp_path / "cut"), scheduler="inprocess", workers=1)
    assert again.reused_rows == kept and again.computed_rows == 12 - kept
    assert (tmp_path / "cut" / "sweep.csv").read_bytes() == (tmp_path / "whole" / "sweep.csv").read_bytes()
    assert whole.computed_rows == 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_scheduler_and_two_worker_processes_give_the_same_table(spec, tmp_path):
    local = run_sweep(spec, str(tmp_path / "threads"), scheduler="inprocess", workers=2)
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr,
                                           "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(addr, timeout="5s") as c:
                    if len(c.scheduler_info()["workers"]) == 2:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the Dask cluster did not come up"
            time.sleep(0.5)
        remote = run_sweep(spec, str(tmp_path / "cluster"), scheduler=addr)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    assert remote.computed_rows == local.computed_rows == 12 and remote.where == f"on the cluster at {addr}"
    assert (tmp_path / "cluster" / "sweep.csv").read_bytes() == (tmp_path / "threads" / "sweep.csv").read_bytes()
    assert (tmp_path / "cluster" / "sweep.parquet").read_bytes() == (tmp_path / "threads" / "sweep.parquet").read_bytes()


def test_sweep_from_flags_on_the_command_line(cli, tmp_path):
    r = cli("sweep", "-m", tiny_path(), "-t", "pe8x8", "--grid", "array.pe_rows=4,8", "--objective", "cycles",
            "--scheduler", "inprocess", "--workers", "1", "--pareto", "cycles,energy", "-o", tmp_path / "s",
            "--no-progress")
    assert r.exit_code == 0, r.stderr
    assert "sweep: 2 rows (2 computed" in r.stderr and "0 error rows" in r.stderr
    rows = table(tmp_path / "s" / "sweep.csv")
    assert [r["target"] for r in rows] == ["pe8x8[array.pe_rows=4]", "pe8x8[array.pe_rows=8]"]
    bad = cli("sweep", "-m", tiny_path(), "--grid", "array.pe_rows", "-o", tmp_path / "t")
    assert bad.exit_code == int(ExitCode.USAGE) and "FIELD=V1,V2" in bad.stderr


def test_parse_spec_resolves_files_against_the_spec(tmp_path):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "a.onnx").write_bytes(Path(tiny_path()).read_bytes())
    s = parse_spec({"models": {"files": ["nets/a.onnx"], "zoo": ["AlexNet"]}}, "spec.toml", tmp_path)
    assert s.models == ("zoo:AlexNet", str(tmp_path / "nets" / "a.onnx"))  # zoo names first, then files
    assert s.bases == ("pe16x16",) and s.objectives == ("cycles",)
    assert load_target("pe16x16").name == "pe16x16"


# ---- generated variants and the network search --------------------------------------------
def test_generated_names_are_the_zoo_presets_they_spell(cli):
    from sqnxt_compiler.zoo import get_info
    from sqnxt_compiler.zoo.generated import canonical

    assert canonical("SqNxt:k5:v5:d2-4-14-1") == "SqNxt:d2-4-14-1:k5:w1:g1:v5"
    for preset, name in (("1.0-SqNxt-23", "SqNxt:"), ("1.0-SqNxt-23v5", "SqNxt:d2-4-14-1:k5:v5"),
                         ("1.0-G-SqNxt-23", "SqNxt:g2"), ("2.0-SqNxt-23v4", "SqNxt:w2:k5:d2-10-8-1:v5")):
        a, b = get_info(preset), get_info(name)
        assert (a.params, a.macs, a.layers) == (b.params, b.macs, b.layers), (preset, name)
        assert b.source == "generated" and b.family == "squeezenext"
    r = cli("compile", "zoo:SqNxt:d2-4-14-1:k9")
    assert r.exit_code == int(ExitCode.BAD_INPUT) and "conv1_kernel must be 5 or 7" in r.stderr


def test_depth_splits_are_every_composition():
    from itertools import product
    from math import comb

    from sqnxt_compiler.sweep.explore import depth_splits

    got = depth_splits(21)
    assert len(got) == comb(20, 3) == 1140 and len(set(got)) == len(got)
    brute = sorted(d for d in product(range(1, 19), repeat=4) if sum(d) == 21)
    assert sorted(got) == brute
    assert (6, 6, 8, 1) in got and (2, 4, 14, 1) in got


def test_explore_ranks_the_family_as_an_independent_enumeration_does(cli, tmp_path):
    """A small family (8 blocks, every 7th split, conv1 5) on pe8x8: the printed ranking is
    the order of cycles from independent compiles of each variant, the paper's five are
    placed, and the budget drops what it must."""
    from sqnxt_compiler.sweep.explore import PAPER, depth_splits

    r = cli("explore", "--blocks", "8", "--conv1", "5", "--every", "7", "-t", "pe8x8", "-o", tmp_path / "x",
            "--scheduler", "inprocess", "--workers", "2", "--no-progress", "--top", "3", "--max-params", "950000")
    assert r.exit_code == 0, r.stderr
    names = [f"SqNxt:d{'-'.join(map(str, d))}:k5:w1:g1:v5" for d in depth_splits(8)[::7]] + list(PAPER.values())
    t = load_target("pe8x8")
    figures = {}
    for n in names:
        res = driver.compile(f"zoo:{n}", target=t)
        from sqnxt_compiler.report.network import count_params
        figures[n] = (res.document["totals"]["total_cycles"], res.document["totals"]["energy"]["total"],
                      count_params(res.graph))
    within = sorted((c, e, n) for n, (c, e, p) in figures.items() if p <= 950000)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("| ") and ln.split("|")[1].strip().isdigit()]
    shown = [(int(ln.split("|")[1]), ln.split("|")[3].strip()) for ln in lines]
    order = {n: i + 1 for i, (_, _, n) in enumerate(within)}
    for rank_, name in shown:
        assert order[name] == rank_, (name, rank_)
    assert [n for _, _, n in within[:3]] == [n for _, n in shown[:3]]
    over = [v for v, n in PAPER.items() if figures[n][2] > 950000]
    assert r.stdout.startswith(f"{len(within)} of {len(names)} variants within the budget on pe8x8")
    if over:
        assert f"not ranked (over the budget or failed): paper {', '.join(over)}" in r.stdout


def test_report_draws_a_sweep_deterministically(cli, spec, tmp_path):
    run_sweep(spec, str(tmp_path / "s"), scheduler="inprocess", workers=2)
    a = cli("report", tmp_path / "s" / "sweep.csv", "-o", tmp_path / "a", "--format", "svg")
    b = cli("report", tmp_path / "s" / "sweep.csv", "-o", tmp_path / "b", "--format", "svg")
    assert a.exit_code == b.exit_code == 0, a.stderr
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["heatmap.svg", "pareto.svg", "sweep.json"]
    for n in names:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes(), n
    import json
    data = json.loads((tmp_path / "a" / "sweep.json").read_text())
    rows = table(tmp_path / "s" / "sweep.csv")
    ok = [r for r in rows if r["status"] == "ok"]
    assert [(p["cycles"], p["energy"]) for p in data["points"]] == [(int(r["cycles"]), int(r["energy"])) for r in ok]
    (h,) = data["heatmaps"]
    assert (h["rows"], h["cols"]) == ("array.pe_rows", "buffer.global_buffer_bytes")
    want = {(r["array.pe_rows"], r["buffer.global_buffer_bytes"]): (int(r["cycles"]) if r["cycles"] else None)
            for r in rows if r["objective"] == "cycles"}
    assert h["cycles"] == [[want[(x, y)] for y in h["col_values"]] for x in h["row_values"]]
    assert h["cycles"][0][1] is None  # the 64-byte buffer: an error row, a blank cell
    bad = cli("report", tmp_path / "s" / "sweep.csv", "-t", "pe8x8", "-o", tmp_path / "c")
    assert bad.exit_code == int(ExitCode.USAGE)


def test_per_layer_rows_sum_to_the_table_and_are_added_on_a_rerun(spec, tmp_path):
    out = tmp_path / "p"
    first = run_sweep(spec, str(out), scheduler="inprocess", workers=2)
    assert not (out / "layers.csv").exists() and first.computed_rows == 12
    first_bytes = (out / "sweep.csv").read_bytes()
    again = run_sweep(spec, str(out), scheduler="inprocess", workers=2, per_layer=True)
    ok = [r for r in table(out / "sweep.csv") if r["status"] == "ok"]
    assert again.computed_rows == len(ok) == 4  # the kept ok rows had no layers; error rows stay
    layers = table(out / "layers.csv")
    for r in ok:
        mine = [L for L in layers if (L["target"], L["objective"]) == (r["target"], r["objective"])]
        assert mine and sum(int(L["cycles"]) for L in mine) == int(r["cycles"])
        assert sum(int(L["energy"]) for L in mine) == int(r["energy"])
        assert {L["dataflow"] for L in mine} <= {"WS", "OS"}
    assert (out / "sweep.csv").read_bytes() == first_bytes    # the table itself is unchanged


def test_a_dataflow_grid_measures_the_choice(tmp_path):
    s = parse_spec({"models": {"files": [tiny_path()]}, "targets": {"base": ["pe8x8"],
                    "grid": {"dataflow.allowed": ["both", "WS", "OS"]}}}, "<test>", tmp_path)
    run_sweep(s, str(tmp_path / "d"), scheduler="inprocess", workers=1, per_layer=True)
    rows = {r["dataflow.allowed"]: int(r["cycles"]) for r in table(tmp_path / "d" / "sweep.csv")}
    assert rows["both"] <= min(rows["WS"], rows["OS"])
    layers = table(tmp_path / "d" / "layers.csv")
    for allowed in ("WS", "OS"):
        mine = [L for L in layers if L["dataflow.allowed"] == allowed]
        assert {L["dataflow"] for L in mine if L["kind"] in ("conv", "fc")} == {allowed}
        assert {L["dataflow"] for L in mine if L["kind"] not in ("conv", "fc")} <= {"OS"}


def test_a_killed_sweep_process_resumes_where_it_stopped(tmp_path):
    """A real `sqnxtc sweep` process interrupted (SIGINT) once its first rows are in: exit
    130, no table, the finished rows kept; the rerun computes only the rest and writes the
    table a fresh sweep writes."""
    import signal as sig
    import os

    p = tmp_path / "spec.toml"
    p.write_text(spec_text(tiny_path()).replace('"buffer.global_buffer_bytes" = [32768, 64, 0]',
                                                '"buffer.global_buffer_bytes" = [32768, 65536, 131072, 16384]')
                 .replace('objectives = ["cycles", "energy"]', 'objectives = ["cycles", "energy", "edp"]'))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "sqnxt_compiler", "sweep", str(p), "-o", str(out),
                             "--scheduler", "inprocess", "--workers", "1", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: sig.signal(sig.SIGINT, sig.SIG_DFL))
    deadline = time.monotonic() + 240
    while not list((out / "rows").glob("*.json")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(sig.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "sqnxtc: interrupted"
    kept = len(list((out / "rows").glob("*.json")))
    assert 1 <= kept < 24 and not (out / "sweep.csv").exists()
    assert sorted(os.listdir(out / "rows")) == sorted(q.name for q in (out / "rows").glob("*.json"))  # no temporaries
    again = run_sweep(load_spec(str(p)), str(out), scheduler="inprocess", workers=1)
    assert again.reused_rows == kept and again.computed_rows == 24 - kept
    fresh = run_sweep(load_spec(str(p)), str(tmp_path / "fresh"), scheduler="inprocess", workers=1)
    assert fresh.computed_rows == 24
    assert (out / "sweep.csv").read_bytes() == (tmp_path / "fresh" / "sweep.csv").read_bytes()


def test_two_spellings_of_a_generated_model_are_one_row(tmp_path):
    out = str(tmp_path / "g")
    a = parse_spec({"models": {"zoo": ["SqNxt:k5:d1-1-1-1"]}, "targets": {"base": ["pe8x8"]}}, "<a>", tmp_path)
    b = parse_spec({"models": {"zoo": ["SqNxt:d1-1-1-1:k5:w1:g1:base"]}, "targets": {"base": ["pe8x8"]}}, "<b>",
                   tmp_path)
    first = run_sweep(a, out, scheduler="inprocess", workers=1)
    second = run_sweep(b, out, scheduler="inprocess", workers=1)
    assert first.computed_rows == 1 and second.computed_rows == 0 and second.reused_rows == 1
    assert second.rows[0]["model"] == "zoo:SqNxt:d1-1-1-1:k5:w1:g1:base"   # labelled as this spec spells it
    assert second.rows[0]["cycles"] == first.rows[0]["cycles"]


def _zeroed_model(tmp_path) -> str:
    """The tiny test net with every other weight of its convs zero (measured sparsity 1/2)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(tiny_path())
    for init in m.graph.initializer:
        a = numpy_helper.to_array(init).copy()
        if a.ndim == 4:
            a.flat[::2] = 0
            init.CopyFrom(numpy_helper.from_array(a, init.name))
    p = tmp_path / "zeros.onnx"
    onnx.save(m, str(p))
    return str(p)


def test_schedule_options_reach_every_point_and_defaults_spelled_out_change_nothing(tmp_path):
    """[sweep] time_limit / fallback / measured_sparsity are the points' options: the rows are
    the compiles with them, and writing a default out gives the same keys (same rows)."""
    from sqnxt_compiler.sweep.engine import point_keys

    model = _zeroed_model(tmp_path)
    body = f"[models]\nfiles = ['{model}']\n[targets]\nbase = ['pe8x8']\n"
    plain = parse_spec(tomllib.loads(body), "a", tmp_path)
    spelled = parse_spec(tomllib.loads(body + "[sweep]\ntime_limit = 0\nfallback = 'none'\nmeasured_sparsity = false\n"),
                         "b", tmp_path)
    measured = parse_spec(tomllib.loads(body + "[sweep]\nmeasured_sparsity = true\ntime_limit = 30\n"), "c", tmp_path)
    assert spelled.options == () and measured.options == (("measured_sparsity", True), ("time_limit", 30.0))
    assert point_keys(plain, plain.points()) == point_keys(spelled, spelled.points())
    assert point_keys(plain, plain.points()) != point_keys(measured, measured.points())
    rows = {}
    for name, sp in (("plain", plain), ("measured", measured)):
        rows[name] = run_sweep(sp, str(tmp_path / name), scheduler="serial").rows[0]
    for name, opts in (("plain", {}), ("measured", {"measured_sparsity": True, "time_limit": 30})):
        doc = driver.compile(model, target=load_target("pe8x8"), schedule=opts).document
        assert (rows[name]["cycles"], rows[name]["energy"]) == (doc["totals"]["total_cycles"],
                                                                doc["totals"]["energy"]["total"]), name
    assert rows["measured"]["cycles"] < rows["plain"]["cycles"]   # half the weights are zero


def test_sweep_schedule_flags_are_the_spec_options(cli, tmp_path):
    model = _zeroed_model(tmp_path)
    r = cli("sweep", "-m", model, "-t", "pe8x8", "--measured-sparsity", "--scheduler", "serial",
            "--no-progress", "-o", tmp_path / "f")
    assert r.exit_code == 0, r.output
    doc = driver.compile(model, target=load_target("pe8x8"), schedule={"measured_sparsity": True}).document
    assert table(tmp_path / "f" / "sweep.csv")[0]["cycles"] == str(doc["totals"]["total_cycles"])
    spec = tmp_path / "s.toml"
    spec.write_text(f"[models]\nfiles = ['{model}']\n")
    r = cli("sweep", str(spec), "--fallback", "heuristic", "-o", tmp_path / "g")
    assert r.exit_code == 2 and "not both" in r.stderr
