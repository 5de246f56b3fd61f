"""The package's module-level import graph has no cycle.

Every module of the installed ``sqnxt_compiler`` is parsed with :mod:`ast` (not imported
for its imports: lazy imports inside functions count, since they still tie the two
modules together in the design).  An edge ``a -> b`` means module ``a`` imports module
``b``:

* ``import p.m`` / ``from p.m import name`` is an edge to the deepest *module* of the
  dotted name: ``from p.m import f`` (``f`` a function) is an edge to ``p.m``,
  ``from p import m`` (``m`` a module) an edge to ``p.m``, and an import of a package is
  an edge to its ``__init__`` (the node named like the package);
* relative imports are resolved against the importing module's package, so
  ``from . import X`` in ``p/q.py``, with ``X`` defined in ``p/__init__.py``, is
  ``p.q -> p``, and a package's ``__init__`` importing its submodules is ``p -> p.m``;
* only modules of ``sqnxt_compiler`` are nodes.

``sqnxt_compiler.passes``, ``.targets`` and ``.zoo`` live in the repository's top-level
folders (pyproject's ``package-dir``), so ``sqnxt_compiler.__path__`` alone does not reach
them: the walk starts from every package pyproject lists (tests/test_packaging.py checks
that list is complete) and walks each one's own ``__path__``.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import itertools
import pkgutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP = "sqnxt_compiler"
MAX_CYCLES_SHOWN = 50


@dataclass(frozen=True)
class Module:
    name: str
    is_package: bool
    path: Path


@dataclass(frozen=True)
class Import:
    target: str      # the dotted name as written, resolved to absolute
    names: tuple     # for ``from target import a, b``: ("a", "b"); () for ``import target``
    line: int


def _raise(name):
    raise ImportError(f"cannot import {name} while walking {TOP}")


def walk_modules() -> dict[str, Module]:
    """Every module of the installed package, by dotted name."""
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    roots = [TOP] + [p for p in listed if p == TOP or p.startswith(TOP + ".")]
    modules: dict[str, Module] = {}
    for root in roots:
        pkg = importlib.import_module(root)
        modules[root] = Module(root, True, Path(pkg.__file__))
        for info in pkgutil.walk_packages(pkg.__path__, root + ".", onerror=_raise):
            spec = importlib.util.find_spec(info.name)
            assert spec is not None and spec.origin, info.name
            modules[info.name] = Module(info.name, info.ispkg, Path(spec.origin))
    return modules


def imports_of(module_name: str, is_package: bool, source: str, filename: str = "<src>") -> list[Import]:
    """Every import statement of a module (anywhere in it), with relative names resolved."""
    package = module_name if is_package else module_name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            out += [Import(a.name, (), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            else:
                base = node.module
            out.append(Import(base, tuple(a.name for a in node.names), node.lineno))
    return out


def deepest_module(dotted: str, modules) -> str | None:
    """The longest prefix of ``dotted`` that is a module of the package, else None."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        cand = ".".join(parts[:n])
        if cand in modules:
            return cand
    return None


def edges_of(imp: Import, modules, top: str = TOP) -> list[str]:
    """The modules of package ``top`` an import statement imports (see the module docstring)."""
    if not (imp.target == top or imp.target.startswith(top + ".")):
        return []
    if not imp.names:
        return [deepest_module(imp.target, modules)]
    out = []
    for name in imp.names:
        sub = f"{imp.target}.{name}"
        out.append(sub if name != "*" and sub in modules else deepest_module(imp.target, modules))
    return out


def import_graph(modules: dict[str, Module]) -> nx.DiGraph:
    """Nodes: module names; edge attribute ``at``: the ``file:line`` of each import."""
    g = nx.DiGraph()
    g.add_nodes_from(modules)
    for m in modules.values():
        for imp in imports_of(m.name, m.is_package, m.path.read_text(), str(m.path)):
            for target in edges_of(imp, modules):
                if target is None:
                    raise AssertionError(f"{m.path}:{imp.line}: '{imp.target}' is not a module "
                                         f"of {TOP} found by the walk")
                if target == m.name:
                    continue
                if not g.has_edge(m.name, target):
                    g.add_edge(m.name, target, at=[])
                at = g.edges[m.name, target]["at"]
                if f"{_rel(m.path)}:{imp.line}" not in at:
                    at.append(f"{_rel(m.path)}:{imp.line}")
    return g


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def describe_cycles(g: nx.DiGraph) -> str:
    sccs = sorted((sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1),
                  key=lambda c: (-len(c), c))
    lines = [f"{len(sccs)} group(s) of modules that import each other in a cycle:"]
    for c in sccs:
        lines.append(f"  {{{', '.join(c)}}}")
    cycles = sorted(itertools.islice(nx.simple_cycles(g), 10 * MAX_CYCLES_SHOWN), key=lambda c: (len(c), c))
    lines.append(f"cycles (shortest first{', truncated' if len(cycles) > MAX_CYCLES_SHOWN else ''}):")
    for cyc in cycles[:MAX_CYCLES_SHOWN]:
        hops = [f"{a} -> {b} ({', '.join(g.edges[a, b]['at'])})" for a, b in zip(cyc, cyc[1:] + cyc[:1])]
        lines.append("  " + "\n      ".join(hops))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def modules():
    return walk_modules()


@pytest.fixture(scope="module")
def graph(modules):
    return import_graph(modules)


def test_the_walk_reaches_every_package_including_the_mapped_folders(modules):
    for pkg in ("passes", "targets", "zoo"):
        assert modules[f"{TOP}.{pkg}"].path.resolve() == ROOT / pkg / "__init__.py"
    assert not [m for m in modules.values() if not m.path.resolve().is_relative_to(ROOT)]
    assert {f"{TOP}.zoo.registry", f"{TOP}.schedule.solver", f"{TOP}.passes.schedule",
            f"{TOP}.targets.target", f"{TOP}.driver"} <= set(modules)


def test_edges_follow_the_rules():
    mods = {"p", "p.a", "p.b", "p.sub", "p.sub.c"}
    def imp(name, is_package, source):
        return sorted(t for i in imports_of(name, is_package, source) for t in edges_of(i, mods, "p"))

    # module vs name in a module; package -> its __init__
    assert imp("p.a", False, "from p.b import f\nimport p.sub\nfrom p.sub import c") == ["p.b", "p.sub", "p.sub.c"]
    # relative: a name from the parent package's __init__ is an edge to the __init__
    assert imp("p.sub.c", False, "from . import X\nfrom .. import a\nfrom ..b import g") == ["p.a", "p.b", "p.sub"]
    # a package's __init__ importing its own submodules; star imports; lazy imports
    assert imp("p.sub", True, "from . import c\nfrom .c import *") == ["p.sub.c", "p.sub.c"]
    assert imp("p", True, "def f():\n    from .sub.c import y\n") == ["p.sub.c"]
    # outside the package: no edge
    assert imp("p.a", False, "import os\nfrom numpy import array") == []


def test_no_import_cycles(graph):
    """``graph`` is built from every module's source; the assertion message lists each
    strongly connected group and the shortest cycles with the file:line of every hop."""
    assert graph.number_of_edges() > 0
    cyclic = [c for c in nx.strongly_connected_components(graph) if len(c) > 1]
    if cyclic:
        print(describe_cycles(graph))
        groups = "; ".join(" <-> ".join(sorted(c)) for c in cyclic)
        pytest.fail(f"import cycles among: {groups} (every cycle, with file:line, in the "
                    f"captured stdout)", pytrace=False)
