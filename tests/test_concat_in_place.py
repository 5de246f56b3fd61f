"""concat-in-place (passes/concat_in_place.py; docs/passes.md, docs/memory-planning.md): the
layers producing a concat's parts write into their slices of its result, so the concat
moves nothing.  Which concats qualify (and why the others stay copies), nested concats
spliced, the cost (exactly the copy's figures gone), and execution: the plain, tiled
(fp32, int16) and program runs against onnxruntime, the program's parts as sub-regions of
the concat's region, and its words per layer equal to the cost model's."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import helper

from support import inferred_model, rand
from sqnxt_compiler import driver
from sqnxt_compiler.layers import resident_at
from sqnxt_compiler.program.funcsim import run_program
from sqnxt_compiler.program.layout import value_key
from sqnxt_compiler.program.lower import lower
from sqnxt_compiler.program.verify import verify_lowered
from sqnxt_compiler.reference.check import DEFAULT_ATOL, DEFAULT_RTOL, compare, random_inputs
from sqnxt_compiler.reference.executor import run
from sqnxt_compiler.reference.ort import ort_session, run_ort
from sqnxt_compiler.reference.tiled import TOLERANCES, execute_tiled
from sqnxt_compiler.targets import load_target

#: The default pipeline as it was before concat-in-place: every concat a copy.
COPY = "canonicalize,fold-bn,fuse-relu,fuse-add,fuse-pool"


def conv(x, w, y, k=1, **kw):
    return helper.make_node("Conv", [x, w], [y], kernel_shape=[k, k], pads=[k // 2] * 4, **kw)


def fire(seed=0, extra=(), outputs=("y",), axis=1, scale3=1.0, extra_inits=()):
    """x 8x10x10 -> squeeze 1x1 (4) -> relu -> expand 1x1 (6), expand 3x3 (10) -> relu each ->
    concat on ``axis`` -> conv 1x1 (5): SqueezeNet's fire module and its reader."""
    rng = np.random.default_rng(seed)
    nodes = [conv("x", "ws", "s"), helper.make_node("Relu", ["s"], ["sr"]),
             conv("sr", "w1", "e1"), helper.make_node("Relu", ["e1"], ["p"]),
             conv("sr", "w3", "e3", 3), helper.make_node("Relu", ["e3"], ["q"]),
             helper.make_node("Concat", ["p", "q"], ["cat"], axis=axis),
             conv("cat", "wo", "y"), *extra]
    inits = [("ws", rand(rng, 4, 8, 1, 1)), ("w1", rand(rng, 6, 4, 1, 1)), ("w3", scale3 * rand(rng, 6 if axis != 1 else 10,
                                                                                             4, 3, 3)),
             ("wo", rand(rng, 5, 16 if axis == 1 else 6, 1, 1)), *extra_inits]
    return inferred_model(nodes, [("x", [1, 8, 10, 10])], list(outputs), inits)


def target(name="pe8x8", home="dram"):
    return dataclasses.replace(load_target(name), activation_home=home)


def compiled(model, pipeline="default", tgt=None):
    return driver.compile((model, "fire.onnx"), pipeline=pipeline, target=tgt, schedule={"jobs": 1})


def ops(graph, name):
    return [op for op in graph.ops() if op.name == name]


# ------------------------------------------------------------------------ which concats
def test_a_fire_modules_concat_is_written_in_place():
    res = compiled(fire())
    assert res.statistics["concat-in-place"] == {"concat-in-place": 1}
    (cv,) = ops(res.graph, "sqnxt.concat_view")
    assert not ops(res.graph, "sqnxt.concat")
    assert [v.owner.name for v in cv.operands] == ["sqnxt.conv", "sqnxt.conv"]
    assert cv.has_trait("free") and cv.has_trait("in_place_parts")


def test_a_concat_along_rows_stays_a_copy():
    """Its parts are strided boxes of the result, not slices."""
    res = compiled(fire(axis=2))
    assert res.statistics["concat-in-place"] == {"kept-copy-not-contiguous": 1}
    assert len(ops(res.graph, "sqnxt.concat")) == 1 and not ops(res.graph, "sqnxt.concat_view")


def part_read_elsewhere(output: bool):
    """fire() whose expand1x1 output p is also read by a 1x1 conv (z), or is a graph output."""
    if output:
        return fire(outputs=("y", "p"))
    return fire(extra=[conv("p", "wz", "z")], outputs=("y", "z"),
                extra_inits=[("wz", rand(np.random.default_rng(1), 3, 6, 1, 1))])


