"""Packaging guards: every package is listed in pyproject.toml (a plain, non-editable
install would silently miss one otherwise), and nothing imports the mapped top-level
directories by their bare names (from the repo root that loads a second copy)."""
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"passes": "sqnxt_compiler.passes", "targets": "sqnxt_compiler.targets", "zoo": "sqnxt_compiler.zoo"}


def test_every_package_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = set()
    for init in (ROOT / "sqnxt_compiler").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(ROOT).parts))
    for top, pkg in MAPPED.items():
        assert cfg["package-dir"][pkg] == top
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join((pkg,) + init.parent.relative_to(ROOT / top).parts))
    assert found <= listed, sorted(found - listed)


def test_no_bare_imports_of_mapped_directories():
    pat = re.compile(r"^\s*(import (passes|targets|zoo)\b|from (passes|targets|zoo)( |\.))", re.M)
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    bad = [f for f in files if f != "tests/test_packaging.py" and pat.search((ROOT / f).read_text())]
    assert not bad, bad
