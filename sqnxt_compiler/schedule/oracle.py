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
from sqnxt_compiler.cost.model import CostReport, consts, cost_terms, evaluate
from sqnxt_compiler.diagnostics import ScheduleError
from sqnxt_compiler.targets import Target

from .space import Space, get_space, min_footprint_words

OBJECTIVES = ("cycles", "energy", "edp")
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
    if layer.capacity is not None:
        where = (f"the {layer.capacity * target.word_bytes} bytes left to it in " + where)
    return ScheduleError(
        f"layer '{layer.name}' ({layer.describe()}): no mapping fits {where}; the smallest "
        f"mapping (all tiles 1) needs {need} bytes")


def grid_best(sp: Space, df: str, order: tuple[str, ...], objective: str, terms: dict | None = None,
              layer: Layer | None = None):
    """Best key (obj, sec, tx, ty, tc, tk) over one dataflow/order grid of ``layer`` (by
    default the space's own layer; a space is shared by layers of one shape whatever
    their operand homes, which change only the constants), or None."""
    k = consts(layer if layer is not None else sp.layer, sp.target)
    X, Y, Cf, Kf = _grid_tables(sp, df)
    if terms is None:
        terms = cost_terms(k, df == "OS", X, Y, Cf, Kf, order)
    shape = tuple(len(sp.cands[df][d]) for d in LOOPS)
    feas = np.broadcast_to(terms["fp_total"] <= k.buffer_words, shape)
    if not feas.any():
        return None
    cyc = np.broadcast_to(terms["total_cycles"], shape)
    en = np.broadcast_to(terms["energy_total"], shape)
    sec = cyc if SECONDARY[objective] == "cycles" else en
    if objective in ("cycles", "energy"):
        prim = cyc if objective == "cycles" else en
        big = np.iinfo(np.int64).max
        p = np.where(feas, prim, big)
        pm = p.min()
        s = np.where(p == pm, sec, big)
        sm = s.min()
        idx = int(np.argmax((s == sm).ravel()))   # first in C order = smallest (tx, ty, tc, tk)
        pos = np.unravel_index(idx, shape)
        best = (int(pm), int(sm))
    else:
        approx = np.where(feas, cyc.astype(np.float64) * en.astype(np.float64), np.inf)
        am = approx.min()
        near = np.argwhere(feas & (approx <= am * (1 + 1e-9)))
        keyed = []
        for pos_ in near:
            pos_ = tuple(int(i) for i in pos_)
            c_, e_ = int(cyc[pos_]), int(en[pos_])
            keyed.append(((c_ * e_, int(sec[pos_])), pos_))
        best, pos = min(keyed)
    tiles = tuple(sp.cands[df][d][int(i)] for d, i in zip(LOOPS, pos))
    return best + tiles


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
        for oi in (range(len(ORDERS)) if all_orders else sp.orders):
            r = grid_best(sp, df, ORDERS[oi], objective, layer=layer)
            if r is None:
                continue
            key = (r[0], r[1], DATAFLOWS.index(df), oi) + r[2:]
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
    mapping of the *whole* space (no reduction), by scalar ``evaluate`` calls.  Tests only."""
    from itertools import product

    rows = []
    for dfi, df in enumerate(DATAFLOWS):
        if df == "WS" and not layer.is_mac:
            continue
        for oi, order in enumerate(ORDERS):
            for tx, ty, tc, tk in product(range(1, layer.Q + 1), range(1, layer.P + 1),
                                          range(1, layer.Cg + 1), range(1, layer.Kg + 1)):
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
def exhaustive_plan(net, cands, target, objective: str = "cycles") -> tuple[int, int, tuple]:
    """The best (objective, secondary) over every residency of the plannable tensors and
    every choice of one candidate per step with the homes that residency gives, such that
    at every step the candidate's footprint plus the resident words live there fit the
    buffer (the planner's model without the address rectangles).  Returns (objective,
    secondary, resident tuple) of the lexicographic minimum.  Exponential: tiny networks."""
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
            r = sum(1 for t in step.inputs if t is not None and res[t])
            rr = step.residual is not None and res[step.residual]
            ok = [c for c in cands[i] if c.resident_inputs == r and c.resident_output == res[step.output]
                  and c.resident_residual == rr and c.footprint + live <= B]
            if not ok:
                break
            per_step.append(ok)
        else:
            for choice in product(*per_step):
                if objective == "edp":
                    cyc = sum(c.value("cycles") for c in choice)
                    en = sum(c.value("energy") for c in choice)
                    key = (cyc * en, sum(c.value(sec) for c in choice))
                else:
                    key = (sum(c.value(objective) for c in choice), sum(c.value(sec) for c in choice))
                if best is None or key < best[:2]:
                    best = key + (tuple(res[t.index] for t in net.tensors),)
    return best
