#!/usr/bin/env python3
"""How far a step-by-step pipeline formula would take the cost model: figures.

The cost model's overlap is one closed form over the layer (docs/cost-model.md, "Overlap
of DMA and compute"); the timing simulator runs the program step by step.  This script
measures, per distinct layer (shape and mapping), how well the *step-by-step* formula

    prologue + L(0) + sum_i max(c(i), L(i+1) + S(i-1)) + S(last),  at least dma_cycles

predicts the simulated cycles, next to the closed form: c(i) is step i's COMPUTE, L(i)
the LOADs step i consumes (input, weight, residual, partial sums: the tile walk's flags,
``cost.tiling.tile_steps``), S(i) the STORE after step i, every duration from the
instruction by the simulator's own formulas (``program.timing.instruction_cycles``).  It
is the candidate for a more faithful model (docs/isa.md, "The cross-check": the closed
form's limits); it is not one the CP-SAT model can state as it is (it walks the ragged
tiles step by step), so this is a measurement to steer that work, not a second cost model.

    .venv/bin/python benchmarks/bench_stepwise.py                       # 3 models, both targets, both homes
    .venv/bin/python benchmarks/bench_stepwise.py --models 1.0-SqNxt-23 --targets pe8x8

Measured (2026-12-07; 1.0-SqNxt-23, SqueezeNet-1.1, MobileNet-1.0-224): distinct layers
within +-3%: pe16x16 closed form 110 / 142, step-by-step 129; pe8x8 49 / 95 and 84.  The
step formula's misses: loads placed ahead of their step (docs/isa.md, "Load placement")
that it charges to the step before theirs, and single-channel-tile layers (k tile 1)
whose loads the simulator runs further ahead.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

#: cold runs: the user's on-disk schedule cache must not answer (docs/scheduler.md, "The on-disk
#: cache"); a measurement of warm compiles gives --cache-dir or unsets this itself
os.environ.setdefault("SQNXTC_NO_CACHE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BAND = Fraction(3, 100)


def stepwise(L, m, prog, desc, idx, target, cost):
    """The step-by-step estimate of one layer (module doc) from its instructions ``idx``."""
    from sqnxt_compiler.cost.tiling import tile_steps
    from sqnxt_compiler.program.timing import instruction_cycles

    kinds, comps, stores, pro = defaultdict(list), [], [], Fraction(0)
    ci = [i for i in idx if prog.insns[i].RECORD.mnemonic == "COMPUTE"]
    for i in idx:
        insn = prog.insns[i]
        mn = insn.RECORD.mnemonic
        if mn == "LOAD":
            d = instruction_cycles(insn, desc, target)
            if insn.kind == "bias":
                pro += d
            else:
                kinds[insn.kind].append(d)
        elif mn == "COMPUTE":
            comps.append(instruction_cycles(insn, desc, target, i == ci[0], i == ci[-1]))
        elif mn == "STORE":
            stores.append(instruction_cycles(insn, desc, target))
    it = {k: iter(v) for k, v in kinds.items()}
    st = iter(stores)
    loads, outs = [], []
    for sp in tile_steps(L, m):
        d = Fraction(0)
        for flag, kind in ((sp.load_input, "input"), (sp.load_weights, "weight"), (sp.finish, "residual"),
                           (sp.reload_psum, "psum")):
            if flag and kind in it:
                d += next(it[kind])
        loads.append(d)
        leaves = sp.leaves is not None and not (sp.leaves == "final" and L.homes.resident_output)
        outs.append(next(st) if leaves and stores else Fraction(0))
    t = pro + loads[0]
    for i in range(len(loads)):
        t += max(comps[i], (loads[i + 1] if i + 1 < len(loads) else 0) + (outs[i - 1] if i else 0))
    return max(t + outs[-1], Fraction(cost.dma_cycles))


def main(argv=None) -> int:
    from sqnxt_compiler import driver
    from sqnxt_compiler.cli.options import load_target_with
    from sqnxt_compiler.program.timing import simulate

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", default=["1.0-SqNxt-23", "SqueezeNet-1.1", "MobileNet-1.0-224"])
    ap.add_argument("--targets", nargs="*", default=["pe16x16", "pe8x8"])
    ap.add_argument("--homes", nargs="*", default=["planned", "dram"])
    a = ap.parse_args(argv)
    for tname in a.targets:
        seen, n, closed, step = set(), 0, 0, 0
        for home in a.homes:
            target = load_target_with(tname, home)
            for model in a.models:
                res = driver.compile(f"zoo:{model}", target=target,
                                     pipeline=driver.lowered_pipeline("default", target, None, home))
                low = res.graph.attrs["program"].lowered
                prog = low.program
                timing = simulate(prog, target)
                by = defaultdict(list)
                for i, insn in enumerate(prog.insns):
                    li = getattr(insn, "layer", None)
                    if li is not None:
                        by[li].append(i)
                for info, lay in zip(low.layers, timing.layers):
                    s = info.schedule
                    key = repr((s.layer.key(), s.mapping))
                    if key in seen:
                        continue
                    seen.add(key)
                    est = stepwise(s.layer, s.mapping, prog, prog.layers[info.index], by[info.index], target, s.cost)
                    n += 1
                    closed += abs(Fraction(lay.cycles) / s.cost.total_cycles - 1) <= BAND
                    step += abs(Fraction(lay.cycles) / est - 1) <= BAND
        print(f"{tname}: distinct layers within +-3% of the simulation: closed form {closed} of {n}, "
              f"step by step {step} of {n}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
