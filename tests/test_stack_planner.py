"""Fused stacks in the memory planner (sqnxt_compiler/schedule/stacks.py; docs/memory-planning.md,
"Fused stacks"): the runs of steps a stack may cover, the candidates' figures against their
work scheduled one layer at a time, and the network model with stacks against the
exhaustive network oracle on small chains and a residual block on tiny targets; a stack
runs whole, in one region, and the plan is never worse than the plan without stacks."""
from __future__ import annotations

import pytest

from test_planner import chain, problem, residual, tiny_target, UNFUSED
from sqnxt_compiler.cost.stack import StackConfig, stack_figures, stack_work
from sqnxt_compiler.schedule.oracle import exhaustive_plan
from sqnxt_compiler.schedule.planner import plan_network
from sqnxt_compiler.schedule.plans import (chosen_stacks, plan_value, stack_problems, verify_allocation,
                                           with_stacks, without_stacks)
from sqnxt_compiler.schedule.solver import schedule_layers
from sqnxt_compiler.cost.model import evaluate
from sqnxt_compiler.schedule.stacks import clipped, stack_candidates, stack_ranges

#: A small grid (the oracle enumerates every choice): two heights, full width and 4
#: columns, both overlap modes, weights kept or not.
GRID = tuple(StackConfig(h, w, mode, kept) for h in (2, 4) for w in (None, 4)
             for mode in ("recompute", "keep") for kept in (False, True))


def stacked_problem(make, t, objective, pipeline=UNFUSED, max_members=3):
    res, net, cands = problem(make(), t, objective, pipeline)
    solve = lambda Ls: schedule_layers(Ls, t, objective=objective)  # noqa: E731
    stacks = stack_candidates(net, t, solve, GRID, max_members)
    return net, cands, stacks


def test_ranges_follow_results_read_only_inside():
    _, net, _ = problem(chain(), tiny_target(8192))
    assert [s.layer.name for s in net.steps] == ["c1", "c2", "c3", "c4"]
    chain_links = {2: ((None, None), (0, None)), 3: ((None, None), (0, None), (1, None)),
                   4: ((None, None), (0, None), (1, None), (2, None))}
    assert stack_ranges(net) == [(r, chain_links[len(r)]) for r in
                                 [(0, 1), (0, 1, 2), (0, 1, 2, 3), (1, 2), (1, 2, 3), (2, 3)]]
    assert [r for r, _ in stack_ranges(net, max_members=2)] == [(0, 1), (1, 2), (2, 3)]
    # a's result is read by cb and by cc's fused residual: a stack holding ca holds cc too
    _, net, _ = problem(residual(), tiny_target(8192), pipeline="default")
    assert [s.layer.name for s in net.steps] == ["ca", "cb", "cc", "cd"]
    got = dict(stack_ranges(net))
    assert sorted(got) == [(0, 1, 2), (0, 1, 2, 3), (1, 2), (1, 2, 3), (2, 3)]
    assert got[(0, 1, 2)] == ((None, None), (0, None), (1, 0))
    assert got[(1, 2)] == ((None, None), (0, None))          # cc's residual from DRAM


def test_candidates_are_their_work_scheduled_and_summed():
    t = tiny_target(8192)
    net, _, stacks = stacked_problem(chain, t, "cycles")
    assert stacks and {(s.first, s.last) for s in stacks} <= {(0, 1), (1, 2), (2, 3), (0, 2), (1, 3)}
    for st in stacks[:6]:
        work = stack_work(list(st.layers), st.config, t, st.links)
        assert [s.layer for s in st.schedules] == work
        alone = schedule_layers(work, t)
        for L, s, a in zip(work, st.schedules, alone):
            # each piece's interior band solved, the others its mapping clipped (or solved)
            assert s.status in ("optimal", "derived")
            if s.status == "optimal":
                assert s.mapping == a.mapping
            else:
                interior = next(x for x in st.schedules if x.layer.name == s.note.split("'")[1])
                assert s.mapping == clipped(interior.mapping, L) and s.cost == evaluate(L, t, s.mapping)
                assert s.cost.footprint["total"] <= s.cost.footprint["capacity"]
        assert any(s.status == "derived" for s in st.schedules)
        assert stack_figures(list(st.layers), st.config, [s.cost for s in st.schedules], t,
                             st.links) == st.figures
        assert st.figures.footprint <= t.buffer_words
        # the members' layers are the steps' own, every operand through DRAM
        assert [L.shape_key() for L in st.layers] == [net.steps[i].layer.shape_key() for i in st.steps]


