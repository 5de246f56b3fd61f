"""Issue 21, item 1: a reader through (un)squeeze is a reader (schedule/liveness.py), and
the tiled executor's memory image (reference/memory.py) fails any read of a DRAM word
nobody wrote or of a buffer region overwritten while live."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from sqnxt_compiler import driver
from sqnxt_compiler.diagnostics import CheckFailed
from sqnxt_compiler.ir.core import view_origin
from sqnxt_compiler.layers import layer_of
from sqnxt_compiler.reference.check import check
from sqnxt_compiler.reference.tiled import execute_tiled
from sqnxt_compiler.schedule.liveness import network_of
from sqnxt_compiler.schedule.planner import verify_allocation
from sqnxt_compiler.targets import load_target


def unsqueeze_model():
    """The issue's repro: t = relu(conv(x)); a = conv(t); b = conv(squeeze(unsqueeze(t, 4), 4));
    add(a, b) -> global average pool -> fc."""
    r = np.random.default_rng(3)

    def W(n, *s):
        return nh.from_array((r.standard_normal(s) * .1).astype(np.float32), n)

    n, i = [], []

    def conv(x, y, ci, co):
        i.extend([W(y + "_w", co, ci, 3, 3), W(y + "_b", co)])
        n.append(h.make_node("Conv", [x, y + "_w", y + "_b"], [y + "_c"], name=y, kernel_shape=[3, 3], pads=[1] * 4))
        n.append(h.make_node("Relu", [y + "_c"], [y], name=y + "_relu"))

    conv("input", "t", 8, 16)
    conv("t", "a", 16, 16)
    i.append(nh.from_array(np.array([4], dtype=np.int64), "ax4"))
    n += [h.make_node("Unsqueeze", ["t", "ax4"], ["u"], name="unsq"), h.make_node("Squeeze", ["u", "ax4"], ["v"], name="sq")]
    conv("v", "b", 16, 16)
    n += [h.make_node("Add", ["a", "b"], ["s"], name="add"), h.make_node("GlobalAveragePool", ["s"], ["g"], name="gap"),
          h.make_node("Flatten", ["g"], ["f"], name="flat", axis=1)]
    i.extend([W("fc_w", 10, 16), W("fc_b", 10)])
    n.append(h.make_node("Gemm", ["f", "fc_w", "fc_b"], ["out"], name="fc", transB=1))
    m = h.make_model(h.make_graph(n, "h6", [h.make_tensor_value_info("input", TP.FLOAT, [1, 8, 16, 16])],
                                  [h.make_tensor_value_info("out", TP.FLOAT, [1, 10])], i),
                     opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def cast_model():
    """t = relu(conv(x)); b = conv(cast(t)): a shape op that is not a view, applied to an
    activation, reads its words (from DRAM: it is not run on the array)."""
    r = np.random.default_rng(4)
    w = [nh.from_array((r.standard_normal((8, 8, 3, 3)) * .1).astype(np.float32), f"w{k}") for k in range(2)]
    n = [h.make_node("Conv", ["x", "w0"], ["c"], name="t", kernel_shape=[3, 3], pads=[1] * 4),
         h.make_node("Relu", ["c"], ["t"], name="t_relu"),
         h.make_node("Cast", ["t"], ["tc"], name="cast", to=TP.FLOAT),
         h.make_node("Conv", ["tc", "w1"], ["y"], name="b", kernel_shape=[3, 3], pads=[1] * 4)]
    m = h.make_model(h.make_graph(n, "cast", [h.make_tensor_value_info("x", TP.FLOAT, [1, 8, 8, 8])],
                                  [h.make_tensor_value_info("y", TP.FLOAT, [1, 8, 8, 8])], w),
                     opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def compiled(model, target="pe16x16", passes="default"):
    return driver.compile((model, "h6.onnx"), pipeline=passes, target=load_target(target))


def network(graph):
    return network_of(graph, [(op, layer_of(op)) for op in graph.ops() if layer_of(op) is not None])


def feeds(graph, seed=0):
    r = np.random.default_rng(seed)
    return {op.attrs["name"]: r.standard_normal(op.result.type.shape).astype(np.float32)
            for op in graph.inputs}


def op_named(graph, node):
    return next(op for op in graph.ops() if op.loc.node == node and "schedule" in op.attrs)


# ---- liveness: a reader through (un)squeeze ----------------------------------------------------
def test_a_reader_through_unsqueeze_and_squeeze_is_a_reader():
    res = compiled(unsqueeze_model())
    net = network(res.graph)
    by = {t.name: t for t in net.tensors}
    step_b = next(s.index for s in net.steps if s.layer.name == "b")
    t = by["t"]
    assert step_b in t.readers and t.last >= step_b          # live until b reads it
    assert net.steps[step_b].inputs == (t.index,)             # b reads t itself, through the views
    b = op_named(res.graph, "b")
    assert view_origin(b.operands[0]).owner.loc.node == "t"
    plan = res.graph.attrs["plan"]
    rec = {x["name"]: x for x in plan.tensors}
    # resident t: b reads it in place; else its producer writes it to DRAM
    assert rec["t"]["last"] >= step_b
    assert (b.attrs["plan"].inputs[0] == "buffer") == (rec["t"]["home"] == "buffer")


def test_a_shape_op_that_reads_an_activation_keeps_it_in_dram():
    res = compiled(cast_model())
    assert any(op.name == "sqnxt.cast" for op in res.graph.ops())
    net = network(res.graph)
    t = next(x for x in net.tensors if x.name == "t")
    assert not t.plannable and "sqnxt.cast" in t.reason


@pytest.mark.parametrize("target", ["pe16x16", "pe8x8"])
@pytest.mark.parametrize("precision", ["fp32", "int16"])
def test_the_repro_runs_tiled_with_a_sound_memory_image(target, precision):
    res = compiled(unsqueeze_model(), target)
    net = network(res.graph)
    # the plan as recorded is sound by the planner's own verifier (re-derived from the graph)
    assert res.graph.attrs["plan"].status == "optimal"
    run = execute_tiled(res.graph, feeds(res.graph), precision=precision)
    assert len(run.layers) == len(net.steps)
    rep = check(res.graph, res.model, "h6.onnx", samples=2, rtol=1e-4 if precision == "fp32" else 0.0,
                atol=1e-5 if precision == "fp32" else 2.5e-3,
                executor=lambda g, f: execute_tiled(g, f, precision=precision).outputs)
    assert rep.ok


def test_every_dram_word_read_was_written_all_dram_too():
    res = driver.compile((unsqueeze_model(), "h6.onnx"), pipeline="default",
                         target=replace(load_target("pe16x16"), activation_home="dram"))
    assert "plan" not in res.graph.attrs
    run = execute_tiled(res.graph, feeds(res.graph))
    assert run.layers


# ---- the memory image catches unsound plans --------------------------------------------------
def _resident_reader(graph):
    """A scheduled op reading a resident input in place, and that input's producer."""
    for op in graph.ops():
        p = op.attrs.get("plan")
        if p is not None and "buffer" in p.inputs:
            return op, view_origin(op.operands[0]).owner
    raise AssertionError("no step reads a resident input")


