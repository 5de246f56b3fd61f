"""The event-driven timing simulator (sqnxt_compiler/program/timing.py) and its timeline
(timeline.py), on programs written by hand in the text form: every expected figure is
derived by hand in the comments from the rules of docs/isa.md ("Durations", "Timing")."""
from __future__ import annotations

import dataclasses
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from sqnxt_compiler.cost import ElementFn, Epilogue, Layer as CostLayer, Mapping, Pool, evaluate
from sqnxt_compiler.program import Compute, Finish, Layer, Program, parse_program
from sqnxt_compiler.program.timeline import DRAM_TID, ENGINE_TID, LAYER_TID, dumps, trace_events
from sqnxt_compiler.program.timing import (DeadlockError, SimulationError, compute_cycles, format_timing,
                                           simulate, transfer_cycles)
from sqnxt_compiler.targets import load_target

DOC = Path(__file__).resolve().parents[1] / "docs" / "isa.md"
PE16 = load_target("pe16x16")
#: pe16x16 without the pipeline fill, so that a COMPUTE's cycles are just its tile's:
#: lat = 100, bw = 8 words/cycle, Lw = 16.
FLAT = dataclasses.replace(PE16, pipeline_fill_cycles=0)


# ----------------------------------------------------------------------------- helpers
#: One WS layer with a 1x1 kernel and 16 -> 16 channels: on FLAT a COMPUTE of an oh x ow
#: tile with kc = cc = 16 takes R*S * ceil(16/16) * ceil(16/16) * (oh*ow + Lw) = oh*ow + 16
#: cycles (no fill on the first: FLAT; WS adds no drain on the last).
LAYER = 'LAYER name="t" kind=conv df=WS C=16 K=16 H=64 W=64 P=64 Q=64 R=1 S=1 nz_num=1 nz_den=1'


def ld(words: int, tok: str = "") -> str:
    """A LOAD of ``words`` words: 100 + words/8 cycles on FLAT and PE16."""
    return f"LOAD layer=0 kind=input n0={words} {tok}"


def st(words: int, tok: str = "") -> str:
    """A STORE of ``words`` words: 100 + words/8 cycles."""
    return f"STORE layer=0 kind=output n0={words} {tok}"


def cp(oh: int, ow: int, tok: str = "") -> str:
    """A COMPUTE of an oh x ow tile: oh*ow + 16 cycles on FLAT."""
    return f"COMPUTE layer=0 acc=0 fin=1 oh={oh} ow={ow} kc=16 cc=16 {tok}"


def program(*lines: str) -> Program:
    return parse_program("\n".join((LAYER,) + lines) + "\n")


def times(timing, i):
    return timing.insn_start(i), timing.insn_end(i)


def example_text() -> str:
    return re.search(r"```isa-example\n(.*?)```", DOC.read_text(), re.S).group(1)


