"""The cross-check: the timing simulator holds the cost model to account, and would catch a
wrong one.

1.0-SqNxt-23 on pe16x16 (planned) is compiled and lowered once; its program is simulated
once.  The cost model's per-layer cycles must agree with the simulation on the network
total (+-3%) and on most layers (docs/isa.md, "The cross-check").  Then the same program's
simulated cycles are compared with deliberately wrong models, each a plausible mistake
recomputed from the same schedules' own figures: one that does not overlap DMA with
compute, one that forgets the DRAM latency, one that forgets the first step a DMA-bound
layer cannot overlap (the model before this term).  Each must fail the same gate.
"""
from __future__ import annotations

from fractions import Fraction

import pytest

from sqnxt_compiler import driver
from sqnxt_compiler.cli.options import load_target_with
from sqnxt_compiler.program.timing import simulate

BAND = Fraction(3, 100)
#: The gate: the network total within the band and at least this share of the layers.
MIN_SHARE = Fraction(9, 10)


@pytest.fixture(scope="module")
def run():
    target = load_target_with("pe16x16", "planned")
    res = driver.compile("zoo:1.0-SqNxt-23", pipeline=driver.lowered_pipeline("default", target, None, "planned"),
                         target=target)
    low = res.graph.attrs["program"].lowered
    timing = simulate(low.program, target)
    return target, low, timing


def gate(analytical: list[int], simulated: list[Fraction], total_simulated: int) -> tuple[bool, Fraction, Fraction]:
    """(passes, share of layers within the band, total ratio) of per-layer analytical
    cycles against the simulation's."""
    within = sum(abs(Fraction(s) / a - 1) <= BAND for a, s in zip(analytical, simulated) if a)
    share = Fraction(within, len(analytical))
    ratio = Fraction(total_simulated, sum(analytical))
    return (abs(ratio - 1) <= BAND and share >= MIN_SHARE), share, ratio


def _no_overlap(c, target) -> int:
    return c.compute_cycles + c.dma_cycles


def _no_latency(c, target) -> int:
    lat = target.dram_latency_cycles
    t = c.transfers["total"]
    pro = c.prologue_cycles - lat * (1 if c.footprint["input"] else 0) - lat * (1 if c.footprint["weights"] else 0) \
        - lat * (1 if c.transfers.get("bias") else 0)
    epi = max(c.epilogue_cycles - lat, 0) if c.epilogue_cycles else 0
    return max(c.compute_cycles + pro + epi, c.dma_cycles - lat * t + c.first_step_cycles)


def _no_first_step(c, target) -> int:
    return max(c.compute_cycles + c.prologue_cycles + c.epilogue_cycles, c.dma_cycles)


def test_the_cost_model_passes_the_cross_check(run):
    target, low, timing = run
    ana = [int(i.schedule.cost.total_cycles) for i in low.layers]
    ok, share, ratio = gate(ana, [lay.cycles for lay in timing.layers], timing.total_cycles)
    assert ok, (float(share), float(ratio))


@pytest.mark.parametrize("wrong", [_no_overlap, _no_latency, _no_first_step],
                         ids=["no-dma-overlap", "no-dram-latency", "no-first-step"])
def test_a_wrong_cost_model_is_caught(run, wrong):
    target, low, timing = run
    ana = [wrong(i.schedule.cost, target) for i in low.layers]
    right = [int(i.schedule.cost.total_cycles) for i in low.layers]
    assert ana != right                                    # the mistake changes the figures
    ok, share, ratio = gate(ana, [lay.cycles for lay in timing.layers], timing.total_cycles)
    assert not ok, (wrong.__name__, float(share), float(ratio))
