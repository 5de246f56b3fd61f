"""Every layer kind sqnxtc costs becomes a program (sqnxt_compiler/program/lower.py, layout.py,
funcsim.py; docs/isa.md, "Lowering of each layer kind"): a concat (its parts laid out as one
tensor), element-wise layers with per-channel parameter vectors, immediates and broadcast
operands, the reducing element functions (softmax, lrn), the stand-ins (a matmul by a
constant matrix, a mean or max over rows and columns), in fp32 and int16.  Each small
graph is compiled for a bundled target, lowered, verified (the cost model's transfers and
words per layer, exactly), run in the functional simulator and compared with
onnxruntime; a move program broken on purpose is rejected."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import helper

from support import inferred_model, rand
from test_program_lower import target

from sqnxt_compiler import driver
from sqnxt_compiler.cost.mapping import Mapping
from sqnxt_compiler.cost.model import evaluate
from sqnxt_compiler.passes.schedule import ScheduleAttr
from sqnxt_compiler.program.funcsim import FuncSimError, run_program
from sqnxt_compiler.program.isa import Program
from sqnxt_compiler.program.lower import UnsupportedLowering, lower
from sqnxt_compiler.program.verify import verify_lowered
from sqnxt_compiler.reference.check import DEFAULT_ATOL, DEFAULT_RTOL, compare, random_inputs
from sqnxt_compiler.reference.ort import ort_session, run_ort
from sqnxt_compiler.reference.tiled import TOLERANCES
from sqnxt_compiler.schedule.solver import LayerSchedule

TARGETS = [("pe8x8", "dram"), ("pe8x8", "planned"), ("pe16x16", "dram")]


#: The default pipeline without concat-in-place: a concat is a copy (a move layer), as it
#: stays when its parts cannot be written in place (tests/test_concat_in_place.py).
COPY = "canonicalize,fold-bn,fuse-relu,fuse-add,fuse-pool"


def _compile(model, tname="pe8x8", home="dram", pipeline="default"):
    tgt = target(tname, home)
    res = driver.compile(model, pipeline=pipeline, target=tgt, schedule={"jobs": 1})
    return res.graph, tgt


def _lowered(graph, tgt):
    low = lower(graph, tgt)
    verify_lowered(low)          # boxes, regions, tokens, the cost model's transfers and words
    return low


def _scheduled(graph):
    return [op for op in graph.ops() if "schedule" in op.attrs]


def _simulate(model, graph, low, precision="fp32", seed=0):
    """Run the program against onnxruntime; every layer's DRAM words equal the cost
    model's; the run."""
    rtol, atol = (DEFAULT_RTOL, DEFAULT_ATOL) if precision == "fp32" else TOLERANCES["int16"]
    feeds = random_inputs(graph, seed)
    run = run_program(low, graph, feeds, precision=precision)
    ref = run_ort(ort_session(model, "model"), feeds)
    for name, r in ref.items():
        err, _rel, ok = compare(run.outputs[name], r, rtol, atol)
        assert ok, (name, err)
    assert all(e is not None for e in run.layer_err)
    for li, op in enumerate(_scheduled(graph)):
        cost = op.attrs["schedule"].schedule.cost
        got = run.dram(li)
        for key, words in got.items():
            assert words == cost.dram[key], (li, op.name, key, words, cost.dram[key])
    return run


def _kinds(low):
    return [(d.kind, d.fn) for d in low.program.layers]


def _force(graph, tgt, pick):
    """Replace the schedule of every op for which ``pick(op, layer)`` gives a mapping."""
    for op in _scheduled(graph):
        L = op.attrs["schedule"].schedule.layer
        m = pick(op, L)
        if m is None:
            continue
        cost = evaluate(L, tgt, m)
        op.attrs["schedule"] = ScheduleAttr(LayerSchedule(L, m, cost, "forced", "cycles", cost.total_cycles,
                                                          cost.total_cycles, 0.0, "test", False))


