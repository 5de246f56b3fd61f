"""The compile-output cache (sqnxt_compiler/output_cache.py; docs/scheduler.md, "The on-disk
cache"): a second ``sqnxtc compile`` of the same model, target and options replays the
first one's outputs and notes, byte for byte what a compile without any cache writes,
without running the compiler; anything that can change an output is in the key; what
must not be replayed is not stored.  The suite sets SQNXTC_NO_CACHE; these tests point
the cache at a directory of their own (support.user_cache with the output cache on)."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import onnx

from support import small_conv_net, user_cache
from sqnxt_compiler import output_cache

ROOT = Path(__file__).resolve().parents[1]


def _cache(monkeypatch, tmp_path) -> Path:
    return user_cache(monkeypatch, tmp_path, outputs=True) / "out"


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _entries(d: Path) -> list[Path]:
    return sorted(d.glob(f"*{output_cache.SUFFIX}")) if d.exists() else []


#: modules only a compile loads (the CLI itself loads the IR and the pass registry)
COMPILER = ("sqnxt_compiler.frontend", "sqnxt_compiler.schedule.liveness", "sqnxt_compiler.report.summary",
            "sqnxt_compiler.schedule.solver", "networkx")


def _compile_in_a_process(*args: str):
    """compile in a fresh interpreter; prints whether the compiler's modules were loaded."""
    code = ("import sys\nfrom sqnxt_compiler.cli import main\n"
            f"try:\n    main(['compile', *{list(args)!r}])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            f"print('LOADED', ' '.join(m for m in {COMPILER!r} if m in sys.modules) or 'none')\n")
    return subprocess.run([sys.executable, "-c", code], env=dict(os.environ), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _notes(stderr: str) -> list[str]:
    return [x for x in stderr.splitlines() if not x.startswith("wrote ")]


def test_a_second_compile_replays_the_first_without_compiling(monkeypatch, tmp_path):
    d = _cache(monkeypatch, tmp_path)
    model = small_conv_net(tmp_path / "m.onnx", batch="N")       # a note: the batch bound to 1
    cold = _compile_in_a_process(model, "-t", "pe8x8", "-o", str(tmp_path / "cold"))
    assert cold.returncode == 0, cold.stderr
    assert len(_entries(d)) == 1
    warm = _compile_in_a_process(model, "-t", "pe8x8", "-o", str(tmp_path / "warm"))
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.splitlines()[-1] == "LOADED none"     # no frontend, solver, planner, report
    monkeypatch.setenv("SQNXTC_NO_CACHE", "1")                     # no cache at all: a real compile
    none = _compile_in_a_process(model, "-t", "pe8x8", "-o", str(tmp_path / "none"))
    assert none.returncode == 0, none.stderr
    assert none.stdout.splitlines()[-1] == "LOADED " + " ".join(COMPILER)
    assert _files(tmp_path / "cold") == _files(tmp_path / "warm") == _files(tmp_path / "none")
    out = lambda r: r.stdout.rsplit("LOADED", 1)[0]  # noqa: E731 - the summary on stdout
    assert out(cold) == out(warm) == out(none) != ""
    assert _notes(cold.stderr) == _notes(warm.stderr) == _notes(none.stderr)
    assert any("symbolic batch dimension 'N' bound to 1" in x for x in _notes(warm.stderr))


def test_standard_output_and_one_file_replay_too(cli, monkeypatch, tmp_path):
    d = _cache(monkeypatch, tmp_path)
    model = small_conv_net(tmp_path / "m.onnx")
    first = cli("compile", model, "-t", "pe8x8")
    again = cli("compile", model, "-t", "pe8x8")
    assert first.exit_code == again.exit_code == 0 and first.stdout == again.stdout
    assert len(_entries(d)) == 1
    for name in ("a.json", "b.json"):
        assert cli("compile", model, "-t", "pe8x8", "--emit", "schedule", "-o", tmp_path / name).exit_code == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert len(_entries(d)) == 2          # another format: another entry
    monkeypatch.setenv("SQNXTC_NO_CACHE", "1")
    assert cli("compile", model, "-t", "pe8x8").stdout == first.stdout


def test_the_key_covers_the_model_the_target_and_the_options(monkeypatch, tmp_path):
    _cache(monkeypatch, tmp_path)
    from sqnxt_compiler.targets import load_target
    from dataclasses import replace

    t = load_target("pe8x8")
    model = small_conv_net(tmp_path / "m.onnx")
    opts = {"passes": "default", "schedule": {"objective": None}, "emits": (), "top": 10, "output": None,
            "activation_home": None}
    k = output_cache.key(model, t, opts)
    assert k is not None and output_cache.key(model, t, dict(opts)) == k
    assert output_cache.key(model, replace(t, e_dram=t.e_dram + 1), opts) != k      # any target field
    assert output_cache.key(model, t, {**opts, "top": 5}) != k
    assert output_cache.key(model, t, {**opts, "emits": ("summary",)}) != k
    assert output_cache.key(model, t, {**opts, "schedule": {"objective": "energy"}}) != k
    m = onnx.load(model)
    m.graph.initializer[0].float_data.append(0.0)          # the same path, other bytes
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:-4] + b"\0\0\0\0"
    del m.graph.initializer[0].float_data[:]
    onnx.save(m, model)
    assert output_cache.key(model, t, opts) != k
    assert output_cache.key(str(tmp_path / "missing.onnx"), t, opts) is None
    assert output_cache.key("zoo:1.0-SqNxt-23", t, opts) is not None
    monkeypatch.setenv("SQNXTC_NO_OUTPUT_CACHE", "1")
    assert output_cache.key(model, t, opts) is None


def test_what_must_not_be_replayed_is_not_stored(cli, monkeypatch, tmp_path):
    d = _cache(monkeypatch, tmp_path)
    model = small_conv_net(tmp_path / "m.onnx")
    for extra in (("--time-limit", "5"), ("--pass-timing",), ("--print-ir-after", "schedule"), ("--no-cache",),
                  ("--passes", "default,schedule{time-limit=5}")):
        assert cli("compile", model, "-t", "pe8x8", *extra).exit_code == 0, extra
        assert _entries(d) == [], extra
    # an invalid entry of another cache in the notes: the compile is stored only once they are gone
    assert not output_cache.storable(["schedule cache entry /x ignored (layer 'a'): bad; solved again"], model)
    assert output_cache.storable(["symbolic batch dimension 'N' bound to 1"], model)


def test_a_damaged_entry_is_a_miss_and_is_written_again(cli, monkeypatch, tmp_path):
    d = _cache(monkeypatch, tmp_path)
    model = small_conv_net(tmp_path / "m.onnx")
    first = cli("compile", model, "-t", "pe8x8")
    (entry,) = _entries(d)
    entry.write_bytes(entry.read_bytes()[:100])                   # truncated
    again = cli("compile", model, "-t", "pe8x8")
    assert again.exit_code == 0 and again.stdout == first.stdout
    got = pickle.loads(entry.read_bytes())
    assert got["format"] == output_cache.FORMAT and got["emits"] == ("summary",)
    # an entry for a directory of files does not fit '-o FILE' asking one format: compiled
    entry.write_bytes(pickle.dumps({**got, "outputs": {"summary.txt": "x"}}))
    third = cli("compile", model, "-t", "pe8x8")
    assert third.exit_code == 0 and third.stdout == first.stdout