def dense(seed=6):
    """A DenseNet block: c0 = concat(s, conv(relu(s))), c1 = concat(c0, conv(relu(c0))), a
    1x1 conv of c1: c0 is read by the next concat and by the next layer's relu, s by c0
    and its own relu (written in place: s, n0 and n1 are slices of c1, c0 a prefix of it)."""
    rng = np.random.default_rng(seed)
    nodes = [conv("x", "ws", "s", 3), helper.make_node("Relu", ["s"], ["sr"]), conv("sr", "w0", "n0", 3),
             helper.make_node("Concat", ["s", "n0"], ["c0"], axis=1),
             helper.make_node("Relu", ["c0"], ["c0r"]), conv("c0r", "w1", "n1", 3),
             helper.make_node("Concat", ["c0", "n1"], ["c1"], axis=1), conv("c1", "wt", "y")]
    inits = [("ws", rand(rng, 6, 3, 3, 3)), ("w0", rand(rng, 4, 6, 3, 3)), ("w1", rand(rng, 4, 10, 3, 3)),
             ("wt", rand(rng, 5, 14, 1, 1))]
    return inferred_model(nodes, [("x", [1, 3, 9, 9])], ["y"], inits)


def test_a_part_of_two_concats_keeps_both_copies():
    """Its words cannot be a slice of both."""
    rng = np.random.default_rng(7)
    nodes = [conv("x", "wa", "a"), conv("x", "wb", "b"), conv("x", "wc", "c"),
             helper.make_node("Concat", ["a", "b"], ["ab"], axis=1),
             helper.make_node("Concat", ["a", "c"], ["ac"], axis=1),
             conv("ab", "w1", "y1"), conv("ac", "w2", "y2")]
    inits = [("wa", rand(rng, 2, 3, 1, 1)), ("wb", rand(rng, 3, 3, 1, 1)), ("wc", rand(rng, 4, 3, 1, 1)),
             ("w1", rand(rng, 2, 5, 1, 1)), ("w2", rand(rng, 2, 6, 1, 1))]
    res = compiled(inferred_model(nodes, [("x", [1, 3, 5, 5])], ["y1", "y2"], inits))
    assert res.statistics["concat-in-place"] == {"kept-copy-part-shared": 2}


@pytest.mark.parametrize("output", [False, True], ids=["another-layer", "graph-output"])
def test_a_part_read_elsewhere_too_is_written_in_place(output):
    res = compiled(part_read_elsewhere(output))
    assert res.statistics["concat-in-place"] == {"concat-in-place": 1}


def test_a_dense_block_is_written_in_place_into_its_last_concat():
    res = compiled(dense(), "default", target("pe8x8", "dram"))
    assert res.statistics["concat-in-place"] == {"concat-in-place": 2}
    c0, c1 = ops(res.graph, "sqnxt.concat_view")
    assert c1.operands[0] is c0.result                       # nested: c0 is a prefix of c1
    into = {d["layer"]: d["homes"]["output_into"] for d in res.document["layers"]}
    s, n0, n1 = c0.operands[0].owner, c0.operands[1].owner, c1.operands[1].owner
    hw = 81
    assert [into[o.loc.node] for o in (s, n0, n1)] == [{"concat": c1.loc.node, "offset": off, "words": 14 * hw}
                                                      for off in (0, 6 * hw, 10 * hw)]


@pytest.mark.parametrize("parts, reason", [
    (["x", "a"], "kept-copy-part-not-a-layer"),     # the network input: nothing on the array writes it
    (["a", "a"], "kept-copy-part-shared"),          # one tensor cannot sit at two places
])
def test_a_part_no_layer_writes_once_keeps_the_copy(parts, reason):
    rng = np.random.default_rng(2)
    channels = {"x": 3, "a": 4}
    nodes = [conv("x", "w", "a"), helper.make_node("Concat", parts, ["c"], axis=1), conv("c", "wo", "y")]
    model = inferred_model(nodes, [("x", [1, 3, 6, 6])], ["y"],
                           [("w", rand(rng, 4, 3, 1, 1)), ("wo", rand(rng, 2, sum(channels[p] for p in parts), 1, 1))])
    res = compiled(model)
    assert res.statistics["concat-in-place"] == {reason: 1}


