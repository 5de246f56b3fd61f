"""Lowering schedules to the accelerator's program (sqnxt_compiler/program/lower.py,
verify.py, layout.py; passes/lower_program.py): real compiles on both bundled targets,
planned and all-DRAM, pass the verifier (boxes, buffer regions, tokens, and per layer the
cost model's transfer counts and words, exactly); the bytes are deterministic; the text
form round-trips; broken programs are rejected."""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from onnx import helper

from support import inferred_model, rand

from sqnxt_compiler import driver
from sqnxt_compiler.cost.mapping import Mapping
from sqnxt_compiler.cost.model import evaluate
from sqnxt_compiler.cost.tiling import tile_loops, tile_steps
from sqnxt_compiler.ir import print_graph
from sqnxt_compiler.layers import layer_of
from sqnxt_compiler.passes.schedule import ScheduleAttr
from sqnxt_compiler.program import decode, encode, format_program, parse_program
from sqnxt_compiler.program.isa import Program
from sqnxt_compiler.program.layout import ALIGN
from sqnxt_compiler.program.lower import UnsupportedLowering, lower
from sqnxt_compiler.program.verify import verify_lowered
from sqnxt_compiler.schedule.solver import LayerSchedule
from sqnxt_compiler.targets import load_target


def target(name: str, home: str):
    return dataclasses.replace(load_target(name), activation_home=home)


def small_net(seed: int = 0):
    """conv3x3+relu -> maxpool (fused) -> 1x1 conv + residual (fused add) -> depthwise
    3x3 -> grouped 1x1 -> add -> sum -> sigmoid (eltwise) -> avgpool -> gap -> fc (an add of
    three: :func:`test_an_add_of_three`)."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"]),
        helper.make_node("Add", ["c2", "p1"], ["a2"]),
        helper.make_node("Conv", ["a2", "wd"], ["d3"], pads=[1, 1, 1, 1], group=16),
        helper.make_node("Conv", ["d3", "wg", "bg"], ["g4"], group=4),
        helper.make_node("Add", ["g4", "a2"], ["s5"]),
        helper.make_node("Sum", ["s5", "d3"], ["s6"]),
        helper.make_node("Sigmoid", ["s6"], ["e7"]),
        helper.make_node("AveragePool", ["e7"], ["v8"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["v8"], ["gp"]),
        helper.make_node("Flatten", ["gp"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    inits = [("w1", rand(rng, 16, 3, 3, 3)), ("b1", rand(rng, 16)), ("w2", rand(rng, 16, 16, 1, 1)),
             ("b2", rand(rng, 16)), ("wd", rand(rng, 16, 1, 3, 3)), ("wg", rand(rng, 16, 4, 1, 1)),
             ("bg", rand(rng, 16)), ("wf", rand(rng, 10, 16)), ("bf", rand(rng, 10))]
    return inferred_model(nodes, [("x", [1, 3, 24, 24])], ["y"], inits)


@pytest.fixture(scope="module", params=list(itertools.product(("pe16x16", "pe8x8"), ("planned", "dram"))),
                ids=lambda p: "-".join(p))
def small(request):
    tname, home = request.param
    tgt = target(tname, home)
    res = driver.compile(small_net(), target=tgt, schedule={"jobs": 1})
    return res, tgt


def _kinds(res):
    return [op.attrs["schedule"].schedule.layer.kind for op in res.graph.ops() if "schedule" in op.attrs]


def test_small_net_lowers_and_verifies_with_the_cost_models_counts(small):
    res, tgt = small
    kinds = _kinds(res)
    assert {"conv", "fc", "add", "eltwise", "avgpool", "gap"} <= set(kinds), kinds
    low = lower(res.graph, tgt)
    got = verify_lowered(low)
    assert got["layers"] == len(low.layers) == len(kinds) == len(low.program.layers)
    assert got["bias_loads"] == 4           # conv1, conv2, grouped conv, fc (the depthwise has none)
    # every layer: COMPUTEs == tiles and the verifier compared its counts with the cost model
    for info in low.layers:
        n = info.schedule.cost.tiles_n
        assert info.tiles == info.schedule.layer.eff_groups * n["x"] * n["y"] * n["c"] * n["k"]
    assert all(r.base % ALIGN == 0 for r in low.layout.regions)
    if tgt.activation_home == "planned":
        assert "plan" in res.graph.attrs


def add_of_three():
    """Three 1x1 convs of one input summed: an add of three operands."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", f"w{i}"], [f"c{i}"]) for i in range(3)]
    nodes.append(helper.make_node("Sum", ["c0", "c1", "c2"], ["y"]))
    inits = [(f"w{i}", rand(rng, 8, 8, 1, 1)) for i in range(3)]
    return inferred_model(nodes, [("x", [1, 8, 6, 6])], ["y"], inits)


