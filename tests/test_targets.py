"""Target descriptions: bundled files, loading by name/path, rejection of bad files, CLI."""
from __future__ import annotations

import json
import re
import sys
from dataclasses import fields, replace
from fractions import Fraction
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from sqnxt_compiler.diagnostics import ExitCode, TargetError
from sqnxt_compiler.targets import FORMATS, SCHEMA, Target, list_targets, load_target

ROOT = Path(__file__).resolve().parents[1]


def _bundled_text(name: str) -> str:
    return resources.files("sqnxt_compiler.targets").joinpath(f"{name}.toml").read_text()


def test_bundled_targets_are_listed():
    assert list_targets() == ["pe16x16", "pe8x8"]


def test_pe16x16_values_from_the_paper():
    t = load_target("pe16x16")
    assert (t.pe_rows, t.pe_cols, t.global_buffer_bytes) == (16, 16, 128 * 1024)
    assert (t.word_bits, t.dram_latency_cycles, t.dram_bandwidth_gb_per_s) == (16, 100, 16)
    assert t.clock_mhz == 1000 and t.os_weight_zero_fraction == Fraction(2, 5)
    assert (t.e_mac, t.e_rf, t.e_array, t.e_buffer, t.e_dram) == (1, 1, 2, 6, 200)
    # 16 GB/s at 1 GHz with 2-byte words: 16 bytes = 8 words per cycle
    assert t.dram_words_per_cycle == 8
    assert t.buffer_words == 65536 and t.psum_words == 2
    assert t.weight_load_cycles == 16 * 16 // 16 and t.os_drain_cycles == 16 * 16 * 2 // 16


def test_pe8x8_values_from_the_paper():
    t = load_target("pe8x8")
    assert (t.pe_rows, t.pe_cols, t.global_buffer_bytes) == (8, 8, 32 * 1024)
    assert t.weight_load_cycles == 4 and t.os_drain_cycles == 8


def test_load_by_path_equals_load_by_name(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text(_bundled_text("pe8x8"))
    a, b = load_target(str(p)), load_target("pe8x8")
    assert replace(a, source="") == replace(b, source="")
    assert a.fingerprint() == b.fingerprint()
    assert load_target(p).name == "pe8x8"   # a Path object is a path


def test_every_schema_field_is_in_the_files():
    for name in list_targets():
        text = _bundled_text(name)
        for f in SCHEMA:
            assert f"{f.key} =" in text, (name, f.path)


def _write(tmp_path, text):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("edit, field", [
    (("global_buffer_bytes = 131072", ""), "buffer.global_buffer_bytes"),           # missing
    (("pe_rows = 16", 'pe_rows = "16"'), "array.pe_rows"),                           # wrong type
    (("pe_rows = 16", "pe_rows = 16.0"), "array.pe_rows"),                           # float for int
    (("global_buffer_bytes = 131072", "global_buffer_bytes = -1"), "buffer.global_buffer_bytes"),
    (("latency_cycles = 100", "latency_cycles = -5"), "dram.latency_cycles"),        # negative
    (("double_buffering = true", "double_buffering = 1"), "buffer.double_buffering"),
    (("\nmac = 1 ", "\nmac = 1\nmacs = 2 "), "energy.macs"),                            # unknown key
    (("[clock]", "[clocks]"), "clocks"),                                              # unknown section
    (("os_weight_zero_fraction = 0.4", "os_weight_zero_fraction = 1.0"), "dataflow.os_weight_zero_fraction"),
    (("bandwidth_gb_per_s = 16", "bandwidth_gb_per_s = 0"), "dram.bandwidth_gb_per_s"),
    (('split = "shared"', 'split = "fixed"'), "buffer.split"),
    (("rf_words_per_pe = 8", "rf_words_per_pe = 1"), "array.rf_words_per_pe"),
])
def test_bad_field_is_named(tmp_path, edit, field):
    old, new = edit
    text = _bundled_text("pe16x16")
    assert old in text
    path = _write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(TargetError) as ei:
        load_target(path)
    msg = str(ei.value)
    assert f"'{field}'" in msg and "bad.toml" in msg
    assert ei.value.code == ExitCode.BAD_TARGET


def test_not_toml_is_rejected(tmp_path):
    path = _write(tmp_path, "this is [not toml")
    with pytest.raises(TargetError, match="not a valid TOML file"):
        load_target(path)
    p2 = tmp_path / "bin.toml"
    p2.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TargetError, match="bin.toml"):
        load_target(str(p2))


def test_unknown_name_and_missing_file():
    with pytest.raises(TargetError, match="unknown target 'pe4x4'"):
        load_target("pe4x4")
    with pytest.raises(TargetError, match="cannot read"):
        load_target("/nonexistent/x.toml")


def test_targets_package_is_not_importable_bare():
    import sqnxt_compiler.targets as t

    assert t.__name__ == "sqnxt_compiler.targets"
    assert "targets" not in sys.modules


