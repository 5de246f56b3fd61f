"""Functional simulation of lowered programs (sqnxt_compiler/program/funcsim.py): the small
net of test_program_lower on both bundled targets, planned and all-DRAM, gives
onnxruntime's outputs; the words each layer's LOADs and STOREs move equal the cost model's
DRAM words; programs broken on purpose are caught with a one-line message."""
from __future__ import annotations

import dataclasses
import itertools
import time

import numpy as np
import pytest

from test_program_lower import small_net, target

from sqnxt_compiler import driver
from sqnxt_compiler.cost.mapping import Mapping
from sqnxt_compiler.cost.model import evaluate
from sqnxt_compiler.layers import layer_of
from sqnxt_compiler.passes.schedule import ScheduleAttr
from sqnxt_compiler.program.funcsim import FuncSimError, run_program
from sqnxt_compiler.program.isa import Program
from sqnxt_compiler.program.lower import lower
from sqnxt_compiler.program.verify import verify_lowered
from sqnxt_compiler.reference.check import DEFAULT_ATOL, DEFAULT_RTOL, compare, random_inputs
from sqnxt_compiler.reference.ort import ort_session, run_ort
from sqnxt_compiler.schedule.solver import LayerSchedule
from sqnxt_compiler.targets import load_target


def _scheduled(graph):
    return [op for op in graph.ops() if "schedule" in op.attrs]


def _check_against_ort(model, graph, low, seeds=(0, 1)):
    sess = ort_session(model, "model")
    worst = 0.0
    run = None
    for seed in seeds:
        feeds = random_inputs(graph, seed)
        run = run_program(low, graph, feeds)
        ref = run_ort(sess, feeds)
        assert set(run.outputs) == set(ref)
        for name, r in ref.items():
            err, _rel, ok = compare(run.outputs[name], r, DEFAULT_RTOL, DEFAULT_ATOL)
            assert ok, (name, err)
            worst = max(worst, err)
    return run, worst


def _check_words(graph, run):
    for li, op in enumerate(_scheduled(graph)):
        cost = op.attrs["schedule"].schedule.cost
        got = run.dram(li)
        for key, words in got.items():      # the bias included: the cost model counts it
            assert words == cost.dram[key], (li, key, words, cost.dram[key])
        assert sum(got.values()) == cost.dram["total"]


@pytest.fixture(scope="module", params=list(itertools.product(("pe16x16", "pe8x8"), ("planned", "dram"))),
                ids=lambda p: "-".join(p))
def small(request):
    tname, home = request.param
    tgt = target(tname, home)
    model = small_net()
    res = driver.compile(model, target=tgt, schedule={"jobs": 1})
    return model, res.graph, lower(res.graph, tgt)


def test_small_net_matches_onnxruntime_and_the_cost_models_words(small):
    model, graph, low = small
    run, worst = _check_against_ort(model, graph, low)
    assert worst < 1e-5
    assert run.instructions == len(low.program.insns)
    assert all(e is not None for e in run.layer_err)      # every layer checked against its kernel
    _check_words(graph, run)
    # one bias LOAD per layer with a bias, K x pw words
    pw = low.target.psum_words
    for li, d in enumerate(low.program.layers):
        assert run.dram(li)["bias_reads"] == (d.K * pw if d.bias else 0)


