"""Exhaustive reference search: the best mapping of one layer, by enumeration.

For every dataflow and every tile-loop order (the 24 orders, or only one per class of
equivalent orders: :func:`.space.order_representatives`, exact), the cost model
(:func:`sqnxt_compiler.cost.model.cost_terms`, the same code ``evaluate`` runs) is
evaluated with numpy over the full grid of candidate tile sizes (the exact dominance
reduction of :mod:`.space`).  The answer is the feasible mapping (footprint <= buffer)
with the smallest key

    (objective, secondary objective, dataflow WS < OS, order index in ORDERS, tx, ty, tc, tk)

which is the documented tie-break rule the CP-SAT solver reproduces (docs/scheduler.md).
Objectives: ``cycles`` (secondary energy), ``energy`` (secondary cycles), ``edp`` =
cycles x energy (secondary cycles).
"""
from __future__ import annotations

import numpy as np

from sqnxt_compiler.cost.layer import Layer
from sqnxt_compiler.cost.mapping import DATAFLOWS, LOOPS, ORDERS, Mapping
from sqnxt_compiler.cost.model import OBJECTIVES, CostReport, allowed_dataflows, consts, cost_terms, evaluate
from sqnxt_compiler.diagnostics import ScheduleError
from sqnxt_compiler.targets import Target

from .space import Space, get_space, min_footprint_words

SECONDARY = {"cycles": "energy", "energy": "cycles", "edp": "cycles"}


def _grid_tables(sp: Space, df: str):
    """Feature arrays of the candidate tile sizes, shaped to broadcast over (x, y, c, k)
    (computed once per space and dataflow)."""
    cached = sp.grids.get(df)
    if cached is not None:
        return cached
    out = []
    for axis, d in enumerate(LOOPS):
        ts = sp.cands[df][d]
        cols = list(zip(*(sp.feats[d][t] for t in ts)))
        shape = [1, 1, 1, 1]
        shape[axis] = len(ts)
        out.append(tuple(np.asarray(col, dtype=np.int64).reshape(shape) for col in cols))
    sp.grids[df] = out
    return out


def infeasible_error(layer: Layer, target: Target) -> ScheduleError:
    """No mapping fits: name the layer and the smallest buffer that would hold one."""
    need = min_footprint_words(layer, target) * target.word_bytes
    where = f"the {target.global_buffer_bytes}-byte global buffer of target '{target.name}'"
    if layer.homes.capacity is not None:
        where = (f"the {layer.homes.capacity * target.word_bytes} bytes left to it in " + where)
    return ScheduleError(
        f"layer '{layer.name}' ({layer.describe()}): no mapping fits {where}; the smallest "
        f"mapping (all tiles 1) needs {need} bytes")


def _gather(tables, idx) -> tuple:
    """The per-loop tables at the points ``idx`` (np.nonzero of the grid): one 1-D array
    per entry, the grid's broadcast reduced to the listed points (in the same order)."""
    return tuple(tuple(col.reshape(-1)[i] for col in tab) for tab, i in zip(tables, idx))


def _objective(t: dict, objective: str):
    """The (primary, secondary) arrays of cost terms ``t``; edp's primary as float64 (exact
    products are taken only for the near-minimal points)."""
    cyc, en = t["total_cycles"], t["energy_total"]
    sec = cyc if SECONDARY[objective] == "cycles" else en
    if objective == "edp":
        return cyc.astype(np.float64) * en.astype(np.float64), sec
    return (cyc if objective == "cycles" else en), sec


def _best_point(t: dict, objective: str) -> tuple[tuple[int, int], int]:
    """((objective, secondary), position) of the smallest key over 1-D cost terms; ties go
    to the first position (the points are in C order of the grid: smallest tx, ty, tc, tk)."""
    prim, sec = _objective(t, objective)
    if objective in ("cycles", "energy"):
        pm = prim.min()
        s = np.where(prim == pm, sec, np.iinfo(np.int64).max)
        sm = s.min()
        return (int(pm), int(sm)), int(np.argmax(s == sm))
    am = prim.min()
    near = np.flatnonzero(prim <= am * (1 + 1e-9))
    cyc, en = t["total_cycles"], t["energy_total"]
    return min(((int(cyc[i]) * int(en[i]), int(sec[i])), int(i)) for i in near)


