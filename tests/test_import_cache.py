"""The imported-IR cache (sqnxt_compiler/import_cache.py; docs/scheduler.md, "The on-disk
cache"): a second compile of a model imported before skips the frontend (onnx stays
unloaded) and writes byte-identical outputs; the key covers the model's bytes, its path and
the frontend's code; what it never stores; a damaged entry is a miss; check never reads it.

tests/conftest.py sets SQNXTC_NO_CACHE for the suite; these tests unset it and point
XDG_CACHE_HOME at a directory of their own."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx

from sqnxt_compiler import import_cache
from support import small_conv_net, user_cache

ROOT = Path(__file__).resolve().parents[1]


def _net(path: Path, seed: int = 7, batch=1) -> str:
    return small_conv_net(path, seed, batch)


def _user_cache(monkeypatch, tmp_path) -> Path:
    return user_cache(monkeypatch, tmp_path) / "ir"


def _outputs(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _entries(d: Path) -> list[str]:
    return sorted(p.name for p in d.glob(f"*{import_cache.SUFFIX}")) if d.exists() else []


def _compile_in_a_process(model: str, out: Path):
    """compile in a fresh interpreter; prints which heavy modules it loaded."""
    code = ("import sys\nfrom sqnxt_compiler.cli import main\n"
            f"try:\n    main(['compile', {model!r}, '-t', 'pe8x8', '-o', {str(out)!r}])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print(' '.join(m for m in ('onnx', 'sqnxt_compiler.frontend') if m in sys.modules) or 'none')\n")
    return subprocess.run([sys.executable, "-c", code], env=dict(os.environ), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_a_warm_compile_skips_the_frontend_and_writes_the_same_bytes(monkeypatch, tmp_path):
    d = _user_cache(monkeypatch, tmp_path)
    model = _net(tmp_path / "m.onnx", batch="N")        # an import note: the batch bound to 1
    cold = _compile_in_a_process(model, tmp_path / "cold")
    assert cold.returncode == 0, cold.stderr
    assert cold.stdout.split("\n")[-2] == "onnx sqnxt_compiler.frontend"
    assert len(_entries(d)) == 1
    warm = _compile_in_a_process(model, tmp_path / "warm")
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.split("\n")[-2] == "none"            # neither onnx nor the frontend loaded
    monkeypatch.setenv("SQNXTC_NO_CACHE", "1")
    none = _compile_in_a_process(model, tmp_path / "none")
    assert none.returncode == 0, none.stderr
    assert _outputs(tmp_path / "cold") == _outputs(tmp_path / "warm") == _outputs(tmp_path / "none")
    notes = lambda r: [x for x in r.stderr.splitlines() if not x.startswith("wrote ")]  # noqa: E731
    assert notes(cold) == notes(warm) == notes(none)          # the import's notes, replayed
    assert any("symbolic batch dimension 'N' bound to 1" in x for x in notes(warm))


def test_the_key_covers_the_bytes_the_path_and_the_frontend(monkeypatch, tmp_path):
    _user_cache(monkeypatch, tmp_path)
    a = _net(tmp_path / "a.onnx")
    k = import_cache.key(a)
    assert k is not None and import_cache.key(a) == k        # the same file, the same key
    shutil.copy(a, tmp_path / "b.onnx")
    assert import_cache.key(str(tmp_path / "b.onnx")) != k   # the same bytes elsewhere: its path is in the IR
    _net(tmp_path / "a.onnx", seed=8)                         # edited in place
    assert import_cache.key(a) != k
    assert import_cache.key(str(tmp_path / "missing.onnx")) is None
    assert import_cache.key("zoo:1.0-SqNxt-23") != import_cache.key("zoo:1.0-SqNxt-44")
    fp = import_cache.code_fingerprint(False)
    assert fp != import_cache.code_fingerprint(True)          # the zoo's code counts for zoo models
    assert len(fp) == 64


def test_no_cache_a_host_tail_or_external_data_store_nothing(cli, monkeypatch, tmp_path):
    d = _user_cache(monkeypatch, tmp_path)
    model = _net(tmp_path / "m.onnx")
    assert cli("compile", model, "-t", "pe8x8", "--no-cache").exit_code == 0
    assert _entries(d) == []
    from test_host_tail import detector
    p = tmp_path / "det.onnx"
    onnx.save(detector(), str(p))
    assert cli("compile", str(p), "-t", "pe8x8").exit_code == 0
    assert _entries(d) == []                                  # a host tail: its ONNX parts are not kept
    ext = tmp_path / "ext" / "m.onnx"
    ext.parent.mkdir()
    m = onnx.load(model)
    onnx.save(m, str(ext), save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin",
              size_threshold=0)
    assert import_cache.external_data(str(ext)) and not import_cache.external_data(model)
    assert cli("compile", str(ext), "-t", "pe8x8").exit_code == 0
    assert _entries(d) == []                                  # its weights live in w.bin
    assert cli("compile", model, "-t", "pe8x8").exit_code == 0
    assert len(_entries(d)) == 1


def test_a_damaged_entry_is_imported_again(cli, monkeypatch, tmp_path):
    d = _user_cache(monkeypatch, tmp_path)
    model = _net(tmp_path / "m.onnx")
    assert cli("compile", model, "-t", "pe8x8", "-o", tmp_path / "a").exit_code == 0
    (entry,) = d.glob(f"*{import_cache.SUFFIX}")
    entry.write_bytes(entry.read_bytes()[:100])               # truncated
    assert import_cache.get(entry.name[:-len(import_cache.SUFFIX)]) is None
    assert cli("compile", model, "-t", "pe8x8", "-o", tmp_path / "b").exit_code == 0
    assert _outputs(tmp_path / "a") == _outputs(tmp_path / "b")
    assert import_cache.get(entry.name[:-len(import_cache.SUFFIX)]) is not None   # overwritten


def test_check_imports_for_its_reference(cli, monkeypatch, tmp_path):
    """A warm entry does not stand in for check, which needs the ONNX model for onnxruntime."""
    _user_cache(monkeypatch, tmp_path)
    model = _net(tmp_path / "m.onnx")
    assert cli("compile", model, "-t", "pe8x8").exit_code == 0
    r = cli("check", model, "-t", "pe8x8", "--tiled")
    assert r.exit_code == 0 and "PASS" in r.stdout, r.stdout + r.stderr