# ----------------------------------------------------------------------------- concat
def concat_net(seed=0):
    """Two convs (4 and 6 channels) concatenated on channels, then a 1x1 conv."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "wb"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Conv", ["r", "wc"], ["y"])]
    return inferred_model(nodes, [("x", [1, 3, 9, 9])], ["y"],
                          [("wa", rand(rng, 4, 3, 3, 3)), ("wb", rand(rng, 6, 3, 1, 1)),
                           ("wc", rand(rng, 5, 10, 1, 1))])


@pytest.mark.parametrize("tname, home", TARGETS)
def test_a_concat_reads_its_parts_as_one_tensor(tname, home):
    model = concat_net()
    graph, tgt = _compile(model, tname, home, COPY)
    low = _lowered(graph, tgt)
    assert ("move", "concat") in _kinds(low)
    cat = next(op for op in graph.ops() if op.name == "sqnxt.concat")
    li = next(i for i, op in enumerate(_scheduled(graph)) if op is cat)
    region = low.layout.concat_input[li]
    a, b = cat.operands
    assert low.layout.tensor(a).base == region.base                  # the parts, one after the other
    assert low.layout.tensor(b).base == region.base + a.type.numel
    assert region.words == cat.result.type.numel
    _simulate(model, graph, low)


def test_a_concat_in_int16():
    """The parts are written at the concat's format, so its COMPUTE copies words."""
    model = concat_net()
    graph, tgt = _compile(model, "pe8x8", "planned", COPY)
    _simulate(model, graph, _lowered(graph, tgt), precision="int16")


def test_a_part_stored_into_the_wrong_slice_is_rejected():
    """The STOREs of part b pointed at part a's slice of the concat's input: the verifier
    finds the box outside b's region, and the simulator finds b's slice read before any
    write (or a's words overwritten before the concat read them)."""
    model = concat_net()
    graph, tgt = _compile(model, pipeline=COPY)
    low = _lowered(graph, tgt)
    ops = _scheduled(graph)
    cat = next(op for op in ops if op.name == "sqnxt.concat")
    a, b = cat.operands
    lb = next(i for i, op in enumerate(ops) if op.result is b)
    shift = low.layout.tensor(a).base - low.layout.tensor(b).base
    insns = list(low.program.insns)
    moved = 0
    for j, x in enumerate(insns):
        if x.mnemonic == "STORE" and x.layer == lb and x.kind == "output":
            insns[j] = dataclasses.replace(x, dram=x.dram + shift)
            moved += 1
    assert moved
    bad = dataclasses.replace(low, program=Program(low.program.layers, tuple(insns)))
    with pytest.raises(RuntimeError, match="dram box"):
        verify_lowered(bad)
    with pytest.raises(FuncSimError) as e:
        run_program(bad, graph, random_inputs(graph, 0))
    assert "\n" not in str(e.value)
    msg = str(e.value)
    # b's slice is never written (read before write) or a's is overwritten before the concat reads it
    assert ("before any write" in msg and "'Concat_2/input'" in msg) or "overwrites DRAM region" in msg, msg


def test_a_concat_of_a_tensor_with_itself_is_a_one_line_error():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Concat", ["c", "c"], ["y"], axis=1)]
    model = inferred_model(nodes, [("x", [1, 4, 6, 6])], ["y"], [("w", rand(rng, 4, 4, 1, 1))])
    graph, tgt = _compile(model)
    with pytest.raises(UnsupportedLowering, match="appears twice") as e:
        lower(graph, tgt)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- element-wise
