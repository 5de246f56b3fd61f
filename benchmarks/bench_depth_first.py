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
from sqnxt_compiler.cost.layer import ElementFn, Layer  # noqa: E402
from sqnxt_compiler.cost.stack import MODES, band_layer, bands, chainable, window_words  # noqa: E402
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


def halo_move(L: Layer, positions: int) -> Layer:
    """The keep mode's move of ``positions`` (rows x columns) halo outputs of member ``L``'s
    window, all channels (resident to resident), as one row."""
    return Layer(f"{L.name}/halo", "move", C=L.K, K=L.K, H=1, W=positions, R=1, S=1, P=1, Q=positions,
                 element=ElementFn("copy")).with_homes(resident_inputs=1, resident_output=True)


def stack_figures(layers, h, mode, target, w=None, weights_resident=False):
    """(cycles, energy, DRAM words) of ``layers`` run as a stack of ``h`` x ``w`` bands (w
    None: full width), or None when its windows leave no room for the tiles.
    ``weights_resident``: every member's weights loaded once and kept in the buffer across
    the bands (the cost model has no such home yet: approximated by taking the windows and
    the weights out of the capacity and every band's weight reads but the first out of the
    DRAM words and their energy; the cycles keep their weight DMA, an upper bound)."""
    bs = bands(layers, h, mode, w)
    weights = sum(L.K * (L.C // L.groups) * L.R * L.S for L in layers) if weights_resident else 0
    cap = target.buffer_words - window_words(layers, bs) - weights
    if cap <= 0:
        return None
    n = len(layers)
    work = []
    for b in bs:
        for k, L in enumerate(layers):
            if b.area(k):
                work.append(band_layer(L, b.rows[k], k, n, b.cols[k]).with_homes(capacity=cap))
            if mode == "keep" and k < n - 1:
                kept = b.area(k, needed=True) - b.area(k)
                if kept > 0:
                    work.append(halo_move(L, kept).with_homes(capacity=cap))
    try:
        scheds = schedule_layers(work, target, jobs=1)
    except Exception:  # noqa: BLE001 - a band layer whose tiles do not fit: no such stack
        return None
    cycles = sum(s.cost.total_cycles for s in scheds)
    energy = sum(s.cost.energy_total for s in scheds)
    words = sum(s.cost.dram["total"] for s in scheds)
    if weights_resident:       # each member's weights read once, not once per band
        again = sum(s.cost.dram["weight_reads"] for s in scheds) - weights
        words -= again
        energy -= again * (target.e_dram + target.e_buffer)
    return cycles, energy, words


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=["1.0-SqNxt-23"])
    ap.add_argument("--targets", nargs="*", default=["pe8x8", "pe16x16"])
    ap.add_argument("--heights", nargs="*", type=int, default=[1, 2, 4, 8, 16])
    ap.add_argument("--widths", nargs="*", type=int, default=[0, 8, 16],
                    help="band widths (0: the full width)")
    ap.add_argument("--objective", choices=("cycles", "energy"), default="cycles")
    ap.add_argument("--weights-resident", action="store_true",
                    help="keep every member's weights in the buffer across the bands (approximated: "
                         "stack_figures)")
    ap.add_argument("--trade", action="store_true",
                    help="take the best stack by the objective even when it is worse on the other figure "
                         "(what the stacks could buy, at what price)")
    ap.add_argument("--verbose", action="store_true", help="a line per chain")
    args = ap.parse_args()
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
            for chain in chains(res.graph):
                scheds = [op.attrs["schedule"].schedule for op in chain]
                layers = [replace(s.layer.with_homes(resident_inputs=0, resident_output=False,
                                                     resident_residual=False, capacity=None))
                          for s in scheds]
                if chainable(layers):
                    continue
                today = (sum(s.cost.total_cycles for s in scheds), sum(s.cost.energy_total for s in scheds),
                         sum(s.cost.dram["total"] for s in scheds))
                key = tuple(L.key() for L in layers)
                if key not in memo:
                    best = None
                    for h, w, mode in ((h, w, m) for h in args.heights for w in args.widths for m in MODES):
                        if h > layers[-1].P or w >= layers[-1].Q:
                            continue
                        if True:
                            f = stack_figures(layers, h, mode, tgt, w or None, args.weights_resident)
                            if f is None:
                                continue
                            first, second = (0, 1) if args.objective == "cycles" else (1, 0)
                            if f[second] > today[second] and not args.trade:
                                continue
                            if best is None or (f[first], f[second]) < (best[0][first], best[0][second]):
                                best = (f, f"{h}x{w or 'full'}", mode)
                    memo[key] = best
                best = memo[key]
                first = 0 if args.objective == "cycles" else 1
                ok = best is not None and (best[0][first] <= today[first] if args.trade else
                                           best[0][0] <= today[0] and best[0][1] <= today[1])
                if args.verbose:
                    what = f"h={best[1]} {best[2]}: {best[0][0]:,} cyc {best[0][1]:.3e} E {best[0][2]:,} w" \
                        if best else "no stack fits" + ("" if args.trade else " and is no worse on the other figure")
                    print(f"  {chain[0].loc.node} .. {chain[-1].loc.node} ({len(chain)}): today {today[0]:,} cyc "
                          f"{today[1]:.3e} E {today[2]:,} w | {what}{'' if ok else ' (kept)'}")
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