@pytest.mark.parametrize("home", ["dram", "planned"])
def test_an_add_of_three(home):
    """COMPUTE's operand addresses: in_addr (operand 0, in place when resident), in2_addr
    (operand 1; operands 2.. packed after it, which only LOADs give) and d2 (operand 2 of
    3 in place at in2_addr + d2).  Through DRAM, with one operand resident (it goes first:
    a sum in any order) or with all three resident, the add lowers, verifies and gives
    onnxruntime's numbers."""
    from sqnxt_compiler.program.funcsim import run_program
    from sqnxt_compiler.reference.check import compare, random_inputs
    from sqnxt_compiler.reference.ort import ort_session, run_ort

    tgt = target("pe16x16", home)
    model = add_of_three()
    res = driver.compile(model, target=tgt, schedule={"jobs": 1})
    (op,) = [o for o in res.graph.ops() if "schedule" in o.attrs and o.attrs["schedule"].schedule.layer.kind == "add"]
    plan = op.attrs.get("plan")
    resident = 0 if plan is None else list(plan.inputs).count("buffer")
    low = lower(res.graph, tgt)
    assert verify_lowered(low)["layers"] == 4
    li = next(i for i, d in enumerate(low.program.layers) if d.kind == "add")
    d2 = {x.d2 for x in low.program.insns if x.mnemonic == "COMPUTE" and x.layer == li}
    assert (d2 != {0}) == (resident == 3)
    feeds = random_inputs(res.graph, 0)
    out = run_program(low, res.graph, feeds).outputs
    for name, r in run_ort(ort_session(model, "m"), feeds).items():
        assert compare(out[name], r, 1e-4, 1e-5)[2]
    if home == "dram":
        assert not resident
    else:
        assert resident == 3


def test_lowering_is_deterministic_and_round_trips(small):
    res, tgt = small
    a = encode(lower(res.graph, tgt).program)
    again = driver.compile(small_net(), target=tgt, schedule={"jobs": 1})
    b = encode(lower(again.graph, tgt).program)
    assert a == b
    prog = decode(a)
    text = format_program(prog)
    assert parse_program(text) == prog
    assert encode(parse_program(text)) == a


@pytest.mark.slow
@pytest.mark.parametrize("tname", ["pe16x16", "pe8x8"])
def test_squeezenext_23_lowers_through_the_pass(tname):
    res = driver.compile("zoo:1.0-SqNxt-23", target=load_target(tname),
                         pipeline="default,schedule,lower-program")
    attr = res.graph.attrs["program"]
    low = attr.lowered
    assert len(low.layers) == 113 and attr.to_ir_attr()["layers"] == 113
    assert verify_lowered(low)["layers"] == 113
    assert "plan" in res.graph.attrs             # the driver put plan-memory before it
    line = [ln for ln in print_graph(res.graph).splitlines() if "program = {" in ln]
    assert len(line) == 1 and "bytes = " in line[0] and "LOAD" not in line[0]


