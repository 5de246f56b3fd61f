"""Mappings known without CP-SAT's search: the documented heuristic (the fallback) and the
incumbents a solve starts from (docs/scheduler.md, "Incumbent"), with the complete hint
of a mapping in a layer's model (:func:`_full_hint`)."""
from __future__ import annotations

from dataclasses import dataclass

from sqnxt_compiler.cost.layer import Layer
from sqnxt_compiler.cost.mapping import DATAFLOWS, ORDERS, Mapping
from sqnxt_compiler.cost.model import CostReport, allowed_dataflows, capacity_words, evaluate, objective_value
from sqnxt_compiler.diagnostics import ScheduleError
from sqnxt_compiler.targets import Target

from .oracle import exhaustive_best, infeasible_error
from .records import LayerSchedule
from .space import get_space, min_footprint_words

#: Layers whose reduced space (order representatives x candidate tile sizes, both
#: dataflows) has at most this many mappings are first enumerated (vectorized, the
#: oracle's code) for an incumbent: CP-SAT gets its objective as an upper bound and the
#: mapping as a hint, and still proves the optimum and breaks the ties itself
#: (docs/scheduler.md, "Incumbent").  0 disables it.
INCUMBENT_LIMIT = 1_000_000


# ---------------------------------------------------------------------------------------
# heuristic (fallback)
# ---------------------------------------------------------------------------------------
def heuristic_mapping(layer: Layer, target: Target) -> tuple[Mapping, CostReport]:
    """The documented fallback: start from whole-loop tiles and halve (rounding up) the
    tiles in the round-robin order y, x, k, c (never a loop the layer spans:
    ``Layer.spanned``) until the footprint fits; then try both
    allowed dataflows (:func:`allowed_dataflows`) and all 24 orders for those tiles and keep the one
    with the fewest cycles (ties: less energy, then WS, then order index).  Raises
    ScheduleError when not even all-1 tiles fit."""
    if min_footprint_words(layer, target) > capacity_words(layer, target):
        raise infeasible_error(layer, target)
    tiles = {"x": layer.Q, "y": layer.P, "c": layer.Cg, "k": layer.Kg}
    seq = ["y", "x", "k", "c"]
    i = 0

    def fits(t):
        return evaluate(layer, target, Mapping("OS", t["x"], t["y"], t["c"], t["k"])).fits

    while not fits(tiles):
        for _ in range(4):
            d = seq[i % 4]
            i += 1
            if tiles[d] > 1 and d not in layer.spanned:     # a spanned loop keeps its bound
                tiles[d] = -(-tiles[d] // 2)
                break
    best = None
    dfs = allowed_dataflows(layer, target)
    for dfi, df in enumerate(DATAFLOWS):
        if df not in dfs:
            continue
        for oi, order in enumerate(ORDERS):
            m = Mapping(df, tiles["x"], tiles["y"], tiles["c"], tiles["k"], order)
            r = evaluate(layer, target, m)
            key = (r.total_cycles, r.energy_total, dfi, oi)
            if best is None or key < best[0]:
                best = (key, m, r)
    return best[1], best[2]


def _heuristic_schedule(layer, target, objective, note) -> LayerSchedule:
    m, r = heuristic_mapping(layer, target)
    v = objective_value(r, objective)
    return LayerSchedule(layer, m, r, "heuristic", objective, v, 0, 1.0 if v else 0.0, "heuristic", False, note)


def _objective_var(lm, name: str):
    if name == "cycles":
        return lm.cycles
    if name == "energy":
        return lm.energy
    raise ValueError(name)


@dataclass(frozen=True)
class Incumbent:
    """A feasible mapping known before the solve, and its cost-model values."""

    mapping: Mapping
    values: dict              # "cycles", "energy", "edp" -> int


def incumbent(layer: Layer, target: Target, objective: str) -> Incumbent | None:
    """The enumerated best mapping of a layer whose reduced space is small enough
    (INCUMBENT_LIMIT), else None.  Only a starting point: whatever it is, it is a feasible
    mapping (checked), so its objective is a valid upper bound of the optimum."""
    if INCUMBENT_LIMIT <= 0 or get_space(layer, target).size_candidates() > INCUMBENT_LIMIT:
        return None
    try:
        m, r = exhaustive_best(layer, target, objective)
    except ScheduleError:
        return None
    if not r.fits:
        return None
    return Incumbent(m, {"cycles": r.total_cycles, "energy": r.energy_total,
                         "edp": r.total_cycles * r.energy_total})


def hinted_incumbent(layer: Layer, target: Target, hint: Mapping) -> Incumbent | None:
    """A caller's mapping as the starting point (the memory planner passes the layer's
    schedule alone when it solves the layer with other operand homes): its figures under
    this layer's homes, when it fits this layer's capacity, else None (the solver then
    falls back on the enumerated :func:`incumbent`: without a starting point the large
    fully connected layers take seconds, e.g. AlexNet's fc6 with its input resident 1.9 s
    against 0.3 s).  Only the speed of the proof depends on it: the answer is the unique tie-broken optimum."""
    r = evaluate(layer, target, hint)
    if not r.fits:
        return None
    return Incumbent(hint, {"cycles": r.total_cycles, "energy": r.energy_total,
                            "edp": r.total_cycles * r.energy_total})


def _assignment(lm, m: Mapping) -> list | None:
    """Values of the model's decision variables for mapping ``m`` (a hint), or None when
    ``m`` is outside the model's reduced space."""
    tiles = {"x": m.tx, "y": m.ty, "c": m.tc, "k": m.tk}
    oi = ORDERS.index(m.order)
    if oi not in lm.orders or any(tiles[d] not in lm.cand[d] for d in tiles):
        return None
    if isinstance(lm.os, int) and lm.os != (m.dataflow == "OS"):
        return None
    out = [(b, int(t == tiles[d])) for d in tiles for t, b in zip(lm.cand[d], lm.onehot[d])]
    out += [(p, int(o == oi)) for o, p in zip(lm.orders, lm.perm)]
    if not isinstance(lm.os, int):
        out.append((lm.os, int(m.dataflow == "OS")))
    return out


def _full_hint(lm, m: Mapping) -> list[int] | None:
    """Every variable's value for mapping ``m`` (a complete hint: :func:`.cpsat.set_hint`),
    or None when ``m`` is outside the model's reduced space."""
    a = _assignment(lm, m)
    return None if a is None else lm.complete({v.index: val for v, val in a})