def nested(seed=4):
    """concat(concat(a, b), c) on channels, each a conv of x: one concat of three parts."""
    rng = np.random.default_rng(seed)
    nodes = [conv("x", "wa", "a"), conv("x", "wb", "b", 3), conv("x", "wc", "c"),
             helper.make_node("Concat", ["a", "b"], ["ab"], axis=1),
             helper.make_node("Concat", ["ab", "c"], ["abc"], axis=1), conv("abc", "wo", "y")]
    inits = [("wa", rand(rng, 2, 3, 1, 1)), ("wb", rand(rng, 3, 3, 3, 3)), ("wc", rand(rng, 4, 3, 1, 1)),
             ("wo", rand(rng, 2, 9, 1, 1))]
    return inferred_model(nodes, [("x", [1, 3, 7, 7])], ["y"], inits)


def test_a_nested_concat_is_spliced_and_written_in_place():
    res = compiled(nested())
    assert res.statistics["concat-in-place"] == {"nested-concat-spliced": 1, "concat-in-place": 1}
    (cv,) = ops(res.graph, "sqnxt.concat_view")
    assert [v.type.shape[1] for v in cv.operands] == [2, 3, 4]
    assert not ops(res.graph, "sqnxt.concat")


# ------------------------------------------------------------------------ the cost
@pytest.mark.parametrize("tname", ["pe8x8", "pe16x16"])
def test_the_copy_is_all_that_goes(tname):
    """All through DRAM every layer is scheduled alone: the in-place network's totals are the
    copy network's minus exactly the concat layer's cycles, DRAM words and energy."""
    tgt = target(tname, "dram")
    inplace, copy = compiled(fire(), "default", tgt), compiled(fire(), COPY, tgt)
    (cat,) = ops(copy.graph, "sqnxt.concat")
    c = cat.attrs["schedule"].schedule.cost
    assert c.dram["total"] == 2 * cat.result.type.numel          # the copy read and wrote every word
    a, b = inplace.network.totals(), copy.network.totals()
    assert a["layers"] == b["layers"] - 1
    assert a["total_cycles"] == b["total_cycles"] - c.total_cycles
    assert a["dram_words"]["total"] == b["dram_words"]["total"] - c.dram["total"]
    assert a["energy"]["total"] == pytest.approx(b["energy"]["total"] - c.energy["total"], rel=1e-12)


@pytest.mark.parametrize("tname", ["pe8x8", "pe16x16"])
def test_planned_in_place_is_no_worse_than_planned_copy(tname):
    tgt = target(tname, "planned")
    a = compiled(fire(), "default", tgt).network.totals()
    b = compiled(fire(), COPY, tgt).network.totals()
    assert a["total_cycles"] < b["total_cycles"]
    assert a["dram_words"]["total"] < b["dram_words"]["total"]
    assert a["energy"]["total"] < b["energy"]["total"]


# ------------------------------------------------------------------------ execution
@pytest.mark.parametrize("model_fn", [fire, nested])
def test_the_plain_run_matches_onnxruntime(model_fn):
    model = model_fn()
    res = compiled(model)
    feeds = random_inputs(res.graph, 0)
    ref = run_ort(ort_session(model, "model"), feeds)
    out = run(res.graph, feeds)
    for name, r in ref.items():
        assert compare(out[name], r, DEFAULT_RTOL, DEFAULT_ATOL)[2]


def _compiled_runs(model, tgt, precision):
    """``model`` compiled for ``tgt``, run tiled and lowered (verified): (the compile, the
    lowered program, a check that runs the program and holds its outputs and the tiled
    run's against onnxruntime, and its DRAM words per layer against the cost model's)."""
    res = compiled(model, "default", tgt)
    feeds = random_inputs(res.graph, 0)
    ref = run_ort(ort_session(model, "model"), feeds)
    rtol, atol = (DEFAULT_RTOL, DEFAULT_ATOL) if precision == "fp32" else TOLERANCES["int16"]
    tiled = execute_tiled(res.graph, feeds, precision=precision)
    low = lower(res.graph, tgt)
    verify_lowered(low)

    def finish():
        prog = run_program(low, res.graph, feeds, precision=precision)
        for name, r in ref.items():
            assert compare(tiled.outputs[name], r, rtol, atol)[2], ("tiled", name)
            assert compare(prog.outputs[name], r, rtol, atol)[2], ("program", name)
        layers = [op for op in res.graph.ops() if "schedule" in op.attrs]
        for li, op in enumerate(layers):
            cost = op.attrs["schedule"].schedule.cost
            for key, words in prog.dram(li).items():
                assert words == cost.dram[key], (op.name, key)
    return res, low, finish


