#!/usr/bin/env python3
"""What depth-first stacks would save: an estimate, before the planner chooses them (issue 24).

For each zoo model and target it compiles the model as today (activation home ``planned``),
finds every maximal **chain** of convs (each the only reader of the one before, reading it
as its data input: a SqueezeNext block's squeeze1 .. expand, a residual block's convs) and
prices each chain run as a stack (sqnxt_compiler/cost/stack.py; docs/cost-model.md, "Fused
stacks") for band heights ``--heights`` in both overlap modes:

* every (band, member) is its band layer, scheduled by the same per-layer solver with the
  capacity the stack leaves (the buffer less every intermediate's band window), and costed
  by the cost model: member 1 reads its input rows from DRAM, the last member writes its
  band (and reads its residual's rows), the intermediates stay in their windows; every
  member reads its weights in every band (weights resident across bands are not modelled
  yet);
* keep mode adds, per band and intermediate, the halo rows moved to the window's top,
  priced as a ``move`` layer with input and output resident.

It prints per chain today's planned figures (the members' planned schedules) and the best
stack (fewest cycles among those no worse on energy; ``--objective energy`` swaps them;
``--trade``: the best by the objective whatever the other figure), and per model the
network totals if every chain whose best stack is no worse on either figure (``--trade``:
better on the objective) ran as that stack.  It is an estimate: the stacks' inputs and outputs are taken in
DRAM (today's plan may keep them resident), and nothing is executed.

    .venv/bin/python benchmarks/bench_depth_first.py                          # 1.0-SqNxt-23, both targets
    .venv/bin/python benchmarks/bench_depth_first.py --models SqueezeNet-1.1 --targets pe8x8
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("SQNXTC_NO_CACHE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqnxt_compiler import driver  # noqa: E402
from sqnxt_compiler.cost.stack import MODES, StackConfig, chainable, stack_figures, stack_work  # noqa: E402
from sqnxt_compiler.layers import data_operands  # noqa: E402
from sqnxt_compiler.schedule.solver import schedule_layers  # noqa: E402
from sqnxt_compiler.targets import load_target  # noqa: E402


def chains(graph) -> list[list]:
    """Maximal chains of scheduled convs: op k+1's data input is op k's result, and nothing
    else reads op k's result."""
    convs = [op for op in graph.ops() if op.name == "sqnxt.conv" and "schedule" in op.attrs]
    nxt = {}
    for op in convs:
        users = graph.users(op.result)
        if len(users) == 1 and users[0].name == "sqnxt.conv" and "schedule" in users[0].attrs \
                and data_operands(users[0])[0] is op.result and users[0].operands[-1] is not op.result:
            nxt[op.id] = users[0]
    heads = [op for op in convs if op.id not in {n.id for n in nxt.values()}]
    out = []
    for op in heads:
        chain = [op]
        while chain[-1].id in nxt:
            chain.append(nxt[chain[-1].id])
        if len(chain) >= 2:
            out.append(chain)
    return out


def stack_estimate(layers, h, mode, target, w=None, weights_kept=False):
    """(cycles, energy, DRAM words) of ``layers`` run as a stack of ``h`` x ``w`` bands (w
    None: full width; ``weights_kept``: the members' weights loaded once and kept across
    the bands), or None when its windows leave no room for the tiles: its work
    (``cost.stack.stack_work``) scheduled by the per-layer solver and summed
    (``cost.stack.stack_figures``)."""
    cfg = StackConfig(h, w, mode, weights_kept)
    work = stack_work(layers, cfg, target)
    if work is None:
        return None
    try:
        scheds = schedule_layers(work, target, jobs=1)
    except Exception:  # noqa: BLE001 - a band layer whose tiles do not fit: no such stack
        return None
    f = stack_figures(layers, cfg, [s.cost for s in scheds], target)
    return f.cycles, f.energy, f.dram_words


def pareto(opts):
    """The options no other option beats on cycles, energy and DRAM words at once (ties:
    the first), in a deterministic order."""
    opts = sorted(opts, key=lambda o: o[0])
    out = []
    for o in opts:
        if not any(p[0][0] <= o[0][0] and p[0][1] <= o[0][1] and p[0][2] <= o[0][2] for p in out):
            out.append(o)
    return out


def stack_options(layers, tgt, args, memo):
    """Every fitting stack of ``layers`` over the grid of band heights, widths, overlap
    modes and weight homes, as (figures, description), Pareto-filtered; memoized by the
    members' keys."""
    key = ("stack",) + tuple(L.key() for L in layers)
    if key in memo:
        return memo[key]
    opts = []
    for h in args.heights:
        for w in args.widths:
            if h > layers[-1].P or w >= layers[-1].Q:
                continue
            for mode in MODES:
                for wr in ((False, True) if args.partitions else (args.weights_resident,)):
                    f = stack_estimate(layers, h, mode, tgt, w or None, wr)
                    if f is not None:
                        opts.append((f, f"{h}x{w or 'full'} {mode}{' weights kept' if wr else ''}"))
    memo[key] = pareto(opts)
    return memo[key]