CASES = [(b, o) for b in (3000, 4096, 8192) for o in ("cycles", "energy")] + [(4096, "edp")]


@pytest.mark.parametrize("make,pipeline", [(chain, UNFUSED), (residual, "default")], ids=["chain", "residual"])
@pytest.mark.parametrize("buffer_bytes,objective", CASES, ids=[f"{b}-{o}" for b, o in CASES])
def test_plan_with_stacks_equals_the_exhaustive_oracle(make, pipeline, buffer_bytes, objective):
    t = tiny_target(buffer_bytes)
    net, cands, stacks = stacked_problem(make, t, objective, pipeline)
    both = with_stacks(cands, stacks)
    plan = plan_network(net, both, t, objective)
    best = exhaustive_plan(net, both, t, objective)
    sec = {"cycles": "energy", "energy": "cycles", "edp": "cycles"}[objective]
    assert plan.status == "optimal"
    assert (plan.value, sum(c.value(sec) for c in plan.choice)) == best[:2]
    assert plan.value == plan_value(plan.choice, objective)
    assert verify_allocation(net, plan, t) == []
    # never worse than the plan without stacks, on cycles nor on energy
    plain = plan_network(net, without_stacks(both), t, objective)
    for metric in ("cycles", "energy"):
        assert sum(c.value(metric) for c in plan.choice) <= sum(c.value(metric) for c in plain.choice)


def test_a_stack_is_chosen_where_it_pays_and_runs_whole():
    """On the chain with a 4096-byte buffer the plan without stacks keeps nothing resident;
    a stack keeps two intermediates as band windows: fewer cycles and less energy."""
    t = tiny_target(4096)
    net, cands, stacks = stacked_problem(chain, t, "cycles")
    plan = plan_network(net, with_stacks(cands, stacks), t, "cycles")
    plain = plan_network(net, cands, t, "cycles")
    chosen = chosen_stacks(plan.choice)
    assert chosen, "no stack chosen"
    assert sum(c.value("cycles") for c in plan.choice) < sum(c.value("cycles") for c in plain.choice)
    assert sum(c.value("energy") for c in plan.choice) <= sum(c.value("energy") for c in plain.choice)
    for st in chosen:
        assert {plan.tile_offsets[i] for i in st.steps} == {plan.tile_offsets[st.first]}
        assert [plan.choice[i].member for i in st.steps] == list(range(len(st.steps)))
        # its intermediates never resident, its input and output through DRAM
        for i in st.steps:
            assert not plan.resident[net.steps[i].output]


def test_a_broken_stack_is_named_by_the_verifier():
    t = tiny_target(4096)
    net, cands, stacks = stacked_problem(chain, t, "cycles")
    plan = plan_network(net, with_stacks(cands, stacks), t, "cycles")
    st = chosen_stacks(plan.choice)[0]
    from dataclasses import replace

    # its last member's part replaced by that step's all-DRAM candidate
    choice = list(plan.choice)
    choice[st.last] = next(c for c in cands[st.last] if c.resident_inputs == 0 and not c.resident_output)
    assert any("does not run its part" in p for p in stack_problems(choice))
    # the region moved between members
    offs = list(plan.tile_offsets)
    offs[st.last] += 1
    bad = replace(plan, tile_offsets=tuple(offs))
    assert any("moves between its members" in p for p in verify_allocation(net, bad, t))
