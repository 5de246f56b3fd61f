"""The on-disk schedule cache on by default (docs/scheduler.md, "The on-disk cache"): where
it lives, that a second compile reads it and writes byte-identical outputs, --no-cache,
eviction, concurrent writers, and a key that changes with the code.

tests/conftest.py sets SQNXTC_NO_CACHE for the whole suite; every test here that wants
the default cache unsets it and points XDG_CACHE_HOME at a directory of its own."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


from conftest import clear_process_caches
from sqnxt_compiler.cachedir import source_fingerprint
from sqnxt_compiler.schedule import cache
from support import small_conv_net, user_cache

ROOT = Path(__file__).resolve().parents[1]


def _net(path: Path) -> str:
    return small_conv_net(path)


def _user_cache(monkeypatch, tmp_path) -> Path:
    return user_cache(monkeypatch, tmp_path) / "schedules"


def _outputs(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_where_the_cache_lives(monkeypatch, tmp_path):
    for k in ("SQNXTC_NO_CACHE", "SQNXTC_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.default_dir() == tmp_path / "home" / ".cache" / "sqnxtc" / "schedules"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")           # XDG: only absolute paths
    assert cache.default_dir() == tmp_path / "home" / ".cache" / "sqnxtc" / "schedules"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_dir() == tmp_path / "xdg" / "sqnxtc" / "schedules"
    monkeypatch.setenv("SQNXTC_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.default_dir() == tmp_path / "mine" / "schedules"
    monkeypatch.setenv("SQNXTC_NO_CACHE", "1")
    assert cache.default_dir() is None
    assert cache.resolve_dir(True, tmp_path / "given") == tmp_path / "given"   # a given one still counts
    assert cache.resolve_dir(False, None) is None


def test_a_second_compile_reads_the_default_cache_and_writes_the_same_bytes(cli, monkeypatch, tmp_path):
    d = _user_cache(monkeypatch, tmp_path)
    model = _net(tmp_path / "m.onnx")
    args = ("compile", model, "-t", "pe8x8", "-j", "1")
    clear_process_caches()
    before = dict(cache.STATS)
    assert cli(*args, "-o", tmp_path / "cold").exit_code == 0
    files = sorted(p.name for p in d.iterdir())
    entries = [f for f in files if not f.startswith("plan-")]
    plans = [f for f in files if f.startswith("plan-")]
    assert entries, "the first compile wrote no entry"
    assert len(plans) == 1                   # pe8x8 plans its memory: the network plan is kept too
    solved = cache.STATS["solved"] - before.get("solved", 0)
    lookups = solved + cache.STATS["memory"] - before.get("memory", 0)
    assert solved == len(entries)            # every solve stored (none time-limited)

    clear_process_caches()                   # nothing in memory: only the disk can answer
    before = dict(cache.STATS)
    assert cli(*args, "-o", tmp_path / "warm").exit_code == 0
    assert cache.STATS["solved"] - before.get("solved", 0) == 0
    assert cache.STATS["disk"] - before.get("disk", 0) == lookups   # every lookup answered from disk
    assert cache.STATS["plan-disk"] - before.get("plan-disk", 0) == 1
    assert sorted(p.name for p in d.iterdir()) == files

    clear_process_caches()
    assert cli(*args, "--no-cache", "-o", tmp_path / "none").exit_code == 0
    cold, warm, none = (_outputs(tmp_path / n) for n in ("cold", "warm", "none"))
    assert cold == warm == none


def test_no_cache_writes_nothing_and_contradicting_a_cache_dir_is_a_usage_error(cli, monkeypatch, tmp_path):
    d = _user_cache(monkeypatch, tmp_path)
    model = _net(tmp_path / "m.onnx")
    r = cli("compile", model, "-t", "pe8x8", "--no-cache", "-o", tmp_path / "out")
    assert r.exit_code == 0 and not d.exists()
    r = cli("compile", model, "-t", "pe8x8", "--no-cache", "--cache-dir", tmp_path / "c")
    assert r.exit_code == 2
    assert "contradicts" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()


def test_eviction_removes_the_least_recently_used_first(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    for i in range(6):
        p = d / f"{i:02d}.json"
        p.write_bytes(b"x" * 1000)
        os.utime(p, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))
    (d / "notes.txt").write_bytes(b"y" * 5000)          # not an entry: never counted or removed
    assert cache.evict(d, cap=3500) == 3      # a .txt beside them is not an entry
    assert sorted(p.name for p in d.iterdir()) == ["03.json", "04.json", "05.json", "notes.txt"]
    assert cache.evict(d, cap=3500) == 0


def test_a_hit_makes_an_entry_recent_and_the_cap_holds_after_a_compile(cli, monkeypatch, tmp_path):
    d = _user_cache(monkeypatch, tmp_path)
    model = _net(tmp_path / "m.onnx")
    assert cli("compile", model, "-t", "pe8x8", "-o", tmp_path / "a").exit_code == 0
    old = 10**18
    for p in d.iterdir():
        os.utime(p, ns=(old, old))
    clear_process_caches()
    assert cli("compile", model, "-t", "pe8x8", "-o", tmp_path / "b").exit_code == 0
    assert all(p.stat().st_mtime_ns > old for p in d.iterdir())     # read: refreshed
    monkeypatch.setenv("SQNXTC_CACHE_MAX_MB", "0")
    clear_process_caches()
    assert cli("compile", model, "-t", "pe16x16", "-o", tmp_path / "c").exit_code == 0
    assert list(d.iterdir()) == []           # a zero cap keeps nothing once entries are written


def test_concurrent_compiles_share_one_directory(monkeypatch, tmp_path):
    """Two processes solving the same layers into one cache at once: both succeed with the
    same bytes, and a third run reads every entry without rejecting one."""
    d = _user_cache(monkeypatch, tmp_path)
    model = _net(tmp_path / "m.onnx")
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "sqnxt_compiler", "compile", model, "-t", "pe8x8", "-j", "1"]
    procs = [subprocess.Popen(cmd + ["-o", str(tmp_path / f"p{i}")], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    for p in procs:
        p.wait(timeout=300)
        assert p.returncode == 0, p.stderr.read()
    assert _outputs(tmp_path / "p0") == _outputs(tmp_path / "p1")
    assert not [p for p in d.iterdir() if not p.name.endswith(".json")]   # no temporary file left
    third = subprocess.run(cmd + ["-o", str(tmp_path / "p2")], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert third.returncode == 0 and "ignored" not in third.stderr
    assert _outputs(tmp_path / "p2") == _outputs(tmp_path / "p0")


def test_the_key_changes_with_the_cost_model_and_scheduler_code_only(tmp_path):
    pkg = ROOT / "sqnxt_compiler"
    copy = tmp_path / "pkg"
    for sub in ("cost", "schedule", "report"):
        shutil.copytree(pkg / sub, copy / sub, ignore=shutil.ignore_patterns("__pycache__"))
    fp = lambda: source_fingerprint(copy, ("cost", "schedule"))  # noqa: E731
    base = fp()
    assert base == cache.code_fingerprint()
    (copy / "report" / "extra.py").write_text("X = 1\n")            # not the cost model: same key
    assert fp() == base
    model = copy / "cost" / "model.py"
    model.write_text(model.read_text() + "\n# an edit\n")
    assert fp() != base


def test_a_tampered_plan_entry_is_solved_again_with_a_note(cli, monkeypatch, tmp_path):
    d = _user_cache(monkeypatch, tmp_path)
    model = _net(tmp_path / "m.onnx")
    args = ("compile", model, "-t", "pe8x8", "-j", "1")
    assert cli(*args, "-o", tmp_path / "cold").exit_code == 0
    (plan,) = [p for p in d.iterdir() if p.name.startswith("plan-")]
    doc = json.loads(plan.read_text())
    doc["resident"] = [not r for r in doc["resident"]]          # homes the schedules disagree with
    plan.write_text(json.dumps(doc))
    clear_process_caches()
    r = cli(*args, "-o", tmp_path / "again")
    assert r.exit_code == 0
    assert "memory plan cache entry" in r.stderr and "ignored" in r.stderr
    assert _outputs(tmp_path / "cold") == _outputs(tmp_path / "again")
    assert json.loads(plan.read_text())["resident"] != doc["resident"]     # overwritten by the new solve


def test_a_warm_compile_never_loads_cp_sat(monkeypatch, tmp_path):
    """Every layer and the network plan from the disk cache: OR-Tools' CP-SAT (and the pandas
    it imports) stays unloaded, the bulk of a warm compile's start-up."""
    _user_cache(monkeypatch, tmp_path)
    model = _net(tmp_path / "m.onnx")
    code = ("import sys\nfrom sqnxt_compiler.cli import main\n"
            f"try:\n    main(['compile', {model!r}, '-t', 'pe8x8', '-o', {str(tmp_path / 'o')!r}])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('cp_model' if 'ortools.sat.python.cp_model' in sys.modules else 'none')\n")
    run = lambda: subprocess.run([sys.executable, "-c", code], env=dict(os.environ), cwd=ROOT,  # noqa: E731
                                 capture_output=True, text=True, timeout=300)
    cold, warm = run(), run()
    assert cold.returncode == 0 and warm.returncode == 0, cold.stderr + warm.stderr
    assert cold.stdout.split()[-1] == "cp_model" and warm.stdout.split()[-1] == "none"