def eltwise_net(seed=0):
    """Per-channel parameter vectors (Mul by constants, a BatchNormalization kept, PRelu),
    an immediate before the tile (2 - x), a broadcast operand along the channels, and an
    activation used as a per-channel vector (SE: gap -> sigmoid -> Mul)."""
    rng = np.random.default_rng(seed)
    C = 6
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["p", "g", "bb", "mu", "var"], ["bn"]),
             helper.make_node("Mul", ["bn", "s"], ["m"]),
             helper.make_node("PRelu", ["m", "slope"], ["pr"]),
             helper.make_node("Sub", ["two", "pr"], ["sb"]),
             helper.make_node("Add", ["sb", "row"], ["ad"]),
             helper.make_node("GlobalAveragePool", ["ad"], ["gp"]),
             helper.make_node("Sigmoid", ["gp"], ["sg"]),
             helper.make_node("Mul", ["ad", "sg"], ["y"])]
    inits = [("w", rand(rng, C, 3, 3, 3)), ("g", rand(rng, C, positive=True)), ("bb", rand(rng, C)),
             ("mu", rand(rng, C)), ("var", rand(rng, C, positive=True)), ("s", rand(rng, 1, C, 1, 1)),
             ("slope", rand(rng, C, 1, 1)), ("two", np.array(2.0, np.float32)), ("row", rand(rng, 1, 1, 5, 5))]
    return inferred_model(nodes, [("x", [1, 3, 10, 10])], ["y"], inits)


@pytest.mark.parametrize("tname, home", TARGETS)
def test_per_channel_parameters_immediates_and_broadcasts(tname, home):
    model = eltwise_net()
    graph, tgt = _compile(model, tname, home)
    low = _lowered(graph, tgt)
    descs = {d.fn: d for d in low.program.layers if d.kind == "eltwise"}
    assert descs["batchnorm"].params == 2
    assert descs["prelu"].params == 1
    assert descs["sub"].swap == 1 and descs["sub"].alpha == 2.0 and descs["sub"].params == 0
    assert descs["add"].n_in == 2 and descs["add"].params == 0
    assert {d.params for d in low.program.layers if d.fn == "mul"} == {1}
    # the broadcast row is loaded with a channel stride of 0, as many words as the tile
    add = next(i for i, d in enumerate(low.program.layers) if d.fn == "add")
    loads = [x for x in low.program.insns if x.mnemonic == "LOAD" and x.layer == add and x.kind == "input"]
    assert any(x.ds2 == 0 for x in loads)
    _simulate(model, graph, low)


def test_per_channel_eltwise_in_int16():
    model = eltwise_net()
    graph, tgt = _compile(model, "pe8x8", "dram")
    _simulate(model, graph, _lowered(graph, tgt), precision="int16")


def test_a_scalar_computed_at_run_time_is_a_one_line_error():
    """Mul by a scalar that is an activation: an immediate must be a constant."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("ReduceMean", ["c"], ["s"], keepdims=0),
             helper.make_node("Mul", ["c", "s"], ["y"])]
    model = inferred_model(nodes, [("x", [1, 2, 4, 4])], ["y"], [("w", rand(rng, 3, 2, 1, 1))])
    graph, tgt = _compile(model)
    with pytest.raises(UnsupportedLowering) as e:
        lower(graph, tgt)
    assert "\n" not in str(e.value) and "not lowered" in str(e.value)


# ----------------------------------------------------------------------------- reducing functions
def lrn_softmax_net(seed=0):
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("LRN", ["c"], ["n"], size=3, alpha=0.02, beta=0.75, bias=2.0),
             helper.make_node("GlobalAveragePool", ["n"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wf"], ["l"], transB=1),
             helper.make_node("Softmax", ["l"], ["y"], axis=1)]
    return inferred_model(nodes, [("x", [1, 3, 6, 6])], ["y"], [("w", rand(rng, 8, 3, 3, 3)),
                                                                ("wf", rand(rng, 10, 8))])


def _spanning(op, L):
    """A mapping of the reducing layers whose tiles span their channels."""
    if L.kind != "eltwise":
        return None
    return Mapping("OS", L.Q, max(1, L.P // 2), 1, L.Kg, ("k", "c", "y", "x"))


@pytest.mark.parametrize("precision", ["fp32", "int16"])
def test_lrn_and_softmax_whose_tiles_span_the_channels(precision):
    model = lrn_softmax_net()
    graph, tgt = _compile(model, "pe8x8", "dram")
    _force(graph, tgt, _spanning)
    low = _lowered(graph, tgt)
    descs = {d.fn: d for d in low.program.layers}
    assert descs["lrn"].R == 3 and descs["lrn"].lrn_k == 16 and descs["lrn"].axes == 1
    assert descs["softmax"].axes == 1
    _simulate(model, graph, low, precision)


@pytest.mark.parametrize("tname, home", [("pe8x8", "dram"), ("pe16x16", "planned")])
def test_an_lrn_as_scheduled_lowers(tname, home):
    """No forcing: the scheduler keeps an lrn's channels in one tile (Layer.spanned), so
    the network lowers and runs like onnxruntime, words equal to the cost model's."""
    model = lrn_softmax_net()
    graph, tgt = _compile(model, tname, home)
    lrn = [op.attrs["schedule"].schedule for op in _scheduled(graph) if op.name == "sqnxt.lrn"]
    assert len(lrn) == 1 and lrn[0].mapping.tk == lrn[0].layer.Kg
    _simulate(model, graph, _lowered(graph, tgt))