def chain_options(layers, scheds, tgt, args, memo):
    """The ways to run a chain: the whole chain as one stack, or (``--partitions``) every
    partition of it into consecutive pieces, each piece one member run as today (its
    planned schedule) or a stack of two or more; the pieces' figures add up.  Pareto-filtered
    after each piece (a left-to-right walk over the cut points)."""
    n = len(layers)
    if not args.partitions:
        return [(f, f"h={d}") for f, d in stack_options(layers, tgt, args, memo)]
    alone = [((s.cost.total_cycles, s.cost.energy_total, s.cost.dram["total"]), s.layer.name.split("/")[-1])
             for s in scheds]
    front = {0: [((0, 0, 0), "")]}          # members [0, j) covered -> Pareto options
    for j in range(1, n + 1):
        opts = []
        for i in range(j):
            piece = [alone[i]] if j - i == 1 else [
                (f, f"[{layers[i].name.split('/')[-1]}..{layers[j - 1].name.split('/')[-1]} {d}]")
                for f, d in stack_options(layers[i:j], tgt, args, memo)]
            for (a, da) in front[i]:
                for (b, db) in piece:
                    opts.append((tuple(x + y for x, y in zip(a, b)), (da + " " + db).strip()))
        front[j] = pareto(opts)
    return front[n]