def test_psum_spills_and_reloads_simulate_exactly():
    """The c loop outside tiled x, y, k loops: partial sums spill to DRAM and come back."""
    tgt = target("pe8x8", "dram")
    model = small_net(1)
    res = driver.compile(model, target=tgt, schedule={"jobs": 1})
    for op in res.graph.ops():
        L = layer_of(op)
        if L is None:
            continue
        m = Mapping("WS" if L.is_mac and op.id % 2 else "OS", max(1, L.Q // 2), max(1, L.P // 2), max(1, L.Cg // 2),
                    max(1, L.Kg // 2), ("c", "y", "x", "k"))
        cost = evaluate(L, tgt, m)
        op.attrs["schedule"] = ScheduleAttr(LayerSchedule(L, m, cost, "forced", "cycles", cost.total_cycles,
                                                          cost.total_cycles, 0.0, "test", False))
    low = lower(res.graph, tgt)
    verify_lowered(low)
    run, _worst = _check_against_ort(model, res.graph, low, seeds=(0,))
    assert any(run.dram(li)["psum_reads"] for li in range(len(low.layers)))
    _check_words(res.graph, run)


# ----------------------------------------------------------------------------- broken programs
@pytest.fixture(scope="module")
def dram_small():
    tgt = target("pe8x8", "dram")
    res = driver.compile(small_net(), target=tgt, schedule={"jobs": 1})
    return res.graph, lower(res.graph, tgt)


@pytest.fixture(scope="module")
def planned_small():
    tgt = target("pe16x16", "planned")
    res = driver.compile(small_net(), target=tgt, schedule={"jobs": 1})
    return res.graph, lower(res.graph, tgt)


def _with_insns(low, insns):
    return dataclasses.replace(low, program=Program(low.program.layers, tuple(insns)))


def _fails(graph, low, match):
    with pytest.raises(FuncSimError, match=match) as e:
        run_program(low, graph, random_inputs(graph, 0))
    assert "\n" not in str(e.value)
    return str(e.value)


def test_a_dropped_load_is_a_read_before_write(dram_small):
    graph, low = dram_small
    insns = list(low.program.insns)
    i = next(j for j, x in enumerate(insns) if x.mnemonic == "LOAD" and x.kind == "input")
    nxt = insns[i + 1]                      # keep the token flags balanced on the next LOAD
    insns[i + 1] = dataclasses.replace(nxt, push_next=nxt.push_next | insns[i].push_next,
                                       pop_next=nxt.pop_next | insns[i].pop_next)
    del insns[i]
    msg = _fails(graph, dataclasses.replace(low, program=Program(low.program.layers, tuple(insns))),
                 "before any write")
    assert "instruction " in msg and "reads its input tile" in msg
    assert "layer 0 'Conv_0'" in msg and "slot input" in msg


def test_a_retargeted_store_is_caught(dram_small):
    """An output STORE written over its neighbour's tile: the neighbour's words are
    overwritten unread, or (the other way round) the next layer reads words never written."""
    graph, low = dram_small
    insns = list(low.program.insns)
    stores = [j for j, x in enumerate(insns) if x.mnemonic == "STORE" and x.kind == "output"]
    a, b = stores[0], stores[1]
    assert insns[a].layer == insns[b].layer
    insns[b] = dataclasses.replace(insns[b], dram=insns[a].dram)
    msg = _fails(graph, _with_insns(low, insns), "overwrites DRAM region")
    assert f"instruction {b} (STORE output, layer {insns[b].layer} '" in msg
    # pointed past its tensor into the next region: the next layer reads words never written
    insns = list(low.program.insns)
    reg = low.layers[insns[a].layer].dram["output"]
    insns[a] = dataclasses.replace(insns[a], dram=insns[a].dram + low.layout.end - reg.base)
    _fails(graph, _with_insns(low, insns), "outside the DRAM")


def test_overlapping_slots_are_caught(dram_small):
    """The weight tile loaded over the input slot: the input tile is overwritten before
    its COMPUTE reads it, and the weight slot is read before any write."""
    graph, low = dram_small
    insns = list(low.program.insns)
    i = next(j for j, x in enumerate(insns) if x.mnemonic == "LOAD" and x.kind == "input")
    w = next(j for j in range(i, len(insns)) if insns[j].mnemonic == "LOAD" and insns[j].kind == "weight")
    insns[w] = dataclasses.replace(insns[w], buf=insns[i].buf)
    msg = _fails(graph, _with_insns(low, insns), "overwrites buffer slot input/0")
    assert f"instruction {w} (LOAD weight, layer 0 'Conv_0')" in msg


def test_a_resident_tensor_overwritten_is_caught(planned_small):
    """A COMPUTE of a planned layer writing its output tile over a resident tensor that a
    later layer still reads."""
    graph, low = planned_small
    insns = list(low.program.insns)
    info = next(x for x in low.layers if x.live and any(c.mnemonic == "COMPUTE" and c.layer == x.index
                                                       and not low.program.layers[x.index].out_res
                                                       for c in insns))
    _name, at, _n = info.live[0]
    j = next(j for j, x in enumerate(insns) if x.mnemonic == "COMPUTE" and x.layer == info.index)
    insns[j] = dataclasses.replace(insns[j], out_addr=at)
    msg = _fails(graph, _with_insns(low, insns), "overwrites the live resident tensor")
    assert f"instruction {j} (COMPUTE, layer {info.index} " in msg


def test_a_token_popped_before_its_push_is_caught(dram_small):
    graph, low = dram_small
    insns = list(low.program.insns)
    k = next(j for j, x in enumerate(insns) if x.mnemonic == "LOAD" and x.push_next)
    insns[k] = dataclasses.replace(insns[k], push_next=0)
    _fails(graph, _with_insns(low, insns), "token")


def test_int16_matches_onnxruntime_and_the_tiled_int16_execution(small):
    """int16 (the tiled executor's formats and rounding rules, imported): within check's
    int16 tolerance of onnxruntime, every layer within it of its op's kernel, the words
    equal to the cost model's, and the tiled int16 execution's outputs bit for bit."""
    from sqnxt_compiler.reference.tiled import TOLERANCES, run_tiled

    model, graph, low = small
    rtol, atol = TOLERANCES["int16"]
    sess = ort_session(model, "model")
    feeds = random_inputs(graph, 0)
    run = run_program(low, graph, feeds, precision="int16")
    ref = run_ort(sess, feeds)
    tiled = run_tiled(graph, feeds, precision="int16")
    for name, r in ref.items():
        err, _rel, ok = compare(run.outputs[name], r, rtol, atol)
        assert ok, (name, err)
        assert err > 0                     # fixed point: not the fp32 numbers
        assert np.array_equal(run.outputs[name], tiled[name])
    assert all(e is not None for e in run.layer_err)
    _check_words(graph, run)


def test_an_unknown_precision_is_a_one_line_error(dram_small):
    graph, low = dram_small
    with pytest.raises(FuncSimError, match="unknown precision 'int8'") as e:
        run_program(low, graph, random_inputs(graph, 0), precision="int8")
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_squeezenext_23_matches_onnxruntime():
    """1.0-SqNxt-23 on pe16x16 (planned): about 4 s of simulation, 8 271 instructions."""
    import sqnxt_compiler.zoo

    model = sqnxt_compiler.zoo.build("1.0-SqNxt-23")
    res = driver.compile(model, target=load_target("pe16x16"), pipeline="default,schedule,lower-program")
    low = res.graph.attrs["program"].lowered
    t0 = time.perf_counter()
    run, worst = _check_against_ort(model, res.graph, low, seeds=(0,))
    assert time.perf_counter() - t0 < 120
    assert len(run.layer_err) == 113
    _check_words(res.graph, run)


@pytest.mark.slow
def test_squeezenet_11_with_its_concats_written_in_place_matches_onnxruntime():
    """SqueezeNet-1.1 on pe8x8 (planned): every fire module's expand layers write into their
    slices of the concat's DRAM region (concat-in-place), the next squeeze reads it whole."""
    import sqnxt_compiler.zoo

    model = sqnxt_compiler.zoo.build("SqueezeNet-1.1")
    res = driver.compile(model, target=load_target("pe8x8"), pipeline="default,schedule,lower-program")
    assert sum(op.name == "sqnxt.concat_view" for op in res.graph.ops()) == 8
    low = res.graph.attrs["program"].lowered
    run, _worst = _check_against_ort(model, res.graph, low, seeds=(0,))
    _check_words(res.graph, run)
