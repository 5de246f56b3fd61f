"""Rewrite patterns and the one driver that applies them (xDSL's ``pattern_rewriter``).

A graph pass that rewrites local shapes of the IR (canonicalize, the fusions) is a list
of :class:`RewritePattern` objects run by :func:`apply_patterns`:

* A pattern declares, as data, the op names it applies to (``ops``) and how far from the
  op it is offered a match may look (``reach``, below).  The driver offers it only ops of
  those names (xDSL's ``op_type_rewrite_pattern``, by name instead of by class), so a
  pattern never tests the op's name itself.
* ``match_and_rewrite(op, rw)`` either changes the graph through the :class:`Rewriter`
  ``rw`` (the :class:`~sqnxt_compiler.ir.graph.Graph` editing API, recorded) or leaves it
  alone, optionally saying why (``rw.decline(reason)``: counted in the pass statistics).
* Several patterns for one op name are tried in list order until one changes something
  (xDSL's ``GreedyRewritePatternApplier``).

**The driver** (xDSL's ``PatternRewriteWalker``, with a worklist) visits ops in rounds.
The first round visits every op, in the graph's deterministic order
(:meth:`Graph.ops`).  When a rewrite changes the graph, every op that a match may read
differently now is *dirty*: the ops within ``reach`` operand edges (producers or users,
in any mix) of an op that was created, edited (operands, attributes, result type) or
whose results gained or lost a use.  A dirty op later in the round's order is visited in
this round, at its place; any other (one already visited, the op being rewritten, an op
created during the round) waits for the next round, which visits the dirty ops in the
graph's order at that time.  The driver stops when no op is dirty: a fixpoint, since an
op no change came near fails again as it failed before.  This is exactly what sweeping
the whole graph again and again until a sweep changes nothing would do (the same
rewrites, in the same order, so the same op ids and value names), without the sweeps.

``reach`` must cover every op a match reads, counted in operand edges from the op it is
offered: reading an operand's producer (its attributes, its result's type) is 1, that
producer's operand's producer 2; reading a value's uses is reading its producer (a use
gained or lost dirties the producer); reading a user's attributes or operands is 1 step
down.  A constant is read with the op that has it as an operand: its value (and that the
producer is a constant) is free, since a constant is never edited in place (another value
is another operand, an edit of the op that reads it; the rewriter treats an in-place edit
of a constant as an edit of its users), and a match does not read a constant's uses
(whether a weight is shared), so the driver does not look through constants.  Too small
a reach makes the driver stop early; :data:`CHECK_FIXPOINT` (set by the tests) makes it
prove the fixpoint by offering every op to every pattern once more on a copy of the
graph, and fail on any rewrite or any change made behind the rewriter's back.

Statistics: what the patterns count (``rw.count``), and for each op left in the graph
the reason of its last decline by each pattern, once however often it was revisited.

A pattern that keeps changing the graph (each round dirties another round's work) is
stopped after ``max_rounds`` with :class:`RewriteDidNotConverge`, an internal error.
"""
from __future__ import annotations

import abc
from collections import Counter
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from ..diagnostics import Location
from ..ir.core import OPS, Op, Value
from ..ir.graph import Graph
from ..ir.types import TensorType

#: Rounds after which :func:`apply_patterns` gives up (every model the tests and the zoo
#: hold needs at most 2).
MAX_ROUNDS = 64

#: Prove each fixpoint (offer every op to every pattern again, on a copy): the tests set it.
CHECK_FIXPOINT = False


class RewriteDidNotConverge(RuntimeError):
    """The patterns did not reach a fixpoint: they kept rewriting for ``max_rounds``
    rounds, or (:data:`CHECK_FIXPOINT`) one still rewrites after the driver stopped.  A bug
    in a pattern: an internal error."""


