"""Target descriptions: bundled files, loading by name/path, rejection of bad files, CLI."""
from __future__ import annotations

import sys
from dataclasses import replace
from fractions import Fraction
from importlib import resources

import pytest
from click.testing import CliRunner

from sqnxt_compiler.diagnostics import ExitCode, TargetError
from sqnxt_compiler.targets import SCHEMA, list_targets, load_target


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
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "target-format.md").read_text()
    for f in SCHEMA:
        assert f"`{f.path}`" in doc, f.path
