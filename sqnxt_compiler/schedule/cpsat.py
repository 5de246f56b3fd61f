"""The CP-SAT model of one layer's mapping space: the cost model's own code run over
symbolic values.

Decision variables: a one-hot choice of tile size per loop (over the candidate tile sizes
of :mod:`.space`, union of both dataflows), a one-hot choice of the tile-loop order (one
per class of equivalent orders) and the dataflow.  The builder passes
:func:`sqnxt_compiler.cost.model.cost_terms` per-loop tables whose entries are
:class:`Sym` values (linear expressions of the one-hots) and a ``before(a, b)`` function
answering with the model's literals in place of a loop order; the arithmetic of
``cost_terms`` over them *is* the model (:class:`Sym`: products, ceiling divisions,
maxima, selections), so no formula of the cost model is restated here
(docs/scheduler.md, "The CP-SAT model").  The tests check that the solver's cycles and
energy equal ``evaluate`` exactly and its answers the exhaustive oracle's.

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
from sqnxt_compiler.cost.model import consts, cost_terms
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


class Sym:
    """A value of the model: ``const + sum(coef * x_i)`` over its integer variables (by
    proto index), with bounds.  Its operators build the model: ``+``, ``-`` and a constant
    factor stay linear; a product of two Syms is an ``AddMultiplicationEquality`` (a side
    with two or more variables gets a variable first, a constant offset is distributed);
    :meth:`ceil_div`, :meth:`maximum` and a :class:`Lit`'s ``select`` add their
    constraints.  So :func:`sqnxt_compiler.cost.model.cost_terms`, run over Syms, *is* the
    model: the cost formulas are stated once.  A Sym with no variable left is an int."""

    __slots__ = ("b", "terms", "const", "lo", "hi")

    def __init__(self, b: "_Builder", terms: dict, const: int, lo: int, hi: int):
        self.b, self.terms, self.const, self.lo, self.hi = b, terms, const, lo, hi

    def key(self) -> tuple:
        return tuple(sorted(self.terms.items())), self.const

    def __add__(self, o):
        o = _forced(o)
        if isinstance(o, Sym):
            terms = dict(self.terms)
            for i, c in o.terms.items():
                terms[i] = terms.get(i, 0) + c
            return self.b.linear(terms, self.const + o.const)
        if o == 0:
            return self
        return Sym(self.b, self.terms, self.const + o, self.lo + o, self.hi + o)

    __radd__ = __add__

    def __neg__(self):
        return self * -1

    def __sub__(self, o):
        return self + (-1) * o

    def __rsub__(self, o):
        return o + (-1) * self

    def __mul__(self, o):
        o = _forced(o)
        if isinstance(o, Sym):
            return self.b.times(self, o)
        if o == 1:
            return self
        o = int(o)
        if o == 0:
            return 0
        lo, hi = (self.lo * o, self.hi * o) if o > 0 else (self.hi * o, self.lo * o)
        return Sym(self.b, {i: c * o for i, c in self.terms.items()}, self.const * o, lo, hi)

    __rmul__ = __mul__

    def ceil_div(self, d: int):
        """ceil(self / d), d > 0, self >= 0: ``AddDivisionEquality(q, self + d - 1, d)``."""
        return self.b.ceil_div(self, d)

    def maximum(self, a, b):
        """max(a, b) (one of them this Sym): ``AddMaxEquality``."""
        return self.b.maximum(a, b)


class TableSym(Sym):
    """A per-loop table read at the chosen tile size: ``sum(value_j * onehot_j)``.  The one
    comparison ``cost_terms`` makes (``n > 1``: the loop has more than one tile) is the
    literal ``sum(onehot_j for value_j > 1)``."""

    __slots__ = ("vals", "bools")

    def __gt__(self, c: int):
        return self.b.table_gt(self, c)


class Lit:
    """A Boolean of the model (a loop-order condition or ``n > 1``): ``&``, ``|``
    (:meth:`any_of`) and :meth:`select` build ``AddMultiplicationEquality`` on Booleans,
    ``AddMaxEquality`` and two enforced equalities.  Constants are plain bools."""

    __slots__ = ("b", "var")

    def __init__(self, b: "_Builder", var):
        self.b, self.var = b, var

    def __and__(self, o):
        if isinstance(o, Lit):
            return self.b.bool_and(self, o)
        return self if o else False

    __rand__ = __and__

    def __or__(self, o):
        return self.any_of([self, o])

    __ror__ = __or__

    def any_of(self, xs: list):
        return self.b.bool_or(xs)

    def select(self, a, b):
        return self.b.select(self, a, b)


class MaxNode:
    """max(a_, b_) not yet in the model: :meth:`force` adds it (``AddMaxEquality``); any
    arithmetic on it forces it first.  :meth:`_Builder.select` looks inside."""

    __slots__ = ("bld", "a_", "b_", "_sym")

    def __init__(self, bld: "_Builder", a, b):
        self.bld, self.a_, self.b_, self._sym = bld, a, b, None

    def force(self):
        if self._sym is None:
            self._sym = self.bld.make_max(_forced(self.a_), _forced(self.b_))
        return self._sym

    def __add__(self, o):
        return self.force() + o

    __radd__ = __add__

    def __mul__(self, o):
        return self.force() * o

    __rmul__ = __mul__

    def __sub__(self, o):
        return self.force() - o

    def __rsub__(self, o):
        return o - self.force()


def _forced(x):
    """A MaxNode made a model variable; anything else as it is."""
    return x.force() if isinstance(x, MaxNode) else x


def _key(x):
    x = _forced(x)
    return x.key() if isinstance(x, Sym) else x


def _lo(x) -> int:
    return x.lo if isinstance(x, Sym) else int(x)


def _hi(x) -> int:
    return x.hi if isinstance(x, Sym) else int(x)


def _val(x, vals: list[int]) -> int:
    """The value of an int, a Sym or a Lit when the model's variables have ``vals``."""
    if isinstance(x, Sym):
        return x.const + sum(c * vals[i] for i, c in x.terms.items())
    if isinstance(x, Lit):
        return vals[x.var.index]
    return int(x)