def dataflow_best(sp: Space, df: str, objective: str, layer: Layer, orders=None):
    """Best key (obj, sec, order index, tx, ty, tc, tk) over one dataflow of ``layer`` (its
    space ``sp`` is shared by layers of one shape whatever their operand homes, which change
    only the constants ``consts(layer)``), or None when no mapping fits.

    Exact pruning: the terms with no tile refetched (``cost_terms(..., order=None)``) are a
    lower bound of every order's (each term is non-decreasing in the refetch factors) and
    give the footprint (no order changes it).  Only the feasible points are costed, and a
    point whose bound exceeds the best objective found so far is dropped before the next
    order: it can neither win nor tie."""
    k = consts(layer, sp.target)
    tables = _grid_tables(sp, df)
    shape = tuple(len(sp.cands[df][d]) for d in LOOPS)
    os_ = df == "OS"
    lb = cost_terms(k, os_, *tables, None)
    feas = np.broadcast_to(lb["fp_total"] <= k.buffer_words, shape)
    idx = np.nonzero(feas)
    if len(idx[0]) == 0:
        return None
    pts = _gather(tables, idx)
    bound = _objective({key: np.broadcast_to(lb[key], shape)[idx] for key in ("total_cycles", "energy_total")},
                       objective)[0]
    best = None
    for oi in (sp.orders if orders is None else orders):
        if best is not None:
            # edp's bound is a float product: a relative margin keeps exact ties
            keep = bound <= (best[0][0] * (1 + 1e-9) if objective == "edp" else best[0][0])
            if not keep.all():
                idx = tuple(i[keep] for i in idx)
                pts = tuple(tuple(col[keep] for col in tab) for tab in pts)
                bound = bound[keep]
        t = cost_terms(k, os_, *pts, ORDERS[oi])
        n = len(idx[0])
        t = {key: np.broadcast_to(t[key], (n,)) for key in ("total_cycles", "energy_total")}
        (obj, sec), j = _best_point(t, objective)
        if best is None or (obj, sec) < best[0]:
            best = ((obj, sec), oi, tuple(int(i[j]) for i in idx))
    (obj, sec), oi, pos = best
    tiles = tuple(sp.cands[df][d][i] for d, i in zip(LOOPS, pos))
    return (obj, sec, oi) + tiles


