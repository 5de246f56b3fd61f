"""``sqnxtc export --to zigzag`` (issue 26, docs/interop.md): the files, their determinism,
each layer's mapping against schedule.json, the command's errors; with the ``interop``
extra installed, a round trip through ZigZag whose DRAM words equal sqnxtc's."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from onnx import helper

from sqnxt_compiler.interop import nest, yamltext
from sqnxt_compiler.interop.zigzag import FILES
from support import make_model


def tiny_model():
    """conv 3x3 (padded) + relu, a 1x1 conv whose residual add fuses, gap, flatten, gemm."""
    rng = np.random.default_rng(7)
    w1 = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((8, 16, 1, 1)).astype(np.float32)
    wf = rng.standard_normal((10, 8)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["b"]),
             helper.make_node("Add", ["b", "x"], ["s"]),
             helper.make_node("GlobalAveragePool", ["s"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wf"], ["y"], transB=1)]
    return make_model(nodes, [("x", [1, 8, 40, 40])], [("y", [1, 10])], [("w1", w1), ("w2", w2), ("wf", wf)])


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    import onnx

    p = tmp_path_factory.mktemp("interop") / "tiny.onnx"
    onnx.save(tiny_model(), str(p))
    return str(p)


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sqnxt_compiler", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=dict(os.environ, SQNXTC_NO_CACHE="1"))


@pytest.fixture(scope="module")
def exported(model_path, tmp_path_factory):
    """The export on pe8x8 (small buffer: tiled layers), and the schedule of the same compile."""
    d = tmp_path_factory.mktemp("exp")
    r = run("export", model_path, "-t", "pe8x8", "--to", "zigzag", "-o", d / "zz")
    assert r.returncode == 0, r.stderr
    r = run("compile", model_path, "-t", "pe8x8", "--activation-home", "dram", "--emit", "schedule",
            "-o", d / "schedule.json")
    assert r.returncode == 0, r.stderr
    return d / "zz", json.loads((d / "schedule.json").read_text())


def read(d, name):
    return yamltext.load((d / name).read_text())


def test_the_files_exist_and_two_exports_are_byte_identical(model_path, exported, tmp_path):
    d, _ = exported
    assert sorted(os.listdir(d)) == sorted(FILES)
    r = run("export", model_path, "-t", "pe8x8", "--to", "zigzag", "-o", tmp_path / "again")
    assert r.returncode == 0, r.stderr
    for n in FILES:
        assert (d / n).read_bytes() == (tmp_path / "again" / n).read_bytes(), n


def test_every_file_parses_and_names_the_layers(exported):
    d, sched = exported
    work, accel, mapping = read(d, "workload.yaml"), read(d, "accelerator.yaml"), read(d, "mapping.yaml")
    exported_names = [e["name"] for e in work]
    scheduled = [lay["layer"] for lay in sched["layers"]]
    assert exported_names == [n for n in scheduled if n in exported_names]
    assert {lay["kind"] for lay in sched["layers"] if lay["layer"] in exported_names} == {"conv", "gap", "fc"}
    assert [m["name"] for m in mapping] == ["default"] + exported_names
    assert accel["operational_array"]["sizes"] == [8, 8]
    assert accel["memories"]["global_buffer"]["size"] == 32768 * 8
    assert accel["memories"]["dram"]["latency"] == 100
    for e in work:       # loop sizes: the layer's own bounds
        rec = next(lay for lay in sched["layers"] if lay["layer"] == e["name"])
        dims = dict(zip(e["loop_dims"], e["loop_sizes"]))
        assert dims.get("K", dims.get("G")) == rec["shape"]["K"]
        if "OX" in dims and rec["shape"]["pool"] is None:
            assert (dims["OY"], dims["OX"]) == (rec["shape"]["P"], rec["shape"]["Q"])


def test_each_layers_mapping_is_schedule_json_s(exported):
    """Read back: manifest == schedule.json's mapping and tile counts; the mapping's
    ordering multiplies, loop by loop, to what the tile counts and the unrolling give."""
    d, sched = exported
    man, mapping = read(d, "manifest.yaml"), {m["name"]: m for m in read(d, "mapping.yaml")}
    by_name = {lay["layer"]: lay for lay in sched["layers"]}
    assert man["activation_home"] == "dram" and man["target"] == "pe8x8"
    for e in man["layers"]:
        rec = by_name[e["name"]]
        assert e["mapping"] == rec["mapping"]
        assert e["tiles_n"] == rec["cost"]["tiles_n"]
        assert e["sqnxtc"]["total_cycles"] == rec["cost"]["total_cycles"]
        assert e["sqnxtc"]["compared_words"] == nest.compared_words(rec["cost"]["dram"])
        m = mapping[e["name"]]
        order = m.get("temporal_ordering") or []
        outer = order[e["tile_loops_from"]:]
        zz = {"x": "OX", "y": "OY", "c": "C", "k": "G" if e["kind"] == "gap" else "K"}
        # the tile loops: sqnxtc's order (outermost first) read from the innermost, counts as exported
        assert [dim for dim, _ in outer] == [zz[q] for q in reversed(rec["mapping"]["order"])
                                             if e["exported_tiles_n"][q] > 1]
        for dim, f in outer:
            q = next(q for q, v in zz.items() if v == dim)
            assert f == e["exported_tiles_n"][q]
            if not e["notes"]:
                assert f == rec["cost"]["tiles_n"][q]
        spatial = {dim: yamltext.parse_scalar(v[0].split(",")[1]) for dim, v in m["spatial_mapping"].items()}
        t = rec["mapping"]["tiles"]
        if rec["mapping"]["dataflow"] == "WS" and e["kind"] != "gap":
            assert spatial["D1"] == min(t["c"], 8) and spatial["D2"] == min(t["k"], 8)


def test_the_fused_residual_and_the_bias_are_left_out_of_the_compared_words(exported):
    d, sched = exported
    man = read(d, "manifest.yaml")
    fused = [e for e in man["layers"] if e["sqnxtc"]["residual_reads"]]
    assert fused, "the tiny model's add fuses into its 1x1 conv"
    for e in fused:
        s = e["sqnxtc"]
        assert s["dram_words"] == s["compared_words"] + s["residual_reads"] + s["bias_reads"]


def test_split_keeps_counts_that_divide_and_takes_the_nearest_divisor_otherwise():
    assert nest.split(4, 4) == 4 and nest.split(8, 2) == 2
    assert nest.split(128, 3) == 4          # 2 and 4 are as near: the larger
    assert nest.split(55, 7) == 5
    assert nest.split(7, 3) == 1 or nest.split(7, 3) == 7
    assert nest.split(7, 3) == 1            # |1-3| = 2 < |7-3|


def test_the_yaml_writer_and_reader_agree():
    C = yamltext.Comment
    data = [{"name": "a/b", C("a comment"): None, "n": 3, "x": 1.5, "s": "C, 16", "l": ["ix=2*ox+1*fx", 4],
             "t": [C("inner"), ["OX", 7], ["K", 2]], "e": {}, "z": None, "b": True, "q": 'say "hi"',
             "y": "y", "empty": []}]
    text = yamltext.dump(data, "header")
    assert text.startswith("# header\n") and "# a comment" in text and "# inner" in text
    back = yamltext.load(text)
    want = [{k: v for k, v in data[0].items() if not isinstance(k, C)}]
    want[0]["t"] = [["OX", 7], ["K", 2]]
    assert back == want
    assert yamltext.dump(data, "header") == text


def test_the_reader_rejects_what_it_does_not_know():
    with pytest.raises(yamltext.YamlSubsetError, match="line 2"):
        yamltext.load("a: 1\n  b: 2\n")
    with pytest.raises(yamltext.YamlSubsetError, match="duplicate"):
        yamltext.load("a: 1\na: 2\n")


@pytest.mark.parametrize("args, code, text", [
    (["--to", "tvm"], 2, "Invalid value for '--to'"),
    (["--to", "zigzag", "-t", "pe99"], 5, "pe99"),
])
def test_bad_arguments_are_one_line_with_their_exit_code(model_path, tmp_path, args, code, text):
    r = run("export", model_path, "-o", tmp_path / "out", *(args if "-t" in args else args + ["-t", "pe8x8"]))
    assert r.returncode == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqnxtc: error:") and text in lines[0], r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_a_missing_target_is_a_usage_error(model_path, tmp_path):
    r = run("export", model_path, "--to", "zigzag", "-o", tmp_path / "out")
    assert r.returncode == 2 and "'-t' / '--target'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_is_exit_7_before_any_work(model_path, tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    r = run("export", model_path, "-t", "pe8x8", "--to", "zigzag", "-o", f)
    assert r.returncode == 7 and "a-file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert f.read_text() == "x"
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):      # root writes anywhere: nothing to test here
            return
        r = run("export", model_path, "-t", "pe8x8", "--to", "zigzag", "-o", ro / "out")
        assert r.returncode == 7 and "not writable" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o700)


def test_a_bad_model_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    r = run("export", bad, "-t", "pe8x8", "--to", "zigzag", "-o", tmp_path / "out")
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_help_and_export_import_no_zigzag(model_path, tmp_path):
    code = ("import sys\nfrom sqnxt_compiler.cli import main\n"
            f"try:\n    main(['export', {model_path!r}, '-t', 'pe8x8', '--to', 'zigzag', '-o', {str(tmp_path / 'o')!r}])\n"
            "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "print('zigzag' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, SQNXTC_NO_CACHE="1"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


# --- with the interop extra: the round trip through ZigZag -----------------------------------

def _zigzag():
    try:
        import zigzag.api  # noqa: F401
    except ImportError:
        pytest.skip("ZigZag is not installed (pip install 'sqnxtc[interop]', Python >= 3.11)")


def test_zigzag_reads_the_export_and_its_dram_words_equal_sqnxtcs(exported):
    """ZigZag's parsers validate the three files; ZigZag's cost model on sqnxtc's mapping
    (sqnxtc's tile boundary) counts sqnxtc's DRAM words on every layer where no assumption
    differs and the translation kept the words."""
    _zigzag()
    from sqnxt_compiler.interop import zigzag_eval

    d, _ = exported
    man = read(d, "manifest.yaml")
    got = zigzag_eval.evaluate(str(d), "pinned")
    assert set(got) == {e["name"] for e in man["layers"]}
    same = [e for e in man["layers"] if not e["differs"] and e["words_kept"]]
    assert len(same) >= 2
    for e in same:
        assert got[e["name"]]["dram_words"] == e["sqnxtc"]["compared_words"], e["name"]
        assert got[e["name"]]["cycles"] > 0 and got[e["name"]]["energy"] > 0


def test_zigzag_s_own_api_accepts_the_fixed_mapping(exported, tmp_path):
    """get_hardware_performance_zigzag on the three files, as the export's README says."""
    _zigzag()
    from zigzag.api import get_hardware_performance_zigzag

    d, _ = exported
    energy, latency, cmes = get_hardware_performance_zigzag(
        str(d / "workload.yaml"), str(d / "accelerator.yaml"), str(d / "mapping.yaml"), opt="latency",
        dump_folder=str(tmp_path / "zz"), loma_show_progress_bar=False)
    assert energy > 0 and latency > 0


# --- Timeloop ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def timeloop_export(model_path, tmp_path_factory):
    d = tmp_path_factory.mktemp("tl") / "tl"
    r = run("export", model_path, "-t", "pe8x8", "--to", "timeloop", "-o", d)
    assert r.returncode == 0, r.stderr
    return d


def test_the_timeloop_export_is_deterministic_and_parses(model_path, timeloop_export, tmp_path):
    d = timeloop_export
    r = run("export", model_path, "-t", "pe8x8", "--to", "timeloop", "-o", tmp_path / "again")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(d)) == sorted(os.listdir(tmp_path / "again"))
    for n in os.listdir(d):
        assert (d / n).read_bytes() == (tmp_path / "again" / n).read_bytes(), n
    arch = read(d, "arch.yaml")["architecture"]
    assert arch["version"] == 0.4
    nodes = arch["nodes"]
    assert [x["!"] for x in nodes] == ["Container", "Component", "Container", "Component", "Container",
                                       "Parallel", "Component"]
    pe = next(x for x in nodes if x.get("name") == "PE")
    assert pe["spatial"] == {"meshX": 8, "meshY": 8}
    assert next(x for x in nodes if x.get("name") == "global_buffer")["attributes"]["depth"] == 32768 * 8 // 16


