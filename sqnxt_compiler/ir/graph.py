"""The IR graph: operations as nodes of a networkx DiGraph, SSA values on the edges.

Every op is a node (keyed by its integer id, which records creation order); an edge
``producer -> consumer`` exists when the consumer uses a result of the producer, and
carries ``ports``: the operand positions at which it does.  Operand order itself lives
on the op (``op.operands``); the edges are the dependency index the verifier checks
against it.  Passes go through this API, never through raw networkx calls.

Graph inputs are ``sqnxt.input`` ops and the outputs are operands of the single
``sqnxt.output`` terminator, so the graph is one DAG from sources to a sink.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

import numpy as np

from ..diagnostics import Location
from .core import OPS, Op, Value, with_defaults
from .types import TensorType

_NAME_OK = re.compile(r"[^A-Za-z0-9_.\-]")


def nx():
    """networkx, imported when the first graph is built (a command that builds no graph,
    such as ``--help`` or a compile replayed from the output cache, never loads it)."""
    import networkx

    return networkx


class Graph:
    """A dataflow graph of declared ops (one function body, MLIR style)."""

    def __init__(self, name: str = "main", source: str | None = None):
        self.name = name
        self.source = source  # the file (or zoo:NAME) the graph came from, for diagnostics
        self.g = nx().DiGraph()
        #: Function-level attributes (MLIR's ``attributes {...}`` of a func): facts about
        #: the whole graph that passes attach, e.g. the network memory plan (``plan``).
        self.attrs: dict[str, Any] = {}
        self._next_id = 0
        self._names: set[str] = set()
        self._version = 0            # bumped by every structural change (ops/edges)
        self._order: tuple | None = None   # (version, nodes, edges, ops()) of the last ops()

    # ------------------------------------------------------------------ naming
    def unique_name(self, hint: str) -> str:
        """A value name derived from ``hint`` (sanitized), unique in this graph."""
        base = _NAME_OK.sub("_", hint or "v") or "v"
        name, i = base, 1
        while name in self._names:
            name = f"{base}_{i}"
            i += 1
        self._names.add(name)
        return name

    # ------------------------------------------------------------------ building
    def add_op(self, name: str, operands: Iterable[Value] = (), attrs: dict[str, Any] | None = None,
               *, loc: Location | None = None, result_names: Iterable[str] = (),
               result_types: Iterable[TensorType] | None = None) -> Op:
        """Create an op of declared kind ``name``, infer its result types, insert it.

        Attributes are completed with their declared defaults so the IR is explicit.
        """
        if name not in OPS:
            raise KeyError(f"op '{name}' is not declared")
        op = Op(name, list(operands), [], with_defaults(name, dict(attrs or {})),
                loc or Location(), self._next_id)
        self._next_id += 1
        types = list(result_types) if result_types is not None else OPS[name].infer(op)
        hints = list(result_names)
        for i, t in enumerate(types):
            hint = hints[i] if i < len(hints) else (op.loc.node or name.split(".")[-1])
            op.results.append(Value(self.unique_name(hint), t, op, i))
        self.g.add_node(op.id, op=op)
        self._version += 1
        for port, v in enumerate(op.operands):
            self._link(v, op, port)
        return op

    def constant(self, array: np.ndarray, name: str, loc: Location | None = None) -> Value:
        """Add a ``sqnxt.constant`` holding ``array``; return its value."""
        return self.add_op("sqnxt.constant", (), {"value": np.asarray(array)},
                           loc=loc or Location(node=name), result_names=[name]).result

    def _link(self, v: Value, op: Op, port: int) -> None:
        if v.owner is None or v.owner.id not in self.g:
            raise ValueError(f"operand %{v.name} of {op.name} has no producer in the graph")
        src = v.owner.id
        self._version += 1
        if self.g.has_edge(src, op.id):
            self.g.edges[src, op.id]["ports"].append(port)
        else:
            self.g.add_edge(src, op.id, ports=[port])

    def _unlink(self, v: Value, op: Op, port: int) -> None:
        data = self.g.edges[v.owner.id, op.id]
        self._version += 1
        data["ports"].remove(port)
        if not data["ports"]:
            self.g.remove_edge(v.owner.id, op.id)

    def set_operand(self, op: Op, port: int, v: Value) -> None:
        """Make operand ``port`` of ``op`` be ``v``."""
        self._unlink(op.operands[port], op, port)
        op.operands[port] = v
        self._link(v, op, port)

    def set_operands(self, op: Op, values: list[Value]) -> None:
        """Replace all operands of ``op``."""
        for port, v in enumerate(op.operands):
            self._unlink(v, op, port)
        op.operands = list(values)
        for port, v in enumerate(op.operands):
            self._link(v, op, port)

    def replace_all_uses(self, old: Value, new: Value) -> int:
        """Redirect every use of ``old`` to ``new``; return how many uses moved."""
        n = 0
        for user, port in self.uses(old):
            self.set_operand(user, port, new)
            n += 1
        return n

    def erase(self, op: Op) -> None:
        """Remove ``op``; its results must be unused."""
        for r in op.results:
            if self.uses(r):
                raise ValueError(f"cannot erase {op!r}: %{r.name} is still used")
        self.g.remove_node(op.id)
        self._version += 1
        for r in op.results:
            self._names.discard(r.name)

    def erase_dead(self) -> int:
        """Erase ops whose results are all unused (not inputs/outputs); return the count."""
        n = 0
        for op in reversed(self.ops()):
            if op.name in ("sqnxt.output", "sqnxt.input") or not op.results:
                continue
            if all(not self.uses(r) for r in op.results):
                self.erase(op)
                n += 1
        return n

    # ------------------------------------------------------------------ queries
    def clone(self) -> "Graph":
        """A copy with the same op ids, value names, types, attributes and locations, whose
        ops, values and attribute dicts are new; attribute values (constant arrays
        included) are shared, never copied: they are not written in place.  A pass run on
        the clone leaves this graph as it was."""
        new = Graph(self.name, self.source)
        new._next_id, new._names = self._next_id, set(self._names)
        new.attrs = dict(self.attrs)
        values: dict[int, Value] = {}
        for op in self.ops():
            c = Op(op.name, [values[id(v)] for v in op.operands], [], dict(op.attrs), op.loc, op.id)
            for v in op.results:
                values[id(v)] = Value(v.name, v.type, c, v.index)
                c.results.append(values[id(v)])
            new.g.add_node(c.id, op=c)
            for port, v in enumerate(c.operands):
                new._link(v, c, port)
        return new

    def op(self, op_id: int) -> Op:
        return self.g.nodes[op_id]["op"]

    def __contains__(self, op: Op) -> bool:
        return op.id in self.g and self.g.nodes[op.id]["op"] is op

    def ops(self) -> list[Op]:
        """All ops in a deterministic topological order.

        Non-constant ops come in networkx's lexicographical topological order keyed by
        creation id; each constant is placed just before its first user (unused constants
        last), so weights print next to the layer that reads them.  The order is computed
        once per structure (every change to ops or edges bumps a version; the node and
        edge counts guard against edits of ``g`` that bypass the methods) and a fresh list
        is returned each time.
        """
        stamp = (self._version, self.g.number_of_nodes(), self.g.number_of_edges())
        if self._order is None or self._order[0] != stamp:
            self._order = (stamp, self._topological())
        return list(self._order[1])

    def _topological(self) -> list[Op]:
        """:meth:`ops` computed from the graph (its docstring states the order)."""
        nodes = self.g.nodes
        out: list[Op] = []
        placed: set[int] = set()
        for n in nx().lexicographical_topological_sort(self.g, key=lambda n: n):
            op = nodes[n]["op"]
            if op.name == "sqnxt.constant":
                continue
            for v in op.operands:
                if v.owner.name == "sqnxt.constant" and v.owner.id not in placed:
                    placed.add(v.owner.id)
                    out.append(v.owner)
            out.append(op)
        for n in sorted(self.g.nodes):
            if n not in placed and nodes[n]["op"].name == "sqnxt.constant":
                out.append(nodes[n]["op"])
        return out

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops())

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def ops_named(self, name: str) -> list[Op]:
        return [op for op in self.ops() if op.name == name]

    def uses(self, v: Value) -> list[tuple[Op, int]]:
        """(user op, operand port) for every use of ``v``, in user creation order."""
        if v.owner is None or v.owner.id not in self.g:
            return []
        out = []
        for succ in sorted(self.g.successors(v.owner.id)):
            user = self.g.nodes[succ]["op"]
            out.extend((user, p) for p in sorted(self.g.edges[v.owner.id, succ]["ports"])
                       if user.operands[p] is v)
        return out

    def users(self, v: Value) -> list[Op]:
        """Distinct ops that use ``v``."""
        seen, out = set(), []
        for user, _ in self.uses(v):
            if user.id not in seen:
                seen.add(user.id)
                out.append(user)
        return out

    @property
    def inputs(self) -> list[Op]:
        return self.ops_named("sqnxt.input")

    @property
    def output_op(self) -> Op:
        outs = self.ops_named("sqnxt.output")
        if len(outs) != 1:
            raise ValueError(f"graph has {len(outs)} sqnxt.output ops")
        return outs[0]

    @property
    def outputs(self) -> list[Value]:
        return list(self.output_op.operands)

    def count_by_name(self) -> dict[str, int]:
        """How many ops of each kind (sorted by op name)."""
        out: dict[str, int] = {}
        for op in self.ops():
            out[op.name] = out.get(op.name, 0) + 1
        return dict(sorted(out.items()))