def test_cli_list_and_show():
    from sqnxt_compiler.cli import main

    r = CliRunner().invoke(main, ["targets", "list"])
    assert r.exit_code == 0
    assert r.output.splitlines()[0].startswith("pe16x16") and "pe8x8" in r.output
    r = CliRunner().invoke(main, ["targets", "show", "pe16x16"])
    assert r.exit_code == 0, r.output
    assert "global_buffer_bytes" in r.output and "131072 bytes" in r.output
    assert "dram_words_per_cycle" in r.output and "8 words/cycle" in r.output


def test_cli_show_bad_target_exit_code(tmp_path):
    from sqnxt_compiler.cli import main

    r = CliRunner().invoke(main, ["targets", "show", "nope"])
    assert r.exit_code == int(ExitCode.BAD_TARGET)
    path = _write(tmp_path, _bundled_text("pe16x16").replace("pe_cols = 16", "pe_cols = -16"))
    r = CliRunner().invoke(main, ["targets", "show", path])
    assert r.exit_code == int(ExitCode.BAD_TARGET)
    assert "array.pe_cols" in r.output


def test_every_field_is_documented():
    doc = (ROOT / "docs" / "target-format.md").read_text()
    for f in SCHEMA:
        assert f"`{f.path}`" in doc, f.path
    assert "`format = 1`" in doc
    # every default is in the docs' Defaults table, with its value
    for f in SCHEMA:
        if not f.required:
            assert f"| `{f.path}` | `{json.dumps(f.default)}` |" in doc, f.path


# ---- one list of fields, defaults, format version ------------------------------------------

def _without_line(text: str, key: str) -> str:
    """``text`` with the one line ``key = ...`` removed."""
    pattern = rf"(?m)^{re.escape(key)} = .*\n"
    assert len(re.findall(pattern, text)) == 1, key
    return re.sub(pattern, "", text)


def test_schema_is_the_dataclass():
    # one list: the schema is read from Target's declarations (everything but `source`)
    assert [f.attr for f in SCHEMA] == [f.name for f in fields(Target) if f.name != "source"]
    assert len({f.path for f in SCHEMA}) == len(SCHEMA)


def test_defaults_are_the_documented_conventions():
    assert {f.path: f.default for f in SCHEMA if not f.required} == {
        "buffer.split": "shared", "dram.activation_home": "dram", "array.nonlinear_cycles": 4,
        "dataflow.allowed": "both", "dram.channels": 1, "program.queue_depth": 256, "dram.depth_first": False}
    # the design point stays required
    for path in ("array.pe_rows", "array.pe_cols", "buffer.global_buffer_bytes", "dram.bandwidth_gb_per_s",
                 "clock.frequency_mhz", "buffer.double_buffering", "energy.mac", "energy.dram"):
        assert next(f for f in SCHEMA if f.path == path).required, path


def test_keyword_construction_takes_the_defaults():
    t = load_target("pe8x8")
    required = {f.attr: getattr(t, f.attr) for f in SCHEMA if f.required}
    built = Target(**required, source=t.source)
    defaults = {f.attr: f.default for f in SCHEMA if not f.required}
    assert built == replace(t, **defaults) and built.fingerprint() == replace(t, **defaults).fingerprint()
    assert built.activation_home == "dram" != t.activation_home     # the bundled file plans
    assert replace(t, pe_rows=4).pe_rows == 4


@pytest.mark.parametrize("name", ["pe16x16", "pe8x8"])
def test_bundled_fingerprints_equal_the_goldens(name):
    for home in ("planned", "dram"):
        goldens = sorted((ROOT / "tests" / "goldens").glob(f"*__{name}__{home}.txt"))
        assert goldens
        recorded = set()
        for g in goldens:
            recorded |= set(re.findall(r"(?m)^fingerprint\s+(\S+)$", g.read_text()))
        t = replace(load_target(name), activation_home=home)
        assert recorded == {f"sha256:{t.fingerprint()}"}
    assert load_target(name).activation_home == "planned"


def test_bundled_files_say_format_1():
    for name in list_targets():
        assert re.search(r"(?m)^format = 1\b", _bundled_text(name)), name


def test_file_without_format_loads(tmp_path):
    text = _without_line(_bundled_text("pe16x16"), "format")
    t = load_target(_write(tmp_path, text))
    assert replace(t, source="") == replace(load_target("pe16x16"), source="")
    assert t.fingerprint() == load_target("pe16x16").fingerprint()


@pytest.mark.parametrize("value", ["2", "0", '"1"', "1.0", "true"])
def test_other_format_is_rejected(tmp_path, value):
    text = _bundled_text("pe16x16").replace("format = 1", f"format = {value}", 1)
    with pytest.raises(TargetError) as ei:
        load_target(_write(tmp_path, text))
    msg = str(ei.value)
    assert "field 'format'" in msg and "bad.toml" in msg
    assert f"reads format {', '.join(map(str, FORMATS))}" in msg
    assert ei.value.code == ExitCode.BAD_TARGET