def test_each_timeloop_mapping_multiplies_to_its_problem_and_keeps_sqnxtcs_order(timeloop_export, exported):
    d = timeloop_export
    _, sched = exported
    by_name = {lay["layer"]: lay for lay in sched["layers"]}
    index = read(d, "layers.yaml")["layers"]
    assert [e["name"] for e in index] == [lay["layer"] for lay in sched["layers"]]
    tl = {"x": "Q", "y": "P", "c": "C", "k": "M"}
    for e in (e for e in index if e["exported"]):
        prob = read(d, e["problem"])["problem"]
        directives = [x for x in read(d, e["mapping"])["mapping"]]
        inst = prob["instance"]

        def fac(target, kind):
            x = next(x for x in directives if x["target"] == target and x["type"] == kind)
            return {f.split("=")[0]: int(f.split("=")[1]) for f in x["factors"]}, x["permutation"]
        dram, dram_perm = fac("DRAM", "temporal")
        glb, _ = fac("global_buffer", "temporal")
        sp, _ = fac("PE", "spatial")
        for dim in prob["shape"]["dimensions"]:
            assert dram[dim] * glb[dim] * sp[dim] == inst[dim], (e["name"], dim)
        rec = by_name[e["name"]]
        if rec["kind"] == "gap":
            tl["k"] = "G"
        # the DRAM level's permutation (inner to outer) starts with sqnxtc's tile loops, innermost first
        big = [tl[q] for q in reversed(rec["mapping"]["order"]) if dram.get(tl[q], 1) > 1]
        assert dram_perm[:len(big)] == big
        for q, dim in tl.items():
            if dim in dram and not any(c.startswith(dim + ":") for c in e["changes"]):
                assert dram[dim] == rec["cost"]["tiles_n"][q], (e["name"], dim)
        tl["k"] = "M"