def planned_with_stacks(model, tname, configs, max_members):
    """The network plan with and without fused stacks (the memory planner's CP-SAT model,
    proven optimal), as (all-DRAM, planned, planned with stacks) totals (cycles, energy,
    DRAM words), the chosen stacks, the stack candidates and the seconds their candidates
    and the two network solves took."""
    from sqnxt_compiler.layers import layer_of
    from sqnxt_compiler.schedule.liveness import network_of
    from sqnxt_compiler.schedule.planner import plan_network
    from sqnxt_compiler.schedule.plans import all_dram_plan, candidates, chosen_stacks, with_stacks
    from sqnxt_compiler.schedule.stacks import stack_candidates

    tgt = load_target(tname)
    res = driver.compile(f"zoo:{model}", target=replace(tgt, activation_home="dram"))
    pairs = [(op, layer_of(op)) for op in res.graph.ops() if "schedule" in op.attrs]
    alone = [op.attrs["schedule"].schedule for op, _ in pairs]
    net = network_of(res.graph, pairs)
    solve = lambda Ls, hints=None: schedule_layers(Ls, tgt, hints=hints)  # noqa: E731
    cands = candidates(net, tgt, solve, "cycles", alone)
    t0 = time.perf_counter()
    stacks = stack_candidates(net, tgt, solve, configs, max_members)
    t1 = time.perf_counter()
    plain = plan_network(net, cands, tgt, "cycles")
    t2 = time.perf_counter()
    fused = plan_network(net, with_stacks(cands, stacks), tgt, "cycles")
    t3 = time.perf_counter()

    def figures(choice):
        return (sum(c.value("cycles") for c in choice), sum(c.value("energy") for c in choice),
                sum((c.stack.figures.dram_words if c.member == 0 else 0) if c.stack is not None
                    else 0 if c.skip else c.schedule.cost.dram["total"] for c in choice))
    dram = all_dram_plan(net, cands, "cycles")
    return (figures(dram.choice), figures(plain.choice), figures(fused.choice), chosen_stacks(fused.choice),
            stacks, (t1 - t0, t2 - t1, t3 - t2), fused.status)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=["1.0-SqNxt-23"])
    ap.add_argument("--targets", nargs="*", default=["pe8x8", "pe16x16"])
    ap.add_argument("--heights", nargs="*", type=int, default=[1, 2, 4, 8, 16])
    ap.add_argument("--widths", nargs="*", type=int, default=[0, 8, 16],
                    help="band widths (0: the full width)")
    ap.add_argument("--objective", choices=("cycles", "energy"), default="cycles")
    ap.add_argument("--weights-resident", action="store_true",
                    help="keep every member's weights in the buffer across the bands (stack_estimate)")
    ap.add_argument("--trade", action="store_true",
                    help="take the best stack by the objective even when it is worse on the other figure "
                         "(what the stacks could buy, at what price)")
    ap.add_argument("--partitions", action="store_true",
                    help="also every partition of a chain into members run as today and stacks of two or "
                         "more (each stack with its weights kept or not)")
    ap.add_argument("--verbose", action="store_true", help="a line per chain")
    ap.add_argument("--planner", action="store_true",
                    help="the memory planner's choice with fused stacks among its candidates "
                         "(schedule/stacks.py; the network model, proven optimal) instead of the estimate")
    ap.add_argument("--max-members", type=int, default=6)
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    ap.add_argument("--kept", nargs="*", type=lambda v: v == "yes", default=[False, True],
                    help="weights kept across bands: yes, no or both (the default)")
    args = ap.parse_args()
    if args.planner:
        from sqnxt_compiler.cost.stack import StackConfig as SC
        configs = tuple(SC(h, w or None, m, k) for h in args.heights for w in args.widths for m in args.modes
                        for k in args.kept)
        for model in args.models:
            for tname in args.targets:
                t0 = time.perf_counter()
                dram, plain, fused, chosen, stacks, secs, status = planned_with_stacks(model, tname, configs,
                                                                                      args.max_members)

                def pct(a, b):
                    return f"{100 * (b - a) / a:+.1f}%"
                if args.verbose:
                    for st in chosen:
                        print(f"  {st.describe()}: {st.figures.cycles:,} cyc {st.figures.energy:.3e} E "
                              f"{st.figures.dram_words:,} w, footprint {st.figures.footprint:,}")
                print(f"{model} {tname}: {len(chosen)} stacks chosen of {len(stacks)} candidates ({status}); "
                      f"planned -> with stacks: cycles {plain[0]:,} -> {fused[0]:,} ({pct(plain[0], fused[0])}), "
                      f"energy {plain[1]:.4g} -> {fused[1]:.4g} ({pct(plain[1], fused[1])}), DRAM words "
                      f"{plain[2]:,} -> {fused[2]:,} ({pct(plain[2], fused[2])}); all-DRAM {dram[0]:,} cyc "
                      f"{dram[1]:.4g} E {dram[2]:,} w; stack candidates {secs[0]:.1f} s, network solves "
                      f"{secs[1]:.2f} s / {secs[2]:.2f} s  [{time.perf_counter() - t0:.0f} s]", flush=True)
        return 0
    for model in args.models:
        for tname in args.targets:
            t0 = time.perf_counter()
            tgt = load_target(tname)
            res = driver.compile(f"zoo:{model}", target=tgt)
            tot = res.network.totals()
            base = [tot["total_cycles"], tot["energy"]["total"], tot["dram_words"]["total"]]
            new = list(base)
            fused = 0
            memo = {}
            first, second = (0, 1) if args.objective == "cycles" else (1, 0)
            for chain in chains(res.graph):
                scheds = [op.attrs["schedule"].schedule for op in chain]
                layers = [replace(s.layer.with_homes(resident_inputs=0, resident_output=False,
                                                     resident_residual=False, capacity=None))
                          for s in scheds]
                if chainable(layers):
                    continue
                today = (sum(s.cost.total_cycles for s in scheds), sum(s.cost.energy_total for s in scheds),
                         sum(s.cost.dram["total"] for s in scheds))
                key = (tuple(L.key() for L in layers), tuple(s.cost.total_cycles for s in scheds))
                if key not in memo:
                    opts = chain_options(layers, scheds, tgt, args, memo)
                    ok_opts = [o for o in opts if args.trade or o[0][second] <= today[second]]
                    memo[key] = min(ok_opts, key=lambda o: (o[0][first], o[0][second]), default=None)
                best = memo[key]
                ok = best is not None and (best[0][first] <= today[first] if args.trade else
                                           best[0][0] <= today[0] and best[0][1] <= today[1])
                if args.verbose:
                    what = f"{best[1]}: {best[0][0]:,} cyc {best[0][1]:.3e} E {best[0][2]:,} w" \
                        if best else "no stack fits" + ("" if args.trade else " and is no worse on the other figure")
                    print(f"  {chain[0].loc.node} .. {chain[-1].loc.node} ({len(chain)}): today {today[0]:,} cyc "
                          f"{today[1]:.3e} E {today[2]:,} w | {what}{'' if ok else ' (kept)'}", flush=True)
                if ok:
                    fused += 1
                    for i in range(3):
                        new[i] += best[0][i] - today[i]
            dt = time.perf_counter() - t0

            def pct(a, b):
                return f"{100 * (b - a) / a:+.1f}%"
            print(f"{model} {tname}: {fused} chains as stacks; cycles {base[0]:,} -> {new[0]:,} ({pct(base[0], new[0])}), "
                  f"energy {base[1]:.4g} -> {new[1]:.4g} ({pct(base[1], new[1])}), DRAM words {base[2]:,} -> "
                  f"{new[2]:,} ({pct(base[2], new[2])})  [{dt:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