# ----------------------------------------------------------------------------- durations
def test_worked_example_durations_and_total():
    prog = parse_program(example_text())
    t = simulate(prog, PE16)
    dur = [t.insn_end(i) - t.insn_start(i) for i in range(len(prog.insns))]
    # docs/isa.md: bias 100 + 16/8, input 100 + 256/8, weights 100 + 144/8, stores 100 + 256/8;
    # COMPUTE 4 * ceil(8/16) * ceil(8/16) * max(ceil(4*9*3/5), 32) = 128, + fill 32 on the
    # first and + D 32 on the last: 320 in all, the cost model's compute_OS
    assert dur == [102, 132, 118, 160, 118, 132, 160, 132, 0]
    assert dur[3] + dur[6] == 320 == 8 * 1 * 1 * 32 + 32 + 32
    assert t.layers[0].busy["compute"] == 320
    # by hand, one DRAM channel serving the transfers in order:
    #   load engine: bias 0-102, input 102-234, weight0 234-352 (pushes load->compute),
    #                weight1 352-470 (pushes)
    #   compute:     COMPUTE0 pops at 352: 352-512 (pushes compute->store);
    #                COMPUTE1's token came at 470, engine free at 512: 512-672
    #   store:       STORE0 token at 512, channel free since 470: 512-644;
    #                STORE1 token at 672: 672-804, pushes store->compute
    #   FINISH pops it at 804
    assert [times(t, i) for i in range(9)] == [
        (0, 102), (102, 234), (234, 352), (352, 512), (352, 470), (512, 644), (512, 672), (672, 804), (804, 804)]
    assert t.total_cycles == 804
    # the cost model's total for the layer (docs/cost-model.md, the bias in the prologue):
    # max(compute 320 + prologue 300 + ceil((256 + 144 + 16) / 8) + epilogue 100 + 256 / 8,
    #     dma 100 * 6 + ceil(1072 / 8)) = max(804, 734) = 804: the same figure
    assert 320 + (300 + (256 + 144 + 16) // 8) + (100 + 256 // 8) == 804 > 100 * 6 + 1072 // 8
    lay = t.layers[0]
    # compute waits for the loads 0-352, for the last store 672-804 (FINISH);
    # store waits for compute 0-512 and 644-672; the load engine never waits
    assert lay.wait["compute"] == {"load": 352, "store": 132, "fetch": 0}
    assert lay.wait["store"] == {"compute": 540, "dram": 0, "fetch": 0}
    assert lay.wait["load"] == {"compute": 0, "store": 0, "dram": 0, "fetch": 0}
    assert lay.busy == {"load": 470, "compute": 320, "store": 264}
    assert (lay.start, lay.end, lay.cycles) == (0, 804, 804)


def test_transfer_formula_is_exact():
    assert transfer_cycles(144, 100, Fraction(8)) == 118
    assert transfer_cycles(12, 100, Fraction(8)) == Fraction(203, 2)
    assert transfer_cycles(40, 0, Fraction(40, 3)) == 3


# ----------------------------------------------------------------------------- waiting causes
def test_compute_waits_for_a_load():
    prog = program(ld(800, "push_next=1"), cp(8, 8, "pop_prev=1 push_next=1"),
                   st(400, "pop_prev=1 push_prev=1"), "FINISH pop_next=1")
    t = simulate(prog, FLAT)
    # LOAD 100 + 800/8 = 200: 0-200; COMPUTE 8*8 + 16 = 80: 200-280 (waited 200 for the load);
    # STORE 100 + 400/8 = 150: 280-430 (waited 280 for compute); FINISH at 430 (compute
    # engine waited 430 - 280 = 150 for the store)
    assert [times(t, i) for i in range(4)] == [(0, 200), (200, 280), (280, 430), (430, 430)]
    assert t.total_cycles == 430
    w = t.layers[0].wait
    assert w["compute"]["load"] == 200 and w["compute"]["store"] == 150
    assert w["store"]["compute"] == 280


def test_load_waits_for_a_free_slot_through_the_compute_to_load_token():
    # one input slot: the second LOAD may overwrite it only after the first COMPUTE
    prog = program(ld(400, "push_next=1"),                     # 0: 0-150
                   cp(16, 16, "pop_prev=1 push_prev=1"),       # 1: 16*16+16 = 272: 150-422
                   ld(400, "pop_next=1 push_next=1"),          # 2: token at 422: 422-572
                   cp(16, 16, "pop_prev=1 push_next=1"),       # 3: 572-844
                   st(400, "pop_prev=1 push_prev=1"),          # 4: 844-994
                   "FINISH pop_next=1")                        # 5: 994
    t = simulate(prog, FLAT)
    assert [times(t, i) for i in range(6)] == [(0, 150), (150, 422), (422, 572), (572, 844), (844, 994),
                                               (994, 994)]
    w = t.layers[0].wait
    assert w["load"]["compute"] == 422 - 150                   # the slot
    assert w["compute"]["load"] == 150 + (572 - 422)           # both tiles
    assert w["compute"]["store"] == 994 - 844
    assert w["store"]["compute"] == 844
    assert t.total_cycles == 994


def test_store_back_pressure():
    # one output slot: the second COMPUTE may overwrite it only after the first STORE
    prog = program(cp(4, 4, "push_next=1"),                    # 0: 4*4+16 = 32: 0-32
                   st(1600, "pop_prev=1 push_prev=1"),         # 1: 100 + 200 = 300: 32-332
                   cp(4, 4, "pop_next=1 push_next=1"),         # 2: token at 332: 332-364
                   st(1600, "pop_prev=1 push_prev=1"),         # 3: 364-664
                   "FINISH pop_next=1")                        # 4: 664
    t = simulate(prog, FLAT)
    assert [times(t, i) for i in range(5)] == [(0, 32), (32, 332), (332, 364), (364, 664), (664, 664)]
    w = t.layers[0].wait
    assert w["compute"]["store"] == (332 - 32) + (664 - 364)   # back-pressure, then FINISH
    assert w["store"]["compute"] == 32 + (364 - 332)
    assert t.layers[0].busy == {"load": 0, "compute": 64, "store": 600}
    assert t.total_cycles == 664


def test_dram_channel_contention():
    prog = program(cp(4, 4, "push_next=1"),                    # 0: 0-32
                   ld(800),                                    # 1: no token: channel 0-200
                   st(400, "pop_prev=1 push_prev=1"),          # 2: token at 32, channel at 200: 200-350
                   "FINISH pop_next=1")                        # 3: 350
    t = simulate(prog, FLAT)
    assert [times(t, i) for i in range(4)] == [(0, 32), (0, 200), (200, 350), (350, 350)]
    w = t.layers[0].wait
    assert w["store"] == {"compute": 32, "dram": 200 - 32, "fetch": 0}
    assert w["load"]["dram"] == 0
    assert t.issue[2] == 32 * t.ticks_per_cycle               # left its queue at 32, then waited
    assert t.total_cycles == 350


@pytest.mark.parametrize("store_first", [True, False])
def test_simultaneous_requests_are_served_in_program_order(store_first):
    # COMPUTE pushes compute->store and compute->load at 32: the STORE and the LOAD both
    # ask for the channel at 32; the earlier in program order goes first
    store = st(400, "pop_prev=1 push_prev=1")                  # 150 cycles
    load = ld(800, "pop_next=1 push_next=1")                   # 200 cycles
    body = [store, load] if store_first else [load, store]
    prog = program(cp(4, 4, "push_next=1 push_prev=1"), *body, "FINISH pop_prev=1 pop_next=1")
    t = simulate(prog, FLAT)
    s, l_ = (1, 2) if store_first else (2, 1)
    if store_first:   # store 32-182, load 182-382
        assert times(t, s) == (32, 182) and times(t, l_) == (182, 382)
        assert t.layers[0].wait["load"]["dram"] == 150
    else:             # load 32-232, store 232-382
        assert times(t, l_) == (32, 232) and times(t, s) == (232, 382)
        assert t.layers[0].wait["store"]["dram"] == 200
    assert t.total_cycles == 382
    # with two channels neither waits: store 32-182, load 32-232, FINISH at 232
    t2 = simulate(prog, FLAT, dram_channels=2)
    assert times(t2, s) == (32, 182) and times(t2, l_) == (32, 232)
    assert t2.total_cycles == 232
    assert sorted(t2.channel[i] for i in (1, 2)) == [0, 1]


def test_queue_full_fetch_stall():
    # four 200-cycle LOADs (the last pushes load->compute), then a COMPUTE of 16*48 + 16 = 784
    # cycles that depends on nothing, then FINISH waiting for the last LOAD
    prog = program(ld(800), ld(800), ld(800), ld(800, "push_next=1"), cp(16, 48), "FINISH pop_prev=1")
    deep = simulate(prog, FLAT)
    # queues of 256: the COMPUTE is fetched at 0 and runs 0-784 beside the loads (0-800)
    assert times(deep, 4) == (0, 784) and deep.total_cycles == 800
    assert deep.layers[0].wait["compute"]["fetch"] == 0
    # queues of 2: fetch holds LOADs 0, 1 (0 issues at once, 2 is fetched in its place);
    # LOAD 3 is fetched when LOAD 1 issues at 200, and only then the COMPUTE behind it:
    # COMPUTE 200-984 (200 cycles of fetch stall), FINISH at 984 (loads done at 800)
    shallow = simulate(prog, FLAT, queue_depth=2)
    assert times(shallow, 4) == (200, 984)
    assert shallow.layers[0].wait["compute"]["fetch"] == 200
    assert shallow.layers[0].wait["load"]["fetch"] == 0
    assert shallow.total_cycles == 984
    assert [times(shallow, i) for i in range(4)] == [(0, 200), (200, 400), (400, 600), (600, 800)]


def test_double_buffering_overlaps_the_next_load_with_compute():
    # two steps; each loads an input and a weight tile (200 cycles each), computes
    # 16*48 + 16 = 784 cycles and stores 200 cycles.  Serial sum: 4*200 + 2*784 + 2*200 = 2768
    def two_steps(double: bool) -> Program:
        second_pop = "" if double else "pop_next=1"
        return program(ld(800), ld(800, "push_next=1"),
                       cp(16, 48, "pop_prev=1 push_next=1" + ("" if double else " push_prev=1")),
                       ld(800, second_pop), ld(800, "push_next=1"),
                       st(800, "pop_prev=1"),
                       cp(16, 48, "pop_prev=1 push_next=1"),
                       st(800, "pop_prev=1 push_prev=1"),
                       "FINISH pop_next=1")
    serial = 4 * 200 + 2 * 784 + 2 * 200
    # double-buffered: loads 0-200, 200-400; COMPUTE0 400-1184; loads of step 2 400-600,
    # 600-800 (hidden under COMPUTE0); STORE0 1184-1384; COMPUTE1 1184-1968; STORE1 1968-2168
    t = simulate(two_steps(True), FLAT)
    assert times(t, 3) == (400, 600) and times(t, 4) == (600, 800)
    assert times(t, 6) == (1184, 1968)
    assert t.total_cycles == 2168 == serial - 400 - 200 < serial
    # one slot (the second step's LOADs wait for COMPUTE0: compute->load): input 1184-1384,
    # STORE0 asked at 1184 too but comes after it in program order: 1384-1584, weight
    # 1584-1784, COMPUTE1 1784-2568, STORE1 2568-2768: nothing overlaps, the serial sum
    t1 = simulate(two_steps(False), FLAT)
    assert times(t1, 3) == (1184, 1384) and times(t1, 5) == (1384, 1584) and times(t1, 4) == (1584, 1784)
    assert t1.total_cycles == serial == 2768


def test_fractional_bandwidth_keeps_exact_time():
    # 12 words at 8 words/cycle: 1.5 cycles of data.  Three LOADs back to back hold the one
    # channel for 3 * (100 + 1.5) = 304.5 cycles; FINISH rounds up to 305 = the cost
    # model's lat * transfers + ceil(words / bw) = 300 + ceil(36/8)
    prog = program(ld(12), ld(12), ld(12, "push_next=1"), "FINISH pop_prev=1")
    t = simulate(prog, FLAT)
    assert t.ticks_per_cycle == 8
    assert [times(t, i) for i in range(3)] == [(0, Fraction(203, 2)), (Fraction(203, 2), 203),
                                               (203, Fraction(609, 2))]
    assert t.total_cycles == 305 == 100 * 3 + -(-36 // 8)
    assert t.layers[0].busy["load"] == Fraction(609, 2)
    # 16 GB/s at 600 MHz: 16000 / (600 * 2) = 40/3 words a cycle; 40 words take 3 cycles
    odd = dataclasses.replace(FLAT, clock_mhz=Fraction(600), dram_latency_cycles=0)
    t = simulate(program(ld(40), ld(20, "push_next=1"), "FINISH pop_prev=1"), odd)
    assert t.ticks_per_cycle == 40
    assert times(t, 0) == (0, 3) and times(t, 1) == (3, Fraction(9, 2))
    assert t.total_cycles == 5


# ----------------------------------------------------------------------------- errors
def test_deadlock_is_a_one_line_error():
    prog = program(cp(4, 4, "pop_prev=1"), "FINISH")
    with pytest.raises(DeadlockError) as exc:
        simulate(prog, FLAT)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg == ("deadlock at cycle 0: instruction 0 (COMPUTE, layer 0 't') waits for a load->compute "
                   "token that no remaining instruction pushes")


def test_deadlock_behind_a_full_queue():
    # the COMPUTE pops a token a later LOAD pushes: fine with deep queues, but with queues
    # of 1 the second COMPUTE fills the compute queue and the LOAD is never fetched
    prog = program(cp(4, 4, "pop_prev=1"), cp(4, 4), ld(8, "push_next=1"), "FINISH")
    assert simulate(prog, FLAT).total_cycles == 101 + 32 + 32   # LOAD 0-101, COMPUTEs 101-165
    with pytest.raises(DeadlockError) as exc:
        simulate(prog, FLAT, queue_depth=1)
    assert str(exc.value) == (
        "deadlock at cycle 0: instruction 0 (COMPUTE, layer 0 't') waits for a load->compute token "
        "that only instruction 2 would push, which is never fetched: fetch is stalled at instruction 1 "
        "by the full compute queue (depth 1)")


def test_deadlock_on_the_final_token():
    # FINISH waits for a store token no STORE pushes; the machine stops at the last
    # completion: COMPUTE 0-32, STORE 32-133 (100 + 8/8 = 101 cycles)
    prog = program(cp(4, 4, "push_next=1"), st(8, "pop_prev=1"), "FINISH pop_next=1")
    with pytest.raises(DeadlockError, match=r"^deadlock at cycle 133: instruction 2 \(FINISH\) waits for a "
                                            r"store->compute token that no remaining instruction pushes$"):
        simulate(prog, FLAT)


def test_token_counter_overflow_is_a_machine_fault():
    prog = program(*[ld(8, "push_next=1")] * 256, "FINISH")
    with pytest.raises(SimulationError, match=r"instruction 255 \(LOAD, layer 0 't'\) pushes a load->compute "
                                              r"token at cycle .* counter overflow"):
        simulate(prog, FLAT)


# ----------------------------------------------------------------------------- the cost model's compute
def _tiles(n, t):
    return [(a, min(a + t, n)) for a in range(0, n, t)]


def _descriptor(L: CostLayer, target) -> Layer:
    """The layer descriptor of cost layer ``L`` (what the lowering will write)."""
    p = L.epilogue.pool
    nz = 1 - Fraction(L.weight_zero_fraction if L.weight_zero_fraction is not None
                      else target.os_weight_zero_fraction)
    el = L.element
    kw = dict(name=L.name, kind=L.kind, chanwise=int(L.channelwise), C=L.C, K=L.K, groups=L.groups,
              H=L.H, W=L.W, P=L.P, Q=L.Q, R=L.R, S=L.S, sh=L.stride_h, sw=L.stride_w,
              dh=L.dilation_h, dw=L.dilation_w, pt=L.pad_top, pl=L.pad_left, pb=L.pad_bottom,
              pr=L.pad_right, n_in=L.n_inputs, nz_num=nz.numerator, nz_den=nz.denominator)
    if p is not None:
        kw.update(pool=p.kind, pool_r=p.R, pool_s=p.S, pool_sh=p.stride_h, pool_sw=p.stride_w,
                  pool_pt=p.pad_top, pool_pl=p.pad_left, pool_pb=p.pad_bottom, pool_pr=p.pad_right)
    if el is not None:
        kw.update(fn="mul", e_ops=el.ops, e_funcs=el.funcs, params=el.params)
    return Layer(**kw)


def _tile_walk_cycles(L: CostLayer, m: Mapping, target) -> int:
    """Sum of the COMPUTE durations of one COMPUTE per tile of ``m`` (any order: the sum
    does not depend on it), the first adding fill and the last D."""
    desc = _descriptor(L, target)
    g = 1 if L.channelwise else L.groups
    Kg, Cg = L.K // g, (1 if L.channelwise else L.C // L.groups)
    insns = []
    for grp in range(g):
        for k0, k1 in _tiles(Kg, m.tk):
            for c0, c1 in _tiles(Cg, m.tc):
                for y0, y1 in _tiles(L.P, m.ty):
                    for x0, x1 in _tiles(L.Q, m.tx):
                        insns.append(Compute(layer=0, oy=y0, oh=y1 - y0, ox=x0, ow=x1 - x0, k0=grp * Kg + k0,
                                             kc=k1 - k0, cc=(k1 - k0) if L.channelwise else c1 - c0))
    desc = dataclasses.replace(desc, df=m.dataflow)
    return sum(compute_cycles(c, desc, target, first=i == 0, last=i == len(insns) - 1)
               for i, c in enumerate(insns))


COST_CASES = [
    (CostLayer("c3", "conv", C=20, K=40, H=30, W=30, R=3, S=3, P=30, Q=30, pad_top=1, pad_left=1, pad_bottom=1,
               pad_right=1), [Mapping("OS", 7, 9, 8, 12), Mapping("WS", 13, 30, 20, 17)]),
    (CostLayer("g", "conv", C=32, K=64, H=14, W=14, R=3, S=3, P=7, Q=7, stride_h=2, stride_w=2, pad_top=1,
               pad_left=1, pad_bottom=1, pad_right=1, groups=4), [Mapping("OS", 7, 3, 5, 6),
                                                                   Mapping("WS", 4, 7, 8, 16)]),
    (CostLayer("dw", "conv", C=48, K=48, H=20, W=20, R=3, S=3, P=20, Q=20, pad_top=1, pad_left=1, pad_bottom=1,
               pad_right=1, groups=48), [Mapping("OS", 20, 6, 1, 10), Mapping("WS", 9, 20, 1, 20)]),
    (CostLayer("fc", "fc", C=300, K=70, H=1, W=1, R=1, S=1, P=1, Q=1), [Mapping("OS", 1, 1, 64, 32),
                                                                         Mapping("WS", 1, 1, 37, 70)]),
    (CostLayer("conv1", "conv", C=3, K=64, H=227, W=227, R=7, S=7, P=55, Q=55, stride_h=2, stride_w=2,
               epilogue=Epilogue(pool=Pool("max", 3, 3, 2, 2))), [Mapping("OS", 55, 7, 3, 1),
                                                                 Mapping("WS", 20, 9, 3, 16)]),
    (CostLayer("mp", "maxpool", C=24, K=24, H=15, W=15, R=3, S=3, P=7, Q=7, stride_h=2, stride_w=2),
     [Mapping("OS", 7, 4, 1, 5)]),
    (CostLayer("add", "add", C=16, K=16, H=9, W=9, R=1, S=1, P=9, Q=9, n_inputs=3), [Mapping("OS", 9, 9, 1, 16)]),
    (CostLayer("se", "eltwise", C=32, K=32, H=16, W=16, R=1, S=1, P=16, Q=16,
               element=ElementFn("mul", ops=1, funcs=1, params=1)), [Mapping("OS", 16, 16, 1, 8)]),
]


@pytest.mark.parametrize("target_name", ["pe16x16", "pe8x8"])
@pytest.mark.parametrize("case", range(len(COST_CASES)))
def test_compute_durations_sum_to_the_cost_models_compute(case, target_name):
    """The ISA's per-tile formula, summed over a tile walk, is the cost model's compute
    figure (the formula is restated independently in timing.py; this holds them equal)."""
    target = load_target(target_name)
    L, mappings = COST_CASES[case]
    for m in mappings:
        assert _tile_walk_cycles(L, m, target) == evaluate(L, target, m).compute_cycles, (L.name, m)


# ----------------------------------------------------------------------------- trace
def _synthetic(steps: int, layers: int = 2) -> Program:
    """A double-buffered program of ``layers`` layers of ``steps`` steps (docs/isa.md's
    protocol), as text: input and weight LOADs, one COMPUTE, one STORE per step."""
    lines = []
    for li in range(layers):
        lines.append(f'LAYER name="L{li}" kind=conv df=OS C=16 K=16 H=16 W=16 P=16 Q=16 R=3 S=3 pt=1 pb=1 pl=1 '
                     f'pr=1 nz_num=3 nz_den=5')
        if li:
            lines.append(f"SYNC layer={li} q=compute pop_next=1 push_prev=1")

        def loads(i):
            pop = "pop_next=1" if (i >= 2 or (i == 0 and li)) else ""
            lines.append(f"LOAD layer={li} kind=input n0=18 n1=18 n2=16 {pop}")
            lines.append(f"LOAD layer={li} kind=weight n0=9 n1=16 n2=8 push_next=1")
        loads(0)
        for i in range(steps):
            tok = ("pop_prev=1 push_next=1" + (" pop_next=1" if i >= 2 else "")
                   + (" push_prev=1" if i + 2 < steps else ""))
            lines.append(f"COMPUTE layer={li} acc=0 fin=1 oh=16 ow=16 kc=8 cc=16 {tok}")
            if i + 1 < steps:
                loads(i + 1)
            push = " push_prev=1" if (i + 2 < steps or i == steps - 1) else ""
            lines.append(f"STORE layer={li} kind=output n0=16 n1=16 n2=8 pop_prev=1{push}")
    lines.append("FINISH pop_next=1")
    return parse_program("\n".join(lines) + "\n")


def _check_trace(prog, timing, trace, grouped):
    trace = json.loads(dumps(trace))
    assert set(trace) == {"traceEvents", "otherData"}
    ev = trace["traceEvents"]
    for e in ev:
        assert {"ph", "pid", "tid", "name"} <= set(e)
        if e["ph"] == "X":
            assert {"ts", "dur", "args", "cat"} <= set(e)
            assert isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["dur"] >= 0
        else:
            assert e["ph"] == "M" and "args" in e
    named = {e["tid"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {e["tid"] for e in ev if e["ph"] == "X"} <= named
    assert {1, 2, 3, DRAM_TID, LAYER_TID} <= named
    scale = trace["otherData"]["us_per_cycle"]
    seen = []
    for tid in ENGINE_TID.values():
        xs = sorted((e for e in ev if e["ph"] == "X" and e["tid"] == tid), key=lambda e: (e["ts"], e["dur"]))
        for a, b in zip(xs, xs[1:]):
            assert a["ts"] + a["dur"] <= b["ts"], (a, b)      # no overlapping slices on an engine track
        for e in xs:
            if grouped:
                a = e["args"]
                run = [i for i in range(a["first"], a["last"] + 1) if timing.engine[i] == tid - 1]
                assert len(run) == a["count"]
                seen += run
            else:
                i = e["args"]["insn"]
                seen.append(i)
                assert Fraction(e["ts"], scale) == timing.insn_start(i)
                assert Fraction(e["dur"], scale) == timing.insn_end(i) - timing.insn_start(i)
    assert sorted(seen) == list(range(len(prog.insns)))       # every instruction exactly once
    dram = sorted((e for e in ev if e["ph"] == "X" and e["tid"] == DRAM_TID), key=lambda e: e["ts"])
    for a, b in zip(dram, dram[1:]):
        assert a["ts"] + a["dur"] <= b["ts"]
    layers = [e for e in ev if e["ph"] == "X" and e["tid"] >= LAYER_TID]
    assert sorted(e["name"] for e in layers) == sorted(lay.name for lay in prog.layers)
    return trace


def test_trace_is_valid_and_complete():
    prog = _synthetic(6)
    t = simulate(prog, PE16)
    trace = _check_trace(prog, t, trace_events(prog, t), grouped=False)
    assert trace["otherData"]["grouped"] is False
    n_transfers = sum(1 for i in prog.insns if i.RECORD.mnemonic in ("LOAD", "STORE"))
    assert sum(1 for e in trace["traceEvents"] if e["ph"] == "X" and e["tid"] == DRAM_TID) == n_transfers


def test_trace_groups_runs_above_the_threshold():
    prog = _synthetic(40)
    t = simulate(prog, PE16)
    trace = _check_trace(prog, t, trace_events(prog, t, max_slices=50), grouped=True)
    assert trace["otherData"]["grouped"] is True
    assert sum(1 for e in trace["traceEvents"] if e["ph"] == "X") < len(prog.insns) // 4


def test_trace_of_the_worked_example_and_its_scale():
    prog = parse_program(example_text())
    t = simulate(prog, PE16)
    trace = _check_trace(prog, t, trace_events(prog, t), grouped=False)
    assert trace["otherData"]["us_per_cycle"] == 1                # every time is a whole cycle
    prog = program(ld(12, "push_next=1"), "FINISH pop_prev=1")  # ends at 101.5
    t = simulate(prog, FLAT)
    trace = _check_trace(prog, t, trace_events(prog, t), grouped=False)
    assert trace["otherData"]["us_per_cycle"] == 2


def test_determinism():
    prog = _synthetic(10, layers=3)
    a, b = simulate(prog, PE16), simulate(prog, PE16)
    assert (a.start, a.end, a.issue, a.channel) == (b.start, b.end, b.issue, b.channel)
    assert a.to_dict() == b.to_dict()
    assert dumps(trace_events(prog, a)) == dumps(trace_events(prog, b))
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)


@pytest.mark.parametrize("depth", [256, 2])
def test_layers_of_a_synthetic_program(depth):
    prog = _synthetic(10, layers=3)
    t = simulate(prog, PE16, queue_depth=depth)
    assert (sum(t.wait[e]["fetch"] for e in ("load", "compute", "store")) > 0) == (depth == 2)
    # the layer boundary protocol serializes layers: each starts after the previous ends
    for a, b in zip(t.layers, t.layers[1:]):
        assert a.end <= b.start
    assert t.after_finish == 0
    assert all(v == 0 for v in t.counters.values())
    assert t.total_cycles == t.layers[-1].end
    # busy + waiting of each engine cover the time from 0 to the end of its last instruction
    for k, eng in enumerate(("load", "compute", "store")):
        last_i = max(i for i, e in enumerate(t.engine) if e == k)
        assert t.busy[eng] + sum(t.wait[eng].values()) == t.insn_end(last_i), eng
    assert all(sum(t.wait[e].values()) > 0 for e in ("load", "compute", "store"))
    # double buffering: less than the serial sum
    serial = sum(t.insn_end(i) - t.insn_start(i) for i in range(len(prog.insns)))
    assert t.total_cycles < serial


def test_malformed_program_is_refused():
    prog = Program((), (Compute(layer=0),))
    with pytest.raises(SimulationError, match="instruction 0: field 'layer' = 0 refers to no layer"):
        simulate(prog, FLAT)
    assert simulate(Program((), (Finish(),)), FLAT).total_cycles == 0


def test_report_forms():
    prog = program(ld(12), ld(12, "push_next=1"), "FINISH pop_prev=1")
    t = simulate(prog, FLAT)
    d = json.loads(json.dumps(t.to_dict()))
    # two 101.5-cycle transfers: the load engine is busy 203 cycles, FINISH at 203
    assert d["total_cycles"] == 203 and d["busy"]["load"] == 203
    assert d["layers"][0]["start"] == 0 and d["layers"][0]["end"] == 203
    t1 = simulate(program(ld(12, "push_next=1"), "FINISH pop_prev=1"), FLAT)
    assert t1.to_dict()["busy"]["load"] == "203/2" and t1.total_cycles == 102
    text = format_timing(simulate(_synthetic(4, layers=2), PE16))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["layer", "start", "cycles"]
    assert [ln.split()[0] for ln in lines[1:]] == ["L0", "L1", "total"]


def test_the_simulator_does_not_use_the_cost_model():
    import ast
    import sqnxt_compiler.program.timing as timing
    tree = ast.parse(Path(timing.__file__).read_text())
    mods = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("cost" in m or "schedule" in m for m in mods), mods


def test_a_load_waits_for_a_store_through_the_store_to_load_token():
    """The ring's store -> load counter (docs/isa.md, "Dependency tokens"): a partial-sum
    reload pops the token of the STORE that spilled it, directly, while the compute engine
    runs on; waiting for it is the load engine's `store` cause."""
    # COMPUTE0 0-784 pushes next; STORE 784-984 (800 words) pushes next (store -> load);
    # COMPUTE1 784-1568 runs meanwhile (no wait); the reload LOAD waits 0-984 for the token
    # and runs 984-1184; COMPUTE2 pops its token: 1568-2352
    prog = program(cp(16, 48, "push_next=1"), st(800, "pop_prev=1 push_next=1"), cp(16, 48),
                   LOAD_PSUM + " pop_prev=1 push_next=1", cp(16, 48, "pop_prev=1"), "FINISH")
    t = simulate(prog, FLAT)
    assert times(t, 0) == (0, 784) and times(t, 1) == (784, 984) and times(t, 2) == (784, 1568)
    assert times(t, 3) == (984, 1184) and times(t, 4) == (1568, 2352)
    lay = t.layers[0]
    assert lay.wait["load"]["store"] == 984 and lay.wait["compute"]["load"] == 0
    assert t.counters["store->load"] == 0 and t.total_cycles == 2352
    # the same program without the token: the LOAD no longer waits (and reads stale DRAM)
    early = simulate(program(cp(16, 48, "push_next=1"), st(800, "pop_prev=1"), cp(16, 48),
                             LOAD_PSUM + " push_next=1", cp(16, 48, "pop_prev=1"), "FINISH"), FLAT)
    assert times(early, 3) == (0, 200)


#: A partial-sum reload of 400 words (``ew`` 2): 100 + 800/8 = 200 cycles.
LOAD_PSUM = "LOAD layer=0 kind=psum ew=2 n0=400"
