"""The EDP objective of one layer (cycles x energy): bounding its factors by two
pre-solves so the product fits CP-SAT's integers, then the product in the model
(docs/scheduler.md, "EDP")."""
from __future__ import annotations

from ortools.sat.python import cp_model

from sqnxt_compiler.cost.mapping import Mapping

from .cpsat import build_model, decode, run, set_hint, value
from .heuristic import Incumbent, _full_hint, _objective_var, incumbent


def _edp_model(layer, target, left, inc: Incumbent | None = None, *, params):
    """EDP = cycles x energy: the product needs bounded factors.  Solve min cycles (C*)
    and min energy (E*) first; a mapping optimal for cycles has EDP H = C* x E(its energy),
    so the EDP optimum has cycles <= H / E* and energy <= H / C*.  With an incumbent
    (any feasible mapping) H = min(H, its EDP); each pre-solve gets its own incumbent
    (the enumerated best cycles, energy) as cutoff and hint.  Returns (model, the EDP
    variable, a note, the start): the start is a mapping of EDP H, a solution of the model
    (the incumbent, or the cycles-optimal mapping when that is better): the EDP solve's
    hint (an incumbent worse than H would break ``edp <= H``: an inconsistent hint).
    ``params``: the layer solver's :class:`.staged.SolverParams` for the pre-solves."""
    bounds = {}
    h_energy = None
    c_opt = None
    for name in ("cycles", "energy"):
        lm = build_model(layer, target)
        pre = incumbent(layer, target, name) if inc is not None else None
        if pre is not None:
            lm.model.add(_objective_var(lm, name).expr <= pre.values[name])
            set_hint(lm.model, _full_hint(lm, pre.mapping))
        lm.model.minimize(_objective_var(lm, name).expr)
        s = params.solver(left())
        st = run(s, lm.model)
        if st != cp_model.OPTIMAL:
            return None, None, f"EDP pre-solve ({name}) ended with status {s.status_name(st)}", None
        bounds[name] = s.value(_objective_var(lm, name).expr)
        if name == "cycles":
            h_energy = int(s.value(lm.energy.expr))
            df, order, tiles = decode(lm, s)
            c_opt = Incumbent(Mapping(df, tiles["x"], tiles["y"], tiles["c"], tiles["k"], order),
                              {"cycles": bounds["cycles"], "energy": h_energy, "edp": bounds["cycles"] * h_energy})
    H = c_opt.values["edp"]
    start = c_opt
    if inc is not None and inc.values["edp"] <= H:
        H, start = inc.values["edp"], inc
    c_hi, e_hi = H // bounds["energy"], H // bounds["cycles"]
    lm = build_model(layer, target, cycles_hi=c_hi, energy_hi=e_hi)
    b = _Prod(lm)
    edp = b.product(lm.cycles, lm.energy)
    lm.model.add(edp <= H)
    return lm, edp, "ok", start


class _Prod:
    """Adds cycles x energy to a built model."""

    def __init__(self, lm):
        self.lm = lm

    def product(self, a, b):
        hi = a.hi * b.hi
        if hi > 2 ** 62:
            raise OverflowError(f"edp upper bound {hi}")
        v = self.lm.model.new_int_var(a.lo * b.lo, hi, "edp")
        self.lm.model.add_multiplication_equality(v, [a.expr, b.expr])
        self.lm.define(v, lambda vals: value(a, vals) * value(b, vals))
        return v