def _with_plan(op, **changes):
    from sqnxt_compiler.passes.plan_memory import PlanAttr
    p = op.attrs["plan"]
    fields = dict(output=p.output, offset=p.offset, live=p.live, tiles=p.tiles, inputs=p.inputs,
                  residual=p.residual)
    fields.update(changes)
    op.attrs["plan"] = PlanAttr(**fields)


def test_a_resident_tensor_read_from_dram_fails_the_memory_image():
    res = compiled(unsqueeze_model())
    reader, producer = _resident_reader(res.graph)
    _with_plan(reader, inputs=tuple("dram" for _ in reader.attrs["plan"].inputs))
    with pytest.raises(CheckFailed, match=r"reads '.*' from DRAM, but \d+ of its \d+ words were never written"):
        execute_tiled(res.graph, feeds(res.graph))


@pytest.mark.parametrize("precision", ["fp32", "int16"])
def test_a_resident_tensor_overwritten_while_live_fails_the_memory_image(precision):
    res = compiled(unsqueeze_model())
    reader, producer = _resident_reader(res.graph)
    # the reader's own tiles laid over its resident input's region
    _with_plan(reader, tiles=producer.attrs["plan"].offset)
    with pytest.raises(CheckFailed, match="overwritten while it was live"):
        execute_tiled(res.graph, feeds(res.graph), precision=precision)


def test_a_tensor_read_from_the_buffer_that_was_never_placed_there_fails():
    res = compiled(unsqueeze_model())
    first = next(op for op in res.graph.ops() if "plan" in op.attrs)
    assert first.attrs["plan"].inputs == ("dram",)     # the network input
    _with_plan(first, inputs=("buffer",))
    with pytest.raises(CheckFailed, match="never placed there"):
        execute_tiled(res.graph, feeds(res.graph))


# ---- verify_allocation: a resident tensor has no DRAM reader ---------------------------------
def test_verify_allocation_finds_a_read_of_a_resident_tensor_it_cannot_serve():
    from sqnxt_compiler.schedule.planner import Plan, unwritten_reads
    res = compiled(unsqueeze_model())
    net = network(res.graph)
    rec = res.graph.attrs["plan"]
    resident = tuple(t["home"] == "buffer" for t in rec.tensors)
    plan = Plan(resident, tuple(x["offset"] for x in rec.tensors), (), (), "cycles", 0, "optimal", 0, False)
    assert unwritten_reads(net, plan) == []
    t = next(i for i, r in enumerate(resident) if r)
    T = net.tensors[t]

    def with_reader(step):
        tensors = list(net.tensors)
        tensors[t] = replace(T, readers=T.readers + (step,))
        return replace(net, tensors=tuple(tensors))

    # a reader after the live range: the words are gone from the buffer and never in DRAM
    after = unwritten_reads(with_reader(T.last + 1), plan)
    assert after and f"tensor '{T.name}' outside its live range" in after[0]
    # a reader inside it that does not read it in place (a copy from DRAM)
    others = [s.index for s in net.steps if T.producer < s.index <= T.last and t not in s.inputs
              and s.residual != t]
    for step in others:
        got = unwritten_reads(with_reader(step), plan)
        assert got and "from DRAM, but it is resident and never written there" in got[0]


# ---- the real-export corpus: every activation a step produces has a reader -------------------
def test_no_activation_of_a_real_export_is_never_read():
    """Before the fix, a CBAM export's tensors read through Unsqueeze were recorded as never
    read with a one-step live range; every tensor a step produces is read by something."""
    import glob
    from pathlib import Path

    paths = sorted(glob.glob(str(Path(__file__).parent / "fixtures" / "modern" / "*_ts13.onnx")))
    assert len(paths) >= 15
    for path in paths:
        res = driver.compile(path, pipeline="default", target=load_target("pe16x16"))
        net = network(res.graph)
        for t in net.tensors:
            assert t.reason != "never read", (path, t.name)
            assert t.readers or not t.plannable, (path, t.name)
            assert max(t.readers, default=t.producer) <= t.last, (path, t.name)