@pytest.mark.parametrize("precision", ["fp32", "int16"])
@pytest.mark.parametrize("tname, home", [("pe8x8", "dram"), ("pe8x8", "planned"), ("pe16x16", "planned")])
def test_tiled_and_program_runs_match_onnxruntime(tname, home, precision):
    """The tiled executor (its memory image checks each part is written before the reader
    reads the concat's words) and the program (each part a sub-region of the concat's
    region; every layer's words equal the cost model's) against onnxruntime."""
    model = nested() if home == "dram" else fire()
    tgt = target(tname, home)
    res, low, finish = _compiled_runs(model, tgt, precision)
    (cv,) = ops(res.graph, "sqnxt.concat_view")
    at = resident_at(cv.result)
    assert (at is not None) == (home == "planned")          # the tiny group fits: the plan keeps it
    if at is None:                                          # in DRAM: sub-regions of its region
        region = low.layout.tensor(cv.result)
        base = region.base
        assert region.words == cv.result.type.numel
    else:                                                   # resident: no DRAM region at all
        assert value_key(cv.result) not in low.layout.tensors
        assert not any(value_key(v) in low.layout.tensors for v in cv.operands)
        base = at
    off = 0
    for v in cv.operands:                                   # the parts, one after the other
        got = low.layout.tensor(v).base if at is None else v.owner.attrs["plan"].offset
        assert got == base + off
        off += v.type.numel
    assert off == cv.result.type.numel
    finish()


@pytest.mark.parametrize("precision", ["fp32", "int16"])
@pytest.mark.parametrize("tname, home", [("pe8x8", "dram"), ("pe8x8", "planned"), ("pe16x16", "planned")])
@pytest.mark.parametrize("make", [dense, lambda: part_read_elsewhere(False), lambda: part_read_elsewhere(True)],
                         ids=["dense", "part-read-by-a-layer", "part-an-output"])
def test_parts_read_elsewhere_and_nested_concats_run(make, tname, home, precision):
    """Readers of a part or of a nested concat read its slice of the outermost concat: the
    tiled and program runs against onnxruntime, the program's words per layer against the
    cost model's, and (in DRAM) every part and nested concat a sub-region of the root's."""
    from sqnxt_compiler.ir.storage import storage

    model = make()
    tgt = target(tname, home)
    res, low, finish = _compiled_runs(model, tgt, precision)
    for cv in ops(res.graph, "sqnxt.concat_view"):
        if resident_at(cv.result) is None:
            root, base = storage(res.graph, cv.result)
            assert low.layout.tensor(cv.result).base == low.layout.tensor(root).base + base
            for v in cv.operands:
                assert low.layout.tensor(v).base == low.layout.tensor(root).base + storage(res.graph, v)[1]
    finish()


def test_int16_parts_are_written_at_the_concats_scale():
    """The parts' ranges differ (one part scaled up 40x): each producer writes at the
    concat's scale, so the int16 run is within tolerance and the tiled run equals the
    program's output bit for bit (one rounding per part, in both)."""
    model = fire(seed=5, scale3=40.0)
    tgt = target("pe8x8", "dram")
    res = compiled(model, "default", tgt)
    feeds = random_inputs(res.graph, 0)
    ref = run_ort(ort_session(model, "model"), feeds)
    tiled = execute_tiled(res.graph, feeds, precision="int16")
    low = lower(res.graph, tgt)
    prog = run_program(low, res.graph, feeds, precision="int16")
    for name, r in ref.items():
        assert compare(tiled.outputs[name], r, *TOLERANCES["int16"])[2]
        np.testing.assert_array_equal(tiled.outputs[name], prog.outputs[name])


# ------------------------------------------------------------------------ a broken plan
def test_a_resident_part_not_where_the_previous_ends_fails_the_memory_image():
    """The memory image of check --tiled reads a resident concat part by part: a part moved
    off its slice (the plan edited by hand) is caught, as is a part's region overwritten."""
    from sqnxt_compiler.diagnostics import CheckFailed

    res = compiled(fire(), "default", target("pe8x8", "planned"))
    (cv,) = ops(res.graph, "sqnxt.concat_view")
    feeds = random_inputs(res.graph, 0)
    execute_tiled(res.graph, feeds)                        # the plan as made: sound
    second = cv.operands[1].owner.attrs["plan"]
    assert second.output == "buffer"
    second.offset += 1
    with pytest.raises(CheckFailed, match="where the previous part ends|overwritten while it was live"):
        execute_tiled(res.graph, feeds)
    second.offset -= 1
    first = cv.operands[0].owner.attrs["plan"]
    first.offset = second.offset                           # the second part overwrites the first
    with pytest.raises(CheckFailed, match="overwritten while it was live"):
        execute_tiled(res.graph, feeds)