def test_lrn_tiles_without_their_neighbour_channels_are_a_one_line_error():
    """k tiles of 3 of 8 channels with the input in DRAM: the window needs channels the
    cost model does not load."""
    model = lrn_softmax_net()
    graph, tgt = _compile(model, "pe8x8", "dram")
    _force(graph, tgt, lambda op, L: Mapping("OS", L.Q, L.P, 1, 3, ("k", "c", "y", "x"))
           if op.name == "sqnxt.lrn" else None)
    with pytest.raises(UnsupportedLowering, match="need the channels outside the tile") as e:
        lower(graph, tgt)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- stand-ins
def gather_net(seed=0):
    """Moves that are one strided box per tile: a transpose of the rows and columns, a
    strided slice on data, a gather of channels by constant indices in steps of 2."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),           # (1, 6, 5, 7)
             helper.make_node("Transpose", ["c"], ["t"], perm=[0, 1, 3, 2]),           # (1, 6, 7, 5)
             helper.make_node("Slice", ["t", "st", "en", "ax", "sp"], ["s"]),          # (1, 6, 3, 5)
             helper.make_node("Gather", ["s", "idx"], ["g"], axis=1),                  # (1, 3, 3, 5)
             helper.make_node("Conv", ["g", "w2"], ["y"])]
    inits = [("w", rand(rng, 6, 2, 3, 3)), ("w2", rand(rng, 4, 3, 1, 1)),
             ("st", np.array([1], np.int64)), ("en", np.array([7], np.int64)), ("ax", np.array([2], np.int64)),
             ("sp", np.array([2], np.int64)), ("idx", np.array([0, 2, 4], np.int64))]
    return inferred_model(nodes, [("x", [1, 2, 5, 7])], ["y"], inits)


@pytest.mark.parametrize("tname, home", TARGETS)
def test_moves_that_are_strided_boxes(tname, home):
    model = gather_net()
    graph, tgt = _compile(model, tname, home)
    moves = [op for op in _scheduled(graph) if op.attrs["schedule"].schedule.layer.kind == "move"]
    assert [op.name for op in moves] == ["sqnxt.transpose", "sqnxt.extract_slice", "sqnxt.take"]
    if any(op.attrs["schedule"].schedule.layer.homes.resident_inputs for op in moves):
        # a gather reading a resident input in place would need its strides in the descriptor
        with pytest.raises(UnsupportedLowering, match="a gather from a resident input") as e:
            lower(graph, tgt)
        assert "\n" not in str(e.value)
        return
    low = _lowered(graph, tgt)
    li = [i for i, d in enumerate(low.program.layers) if d.kind == "move"]
    boxes = {(x.ds0, x.ds1, x.ds2) for x in low.program.insns
             if x.mnemonic == "LOAD" and x.layer == li[0] and x.kind == "input"}
    assert boxes == {(7, 1, 35)}          # y[k][p][q] = c[k][q][p]: columns 7 words apart, rows 1
    _simulate(model, graph, low)


def test_a_gather_that_is_not_a_box_is_a_one_line_error():
    """A nearest upsampling by 2 reads each input word twice along each axis: not one
    strided box per tile (the cost model counts the output's words)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Resize", ["c", "", "scales"], ["y"], mode="nearest")]
    model = inferred_model(nodes, [("x", [1, 2, 4, 5])], ["y"],
                           [("w", rand(rng, 3, 2, 1, 1)), ("scales", np.array([1, 1, 2, 2], np.float32))])
    graph, tgt = _compile(model)
    with pytest.raises(UnsupportedLowering, match="not lowered: a gather the LOAD boxes do not express") as e:
        lower(graph, tgt)
    assert "\n" not in str(e.value)


def matmul_net(seed=0):
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("MatMul", ["x", "b1"], ["m"]),               # (1, 5, 4, 6): a 1x1 conv
             helper.make_node("Relu", ["m"], ["q"]),                        # fused: the conv's act
             helper.make_node("Abs", ["q"], ["r"]),                         # an eltwise over (5, 4, 6)
             helper.make_node("ReduceSum", ["r", "ax"], ["y"], keepdims=1)]  # over axis 1: a conv to 1
    return inferred_model(nodes, [("x", [1, 5, 4, 3])], ["y"], [("b1", rand(rng, 3, 6)),
                                                                ("ax", np.array([1], np.int64))])