def exhaustive_best(layer: Layer, target: Target, objective: str = "cycles",
                    dataflows: tuple[str, ...] | None = None,
                    all_orders: bool = False) -> tuple[Mapping, CostReport]:
    """The best mapping of ``layer`` on ``target`` under ``objective`` (see module doc).
    ``dataflows`` restricts the search (e.g. ``("WS",)``) for studies; default: all.
    Only the order representatives (:func:`.space.order_representatives`, exact) are
    searched unless ``all_orders`` (tests: the reduction changes nothing).

    Raises ScheduleError (naming the layer and the smallest buffer it would need) when no
    mapping fits the buffer."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r} (known: {', '.join(OBJECTIVES)})")
    sp = get_space(layer, target)
    best = None
    for df in sp.dataflows:
        if dataflows is not None and df not in dataflows:
            continue
        r = dataflow_best(sp, df, objective, layer, range(len(ORDERS)) if all_orders else None)
        if r is None:
            continue
        key = (r[0], r[1], DATAFLOWS.index(df)) + r[2:]
        if best is None or key < best:
            best = key
    if best is None:
        raise infeasible_error(layer, target)
    _, _, dfi, oi, tx, ty, tc, tk = best
    m = Mapping(DATAFLOWS[dfi], tx, ty, tc, tk, ORDERS[oi])
    return m, evaluate(layer, target, m)


def min_over_space(layer: Layer, target: Target, term: str) -> int | None:
    """The smallest value of any cost term (e.g. ``"dram_words"``) over the feasible
    mappings (exact: every term is non-decreasing in the per-loop tables), or None."""
    sp = get_space(layer, target)
    k = consts(layer, target)
    best = None
    for df in sp.dataflows:
        X, Y, Cf, Kf = _grid_tables(sp, df)
        shape = tuple(len(sp.cands[df][d]) for d in LOOPS)
        for oi in sp.orders:
            t = cost_terms(k, df == "OS", X, Y, Cf, Kf, ORDERS[oi])
            feas = np.broadcast_to(t["fp_total"] <= k.buffer_words, shape)
            if feas.any():
                v = int(np.broadcast_to(t[term], shape)[feas].min())
                best = v if best is None else min(best, v)
    return best


def brute_force_table(layer: Layer, target: Target) -> list[tuple]:
    """(dataflow index, order index, tx, ty, tc, tk, cycles, energy) of every feasible
    mapping of the *whole* space (no reduction; a loop the layer spans at its bound:
    ``Layer.spanned``), by scalar ``evaluate`` calls.  Tests only."""
    from itertools import product

    rows = []
    for dfi, df in enumerate(DATAFLOWS):
        if df not in allowed_dataflows(layer, target):
            continue
        for oi, order in enumerate(ORDERS):
            sizes = [range(b if d in layer.spanned else 1, b + 1)
                     for d, b in (("x", layer.Q), ("y", layer.P), ("c", layer.Cg), ("k", layer.Kg))]
            for tx, ty, tc, tk in product(*sizes):
                r = evaluate(layer, target, Mapping(df, tx, ty, tc, tk, order))
                if r.fits:
                    rows.append((dfi, oi, tx, ty, tc, tk, r.total_cycles, r.energy_total))
    return rows


def brute_force_best(layer: Layer, target: Target, objective: str = "cycles",
                     table: list[tuple] | None = None) -> tuple | None:
    """The tie-broken best key (obj, secondary, dataflow, order, tx, ty, tc, tk) over the
    whole space by brute force (see brute_force_table).  Tests only."""
    table = brute_force_table(layer, target) if table is None else table

    def val(row, name):
        c, e = row[6], row[7]
        return {"cycles": c, "energy": e, "edp": c * e}[name]

    keys = [(val(r, objective), val(r, SECONDARY[objective])) + r[:6] for r in table]
    return min(keys) if keys else None


# ---------------------------------------------------------------------------------------
# the network-level oracle (tests only): the memory planner's relaxation, exhaustively
# ---------------------------------------------------------------------------------------
def all_dram_totals(cands) -> dict | None:
    """Cycles and energy of the plan that keeps nothing resident: every step's candidate
    with all operands through DRAM and the whole buffer for its tiles (the planner's bound
    on both: docs/memory-planning.md), or None when some step has none (a hand-made
    candidate set)."""
    from .plans import all_dram_candidate

    picks = [next((c for c in cs if all_dram_candidate(c)), None) for cs in cands]
    if any(c is None for c in picks):
        return None
    return {"cycles": sum(c.value("cycles") for c in picks), "energy": sum(c.value("energy") for c in picks)}


def exhaustive_plan(net, cands, target, objective: str = "cycles") -> tuple[int, int, tuple]:
    """The best (objective, secondary) over every residency of the plannable tensors and
    every choice of one candidate per step with the homes that residency gives, such that
    at every step the candidate's footprint plus the resident words live there fit the
    buffer, and the network's cycles and energy are each at most the all-DRAM plan's (the
    planner's model without the address rectangles); with concats in place that have a
    copy step, at most the best plan's with every concat copied instead, when that one is
    within the all-DRAM bounds (the planner's ``_copies_plan``); with fused stacks among the
    candidates (a stack's parts taken all together or none), at most the best plan's
    without them.  Returns (objective,
    secondary, resident tuple) of the lexicographic minimum.  Exponential: tiny networks."""
    from .plans import without_stacks

    plain = without_stacks(cands)
    base = all_dram_totals(plain)
    if net.copies:
        copied = [[c for c in cs if not c.skip] for cs in plain]
        ref = _exhaustive(net, copied, target, objective, all_dram_totals(copied))
        if ref is not None and (base is None or (ref[3] <= base["cycles"] and ref[4] <= base["energy"])):
            base = {"cycles": ref[3], "energy": ref[4]}
    if any(c.stack is not None for cs in cands for c in cs):
        # with fused stacks: never worse than the best plan without them, on either figure
        ref = _exhaustive(net, plain, target, objective, base)
        if ref is not None:
            base = {"cycles": ref[3], "energy": ref[4]}
    best = _exhaustive(net, cands, target, objective, base)
    return None if best is None else best[:3]


def _exhaustive(net, cands, target, objective: str, base: dict | None):
    """exhaustive_plan's search under the bounds ``base``: (objective, secondary, resident
    tuple, cycles, energy) of the lexicographic minimum, or None."""
    from itertools import product

    B = target.buffer_words
    sec = SECONDARY[objective]
    plannable = [t.index for t in net.tensors if t.plannable and t.words <= B]
    best = None
    for bits in product((False, True), repeat=len(plannable)):
        res = dict.fromkeys(range(len(net.tensors)), False)
        res.update(zip(plannable, bits))
        per_step = []
        for i, step in enumerate(net.steps):
            live = sum(t.words for t in net.tensors if res[t.index] and t.live_at(i))
            r = net.resident_inputs(step, res)
            rr = net.reads_resident(step.residual, res)
            ok = [c for c in cands[i] if c.resident_inputs == r and c.resident_output == res[step.output]
                  and c.resident_residual == rr and c.footprint + live <= B
                  and net.copy_consistent(step, c.skip, res)]
            if not ok:
                break
            per_step.append(ok)
        else:
            for choice in _choices(per_step):
                cyc = sum(c.value("cycles") for c in choice)
                en = sum(c.value("energy") for c in choice)
                if base is not None and (cyc > base["cycles"] or en > base["energy"]):
                    continue        # the planner's bounds: no worse than all-DRAM on either
                if objective == "edp":
                    key = (cyc * en, sum(c.value(sec) for c in choice))
                else:
                    key = (sum(c.value(objective) for c in choice), sum(c.value(sec) for c in choice))
                if best is None or key < best[:2]:
                    best = key + (tuple(res[t.index] for t in net.tensors), cyc, en)
    return best


def _choices(per_step, i: int = 0, acc: tuple = ()):
    """Every choice of one candidate per step from ``per_step`` in which each stack runs
    whole (a generator, depth first): a step after a stack's part that is not its last
    member takes the next part (when it is allowed there), and no other step starts inside
    a stack."""
    if i == len(per_step):
        yield acc
        return
    prev = acc[-1] if acc else None
    if prev is not None and prev.stack is not None and prev.member + 1 < len(prev.stack.steps):
        nxt = [c for c in per_step[i] if c.stack is prev.stack and c.member == prev.member + 1]
    else:
        nxt = [c for c in per_step[i] if c.stack is None or c.member == 0]
    for c in nxt:
        yield from _choices(per_step, i + 1, acc + (c,))