def test_format_is_checked_before_the_fields(tmp_path):
    # a format-2 file may have sections this sqnxtc does not know: report the format
    text = _bundled_text("pe16x16").replace("format = 1", "format = 2", 1) + "\n[noc]\nhops = 3\n"
    with pytest.raises(TargetError, match="field 'format': target format 2 is not supported"):
        load_target(_write(tmp_path, text))


@pytest.mark.parametrize("f", [f for f in SCHEMA if not f.required], ids=lambda f: f.path)
@pytest.mark.parametrize("name", ["pe16x16", "pe8x8"])
def test_missing_defaulted_field_takes_the_default(tmp_path, name, f):
    full = load_target(name)
    t = load_target(_write(tmp_path, _without_line(_bundled_text(name), f.key)))
    assert getattr(t, f.attr) == f.default
    # the bundled file may set a non-default value (activation_home = "planned"): only
    # that field changes
    assert t.to_dict() == replace(full, **{f.attr: f.default}).to_dict()
    assert (t.fingerprint() == full.fingerprint()) == (getattr(full, f.attr) == f.default)


@pytest.mark.parametrize("f", [f for f in SCHEMA if f.required], ids=lambda f: f.path)
def test_missing_required_field_is_named(tmp_path, f):
    with pytest.raises(TargetError) as ei:
        load_target(_write(tmp_path, _without_line(_bundled_text("pe16x16"), f.key)))
    msg = str(ei.value)
    assert f"field '{f.path}': missing" in msg and "bad.toml" in msg


# ---- values the rules allow must not overflow the cost model -----------------------------
@pytest.mark.parametrize("line,new,piece", [
    ("pe_rows = 16", "pe_rows = 4611686018427387904", "field 'array.pe_rows': must be <= 4096"),
    ("latency_cycles = 100", "latency_cycles = 4611686018427387904", "field 'dram.latency_cycles': must be <= 1048576"),
    ("global_buffer_bytes = 131072", "global_buffer_bytes = 4611686018427387904",
     "field 'buffer.global_buffer_bytes': must be <= 1099511627776"),
    ("dram = 200", "dram = 4611686018427387904", "field 'energy.dram': must be <= 1048576"),
    ("frequency_mhz = 1000", "frequency_mhz = 1e300", "field 'clock.frequency_mhz': must be <= 1000000"),
    ("bandwidth_gb_per_s = 16", "bandwidth_gb_per_s = 1e-300",
     "field 'dram.bandwidth_gb_per_s': 1e-300 GB/s at 1000 MHz is 5e-301 words per cycle; must be in [2^-20, 2^20]"),
    ("frequency_mhz = 1000", "frequency_mhz = 1e-300", "8e+303 words per cycle"),
    ("word_bits = 16", "word_bits = 4611686018427387904", "field 'buffer.word_bits': must be <= 64"),
])
def test_absurd_target_values_are_bad_targets(tmp_path, line, new, piece):
    from sqnxt_compiler.cli import main

    text = _bundled_text("pe16x16")
    assert re.search(rf"(?m)^{re.escape(line)}\b", text), line
    path = _write(tmp_path, re.sub(rf"(?m)^{re.escape(line)}\b", new, text, count=1))
    r = CliRunner().invoke(main, ["compile", "zoo:1.0-SqNxt-23", "-t", path])
    assert r.exit_code == int(ExitCode.BAD_TARGET), r.output
    assert r.stderr.startswith(f"sqnxtc: error: {path}: ") and piece in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_largest_allowed_values_still_compile(tmp_path):
    """Every bound at once on a real network: the figures stay 64-bit (exit 0), or, for
    the one objective that multiplies two of them, the solver says so (exit 6)."""
    from sqnxt_compiler.cli import main

    text = _bundled_text("pe8x8")
    for line, new in (("pe_rows = 8", "pe_rows = 4096"), ("pe_cols = 8", "pe_cols = 4096"),
                      ("dram = 200", "dram = 1048576"), ("latency_cycles = 100", "latency_cycles = 1048576"),
                      ("bandwidth_gb_per_s = 16", "bandwidth_gb_per_s = 0.002"), ("mac = 1", "mac = 1048576"),
                      ("pipeline_fill_cycles = 16", "pipeline_fill_cycles = 1048576")):
        text = re.sub(rf"(?m)^{re.escape(line)}\b", new, text, count=1)
    path = _write(tmp_path, text)
    r = CliRunner().invoke(main, ["compile", "zoo:1.0-SqNxt-23", "-t", path])
    assert r.exit_code == 0, r.stderr
    r = CliRunner().invoke(main, ["compile", "zoo:1.0-SqNxt-23", "-t", path, "--objective", "edp"])
    assert r.exit_code in (0, int(ExitCode.UNSCHEDULABLE)), r.stderr
    if r.exit_code:
        assert "CP-SAT model too large" in r.stderr and len(r.stderr.strip().splitlines()) == 1
