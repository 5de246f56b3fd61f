"""The scheduler's answer for one layer and its check: :class:`LayerSchedule` (what a
solve returns, what ``schedule.json`` and the on-disk cache store) and :func:`check_entry`
(a stored answer validated field by field before it is trusted)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from sqnxt_compiler.cost.layer import Layer
from sqnxt_compiler.cost.mapping import Mapping
from sqnxt_compiler.cost.model import CostReport, allowed_dataflows, check_mapping, evaluate, objective_value
from sqnxt_compiler.diagnostics import ScheduleError
from sqnxt_compiler.targets import Target

from .oracle import OBJECTIVES


@dataclass(frozen=True)
class LayerSchedule:
    """The scheduler's answer for one layer."""

    layer: Layer
    mapping: Mapping
    cost: CostReport
    status: str               # "optimal" | "feasible" (time limit) | "heuristic" (fallback)
    objective: str            # "cycles" | "energy" | "edp"
    objective_value: int
    bound: int                # proven lower bound of the objective (== value when optimal)
    gap: float                # (value - bound) / value
    solver: str               # "cp-sat" | "exhaustive" | "heuristic"
    tie_break: bool           # the documented tie-break was applied to completion
    note: str = ""            # why a fallback was used, if it was
    solve_time: float = field(default=0.0, compare=False)   # seconds (not in to_dict())
    cached: bool = field(default=False, compare=False)

    def to_dict(self, include_timing: bool = False) -> dict:
        """JSON-serializable and deterministic: timings only under "timing", on request."""
        L = self.layer
        pool, el = L.epilogue.pool, L.element
        d = {
            "layer": L.name,
            "kind": L.kind,
            "shape": {"C": L.C, "K": L.K, "H": L.H, "W": L.W, "R": L.R, "S": L.S, "P": L.P, "Q": L.Q,
                      "stride": [L.stride_h, L.stride_w],
                      "pad": [L.pad_top, L.pad_left, L.pad_bottom, L.pad_right],
                      "groups": L.groups, "n_inputs": L.n_inputs,
                      "dilation": [L.dilation_h, L.dilation_w],
                      "weight_zero_fraction": None if L.weight_zero_fraction is None
                      else str(L.weight_zero_fraction),
                      "pool": None if pool is None else {
                          "kind": pool.kind, "R": pool.R, "S": pool.S,
                          "stride": [pool.stride_h, pool.stride_w],
                          "pad": [pool.pad_top, pool.pad_left, pool.pad_bottom, pool.pad_right],
                          "conv_P": L.conv_P, "conv_Q": L.conv_Q},
                      "element": None if el is None else {
                          "fn": el.fn, "ops": el.ops, "funcs": el.funcs, "params": el.params}},
            "mapping": self.mapping.to_dict(),
            "status": self.status,
            "solver": self.solver,
            "objective": {"name": self.objective, "value": self.objective_value, "bound": self.bound,
                          "gap": self.gap},
            "tie_break": self.tie_break,
            "cost": self.cost.to_dict(),
        }
        if self.note:
            d["note"] = self.note
        if include_timing:
            d["timing"] = {"solve_time_s": round(self.solve_time, 6), "cached": self.cached}
        return d

    @staticmethod
    def from_dict(d: dict, layer: Layer, target: Target, objective: str | None = None) -> "LayerSchedule":
        """Rebuild from to_dict() output, trusting nothing (:func:`check_entry`); objective
        None: the one it names (which must be one of OBJECTIVES)."""
        if objective is None:
            objective = ((d.get("objective") or {}).get("name") if isinstance(d, dict) else None)
            if objective not in OBJECTIVES:
                raise BadEntry(f"unknown objective {objective!r}")
        return check_entry(d, layer, target, objective)


class BadEntry(ValueError):
    """A cached schedule that fails :func:`check_entry` (the reason is the message)."""


#: What each solver may claim: its statuses (a time-limited answer is never stored).
_CLAIMS = {"cp-sat": {"optimal"}, "exhaustive": {"optimal"}, "heuristic": {"heuristic"}}


def check_entry(d, layer: Layer, target: Target, objective: str) -> LayerSchedule:
    """A stored schedule (``LayerSchedule.to_dict()``) for ``layer`` under ``objective``,
    validated field by field; raises :class:`BadEntry` naming the first problem.

    Rules: the mapping is in the layer's space (:func:`check_mapping`: dataflow, order, every
    tile in 1..bound; a loop the layer spans, ``Layer.spanned``, at its bound) and fits the
    buffer; the cost is recomputed and must equal the stored
    one; the objective is the one asked, its value is the recomputed cost's, its bound is
    an integer in 0..value (equal to it when optimal) and its gap is ``(value - bound) /
    value`` rounded to 6 places; status and solver are a pair a solve produces (cp-sat or
    exhaustive: optimal; heuristic: heuristic); tie_break is a bool, note a string."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise BadEntry(what)

    need(isinstance(d, dict), "not a JSON object")
    for k in ("mapping", "status", "solver", "objective", "tie_break", "cost"):
        need(k in d, f"no '{k}'")
    try:
        m = Mapping.from_dict(d["mapping"])
        check_mapping(layer, m)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadEntry(f"mapping unreadable ({type(exc).__name__})") from None
    except ScheduleError as exc:
        raise BadEntry(exc.message.split(": ", 1)[-1]) from None
    need(m.dataflow in allowed_dataflows(layer, target), f"dataflow {m.dataflow} is not allowed on this target")
    for loop, t, bound, what in (("x", m.tx, layer.Q, "columns"), ("y", m.ty, layer.P, "rows"),
                                 ("c", m.tc, layer.Cg, "input channels"), ("k", m.tk, layer.Kg, "channels")):
        need(loop not in layer.spanned or t == bound,
             f"tile {loop}={t} splits the {bound} {what} the layer's window reads (Layer.spanned)")
    cost = evaluate(layer, target, m)
    need(cost.fits, f"mapping {m} does not fit the buffer")
    need(cost.to_dict() == d["cost"], "cost differs from the cost model's")
    o = d["objective"]
    need(isinstance(o, dict) and o.get("name") == objective, f"objective is not {objective}")
    value, bound, gap = o.get("value"), o.get("bound"), o.get("gap")
    need(value == objective_value(cost, objective) and type(value) is int,
         "objective value differs from the cost's")
    need(type(bound) is int and 0 <= bound <= value, "objective bound outside 0..value")
    need(isinstance(gap, float | int) and not isinstance(gap, bool) and gap == _gap(value, bound),
         "gap disagrees with value and bound")
    need(d["solver"] in _CLAIMS and d["status"] in _CLAIMS[d["solver"]],
         f"status {d['status']!r} / solver {d['solver']!r} is not a stored answer")
    need(d["status"] != "optimal" or bound == value, "an optimal answer's bound must equal its value")
    need(isinstance(d["tie_break"], bool), "tie_break is not a bool")
    need(isinstance(d.get("note", ""), str), "note is not a string")
    return LayerSchedule(layer, m, cost, d["status"], objective, value, bound, float(gap),
                         d["solver"], d["tie_break"], d.get("note", ""))


def _int_bound(b: float) -> int:
    """CP-SAT's objective bound (a float) as an integer lower bound of an integer
    objective: the nearest integer when the float is one up to rounding, else its ceiling."""
    r = round(b)
    return int(r) if abs(b - r) <= 1e-6 * max(1.0, abs(b)) else math.ceil(b)


def _gap(value: int, bound: int) -> float:
    return 0.0 if value <= 0 else round((value - bound) / value, 6)