class RewritePattern(abc.ABC):
    """A local rewrite: offered an op of one of the names in ``ops``, it matches the op
    (and its neighbourhood, within ``reach`` operand edges) and rewrites it through the
    :class:`Rewriter`, or leaves the graph alone."""

    #: the op names this pattern is offered
    ops: ClassVar[tuple[str, ...]] = ()
    #: how many operand edges from the op it is offered a match reads (module docstring)
    reach: ClassVar[int] = 1

    @abc.abstractmethod
    def match_and_rewrite(self, op: Op, rw: "Rewriter") -> None:
        """Rewrite the graph at ``op`` through ``rw``, or do nothing (``rw.decline`` to
        say why, when the statistics count it)."""

    def __repr__(self) -> str:
        return type(self).__name__


def ops_with_trait(trait: str) -> tuple[str, ...]:
    """The names of the declared ops with ``trait`` (a pattern's ``ops`` declared by a
    trait), sorted."""
    return tuple(sorted(name for name, d in OPS.items() if trait in d.traits))


class Rewriter:
    """The graph editing API for patterns: each call edits ``graph`` as the
    :class:`Graph` method of the same name does, counts as a change, and records the ops
    the change concerns, so the driver revisits their neighbourhoods.  Queries (``uses``,
    ``users``, ``ops``) go to ``rw.graph`` directly."""

    def __init__(self, graph: Graph, stats: Counter):
        self.graph = graph
        self.stats = stats
        self.touched: list[Op] = []          # ops whose state or uses changed
        self.created: list[Op] = []          # ops added
        self.erased: set[int] = set()        # ids of the ops erased (ever: ids are not reused)
        self.done = False                    # the current pattern changed the graph
        self.reason: str | None = None       # the current pattern's decline, if any
        self._position: dict[int, int] = {}

    # --------------------------------------------------------------- bookkeeping
    def _begin(self) -> None:
        self.touched, self.created, self.done, self.reason = [], [], False, None

    def _touch(self, *ops: Op | None) -> None:
        self.done = True
        self.touched.extend(ops)            # (None: a value without producer, skipped later)

    def alive(self, op: Op) -> bool:
        """``op`` is in the graph (was not erased through this rewriter)."""
        return op.id not in self.erased

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to the pass statistic ``key`` (a rewrite made)."""
        self.stats[key] += n

    def decline(self, reason: str) -> None:
        """The pattern does not apply to the op it was offered, for ``reason`` (a
        statistics key).  The statistics count each op left in the graph once, with the
        reason of its last try: an op revisited and declined again is not counted twice.
        Returns None, so a pattern may ``return rw.decline(...)``."""
        self.reason = reason

    def position(self, op: Op) -> int:
        """``op``'s place in this round's order (:meth:`Graph.ops` when the round began;
        ops created since come after every other)."""
        return self._position.get(op.id, len(self._position) + op.id)

    def modified(self, op: Op) -> None:
        """Say that ``op`` was changed in place by other means than these methods."""
        self._edited(op)

    def _edited(self, op: Op) -> None:
        """``op`` changed in place: for a constant, so did every op reading its value."""
        self._touch(op)
        if op.const_value() is not None:
            self._touch(*(u for r in op.results for u in self.graph.users(r)))

    # --------------------------------------------------------------- edits
    def add_op(self, name: str, operands: Iterable[Value] = (), attrs: dict[str, Any] | None = None,
               *, loc: Location | None = None, result_names: Iterable[str] = (),
               result_types: Iterable[TensorType] | None = None) -> Op:
        op = self.graph.add_op(name, operands, attrs, loc=loc, result_names=result_names,
                               result_types=result_types)
        self.created.append(op)
        self._touch(op, *(v.owner for v in op.operands))
        return op

    def constant(self, array: np.ndarray, name: str, loc: Location | None = None) -> Value:
        v = self.graph.constant(array, name, loc)
        self.created.append(v.owner)
        self._touch(v.owner)
        return v

    def set_operand(self, op: Op, port: int, v: Value) -> None:
        self._touch(op, op.operands[port].owner, v.owner)
        self.graph.set_operand(op, port, v)

    def set_operands(self, op: Op, values: Sequence[Value]) -> None:
        old = op.operands
        changed = [i for i in range(max(len(old), len(values)))
                   if i >= len(old) or i >= len(values) or old[i] is not values[i]]
        self._touch(op, *(old[i].owner for i in changed if i < len(old)),
                    *(values[i].owner for i in changed if i < len(values)))
        self.graph.set_operands(op, list(values))

    def replace_all_uses(self, old: Value, new: Value) -> int:
        n = 0
        for user, port in self.graph.uses(old):
            self.set_operand(user, port, new)
            n += 1
        return n

    def erase(self, op: Op) -> None:
        self.graph.erase(op)
        self.erased.add(op.id)
        self._touch(*(v.owner for v in op.operands))

    def erase_dead(self) -> int:
        before = self.graph.ops()
        n = self.graph.erase_dead()
        for op in before:
            if op not in self.graph:
                self.erased.add(op.id)
                self._touch(*(v.owner for v in op.operands))
        return n

    def set_attr(self, op: Op, key: str, value: Any) -> None:
        op.attrs[key] = value
        self._edited(op)

    def update_attrs(self, op: Op, values: dict[str, Any]) -> None:
        op.attrs.update(values)
        self._edited(op)

    def convert(self, op: Op, name: str, attrs: dict[str, Any]) -> None:
        """Make ``op`` an instance of the declared op ``name`` with ``attrs``, keeping its
        operands, results and id (so its place in the program order: a new op would come
        after every op created before it).  The caller keeps the result types valid."""
        op.name = name
        op.attrs = dict(attrs)
        self._edited(op)

    def set_result_types(self, op: Op, types: Sequence[TensorType]) -> None:
        for r, t in zip(op.results, types, strict=True):
            r.type = t
        self._edited(op)


def _dispatch(patterns: Sequence[RewritePattern]) -> tuple[dict[str, list[tuple[int, RewritePattern]]],
                                                            dict[str, int]]:
    """Per op name, its (index, pattern)s in list order, and the largest reach among them."""
    by_name: dict[str, list[tuple[int, RewritePattern]]] = {}
    for i, p in enumerate(patterns):
        if not p.ops:
            raise ValueError(f"pattern {p!r} declares no op names")
        for name in p.ops:
            by_name.setdefault(name, []).append((i, p))
    reach = {name: max(p.reach for _, p in ps) for name, ps in by_name.items()}
    return by_name, reach


def _near(graph: Graph, rw: Rewriter, radius: int) -> list[list[Op]]:
    """The ops within ``radius`` operand edges of an op ``rw`` touched, by distance (each
    once, at its least distance), not through constants (module docstring)."""
    seen: set[int] = set()
    frontier: list[Op] = []
    for op in rw.touched:
        if op is not None and op.id not in seen and rw.alive(op):
            seen.add(op.id)
            frontier.append(op)
    levels = [frontier]
    for _ in range(radius):
        nxt = []
        for op in frontier:
            if op.name == "sqnxt.constant":
                continue
            for v in op.operands:
                if v.owner.id not in seen:
                    seen.add(v.owner.id)
                    nxt.append(v.owner)
            for r in op.results:
                for u, _ in graph.uses(r):
                    if u.id not in seen:
                        seen.add(u.id)
                        nxt.append(u)
        levels.append(nxt)
        frontier = nxt
    return levels


def apply_patterns(graph: Graph, patterns: Sequence[RewritePattern], stats: Counter | None = None,
                   *, max_rounds: int | None = None, name: str = "rewrite") -> int:
    """Apply ``patterns`` to ``graph`` until none applies (the module docstring says in
    which order); count into ``stats`` (``rw.count``, and for each op left in the graph
    the last decline of each pattern); return the number of rounds.  ``name`` (the
    pass) names the patterns in the error raised after ``max_rounds`` rounds that still
    changed the graph (default :data:`MAX_ROUNDS`)."""
    stats = Counter() if stats is None else stats
    max_rounds = MAX_ROUNDS if max_rounds is None else max_rounds
    by_name, reach = _dispatch(patterns)
    rw = Rewriter(graph, stats)
    declined: dict[tuple[int, int], tuple[Op, str | None]] = {}
    dirty: dict[int, Op] | None = None          # None: every op (the first round)
    rounds, last = 0, []
    while dirty is None or any(rw.alive(op) for op in dirty.values()):
        if rounds == max_rounds:
            raise RewriteDidNotConverge(
                f"{name}: the rewrite patterns did not reach a fixpoint in {max_rounds} rounds "
                f"(round {rounds} rewrote {', '.join(f'{p!r} on {o!r}' for p, o in last[:5])}"
                f"{', ...' if len(last) > 5 else ''})")
        rounds += 1
        order = graph.ops()
        rw._position = pos = {op.id: i for i, op in enumerate(order)}
        # the ops some pattern applies to, each with its place (the others are never offered)
        offered = [(i, op) for i, op in enumerate(order) if op.name in by_name]
        pending = [dirty is None] * len(order)
        for i, op in offered:
            pending[i] = pending[i] or op.id in dirty
        # how far to look for dirty ops: the largest reach among the op names present
        radius = max((reach[op.name] for _, op in offered), default=0)
        dirty, last = {}, []
        for i, op in offered:
            if not pending[i] or not rw.alive(op):
                continue
            for k, pattern in by_name[op.name]:
                rw._begin()
                pattern.match_and_rewrite(op, rw)
                if rw.reason is not None or (k, op.id) in declined:
                    declined[(k, op.id)] = (op, rw.reason)
                if not rw.done:
                    continue
                last.append((pattern, op))
                for o in rw.created:
                    radius = max(radius, reach.get(o.name, 0))
                for d, level in enumerate(_near(graph, rw, radius)):
                    for o in level:
                        if d <= reach.get(o.name, -1):
                            j = pos.get(o.id, -1)
                            if j > i:
                                pending[j] = True
                            else:
                                dirty[o.id] = o
                break
    stats.update(reason for op, reason in declined.values() if reason is not None and rw.alive(op))
    if CHECK_FIXPOINT:
        _check_fixpoint(graph, by_name, name)
    return rounds


def _offer_all(graph: Graph, by_name, name: str, *, printed: bool = False) -> None:
    """Offer every op of ``graph`` to its patterns once; raise on a rewrite (or, with
    ``printed``, on any change of the printed graph)."""
    from ..ir.printer import print_graph
    rw = Rewriter(graph, Counter())
    for op in graph.ops():
        for _, pattern in by_name.get(op.name, ()):
            before = print_graph(graph) if printed else None
            rw._begin()
            pattern.match_and_rewrite(op, rw)
            if rw.done:
                raise RewriteDidNotConverge(
                    f"{name}: {pattern!r} still rewrites {op!r} after the driver stopped: "
                    f"its reach ({pattern.reach}) is too small")
            if printed and print_graph(graph) != before:
                raise RewriteDidNotConverge(
                    f"{name}: {pattern!r} changed the graph at {op!r} without the rewriter")


def _check_fixpoint(graph: Graph, by_name, name: str) -> None:
    """Prove the fixpoint: offered every op once more, on a copy of ``graph``, no pattern
    rewrites anything (else its ``reach`` is too small) nor changes the graph behind the
    rewriter's back (a second copy, printed after each offer, names the pattern)."""
    from ..ir.printer import print_graph
    copy = graph.clone()
    _offer_all(copy, by_name, name)
    if print_graph(copy) != print_graph(graph):
        _offer_all(graph.clone(), by_name, name, printed=True)
