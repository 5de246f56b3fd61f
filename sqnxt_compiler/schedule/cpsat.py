"""The CP-SAT model of one layer's mapping space: the cost model's formulas as constraints.

Decision variables: a one-hot choice of tile size per loop (over the candidate tile sizes
of :mod:`.space`, union of both dataflows), a one-hot choice of the tile-loop order (24
permutations) and the dataflow.  Every per-loop table of :mod:`sqnxt_compiler.cost.features`
is a linear expression of the one-hot booleans (a table lookup); every product of the cost
model is an ``AddMultiplicationEquality``; every ``ceil(a/b)`` an ``AddDivisionEquality``
on the shifted numerator ``a + b - 1``; ``max`` an ``AddMaxEquality``; the WS / OS
branches are both built and selected with enforcement literals.  The expressions mirror
:func:`sqnxt_compiler.cost.model.cost_terms` term by term (docs/scheduler.md), and the
tests check that the solver's cycles and energy equal ``evaluate`` exactly.

Every variable the builder creates other than the decision variables has a *definition*
besides its constraint: a function of the earlier variables' values
(:attr:`LayerModel.defs`).  From the decision variables' values (a mapping)
:meth:`LayerModel.complete` computes every variable's value, so a hint given to CP-SAT is
always complete (the section "The solver boundary" below; docs/scheduler.md, "Hints").
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from sqnxt_compiler.cost.layer import Layer
from sqnxt_compiler.cost.mapping import DATAFLOWS, LOOPS, ORDERS
from sqnxt_compiler.cost.model import consts
from sqnxt_compiler.diagnostics import one_line
from sqnxt_compiler.targets import Target

from .space import get_space

INT_MAX = 2 ** 62


def value(x, vals: list[int]) -> int:
    """The value of a term (an int, a :class:`Var`, a CP-SAT variable) when the model's
    variables have ``vals`` (by proto index)."""
    if isinstance(x, Var):
        x = x.expr
    return x if isinstance(x, int) else vals[x.index]


def _trunc_div(a: int, b: int) -> int:
    """a / b rounded toward zero (CP-SAT's ``AddDivisionEquality``)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


@dataclass
class Var:
    """An integer variable (or constant) with its known bounds."""

    expr: object
    lo: int
    hi: int


@dataclass
class LayerModel:
    """The CP-SAT model of one layer; ``vars`` holds the objective-relevant variables."""

    model: cp_model.CpModel
    cand: dict                      # loop -> candidate tile sizes (ascending)
    onehot: dict                    # loop -> [BoolVar]
    perm: list                      # BoolVars, one per order representative
    orders: tuple                   # their indices into ORDERS (space.order_representatives)
    os: object                      # BoolVar or constant 0/1
    dataflows: tuple
    cycles: Var = None
    energy: Var = None
    tie_key: object = None
    tie_key_hi: int = 0
    extra: dict = field(default_factory=dict)
    defs: dict = field(default_factory=dict)   # proto index -> fn(values) of every non-decision variable

    def define(self, var, fn) -> None:
        """Record ``fn(values)`` (values by proto index) as the definition of ``var``, a
        variable added to the model after it was built."""
        self.defs[var.index] = fn

    def complete(self, known: dict[int, int]) -> list[int] | None:
        """Every variable's value, by proto index: those in ``known``, the others from their
        definitions in creation order (a definition reads earlier variables only); None
        when a variable has neither (then there is no complete hint to give)."""
        vals: list[int] = []
        for i in range(len(self.model.proto.variables)):
            if i in known:
                vals.append(known[i])
            elif i in self.defs:
                vals.append(self.defs[i](vals))
            else:
                return None
        return vals

    def decision_vars(self) -> list:
        out = [b for d in LOOPS for b in self.onehot[d]] + list(self.perm)
        if not isinstance(self.os, int):
            out.append(self.os)
        return out


class _Builder:
    def __init__(self, layer: Layer, target: Target, cycles_hi: int | None = None,
                 energy_hi: int | None = None):
        self.L, self.T = layer, target
        self.k = consts(layer, target)
        self.sp = get_space(layer, target)
        self.m = cp_model.CpModel()
        self.cycles_hi, self.energy_hi = cycles_hi, energy_hi
        self.n = 0
        self.defs: dict = {}       # proto index -> fn(values): LayerModel.defs

    # ---- helpers -------------------------------------------------------------------
    def _name(self, s: str) -> str:
        self.n += 1
        return f"{s}_{self.n}"

    def var(self, lo: int, hi: int, name: str, fn) -> Var:
        """A new variable in [lo, hi] whose value is ``fn(values)`` (its definition)."""
        if hi > INT_MAX:
            raise OverflowError(f"{name}: upper bound {hi} too large for CP-SAT")
        v = self.m.new_int_var(lo, hi, self._name(name))
        self.defs[v.index] = fn
        return Var(v, lo, hi)

    def bool_var(self, name: str, fn):
        """A new BoolVar whose value is ``fn(values)``."""
        v = self.m.new_bool_var(name)
        self.defs[v.index] = fn
        return v

    def const(self, c: int) -> Var:
        return Var(c, c, c)

    def lin(self, terms: list[tuple[int, Var]], const: int, name: str) -> Var:
        """A variable equal to const + sum(coef * var); its bounds follow from the terms' (a
        negative coefficient takes the other end)."""
        terms = [(c, v) for c, v in terms if c != 0]      # no variable for a constant term
        if all(isinstance(v.expr, int) for _, v in terms):
            return self.const(const + sum(c * v.expr for c, v in terms))
        lo = const + sum(c * v.lo if c >= 0 else c * v.hi for c, v in terms)
        hi = const + sum(c * v.hi if c >= 0 else c * v.lo for c, v in terms)
        out = self.var(lo, hi, name, lambda vals: const + sum(c * value(v, vals) for c, v in terms))
        self.m.add(out.expr == const + sum(c * v.expr for c, v in terms))
        return out

    def prod(self, a: Var, b: Var, name: str) -> Var:
        """a * b (both non-negative)."""
        if isinstance(a.expr, int) and isinstance(b.expr, int):
            return self.const(a.expr * b.expr)
        if isinstance(a.expr, int):
            return self.lin([(a.expr, b)], 0, name)
        if isinstance(b.expr, int):
            return self.lin([(b.expr, a)], 0, name)
        out = self.var(a.lo * b.lo, a.hi * b.hi, name, lambda vals: value(a, vals) * value(b, vals))
        self.m.add_multiplication_equality(out.expr, [a.expr, b.expr])
        return out

    def cdiv(self, a: Var, num: int, den: int, name: str) -> Var:
        """ceil(a * den / num) via AddDivisionEquality on the shifted numerator."""
        if isinstance(a.expr, int):
            return self.const(-(-(a.expr * den) // num))
        shifted = self.lin([(den, a)], num - 1, name + "_num")
        out = self.var(-(-(a.lo * den) // num), -(-(a.hi * den) // num), name,
                       lambda vals: _trunc_div(value(shifted, vals), num))
        self.m.add_division_equality(out.expr, shifted.expr, num)
        return out

    def select(self, cond, a: Var, b: Var, name: str) -> Var:
        """cond ? a : b, with cond a BoolVar (or 0/1 constant)."""
        if isinstance(cond, int):
            return a if cond else b
        out = self.var(min(a.lo, b.lo), max(a.hi, b.hi), name,
                       lambda vals: value(a, vals) if value(cond, vals) else value(b, vals))
        self.m.add(out.expr == a.expr).only_enforce_if(cond)
        self.m.add(out.expr == b.expr).only_enforce_if(cond.Not())
        return out

    def bool_and(self, a, b, name: str):
        """a AND b for BoolVars / 0-1 constants."""
        if isinstance(a, int) or isinstance(b, int):
            if isinstance(a, int) and isinstance(b, int):
                return a & b
            c, v = (a, b) if isinstance(a, int) else (b, a)
            return v if c else 0
        out = self.bool_var(self._name(name), lambda vals: value(a, vals) * value(b, vals))
        self.m.add_multiplication_equality(out, [a, b])
        return out

    def bool_or(self, xs: list, name: str):
        xs = [x for x in xs if not (isinstance(x, int) and x == 0)]
        if any(isinstance(x, int) for x in xs):
            return 1
        if not xs:
            return 0
        if len(xs) == 1:
            return xs[0]
        out = self.bool_var(self._name(name), lambda vals: max(value(x, vals) for x in xs))
        self.m.add_max_equality(out, xs)
        return out

    # ---- the model -----------------------------------------------------------------
    def build(self) -> LayerModel:
        k, sp, m = self.k, self.sp, self.m
        dfs = sp.dataflows
        cand = {d: sorted(set().union(*(sp.cands[df][d] for df in dfs))) for d in LOOPS}
        onehot = {d: [m.new_bool_var(f"t{d}_{t}") for t in cand[d]] for d in LOOPS}
        for d in LOOPS:
            m.add_exactly_one(onehot[d])

        def table(d: str, idx: int, name: str) -> Var:
            vals = [sp.feats[d][t][idx] for t in cand[d]]
            if len(set(vals)) == 1:
                return self.const(vals[0])
            lo, hi = min(vals), max(vals)
            out = self.var(lo, hi, name, lambda got: sum(v * got[b.index] for v, b in zip(vals, onehot[d])))
            m.add(out.expr == sum(v * b for v, b in zip(vals, onehot[d])))
            return out

        names_s = ("n", "B", "Wn", "I", "Im", "C", "Cm", "t")
        X = [table("x", i, "x" + s) for i, s in enumerate(names_s)]
        Y = [table("y", i, "y" + s) for i, s in enumerate(names_s)]
        Cf = [table("c", i, "c" + s) for i, s in enumerate(("n", "CB", "Z", "ZP", "t"))]
        Kf = [table("k", i, "k" + s) for i, s in enumerate(("n", "KB", "t"))]
        nx, XB, XW, IX, IXm, CX, CXm, tx = X
        ny, YB, YW, IY, IYm, CY, CYm, ty = Y
        nc, CB, Z, ZP, tc = Cf
        nk, KB, tk = Kf

        def big(d: str):
            flags = [1 if sp.feats[d][t][0] > 1 else 0 for t in cand[d]]
            if all(flags):
                return 1
            if not any(flags):
                return 0
            b = self.bool_var(f"big_{d}", lambda got: sum(f * got[v.index] for f, v in zip(flags, onehot[d])))
            m.add(b == sum(f * v for f, v in zip(flags, onehot[d])))
            return b

        bigs = {d: big(d) for d in LOOPS}

        # dataflow
        if len(dfs) == 2:
            os = m.new_bool_var("os")
        else:
            os = 1 if dfs == ("OS",) else 0

        # order: one representative per class of equivalent orders (exact, see space.py)
        orders = sp.orders
        perm = [m.new_bool_var("order_" + "".join(ORDERS[oi])) for oi in orders]
        m.add_exactly_one(perm)

        def before(a: str, b: str):
            """BoolVar (or 0/1 constant): loop a is outside loop b."""
            lits = [p for p, oi in zip(perm, orders) if ORDERS[oi].index(a) < ORDERS[oi].index(b)]
            if not lits:
                return 0
            if len(lits) == len(perm):
                return 1
            v = self.bool_var(self._name(f"before_{a}{b}"), lambda got: sum(got[x.index] for x in lits))
            m.add(v == sum(lits))
            return v

        def outside_some(a: str, deps: tuple[str, ...]):
            return self.bool_or([self.bool_and(before(a, l), bigs[l], f"ab_{a}{l}") for l in deps],
                                f"cond_{a}")

        g, PQ, RS, Cg, Kg, pw = k.g, k.PQ, k.RS, k.Cg, k.Kg, k.pw
        one = self.const(1)
        nxy = self.prod(nx, ny, "nxy")
        # conv outputs computed (a constant PQ without a fused pool)
        PQc = self.prod(CX, CY, "pqc")

        # ---- compute ----
        comp = {}
        macs = {}
        buf = {}
        if "WS" in dfs:
            cbkb = self.prod(CB, KB, "cbkb")
            ws_a = self.lin([(k.Lw, nxy), (1, PQc)], 0, "ws_a")
            ws_p = self.prod(cbkb, ws_a, "ws_p")
            comp["WS"] = self.lin([(g * RS, ws_p)], k.fill, "comp_ws")
            macs["WS"] = self.lin([(g * Kg * Cg * RS, PQc)], 0, "macs_ws")
            pqkb = self.prod(PQc, KB, "pqkb")
            pqcb = self.prod(PQc, CB, "pqcb")
            in_terms = [(g * RS * Kg, PQc)] if k.cw else [(g * RS * Cg, pqkb)]
            buf["WS"] = self.lin([(g * k.Wg, nxy)] + in_terms
                                 + [(g * pw * 2 * RS * Kg, pqcb), (-g * pw * Kg, PQc)], 0, "buf_ws")
        if "OS" in dfs:
            xyb = self.prod(XB, YB, "xyb")
            os_p = self.prod(xyb, ZP, "os_p")
            comp["OS"] = self.lin([(g * Kg, os_p)], k.fill + k.D_final, "comp_os")
            macs["OS"] = self.lin([(g * Kg, self.prod(PQc, Z, "pqz"))], 0, "macs_os")
            xyz = self.prod(xyb, Z, "xyz")
            xwyw = self.prod(XW, YW, "xwyw")
            buf["OS"] = self.lin([(g * k.has_w * Kg, xyz), (g * Kg * Cg * k.in_mult, xwyw),
                                  (g * pw * Kg * 2, self.prod(PQc, nc, "pqnc")), (-g * pw * Kg, PQc)],
                                 0, "buf_os")

        # ---- reuse ----
        if k.cw:
            fI = one
        else:
            fI = self.select(outside_some("k", ("x", "y", "c")), nk, one, "fI")
        fx = self.select(outside_some("x", ("c", "k")), nx, one, "fx")
        fy = self.select(outside_some("y", ("c", "k")), ny, one, "fy")
        fW = self.prod(fx, fy, "fW")
        v = self.select(outside_some("c", ("x", "y", "k")), nc, one, "v")

        # ---- DRAM traffic and transfers ----
        iyx = self.prod(IY, IX, "iyx")
        in_p = self.prod(fI, iyx, "in_p")
        in_ch = Kg if k.cw else Cg
        # psums of the computed outputs: 2 * g * Kg * PQc * pw * (v - 1)
        dram = self.lin([(g * in_ch * k.in_dram, in_p), (g * k.Wg, fW),
                         (2 * g * Kg * pw, self.prod(PQc, v, "pqv")), (-2 * g * Kg * pw, PQc)],
                        g * Kg * PQ * (k.out_dram + k.res_dram), "dram")
        nxy_ch = self.prod(nxy, nk if k.cw else nc, "nxy_ch")
        t_in = self.prod(nxy_ch, fI, "t_in")
        nck = self.prod(nc, nk, "nck")
        t_w = self.prod(nck, fW, "t_w")
        nxyk = self.prod(nxy, nk, "nxyk")
        t_out = self.prod(nxyk, v, "t_out")
        # outputs: (v - 1 + out_dram) writes per block, psum re-reads (v - 1)
        # residual: one transfer per output tile (res_dram)
        transfers = self.lin([(g * k.in_dram, t_in), (g * k.has_w, t_w), (2 * g, t_out),
                              ((k.out_dram + k.res_dram - 2) * g, nxyk)], 0, "transfers")
        q_dram = self.cdiv(dram, k.bw_num, k.bw_den, "q_dram")
        dma = self.lin([(k.lat, transfers), (1, q_dram)], 0, "dma")

        # ---- footprint ----
        iyxm = self.prod(IYm, IXm, "iyxm")
        fp_in = self.prod(iyxm, tk if k.cw else tc, "fp_in")
        tkc = self.prod(tk, tc, "tkc")
        txy = self.prod(tx, ty, "txy")
        txyk = self.prod(txy, tk, "txyk")
        cxyk = self.prod(self.prod(CXm, CYm, "cxym"), tk, "cxyk")   # = txyk without a pool
        fp = self.lin([(k.in_dram, fp_in), (k.w_kc, tkc), (pw, cxyk), (k.res_dram + k.pool, txyk)],
                      0, "fp")
        m.add(k.copies * fp.expr <= k.buffer_words)
        pro_w = self.lin([(k.in_dram, fp_in), (k.w_kc, tkc)], 0, "pro_w")
        pro = self.lin([(1, self.cdiv(pro_w, k.bw_num, k.bw_den, "pro_q"))],
                       k.lat * (k.in_dram + k.has_w), "pro")
        epi = self.lin([(k.out_dram, self.cdiv(txyk, k.bw_num, k.bw_den, "epi_q"))],
                       k.lat * k.out_dram, "epi")

        # ---- select the dataflow ----
        if len(dfs) == 2:
            compute = self.select(os, comp["OS"], comp["WS"], "compute")
        else:
            compute = comp[dfs[0]]

        # ---- total cycles ----
        if k.double:
            busy = self.lin([(1, compute), (1, pro), (1, epi)], 0, "busy")
            hi = max(busy.hi, dma.hi)
            lo = max(busy.lo, dma.lo)
            if self.cycles_hi is not None:
                hi = min(hi, self.cycles_hi)
            cycles = self.var(lo, hi, "cycles", lambda vals: max(value(busy, vals), value(dma, vals)))
            m.add_max_equality(cycles.expr, [busy.expr, dma.expr])
        else:
            cycles = self.lin([(1, compute), (1, dma)], 0, "cycles")

        # ---- energy ----
        per_mac = {"WS": k.e_mac + k.e_rf * k.ws_rf + k.e_array * k.ws_arr,
                   "OS": k.e_mac + k.e_rf * k.os_rf + k.e_array * k.os_arr}
        # the epilogue adds of a fused residual: one add and one buffer read per output
        adds = g * Kg * PQ * k.res + k.pool_ops     # and a fused pool's window operations
        # a fused activation's operations: no buffer access (the output path)
        en = {df: self.lin([(per_mac[df], macs[df]), (k.e_buffer, buf[df]),
                            (k.e_buffer + k.e_dram, dram)],
                           (k.e_mac + k.e_buffer) * adds + k.e_mac * k.act_ops,
                           f"energy_{df}") for df in dfs}
        if len(dfs) == 2:
            energy = self.select(os, en["OS"], en["WS"], "energy")
        else:
            energy = en[dfs[0]]
        if self.energy_hi is not None and not isinstance(energy.expr, int):
            m.add(energy.expr <= self.energy_hi)
            energy = Var(energy.expr, energy.lo, min(energy.hi, self.energy_hi))

        # ---- tie-break key: (dataflow, order, tx, ty, tc, tk) in mixed radix ----
        radix = [len(cand[d]) for d in LOOPS]
        terms = []
        w = 1
        for d, r in reversed(list(zip(LOOPS, radix))):
            terms.append((w, sum(i * b for i, b in enumerate(onehot[d]))))
            w *= r
        terms.append((w, sum(oi * p for oi, p in zip(orders, perm))))
        w *= len(ORDERS)
        if len(dfs) == 2:
            terms.append((w, os))
            w *= 2
        tie = sum(c * e for c, e in terms)

        lm = LayerModel(m, cand, onehot, perm, orders, os, dfs, cycles, energy, tie, w - 1)
        lm.extra = {"compute": compute, "dma": dma, "dram": dram, "fp": fp}
        lm.defs = self.defs
        return lm


def build_model(layer: Layer, target: Target, cycles_hi: int | None = None,
                energy_hi: int | None = None) -> LayerModel:
    """The CP-SAT model of ``layer`` on ``target`` (optionally with upper bounds on the
    cycles and energy variables, used to keep the EDP product within 64 bits)."""
    return _Builder(layer, target, cycles_hi, energy_hi).build()


def decode(lm: LayerModel, solver: cp_model.CpSolver) -> tuple[str, tuple[str, ...], dict]:
    """Dataflow, order and tile sizes of the solver's current solution."""
    tiles = {}
    for d in LOOPS:
        (j,) = [i for i, b in enumerate(lm.onehot[d]) if solver.boolean_value(b)]
        tiles[d] = lm.cand[d][j]
    (oi,) = [oi for oi, p in zip(lm.orders, lm.perm) if solver.boolean_value(p)]
    if isinstance(lm.os, int):
        df = "OS" if lm.os else "WS"
    else:
        df = "OS" if solver.boolean_value(lm.os) else "WS"
    assert df in DATAFLOWS
    return df, ORDERS[oi], tiles


# ---------------------------------------------------------------------------------------
# the solver boundary (the per-layer solver and the network planner)
# ---------------------------------------------------------------------------------------
class SolveFailed(Exception):
    """CP-SAT raised inside a solve; the message is one line naming what it raised."""


def run(solver: cp_model.CpSolver, model: cp_model.CpModel) -> int:
    """``solver.solve(model)``: its status, or :class:`SolveFailed` for anything CP-SAT
    raises (an interrupt is not caught)."""
    try:
        return solver.solve(model)
    except Exception as exc:  # noqa: BLE001 - the one place a CP-SAT exception is turned into ours
        raise SolveFailed(f"CP-SAT raised {type(exc).__name__}: {one_line(str(exc))}") from exc


def set_hint(model: cp_model.CpModel, values: list[int] | None) -> None:
    """Replace the model's hint by ``values`` (every variable's, by proto index), or by
    none.  Rule: CP-SAT is only ever given a complete hint.  Its presolve completes a
    partial hint as it rewrites the model, and OR-Tools 9.15 can throw while doing so
    (``IndexError: absl::btree_map::at``, docs/scheduler.md "Hints")."""
    model.clear_hints()
    if values is None:
        return
    if len(values) != len(model.proto.variables):
        raise ValueError(f"a hint of {len(values)} values for {len(model.proto.variables)} variables")
    h = model.proto.solution_hint
    h.vars.extend(range(len(values)))
    h.values.extend(values)


def solution(solver: cp_model.CpSolver) -> list[int]:
    """Every variable's value (by proto index) in the solver's last solution."""
    return list(solver.response_proto.solution)


def complete_by_search(model: cp_model.CpModel, known: dict[int, int],
                       time_limit: float | None) -> list[int] | None:
    """Every variable's value (by proto index) in some solution of ``model`` that gives the
    variables in ``known`` their values (a copy of the model, those fixed, no objective,
    no hint), or None when none is found within ``time_limit``: a complete hint for a model
    whose variables have no definitions (the network planner's)."""
    probe = model.clone()
    probe.clear_hints()
    probe.clear_objective()
    for i, v in known.items():
        probe.add(probe.get_int_var_from_proto_index(i) == v)
    s = cp_model.CpSolver()
    s.parameters.num_workers = 1
    s.parameters.catch_sigint_signal = False
    if time_limit is not None:
        s.parameters.max_time_in_seconds = max(0.001, time_limit)
    if run(s, probe) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return solution(s)
