"""The IR verifier: structural and per-op rules, run after import and after every pass.

Rules: the graph is a DAG; there is exactly one ``sqnxt.output`` and it has no users;
every op is declared, has an operand count in its declared range and its declared number
of results; attributes match their declarations; result types equal the types the op's
declaration infers from its operands; each op's own ``verify`` rule holds; the dependency
edges agree exactly with the operands; value names are unique.
"""
from __future__ import annotations


from ..diagnostics import InputError, Location, SqnxtError
from .core import OPS, VerifyError, check_attrs
from .graph import Graph, nx as networkx


class IRVerificationError(SqnxtError):
    """The IR broke a rule; it names the op and the rule. Exit code: internal unless set."""


def verify(graph: Graph, *, after: str | None = None) -> None:
    """Check every rule above; raise :class:`IRVerificationError` at the first broken one."""
    where = f" after pass '{after}'" if after else ""
    nx = networkx()
    if not nx.is_directed_acyclic_graph(graph.g):
        cycle = nx.find_cycle(graph.g)
        raise IRVerificationError(f"IR verification failed{where}: cycle through ops {cycle}",
                                  Location(file=graph.source))
    outs = graph.ops_named("sqnxt.output")
    if len(outs) != 1:
        raise IRVerificationError(f"IR verification failed{where}: {len(outs)} sqnxt.output ops "
                                  "(expected 1)", Location(file=graph.source))
    names: set[str] = set()
    for op in graph.ops():
        loc = Location(file=graph.source, node=op.loc.node or f"#{op.id}", op=op.name)
        try:
            _verify_op(graph, op, names)
        except VerifyError as exc:
            raise IRVerificationError(f"IR verification failed{where}: {exc}", loc) from None


def _verify_op(graph: Graph, op, names: set[str]) -> None:
    d = OPS.get(op.name)
    if d is None:
        raise VerifyError(f"undeclared op '{op.name}'")
    lo, hi = d.operands
    n = len(op.operands)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo}..{hi if hi is not None else 'n'}"
        raise VerifyError(f"{n} operands, declared {want}")
    if len(op.results) != d.num_results:
        raise VerifyError(f"{len(op.results)} results, declared {d.num_results}")
    check_attrs(op)
    for port, v in enumerate(op.operands):
        if v.owner is None or v.owner not in graph:
            raise VerifyError(f"operand {port} (%{v.name}) is not produced in this graph")
        edge = graph.g.edges.get((v.owner.id, op.id))
        if edge is None or port not in edge["ports"]:
            raise VerifyError(f"operand {port} (%{v.name}) has no dependency edge")
    for pred in graph.g.predecessors(op.id):
        for port in graph.g.edges[pred, op.id]["ports"]:
            if port >= n or op.operands[port].owner.id != pred:
                raise VerifyError(f"stale dependency edge from op #{pred} at port {port}")
    for i, r in enumerate(op.results):
        if r.owner is not op or r.index != i:
            raise VerifyError(f"result %{r.name} does not point back to its op")
        if r.name in names:
            raise VerifyError(f"value name %{r.name} defined twice")
        names.add(r.name)
    inferred = d.infer(op)
    if [r.type for r in op.results] != list(inferred):
        got = ", ".join(str(r.type) for r in op.results)
        raise VerifyError(f"result types ({got}) differ from inferred "
                          f"({', '.join(str(t) for t in inferred)})")
    if d.verify is not None:
        d.verify(op)
    if op.name == "sqnxt.output" and list(graph.g.successors(op.id)):
        raise VerifyError("sqnxt.output must have no users")