def test_psum_spills_and_reloads_match_the_cost_model():
    """A mapping with the c loop outside a tiled loop: every visit but the last spills its
    partial sums, every visit but the first reloads them (and the counts are exact)."""
    tgt = target("pe8x8", "dram")
    res = driver.compile(small_net(1), target=tgt, schedule={"jobs": 1})
    for op in res.graph.ops():
        L = layer_of(op)
        if L is None:
            continue
        tc = max(1, L.Cg // 2)
        m = Mapping("OS", max(1, L.Q // 2), max(1, L.P // 2), tc, max(1, L.Kg // 2), ("c", "y", "x", "k"))
        cost = evaluate(L, tgt, m)
        op.attrs["schedule"] = ScheduleAttr(LayerSchedule(L, m, cost, "forced", "cycles", cost.total_cycles,
                                                          cost.total_cycles, 0.0, "test", False))
    low = lower(res.graph, tgt)
    verify_lowered(low)
    kinds = {(i.mnemonic, i.kind) for i in low.program.insns if i.mnemonic in ("LOAD", "STORE")}
    assert ("LOAD", "psum") in kinds and ("STORE", "psum") in kinds
    assert low.layout.psum


def test_tile_steps_walk_the_tile_loops():
    tgt = target("pe8x8", "dram")
    res = driver.compile(small_net(), target=tgt, schedule={"jobs": 1})
    for op in res.graph.ops():
        if "schedule" not in op.attrs:
            continue
        s = op.attrs["schedule"].schedule
        steps = list(tile_steps(s.layer, s.mapping))
        assert [x.tile for x in steps] == list(tile_loops(s.layer, s.mapping))
        assert sum(x.finish for x in steps) == sum(x.leaves == "final" for x in steps)
        assert sum(x.reload_psum for x in steps) == sum(x.leaves == "psum" for x in steps)


# ----------------------------------------------------------------------------- broken programs
@pytest.fixture(scope="module")
def planned_small():
    tgt = target("pe16x16", "planned")
    res = driver.compile(small_net(), target=tgt, schedule={"jobs": 1})
    return lower(res.graph, tgt)


def _with_insns(low, insns):
    return dataclasses.replace(low, program=Program(low.program.layers, tuple(insns)))


def test_a_box_past_its_tensor_is_rejected(planned_small):
    low = planned_small
    insns = list(low.program.insns)
    i = next(j for j, x in enumerate(insns) if x.mnemonic == "LOAD" and x.kind == "weight")
    insns[i] = dataclasses.replace(insns[i], dram=insns[i].dram + 10 ** 6)
    with pytest.raises(RuntimeError, match="dram box"):
        verify_lowered(_with_insns(low, insns))


def test_a_missing_token_is_rejected(planned_small):
    low = planned_small
    insns = list(low.program.insns)
    i = next(j for j, x in enumerate(insns) if getattr(x, "push_next", 0))
    insns[i] = dataclasses.replace(insns[i], push_next=0)
    with pytest.raises(RuntimeError, match="tokens"):
        verify_lowered(_with_insns(low, insns))


def test_an_overlapping_slot_is_rejected(planned_small):
    low = planned_small
    info = next(x for x in low.layers if x.live)
    name, at, words = info.live[0]
    bad = dataclasses.replace(info, slots={**info.slots, ("input", 0): (at, words)})
    layers = [bad if x is info else x for x in low.layers]
    with pytest.raises(RuntimeError, match="overlap"):
        verify_lowered(dataclasses.replace(low, layers=layers))


def test_a_count_off_the_cost_model_is_rejected(planned_small):
    low = planned_small
    insns = list(low.program.insns)
    i = next(j for j, x in enumerate(insns) if x.mnemonic == "LOAD" and x.kind == "weight")
    insns.insert(i, dataclasses.replace(insns[i], push_next=0))
    with pytest.raises(RuntimeError, match="cost model"):
        verify_lowered(_with_insns(low, insns))


def test_a_layer_not_lowered_is_a_one_line_error():
    """A concat of a tensor with itself: its parts are laid out as one tensor, and one
    tensor cannot sit at two places of it (the producer writes its output once)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Concat", ["c", "c"], ["y"], axis=1)]
    model = inferred_model(nodes, [("x", [1, 4, 8, 8])], ["y"], [("w", rand(rng, 4, 4, 1, 1))])
    tgt = target("pe8x8", "dram")
    res = driver.compile(model, target=tgt, schedule={"jobs": 1})
    with pytest.raises(UnsupportedLowering, match="not lowered: part 'c' appears twice") as e:
        lower(res.graph, tgt)
    assert "\n" not in str(e.value)


def test_an_input_tile_reused_across_steps_is_loaded_ahead():
    """Load placement (docs/isa.md): with k innermost an input tile serves nk steps; the
    LOAD of the next one goes before the COMPUTE of step min(i, j + 2) (j: the step that
    last read its slot), not in a burst in front of its own step."""
    tgt = target("pe8x8", "dram")
    res = driver.compile(small_net(1), target=tgt, schedule={"jobs": 1})
    checked = 0
    for op in res.graph.ops():
        L = layer_of(op)
        if L is None or L.kind != "conv" or L.channelwise or L.groups > 1 or L.Kg < 3 or L.Q < 2:
            continue
        tk = -(-L.Kg // 3)
        m = Mapping("OS", -(-L.Q // 2), L.P, L.Cg, tk, ("c", "y", "x", "k"))
        cost = evaluate(L, tgt, m)
        op.attrs["schedule"] = ScheduleAttr(LayerSchedule(L, m, cost, "forced", "cycles", cost.total_cycles,
                                                          cost.total_cycles, 0.0, "test", False))
        checked += 1
    assert checked
    low = lower(res.graph, tgt)
    verify_lowered(low)
    for info in low.layers:
        m = info.schedule.mapping
        if m.order != ("c", "y", "x", "k"):
            continue
        nk = -(-info.schedule.layer.Kg // m.tk)
        computes, input_at = 0, []       # COMPUTEs before each input LOAD, in program order
        for insn in low.program.insns:
            if getattr(insn, "layer", None) != info.index:
                continue
            if insn.mnemonic == "COMPUTE":
                computes += 1
            elif insn.mnemonic == "LOAD" and insn.kind == "input":
                input_at.append(computes)
        # input tile n is used first at step n*nk; slot n%2 was last read at step (n-1)*nk - 1
        want = [min(n * nk, (n - 1) * nk - 1 + 2) if n >= 1 else 0 for n in range(len(input_at))]
        assert len(input_at) == 2 and input_at == want, (info.name, input_at, want)
        assert input_at[1] < nk           # ahead of its own step
        checked -= 1
    assert checked == 0
