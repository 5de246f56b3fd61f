"""Cycle-count regression goldens (docs/regression.md).

* ``test_goldens_of_the_zoo_model``: every zoo SqueezeNext model and comparison network on
  pe16x16 and pe8x8, activations planned and through DRAM, compiled for real once per
  model, against ``tests/goldens/<model>__<target>__<home>.txt``; a failure names each
  layer whose figures moved (old -> new per figure) and the totals.
* unit tests of parse_golden / compare on hand-made goldens;
* the mechanism end to end: one cost-model constant of the target changed, and the
  comparison (and ``sqnxtc regress``) names exactly the layers whose figures moved, as
  computed independently from the two schedules.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from report_support import fresh_solves
from sqnxt_compiler import driver, regress
from sqnxt_compiler.report.golden import (Difference, Golden, GoldenError, LayerLine, compare,
                                          format_golden, golden_filename, header_notes,
                                          moved_layers, parse_golden)
from sqnxt_compiler.targets import load_target

GOLDENS = Path(__file__).parent / "goldens"
MODELS = regress.golden_models()
# model-major: one build per model
CASES = [(m, t, h) for m in MODELS for t in regress.TARGETS for h in regress.HOMES]

_RENDERED: dict[tuple[str, str, str], str] = {}


def rendered(model: str, target: str, home: str = "planned") -> str:
    """The current golden text of (model, target, activation home); each model is built
    once for both targets and both homes, and only the texts are kept (VGG-19's weights
    alone are ~575 MB)."""
    if (model, target, home) not in _RENDERED:
        for m, t, text in regress.render_all([model], regress.golden_points(regress.TARGETS)):
            _RENDERED[(m, t.name, t.activation_home)] = text
    return _RENDERED[(model, target, home)]


# ---------------------------------------------------------------------------------------
# the goldens
# ---------------------------------------------------------------------------------------
def test_the_golden_set_covers_the_zoo_families_on_both_targets():
    from sqnxt_compiler.zoo import list_models

    fams = {m.name: m.family for m in list_models()}
    assert set(MODELS) == {n for n, f in fams.items() if f in ("squeezenext", "comparison")}
    assert {"1.0-SqNxt-23", "2.0-SqNxt-44", "AlexNet", "VGG-19", "MobileNet-1.0-224"} <= set(MODELS)
    expected = {golden_filename(m, t, h) for m, t, h in CASES}
    present = {p.name for p in GOLDENS.glob("*.txt")}
    assert present == expected, (f"missing: {sorted(expected - present)}; "
                                 f"stale: {sorted(present - expected)}")


def golden_failure(model: str, target: str, home: str) -> str | None:
    """Why (model, target, home)'s golden does not hold, or None: every figure of every
    layer equal, and the file exactly what the tool writes apart from provenance lines."""
    path = GOLDENS / golden_filename(model, target, home)
    if not path.exists():
        return (f"no golden {path} (sqnxtc regress --update --model {model} --target {target} "
                f"--activation-home {home})")
    expected = path.read_text()
    actual = rendered(model, target, home)
    diffs = compare(expected, actual)
    if diffs:
        notes = header_notes(expected, actual)
        return (f"{model} on {target} ({home}): figures moved against {path.name} "
                f"({len(moved_layers(diffs))} layer(s)):\n"
                + "\n".join(f"  {d}" for d in diffs)
                + "".join(f"\n  note: {n}" for n in notes)
                + "\nIf the change is intended: sqnxtc regress --update")
    strip = re.compile(r"^(sqnxtc|ortools|pipeline|fingerprint) .*$", re.M)
    if strip.sub("", expected) != strip.sub("", actual):
        return f"{path.name}: the file differs from what sqnxtc regress writes (outside provenance lines)"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_goldens_of_the_zoo_model(model):
    """The model's four goldens (both targets, activations planned and through DRAM),
    rendered by one real compile per point (``rendered``: the model imported once), and
    on both targets the planned
    network is never worse than all-DRAM: cycles at most, at equal cycles energy at most
    (the objective is cycles, ties energy: the all-DRAM plan is always a candidate), the
    plan proven optimal."""
    problems = [f for t in regress.TARGETS for h in regress.HOMES if (f := golden_failure(model, t, h))]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    for target in regress.TARGETS:
        p = parse_golden(rendered(model, target, "planned")).totals
        d = parse_golden(rendered(model, target, "dram")).totals
        assert p["plan.status"] == "optimal" and "plan.status" not in d
        assert int(p["total_cycles"]) <= int(d["total_cycles"]), (model, target)
        if p["total_cycles"] == d["total_cycles"]:
            assert int(p["energy.total"]) <= int(d["energy.total"]), (model, target)
        assert p["macs"] == d["macs"] and p["layers"] == d["layers"]


def test_golden_totals_are_the_sums_of_their_layer_lines():
    for path in sorted(GOLDENS.glob("*.txt")):
        g = parse_golden(path.read_text())
        for fig, total in (("total_cycles", "total_cycles"), ("compute_cycles", "compute_cycles"),
                           ("dma_cycles", "dma_cycles"), ("energy", "energy.total"),
                           ("dram_words", "dram_words.total")):
            assert sum(getattr(L, fig) for L in g.layers) == int(g.totals[total]), (path.name, fig)
        assert int(g.totals["layers"]) == len(g.layers) > 0
        assert [L.index for L in g.layers] == list(range(len(g.layers)))
        assert g.totals.get("status.optimal") == g.totals["layers"], path.name  # all proven optimal


# ---------------------------------------------------------------------------------------
# parse_golden / compare on hand-made goldens
# ---------------------------------------------------------------------------------------
def _golden(layers=None, **header) -> Golden:
    h = {"format": "2", "model": "m", "target": "pe16x16", "activation_home": "planned",
         "fingerprint": "sha256:00",
         "pipeline": "default,schedule", "objective": "cycles", "sqnxtc": "0.1.0", "ortools": "9.15"}
    h.update(header)
    if layers is None:
        layers = [LayerLine(0, "conv1", "conv", "OS", "16,16,3,8", "cyxk", 1000, 900, 800, 50000, 700),
                  LayerLine(1, "pool1", "maxpool", "OS", "19,55,1,5", "kcyx", 500, 100, 500, 9000, 600),
                  LayerLine(2, "fc", "fc", "WS", "1,1,128,250", "kcyx", 300, 200, 300, 7000, 100)]
    tot = {"layers": str(len(layers)), "total_cycles": str(sum(L.total_cycles for L in layers)),
           "energy.total": str(sum(L.energy for L in layers))}
    return Golden(h, list(layers), tot)


def test_format_and_parse_round_trip():
    g = _golden()
    text = format_golden(g)
    back = parse_golden(text)
    assert back.layers == g.layers and back.header == g.header and back.totals == g.totals
    assert compare(text, text) == [] and compare(g, back) == []
    # fixed-width columns: every layer line has the same length up to the last figure
    lines = [line for line in text.splitlines() if re.match(r"\s+\d+\s", line)]
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1


def test_layer_names_with_spaces_are_quoted_and_read_back():
    layers = [LayerLine(0, "my conv 1", "conv", "WS", "1,1,1,1", "kcyx", 1, 1, 1, 1, 1),
              LayerLine(1, '"q"', "conv", "WS", "1,1,1,1", "kcyx", 2, 2, 2, 2, 2)]
    back = parse_golden(format_golden(_golden(layers)))
    assert [L.name for L in back.layers] == ["my conv 1", '"q"']


def test_identical_figures_pass():
    assert compare(_golden(), _golden()) == []


def test_a_changed_figure_names_its_layer_with_old_and_new():
    e = _golden()
    a = _golden([e.layers[0], dataclasses.replace(e.layers[1], total_cycles=510, energy=9100), e.layers[2]])
    diffs = compare(e, a)
    layer = [d for d in diffs if d.what == "layer"]
    assert len(layer) == 1
    d = layer[0]
    assert (d.name, d.index, d.kind) == ("pool1", 1, "maxpool")
    assert d.changes == (("total_cycles", 500, 510), ("energy", 9000, 9100))
    assert str(d) == ("layer 1 'pool1' (maxpool): total_cycles 500 -> 510 (+2.00%), "
                      "energy 9000 -> 9100 (+1.11%)")
    tot = [d for d in diffs if d.what == "totals"]
    assert len(tot) == 1 and ("total_cycles", "1800", "1810") in tot[0].changes
    assert moved_layers(diffs) == {"pool1"}


def test_a_changed_mapping_with_equal_costs_is_named():
    e = _golden()
    a = _golden([e.layers[0], e.layers[1], dataclasses.replace(e.layers[2], tiles="1,1,64,250", order="ckyx")])
    diffs = compare(e, a)
    assert [(d.what, d.name) for d in diffs] == [("layer", "fc")]
    assert diffs[0].changes == (("tiles", "1,1,128,250", "1,1,64,250"), ("order", "kcyx", "ckyx"))


def test_a_removed_and_an_added_layer_are_named_and_later_layers_do_not_move():
    e = _golden()
    new = LayerLine(1, "relu_pool", "maxpool", "OS", "1,1,1,1", "kcyx", 7, 7, 7, 7, 7)
    a = _golden([e.layers[0], new, dataclasses.replace(e.layers[1], index=2),
                 dataclasses.replace(e.layers[2], index=3)])
    diffs = compare(e, a)
    assert [(d.what, d.name) for d in diffs] == [("added", "relu_pool"), ("totals", "totals")]
    assert "layer 1 'relu_pool' (maxpool): added (kind maxpool" in str(diffs[0])
    diffs = compare(a, e)
    assert [(d.what, d.name) for d in diffs] == [("removed", "relu_pool"), ("totals", "totals")]
    assert str(diffs[0]).startswith("layer 1 'relu_pool' (maxpool): removed (was kind maxpool")


def test_repeated_layer_names_are_matched_by_occurrence():
    L = LayerLine(0, "add", "add", "OS", "1,1,1,1", "kcyx", 10, 10, 10, 10, 10)
    e = _golden([L, dataclasses.replace(L, index=1), dataclasses.replace(L, index=2)])
    a = _golden([L, dataclasses.replace(L, index=1, dma_cycles=11), dataclasses.replace(L, index=2)])
    diffs = [d for d in compare(e, a) if d.what == "layer"]
    assert [(d.index, d.changes) for d in diffs] == [(1, (("dma_cycles", 10, 11),))]


def test_reordered_layers_are_reported():
    e = _golden()
    a = _golden([e.layers[1], e.layers[0], e.layers[2]])
    assert [d.what for d in compare(e, a)] == ["order"]


def test_versions_pipeline_and_fingerprint_alone_are_notes_not_failures():
    e = _golden()
    a = _golden(sqnxtc="0.2.0", ortools="9.99", pipeline="canonicalize,schedule", fingerprint="sha256:11")
    assert compare(format_golden(e), format_golden(a)) == []
    assert header_notes(e, a) == ["fingerprint: sha256:00 -> sha256:11",
                                  "pipeline: default,schedule -> canonicalize,schedule",
                                  "sqnxtc: 0.1.0 -> 0.2.0", "ortools: 9.15 -> 9.99"]


def test_another_model_target_or_objective_is_a_difference():
    diffs = compare(_golden(), _golden(target="pe8x8", objective="energy"))
    assert [d.what for d in diffs] == ["header"]
    assert diffs[0].changes == (("target", "pe16x16", "pe8x8"), ("objective", "cycles", "energy"))


def test_a_changed_total_alone_is_named():
    e, a = _golden(), _golden()
    a.totals["energy.total"] = "1"
    assert [(d.what, d.changes) for d in compare(e, a)] == [("totals", (("energy.total", "66000", "1"),))]


@pytest.mark.parametrize("text,msg", [
    ("[header]\nformat 2\nmodel m\ntarget t\nactivation_home dram\nobjective cycles\n[layers]\n"
     "0 conv1 conv OS 1,1,1,1 kcyx 1 2\n", "line 8: expected 11 columns"),
    ("[header]\nformat 2\nmodel m\ntarget t\nactivation_home dram\nobjective cycles\n[layers]\n"
     "0 c conv OS 1,1,1,1 kcyx 1 2 x 4 5\n", "line 8: dma_cycles must be an integer, got 'x'"),
    ("[header]\nformat 1\nmodel m\ntarget t\nobjective cycles\n", "golden format '1' is not 2"),
    ("model m\n", "line 1: text before the first section"),
    ("[nope]\n", "line 1: unknown section [nope]"),
    ("[header]\nformat 2\nmodel m\ntarget t\nobjective cycles\n", "header has no 'activation_home'"),
    ("[header]\nformat 2\nmodel m\ntarget t\nactivation_home dram\n", "header has no 'objective'"),
])
def test_parse_errors_name_the_line(text, msg):
    with pytest.raises(GoldenError, match=re.escape(msg)):
        parse_golden(text)


# ---------------------------------------------------------------------------------------
# the mechanism end to end: change one cost-model constant, watch exactly what moves
# ---------------------------------------------------------------------------------------
E2E_MODEL = "SqueezeNet-1.1"   # cheap to build (no BatchNorm), WS and OS layers
#: (target field, TOML key): WS register-file accesses per MAC only enter the energy of
#: layers mapped WS (and may move their mapping); OS layers must not be named.
E2E_FIELD, E2E_KEY = "ws_rf_per_mac", "ws_rf_accesses_per_mac"


@pytest.fixture(scope="module")
def e2e():
    """E2E_MODEL scheduled on pe16x16 and on a pe16x16 whose WS register-file accesses
    per MAC are one higher (same name, so the same golden file applies), every activation
    through DRAM: each layer alone, so only the WS layers can move (with a plan, a changed
    energy may move the plan's energy tie-break and with it other layers' homes)."""
    from sqnxt_compiler.zoo import build

    base = dataclasses.replace(load_target("pe16x16"), activation_home="dram")
    changed = dataclasses.replace(base, **{E2E_FIELD: getattr(base, E2E_FIELD) + 1})
    results = driver.compile_for_targets((build(E2E_MODEL), f"zoo:{E2E_MODEL}"), [base, changed])
    nets = [(r.network, regress.golden_text(r, E2E_MODEL)) for r in results]
    return base, changed, nets[0], nets[1]


def _independently_moved(net_a, net_b) -> set[str]:
    """Layers whose schedule figures differ, straight from the two LayerSchedules."""
    rows_a, rows_b = net_a.scheduled, net_b.scheduled
    assert [r.name for r in rows_a] == [r.name for r in rows_b]
    moved = set()
    for ra, rb in zip(rows_a, rows_b):
        a, b = ra.schedule, rb.schedule
        if (a.mapping != b.mapping or a.cost.total_cycles != b.cost.total_cycles
                or a.cost.compute_cycles != b.cost.compute_cycles or a.cost.dma_cycles != b.cost.dma_cycles
                or a.cost.energy["total"] != b.cost.energy["total"] or a.cost.dram["total"] != b.cost.dram["total"]):
            moved.add(ra.name)
    return moved


def test_changing_one_cost_constant_names_exactly_the_layers_that_moved(e2e):
    base, changed, (net0, text0), (net1, text1) = e2e
    expected = _independently_moved(net0, net1)
    ws_layers = {r.name for r in net0.scheduled if r.schedule.mapping.dataflow == "WS"}
    # the change is selective: it moves some layers (the WS ones), not all
    assert expected == ws_layers
    assert 0 < len(expected) < len(net0.scheduled)
    diffs = compare(text0, text1)
    assert moved_layers(diffs) == expected
    assert all(d.what in ("layer", "totals") for d in diffs)
    # every named layer's energy moved, and the figures are the schedules' own
    by_name = {r.name: r.schedule for r in net1.scheduled}
    for d in diffs:
        if d.what == "layer":
            figs = dict((f, new) for f, _, new in d.changes)
            assert figs["energy"] == by_name[d.name].cost.energy["total"]
    tot = next(d for d in diffs if d.what == "totals")
    assert {f for f, _, _ in tot.changes} == {"energy.rf", "energy.total"} | (
        {"total_cycles"} if net0.totals()["total_cycles"] != net1.totals()["total_cycles"] else set())
    # the committed golden is the base schedule
    assert compare((GOLDENS / golden_filename(E2E_MODEL, "pe16x16", "dram")).read_text(), text0) == []


def test_sqnxtc_regress_names_the_moved_layers_one_line_each(e2e, cli, tmp_path):
    from importlib import resources

    base, changed, (net0, _), (net1, _) = e2e
    expected = _independently_moved(net0, net1)
    src = resources.files("sqnxt_compiler.targets").joinpath("pe16x16.toml").read_text()
    old = f"{E2E_KEY} = {getattr(base, E2E_FIELD)}"
    assert len(re.findall(rf"^{re.escape(old)}\b", src, re.M)) == 1
    toml = tmp_path / "pe16x16.toml"    # same name: checked against the committed golden
    toml.write_text(re.sub(rf"^{re.escape(old)}\b", f"{E2E_KEY} = {getattr(changed, E2E_FIELD)}", src,
                           flags=re.M))
    assert dataclasses.replace(load_target(str(toml)), activation_home="dram").fingerprint() == changed.fingerprint()

    r = cli("regress", "--model", E2E_MODEL, "--target", str(toml), "--activation-home", "dram",
            "--goldens", str(GOLDENS), "-q")
    assert r.exit_code == 1, r.output
    named = re.findall(r"^  layer \d+ '([^']+)' \(\w+\): ", r.stdout, re.M)
    assert len(named) == len(set(named))          # one line per layer
    assert set(named) == expected
    assert f"{E2E_MODEL} on pe16x16 (dram): moved: {len(expected)} layer(s), totals\n" in r.stdout
    assert "  note: fingerprint: sha256:" in r.stdout
    assert "golden(s) differ" in r.stderr


def test_sqnxtc_regress_passes_and_updates(cli, tmp_path):
    # --update into an empty directory creates the golden; a check then passes; a hand
    # edit is named and --update restores it.  (the schedules are cached in-process.)
    args = ("--model", "squeezenet-1.1", "--target", "pe16x16", "--activation-home", "planned",
            "--goldens", str(tmp_path), "-q")
    r = cli("regress", "--update", *args)
    assert r.exit_code == 0, r.output
    path = tmp_path / "SqueezeNet-1.1__pe16x16__planned.txt"
    assert f"SqueezeNet-1.1 on pe16x16 (planned): created {path} (29 layers)" in r.stdout   # 8 concats in place
    assert [p.name for p in tmp_path.iterdir()] == [path.name]      # one home asked, one file
    assert path.read_text() == (GOLDENS / path.name).read_text()
    r = cli("regress", *args)
    assert r.exit_code == 0 and "SqueezeNet-1.1 on pe16x16 (planned): ok (29 layers)" in r.stdout

    text = path.read_text()
    line = next(x for x in text.splitlines() if " pool3 " in x)   # pool1 is fused into conv1
    total = line.split()[6]
    path.write_text(text.replace(line, line.replace(f" {total} ", f" {int(total) + 1:>{len(total)}} ", 1)))
    r = cli("regress", *args)
    assert r.exit_code == 1
    assert f"  layer 7 'pool3' (maxpool): total_cycles {int(total) + 1} -> {total}" in r.stdout
    r = cli("regress", "--update", *args)
    assert r.exit_code == 0 and f"SqueezeNet-1.1 on pe16x16 (planned): updated {path}: 1 layer(s) moved\n" in r.stdout
    assert path.read_text() == (GOLDENS / path.name).read_text()
    r = cli("regress", "--update", *args)
    assert "SqueezeNet-1.1 on pe16x16 (planned): unchanged (29 layers)" in r.stdout


def test_sqnxtc_regress_bad_input(cli, tmp_path):
    r = cli("regress", "--model", "NoSuchNet", "--goldens", str(tmp_path))
    assert r.exit_code == 3 and "unknown zoo model 'NoSuchNet'" in r.stderr
    r = cli("regress", "--model", "SqueezeNet-1.1", "--goldens", str(tmp_path / "none"))
    assert r.exit_code == 3 and "no goldens directory" in r.stderr
    r = cli("regress", "--model", "SqueezeNet-1.1", "--target", "pe99", "--goldens", str(tmp_path))
    assert r.exit_code == 5
    r = cli("regress", "--model", "SqueezeNet-1.1", "--target", "pe16x16", "--activation-home", "dram",
            "--goldens", str(tmp_path), "-q")
    assert r.exit_code == 1 and "SqueezeNet-1.1 on pe16x16 (dram): no golden" in r.stdout
    (tmp_path / "SqueezeNet-1.1__pe16x16__dram.txt").write_text("garbage\n")
    r = cli("regress", "--model", "SqueezeNet-1.1", "--target", "pe16x16", "--activation-home", "dram",
            "--goldens", str(tmp_path), "-q")
    assert r.exit_code == 1 and "unreadable: line 1: text before the first section" in r.stdout