# ------------------------------------------------------------------------ the plan's choice
def test_a_concat_the_plan_copies_becomes_a_move_layer_again_and_runs():
    """On an 8 KB buffer the plan copies late()'s concat (tests/test_planner.py): the op is
    a sqnxt.concat again, scheduled, its result resident; the tiled and program runs match
    onnxruntime and the program's words equal the cost model's."""
    from test_planner import late, tiny_target

    model = late()
    tgt = tiny_target(8192)
    res = compiled(model, "default", tgt)
    assert res.statistics["plan-memory"]["concats-copied"] == 1
    assert not ops(res.graph, "sqnxt.concat_view")
    (cat,) = ops(res.graph, "sqnxt.concat")
    assert cat.attrs["schedule"].schedule.layer.kind == "move" and cat.attrs["plan"].output == "buffer"
    assert all(v.owner.attrs["plan"].output == "dram" for v in cat.operands)   # the parts: DRAM
    copy = compiled(model, COPY, tgt).network.totals()
    mine = res.network.totals()
    assert mine["total_cycles"] <= copy["total_cycles"] and mine["energy"]["total"] <= copy["energy"]["total"]
    feeds = random_inputs(res.graph, 0)
    ref = run_ort(ort_session(model, "model"), feeds)
    tiled = execute_tiled(res.graph, feeds)
    low = lower(res.graph, tgt)
    verify_lowered(low)
    prog = run_program(low, res.graph, feeds)
    for name, r in ref.items():
        assert compare(tiled.outputs[name], r, DEFAULT_RTOL, DEFAULT_ATOL)[2]
        assert compare(prog.outputs[name], r, DEFAULT_RTOL, DEFAULT_ATOL)[2]


def test_live_ranges_count_layers_not_the_planners_skipped_copy_steps():
    """A real export (DPN blocks: concats in place, read by slices) on pe8x8: the plan's
    live ranges are the layers' positions (a skipped copy step runs nothing), so the
    program's regions never overlap and it runs (this export once failed the program
    verifier: a tile slot over a tensor whose live range was off by the skipped step)."""
    from pathlib import Path

    import onnx

    path = Path(__file__).parent / "fixtures" / "modern" / "dpn_ts13.onnx"
    model = onnx.load(str(path))
    tgt = target("pe8x8", "planned")
    res = driver.compile(str(path), target=tgt, schedule={"jobs": 1})
    layers = [op for op in res.graph.ops() if "schedule" in op.attrs]
    parts = {view_origin_owner(v).id for cv in ops(res.graph, "sqnxt.concat_view") for v in cv.operands}
    for li, op in enumerate(layers):
        p = op.attrs["plan"]
        if p.output == "buffer" and op.id not in parts:
            assert p.live[0] == li, (op.loc.node, p.live, li)
    record = res.graph.attrs["plan"]
    assert all(0 <= t["first"] <= t["last"] < len(layers) for t in record.tensors)
    low = lower(res.graph, tgt)
    verify_lowered(low)
    feeds = random_inputs(res.graph, 0)
    prog = run_program(low, res.graph, feeds)
    ref = run_ort(ort_session(model, "model"), feeds)
    for name, r in ref.items():
        assert compare(prog.outputs[name], r, DEFAULT_RTOL, DEFAULT_ATOL)[2]


def view_origin_owner(v):
    from sqnxt_compiler.ir.core import view_origin

    return view_origin(v).owner


def test_schedule_json_and_the_loop_nest_say_where_each_part_goes():
    import jsonschema

    from sqnxt_compiler.report.loopnest import operands_line
    from sqnxt_compiler.report.schedule_json import schema

    res = compiled(fire(), "default", target("pe16x16", "dram"))
    doc = res.document
    jsonschema.validate(doc, schema())
    into = {d["layer"]: d["homes"]["output_into"] for d in doc["layers"]}
    (cv,) = ops(res.graph, "sqnxt.concat_view")
    name = cv.loc.node
    e1, e3 = (v.owner.loc.node for v in cv.operands)
    assert into[e1] == {"concat": name, "offset": 0, "words": 1600}
    assert into[e3] == {"concat": name, "offset": 600, "words": 1600}
    assert sum(v is not None for v in into.values()) == 2
    line = operands_line(next(d["homes"] for d in doc["layers"] if d["layer"] == e3))
    assert f"as words 600.. of the 1600-word concat '{name}' (written in place)" in line