class _Builder:
    """Runs :func:`~sqnxt_compiler.cost.model.cost_terms` over the model's symbolic values
    and adds the decision variables, the capacity constraint and the tie-break key.  Every
    node (product, division, selection, max, Boolean and/or, materialized sum) is made
    once per distinct operands (so the terms both dataflows share, and a term used twice,
    are one variable), and gets a definition: a function of earlier variables' values."""

    def __init__(self, layer: Layer, target: Target, cycles_hi: int | None = None,
                 energy_hi: int | None = None):
        self.L, self.T = layer, target
        self.k = consts(layer, target)
        self.sp = get_space(layer, target)
        self.m = cp_model.CpModel()
        self.cycles_hi, self.energy_hi = cycles_hi, energy_hi
        self.n = 0
        self.defs: dict = {}       # proto index -> fn(values): LayerModel.defs
        self.vars: dict = {}       # proto index -> CP-SAT variable
        self.bounds: dict = {}     # proto index -> (lo, hi)
        self.memo: dict = {}       # (node kind, operand keys) -> Sym / Lit
        self.tables: dict = {}     # proto index of a table read -> (values, one-hots)

    # ---- nodes -------------------------------------------------------------------
    def _name(self, s: str) -> str:
        self.n += 1
        return f"{s}_{self.n}"

    def new_var(self, lo: int, hi: int, name: str, fn, cls=Sym) -> Sym:
        """A new variable in [lo, hi] whose value is ``fn(values)`` (its definition)."""
        if hi > INT_MAX or lo < -INT_MAX:
            raise OverflowError(f"{name}: bounds [{lo}, {hi}] too large for CP-SAT")
        v = self.m.new_int_var(lo, hi, self._name(name))
        self.defs[v.index] = fn
        self.vars[v.index] = v
        self.bounds[v.index] = (lo, hi)
        return cls(self, {v.index: 1}, 0, lo, hi)

    def new_bool(self, name: str, fn) -> Lit:
        v = self.m.new_bool_var(self._name(name))
        self.defs[v.index] = fn
        self.vars[v.index] = v
        self.bounds[v.index] = (0, 1)
        return Lit(self, v)

    def expr(self, s):
        """The CP-SAT linear expression of an int or a Sym."""
        if not isinstance(s, Sym):
            return int(s)
        if len(s.terms) == 1 and s.const == 0:
            (i, c), = s.terms.items()
            return self.vars[i] if c == 1 else c * self.vars[i]
        ids = list(s.terms)
        return cp_model.LinearExpr.weighted_sum([self.vars[i] for i in ids],
                                                [s.terms[i] for i in ids]) + s.const

    def linear(self, terms: dict, const: int):
        """const + sum(coef * x_i), zero coefficients dropped; an int when none is left."""
        terms = {i: c for i, c in terms.items() if c}
        if not terms:
            return const
        lo = hi = const
        for i, c in terms.items():
            a, b = self.bounds[i]
            lo += c * a if c > 0 else c * b
            hi += c * b if c > 0 else c * a
        return Sym(self, terms, const, lo, hi)

    def single(self, s: Sym) -> Sym:
        """``s`` as one variable with coefficient 1 (a new variable equal to it when it has
        several, or a scaled or shifted one)."""
        if len(s.terms) == 1 and s.const == 0 and next(iter(s.terms.values())) == 1:
            return s
        key = ("sum", s.key())
        hit = self.memo.get(key)
        if hit is None:
            hit = self.new_var(s.lo, s.hi, "sum", lambda vals: _val(s, vals))
            self.m.add(self.expr(hit) == self.expr(s))
            self.memo[key] = hit
        return hit

    def times(self, a: Sym, b: Sym):
        """a * b: (c_a x + k_a)(c_b y + k_b) = c_a c_b xy + c_a k_b x + k_a c_b y + k_a k_b,
        xy one ``AddMultiplicationEquality`` (a side of several variables is one variable
        first)."""
        if len(a.terms) > 1:
            a = self.single(a)
        if len(b.terms) > 1:
            b = self.single(b)
        (ia, ca), = a.terms.items()
        (ib, cb), = b.terms.items()
        i, j = min(ia, ib), max(ia, ib)
        key = ("prod", i, j)
        xy = self.memo.get(key)
        if xy is None:
            (li, hi_), (lj, hj) = self.bounds[i], self.bounds[j]
            corners = (li * lj, li * hj, hi_ * lj, hi_ * hj)
            xy = self.new_var(min(corners), max(corners), "prod", lambda vals: vals[i] * vals[j])
            self.m.add_multiplication_equality(self.vars[xy_index(xy)], [self.vars[i], self.vars[j]])
            self.memo[key] = xy
        out = (ca * cb) * xy
        if b.const:
            out = out + (ca * b.const) * Sym(self, {ia: 1}, 0, *self.bounds[ia])
        if a.const:
            out = out + (a.const * cb) * Sym(self, {ib: 1}, 0, *self.bounds[ib]) + a.const * b.const
        return out

    def ceil_div(self, a: Sym, d: int):
        """ceil(a / d) for a >= 0: q = (a + d - 1) / d, ``AddDivisionEquality`` (which
        truncates: the same for the non-negative counts the cost model divides; a bound
        below 0 is only the interval arithmetic's, e.g. of ``x * (v - 1)`` distributed)."""
        if d == 1:
            return a
        tab = self._table_of(a)
        if tab is not None:                 # a table read: the quotient is a table too (linear)
            vals, bools = tab
            return self.table_var([_trunc_div(v + d - 1, d) for v in vals], bools, "cdiv")
        shifted = self.single(a + (d - 1))
        key = ("cdiv", shifted.key(), d)
        hit = self.memo.get(key)
        if hit is None:
            (i,) = shifted.terms
            hit = self.new_var(_trunc_div(shifted.lo, d), _trunc_div(shifted.hi, d), "cdiv",
                               lambda vals: _trunc_div(vals[i], d))
            self.m.add_division_equality(self.expr(hit), self.vars[i], d)
            self.memo[key] = hit
        return hit

    def _table_of(self, a: Sym):
        """``(values, one-hots)`` when ``a = coef * T + const`` for one table read ``T``
        (its value under each one-hot), else None."""
        if len(a.terms) != 1:
            return None
        (i, c), = a.terms.items()
        t = self.tables.get(i)
        if t is None:
            return None
        vals, bools = t
        return [c * v + a.const for v in vals], bools

    def table_var(self, vals: list[int], bools: list, name: str):
        """``sum(vals_j * onehot_j)``: a new table read over the one-hots ``bools`` (an
        int when every value is the same); memoized."""
        if len(set(vals)) == 1:
            return vals[0]
        key = ("table", tuple(vals), tuple(b.index for b in bools))
        hit = self.memo.get(key)
        if hit is None:
            hit = self.new_var(min(vals), max(vals), name,
                               lambda got: sum(v * got[b.index] for v, b in zip(vals, bools)), TableSym)
            hit.vals, hit.bools = vals, bools
            self.m.add(self.expr(hit) == cp_model.LinearExpr.weighted_sum(bools, vals))
            (i,) = hit.terms
            self.tables[i] = (vals, bools)
            self.memo[key] = hit
        return hit

    def maximum(self, a, b) -> "MaxNode":
        """max(a, b), deferred (:class:`MaxNode`): made an ``AddMaxEquality`` when used,
        so that a selection between two maxima with a common operand selects inside."""
        return MaxNode(self, a, b)

    def make_max(self, a, b):
        """max(a, b): ``AddMaxEquality`` over the two as variables."""
        a = self.single(a) if isinstance(a, Sym) else a
        b = self.single(b) if isinstance(b, Sym) else b
        key = ("max", _key(a), _key(b))
        hit = self.memo.get(key)
        if hit is None:
            hit = self.new_var(max(_lo(a), _lo(b)), max(_hi(a), _hi(b)), "max",
                               lambda vals: max(_val(a, vals), _val(b, vals)))
            self.m.add_max_equality(self.expr(hit), [self.expr(a), self.expr(b)])
            self.memo[key] = hit
        return hit

    def select(self, cond: Lit, a, b):
        """cond ? a : b: two equalities enforced by ``cond`` and its negation, over the
        parts that differ (``cond ? p + a' : p + b'`` is ``p + (cond ? a' : b')``, and
        ``cond ? max(a', d) : max(b', d)`` is ``max(cond ? a' : b', d)``)."""
        if isinstance(a, MaxNode) and isinstance(b, MaxNode):
            if _key(a.b_) == _key(b.b_):
                return MaxNode(self, self.select(cond, a.a_, b.a_), a.b_)
            if _key(a.a_) == _key(b.a_):
                return MaxNode(self, a.a_, self.select(cond, a.b_, b.b_))
        a, b = _forced(a), _forced(b)
        if _key(a) == _key(b):
            return a
        common = 0
        if isinstance(a, Sym) and isinstance(b, Sym):
            shared = {i: c for i, c in a.terms.items() if b.terms.get(i) == c}
            if shared:
                common = self.linear(shared, 0)
                a, b = a - common, b - common
        key = ("select", cond.var.index, _key(a), _key(b))
        hit = self.memo.get(key)
        if hit is None:
            hit = self.new_var(min(_lo(a), _lo(b)), max(_hi(a), _hi(b)), "select",
                               lambda vals: _val(a, vals) if vals[cond.var.index] else _val(b, vals))
            self.m.add(self.expr(hit) == self.expr(a)).only_enforce_if(cond.var)
            self.m.add(self.expr(hit) == self.expr(b)).only_enforce_if(cond.var.Not())
            self.memo[key] = hit
        return common + hit

    def bool_and(self, a: Lit, b: Lit) -> Lit:
        i, j = sorted((a.var.index, b.var.index))
        key = ("and", i, j)
        hit = self.memo.get(key)
        if hit is None:
            hit = self.new_bool("and", lambda vals: vals[i] * vals[j])
            self.m.add_multiplication_equality(hit.var, [self.vars[i], self.vars[j]])
            self.memo[key] = hit
        return hit

    def bool_or(self, xs: list):
        """OR of literals and bools (constants folded): ``AddMaxEquality``."""
        if any(x is True for x in xs if not isinstance(x, Lit)):
            return True
        lits = sorted({x.var.index for x in xs if isinstance(x, Lit)})
        if not lits:
            return False
        if len(lits) == 1:
            return Lit(self, self.vars[lits[0]])
        key = ("or", tuple(lits))
        hit = self.memo.get(key)
        if hit is None:
            hit = self.new_bool("or", lambda vals: max(vals[i] for i in lits))
            self.m.add_max_equality(hit.var, [self.vars[i] for i in lits])
            self.memo[key] = hit
        return hit

    def table_gt(self, t: TableSym, c: int):
        """n > c of a table: the sum of the one-hots whose value exceeds c."""
        flags = [1 if v > c else 0 for v in t.vals]
        if all(flags):
            return True
        if not any(flags):
            return False
        key = ("gt", tuple(b.index for b in t.bools), c)
        hit = self.memo.get(key)
        if hit is None:
            bools = [b for f, b in zip(flags, t.bools) if f]
            hit = self.new_bool("big", lambda vals: sum(vals[b.index] for b in bools))
            self.m.add(hit.var == sum(bools))
            self.memo[key] = hit
        return hit

    def as_var(self, s, name: str) -> Var:
        """An int or Sym as a :class:`Var` (one variable, or a constant)."""
        s = _forced(s)
        if not isinstance(s, Sym):
            return Var(int(s), int(s), int(s))
        s = self.single(s)
        return Var(self.vars[xy_index(s)], s.lo, s.hi)

    # ---- the model -----------------------------------------------------------------
    def build(self) -> LayerModel:
        k, sp, m = self.k, self.sp, self.m
        dfs = sp.dataflows
        cand = {d: sorted(set().union(*(sp.cands[df][d] for df in dfs))) for d in LOOPS}
        onehot = {d: [m.new_bool_var(f"t{d}_{t}") for t in cand[d]] for d in LOOPS}
        for d in LOOPS:
            m.add_exactly_one(onehot[d])
            for b in onehot[d]:
                self.vars[b.index] = b
                self.bounds[b.index] = (0, 1)

        def table(d: str, idx: int):
            return self.table_var([int(sp.feats[d][t][idx]) for t in cand[d]], onehot[d], f"{d}{idx}")

        X = [table("x", i) for i in range(8)]
        Y = [table("y", i) for i in range(8)]
        Cf = [table("c", i) for i in range(5)]
        Kf = [table("k", i) for i in range(3)]

        # dataflow
        if len(dfs) == 2:
            os = m.new_bool_var("os")
            self.vars[os.index] = os
            self.bounds[os.index] = (0, 1)
        else:
            os = 1 if dfs == ("OS",) else 0

        # order: one representative per class of equivalent orders (exact, see space.py)
        orders = sp.orders
        perm = [m.new_bool_var("order_" + "".join(ORDERS[oi])) for oi in orders]
        m.add_exactly_one(perm)
        for p in perm:
            self.vars[p.index] = p
            self.bounds[p.index] = (0, 1)

        def before(a: str, b: str):
            """Loop a is outside loop b: the sum of the order one-hots where it is."""
            key = ("before", a, b)
            hit = self.memo.get(key)
            if hit is None:
                lits = [p for p, oi in zip(perm, orders) if ORDERS[oi].index(a) < ORDERS[oi].index(b)]
                if len(lits) in (0, len(perm)):
                    hit = bool(lits)
                else:
                    hit = self.new_bool(f"before_{a}{b}", lambda got: sum(got[x.index] for x in lits))
                    m.add(hit.var == sum(lits))
                self.memo[key] = hit
            return hit

        # the cost model's own formulas, once per dataflow (shared terms are shared nodes)
        t = {df: cost_terms(k, df == "OS", X, Y, Cf, Kf, before) for df in dfs}
        t0 = t[dfs[0]]
        m.add(self.expr(t0["fp_total"]) <= k.buffer_words)

        def pick(name: str):
            if len(dfs) == 2:
                return self.select(Lit(self, os), t["OS"][name], t["WS"][name])
            return t[dfs[0]][name]

        compute = self.as_var(pick("compute_cycles"), "compute")
        cycles = self.as_var(pick("total_cycles"), "cycles")
        energy = self.as_var(pick("energy_total"), "energy")
        if self.cycles_hi is not None and not isinstance(cycles.expr, int):
            m.add(cycles.expr <= self.cycles_hi)
            cycles = Var(cycles.expr, cycles.lo, min(cycles.hi, self.cycles_hi))
        if self.energy_hi is not None and not isinstance(energy.expr, int):
            m.add(energy.expr <= self.energy_hi)
            energy = Var(energy.expr, energy.lo, min(energy.hi, self.energy_hi))

        # ---- tie-break key: (dataflow, order, tx, ty, tc, tk) in mixed radix ----
        radix = [len(cand[d]) for d in LOOPS]
        w = 1
        tvars, tcoefs = [], []
        for d, r in reversed(list(zip(LOOPS, radix))):
            tvars += onehot[d]
            tcoefs += [w * i for i in range(len(onehot[d]))]
            w *= r
        tvars += perm
        tcoefs += [w * oi for oi in orders]
        w *= len(ORDERS)
        if len(dfs) == 2:
            tvars.append(os)
            tcoefs.append(w)
            w *= 2
        tie = cp_model.LinearExpr.weighted_sum(tvars, tcoefs)

        lm = LayerModel(m, cand, onehot, perm, orders, os, dfs, cycles, energy, tie, w - 1)
        lm.extra = {"compute": compute, "dma": self.as_var(t0["dma_cycles"], "dma"),
                    "dram": self.as_var(t0["dram_words"], "dram"),
                    "fp": self.as_var(t0["fp_tiles"], "fp")}
        lm.defs = self.defs
        return lm


def xy_index(s: Sym) -> int:
    """The proto index of a Sym that is one variable."""
    (i,) = s.terms
    return i


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