def reduce_net(seed=0):
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMax", ["c"], ["mx"], axes=[3], keepdims=1),       # (1, 6, 5, 1)
             helper.make_node("ReduceMean", ["mx"], ["g"], axes=[2, 3], keepdims=0),    # (1, 6)
             helper.make_node("MatMul", ["g", "b2"], ["y"])]                              # an fc
    return inferred_model(nodes, [("x", [1, 3, 5, 4])], ["y"], [("w", rand(rng, 6, 3, 3, 3)), ("b2", rand(rng, 6, 7))])


@pytest.mark.parametrize("precision", ["fp32", "int16"])
@pytest.mark.parametrize("tname, home", [("pe8x8", "dram"), ("pe16x16", "planned")])
def test_reductions_and_a_matmul_by_a_constant(tname, home, precision):
    model = reduce_net()
    graph, tgt = _compile(model, tname, home)
    low = _lowered(graph, tgt)
    kinds = [d.kind for d in low.program.layers]
    assert kinds == ["conv", "maxpool", "gap", "fc"]
    _simulate(model, graph, low, precision)


@pytest.mark.parametrize("tname, home", [("pe8x8", "dram"), ("pe16x16", "dram")])
def test_a_channels_last_matmul_is_a_strided_conv_program(tname, home):
    """MatMul (1, 5, 4, 3) x (3, 6): a 1x1 conv over 5 x 4 whose x and y are channels-last,
    the relu after it its fused activation; an abs, then a sum over axis 1 (a conv to one channel with synthesized weights of 1)."""
    model = matmul_net()
    graph, tgt = _compile(model, tname, home)
    low = _lowered(graph, tgt)
    assert [(d.kind, d.act) for d in low.program.layers] == [("conv", "relu"), ("eltwise", "none"), ("conv", "none")]
    li = 0
    loads = [x for x in low.program.insns if x.mnemonic == "LOAD" and x.layer == li and x.kind == "input"]
    stores = [x for x in low.program.insns if x.mnemonic == "STORE" and x.layer == li and x.kind == "output"]
    assert all(x.ds0 == 3 and x.ds2 == 1 for x in loads)      # x[h][w][c]: columns C words apart
    assert all(x.ds0 == 6 and x.ds2 == 1 for x in stores)     # y[h][w][k]
    _simulate(model, graph, low)
