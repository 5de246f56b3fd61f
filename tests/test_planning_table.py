"""docs/memory-planning.md's "Measured" table is generated (``benchmarks/bench_planning.py
--write-doc``) and must stay true:

* the table covers every zoo model on both bundled targets, sorted as the benchmark writes it;
* every row's deterministic figures (cycles, energy, DRAM words in both modes, the stay
  count, the plan status: every cell but the compile times) are those of the regression
  goldens (tests/goldens/, which tests/test_regress.py holds to the compiler), for all rows;
* a few rows, compiled fresh in-process through the driver (no schedule cache, in-process
  caches cleared before each compile), give exactly the doc's figures.

A failure here means the doc drifted: rerun ``.venv/bin/python benchmarks/bench_planning.py
--write-doc`` (``--models M ...`` for just the rows that moved).

The rendering and parsing of the table live in the benchmark, loaded here by path, so the
doc, the benchmark and this test share one definition of a row.
"""
from __future__ import annotations

import importlib.util

import pytest

from conftest import clear_process_caches
from support import ROOT

_spec = importlib.util.spec_from_file_location("bench_planning", ROOT / "benchmarks" / "bench_planning.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

GOLDENS = ROOT / "tests" / "goldens"
REGENERATE = "regenerate it: .venv/bin/python benchmarks/bench_planning.py --write-doc [--models M ...]"

#: Rows compiled fresh: a comparison network whose row was stale (concat became a layer,
#: the planner keeps 9 of its 37 activations on pe16x16) and the headline SqueezeNext row.
FRESH_ROWS = [("SqueezeNet-1.1", "pe16x16"), ("1.0-SqNxt-23", "pe16x16")]


def doc_rows() -> dict[tuple[str, str], dict[str, str]]:
    return {(c["model"], c["target"]): c for c in bench.parse_table(bench.DOC.read_text())}


def deterministic(c: dict[str, str]) -> dict[str, str]:
    return {k: c[k] for k in bench.DETERMINISTIC}


def golden_row(model: str, target: str) -> dict:
    """The benchmark's row record of (model, target), its figures read from the goldens."""
    from sqnxt_compiler.report.golden import golden_filename, parse_golden

    t = {h: parse_golden((GOLDENS / golden_filename(model, target, h)).read_text()).totals
         for h in ("dram", "planned")}
    stay, tensors = t["planned"]["plan.resident"].split("/")
    return {"model": model, "target": target,
            "cycles": [int(t[h]["total_cycles"]) for h in ("dram", "planned")],
            "energy": [int(t[h]["energy.total"]) for h in ("dram", "planned")],
            "dram_words": [int(t[h]["dram_words.total"]) for h in ("dram", "planned")],
            "resident": int(stay), "tensors": int(tensors),
            "plan_status": t["planned"]["plan.status"],
            "layer_status": {k.removeprefix("status."): int(v) for k, v in t["planned"].items()
                             if k.startswith("status.")}}


def test_the_table_is_generated_and_covers_every_zoo_model_on_both_targets_in_order():
    from sqnxt_compiler.zoo import list_models

    text = bench.DOC.read_text()
    assert text.count(bench.BEGIN) == 1 and text.count(bench.END) == 1
    keys = [(c["model"], c["target"]) for c in bench.parse_table(text)]
    expected = sorted((m.name, t) for m in list_models() for t in bench.TARGETS)
    assert keys == expected, f"the doc's rows are not every zoo model on {bench.TARGETS}; {REGENERATE}"


def test_rendering_a_row_gives_the_docs_line_back():
    # the parser and the renderer agree (a row written and read is the same cells)
    row = {"model": "M", "target": "pe8x8", "cycles": [2_000_000, 1_500_000],
           "energy": [4_500_000_000, 4_499_999_000], "dram_words": [10, 10], "resident": 3,
           "tensors": 7, "plan_status": "optimal", "layer_status": {"optimal": 5, "feasible": 2},
           "wall_s": [2.34, 3.05]}
    text = f"x\n{bench.BEGIN}\n{bench.render_table([row])}{bench.END}\ny\n"
    (c,) = bench.parse_table(text)
    assert c == {"model": "M", "target": "pe8x8",
                 "cycles": "2,000,000 -> 1,500,000 (-25.0%)",
                 "energy": "4.500G -> 4.500G (-0.0%)", "dram_words": "10 -> 10 (+0.0%)",
                 "stay": "3/7", "plan": "optimal (layers: 2 feasible)", "compile_s": "2.3 / 3.0"}


def test_every_rows_figures_are_the_goldens():
    """All 50 rows, no compile: the goldens are the compiler's figures (test_regress)."""
    wrong = []
    for (m, t), c in doc_rows().items():
        want = deterministic(bench.cells(golden_row(m, t)))
        if deterministic(c) != want:
            wrong.append(f"{m} on {t}:\n  doc:     {deterministic(c)}\n  goldens: {want}")
    assert not wrong, f"{len(wrong)} row(s) of the doc's table differ from the goldens " \
                      f"({REGENERATE}):\n" + "\n".join(wrong)


def fresh_document(model: str, target: str, home: str) -> dict:
    """The schedule document of ``sqnxtc compile zoo:MODEL -t TARGET --activation-home HOME``
    (what the benchmark reads), compiled in-process with every cache out of the way."""
    from sqnxt_compiler import driver
    from sqnxt_compiler.cli.options import load_target_with
    from sqnxt_compiler.schedule import solver

    clear_process_caches()
    before = solver.STATS["solved"]
    res = driver.compile(f"zoo:{model}", target=load_target_with(target, home))
    assert all(not p.options.cache_dir for p in res.passes if p.name == "schedule")
    assert solver.STATS["solved"] > before, "answered from a cache"
    return res.document


@pytest.mark.parametrize("model,target", FRESH_ROWS)
def test_a_fresh_compile_gives_the_docs_figures(model, target, cached_zoo_build):
    fresh = bench.row_of(model, target, fresh_document(model, target, "dram"),
                         fresh_document(model, target, "planned"))
    assert deterministic(doc_rows()[(model, target)]) == deterministic(bench.cells(fresh)), REGENERATE
