"""Pipeline strings and the pass manager (MLIR's ``-pass-pipeline`` and instrumentation).

Grammar: ``pipeline := item ("," item)*``, ``item := NAME ["{" opt ("," opt)* "}"]``,
``opt := KEY "=" VALUE``.  A NAME is a registered pass or a named pipeline (``default``),
which expands in place.  Unknown names, unknown options and values the option's
declaration refuses (:meth:`.options.Option.parse`: its type, choices, bounds) are
rejected at parse time, before any pass runs.

The manager verifies the IR after every pass, and on request prints the IR as imported
(before any pass), after all or after named passes, per-pass wall time and per-pass statistics, all to a diagnostics stream
(stderr), so stdout carries only the requested output.
"""
from __future__ import annotations

import difflib
import re
import sys
import time
from typing import IO

from ..diagnostics import SqnxtError, UsageError
from ..ir.graph import Graph
from ..ir.printer import print_graph
from ..ir.verifier import verify
from .options import options_of
from .pass_base import Pass, PassContext

_ITEM = re.compile(r"\s*([A-Za-z][A-Za-z0-9_\-]*)\s*(\{([^{}]*)\})?\s*(,|$)")


def _registry():
    from ..passes import PASSES, PIPELINES  # the passes package registers itself
    return PASSES, PIPELINES


def _suggest(name: str, names) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_pipeline(text: str, _depth: int = 0) -> list[Pass]:
    """Parse a pipeline string into pass instances; raise UsageError on any problem."""
    passes, pipelines = _registry()
    text = text.strip()
    if not text:
        return []
    if text.endswith(","):
        raise UsageError(f"bad pipeline string: empty item after the last ',' in '{text}'")
    out: list[Pass] = []
    pos = 0
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            raise UsageError(f"bad pipeline string at column {pos + 1}: '{text[pos:]}'")
        name, opts = m.group(1), m.group(3)
        pos = m.end()
        if name in pipelines and name not in passes:
            if opts:
                raise UsageError(f"named pipeline '{name}' takes no options")
            if _depth > 4:
                raise UsageError(f"named pipeline '{name}' expands recursively")
            out.extend(parse_pipeline(pipelines[name], _depth + 1))
            continue
        cls = passes.get(name)
        if cls is None:
            raise UsageError(f"unknown pass '{name}'{_suggest(name, list(passes) + list(pipelines))}"
                             f"; known passes: {', '.join(sorted(passes))}")
        fields = {o.key: o for o in options_of(cls.Options)}
        values = {}
        for item in (opts.split(",") if opts and opts.strip() else []):
            if "=" not in item:
                raise UsageError(f"pass '{name}': option '{item.strip()}' needs a value (key=value)")
            key, raw = (s.strip() for s in item.split("=", 1))
            o = fields.get(key) or fields.get(key.replace("_", "-"))
            if o is None:
                known = ", ".join(sorted(fields)) or "none"
                raise UsageError(f"pass '{name}' has no option '{key}'{_suggest(key, fields)}; "
                                 f"options: {known}")
            values[o.name] = o.parse(name, raw)
        out.append(cls(cls.Options(**values), explicit=frozenset(values)))
    return out


class PassManager:
    """Runs passes in order, verifying after each; optional IR printing, timing, statistics."""

    def __init__(self, passes: list[Pass], *, print_before: bool = False,
                 print_after_all: bool = False, print_after: tuple[str, ...] = (),
                 timing: bool = False, statistics: bool = False, verify_each: bool = True,
                 stream: IO[str] | None = None):
        self.passes = passes
        self.print_before = print_before
        self.print_after_all = print_after_all
        self.print_after = set(print_after)
        self.timing = timing
        self.statistics = statistics
        self.verify_each = verify_each
        self.stream = stream
        self.times: list[tuple[str, float]] = []
        known = {p.name for p in passes}
        unknown = self.print_after - known
        if unknown:
            raise UsageError(f"--print-ir-after names pass(es) not in the pipeline: "
                             f"{', '.join(sorted(unknown))}; pipeline: "
                             f"{', '.join(p.name for p in passes) or '(empty)'}")

    @property
    def _out(self) -> IO[str]:
        return self.stream or sys.stderr

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        ctx = ctx or PassContext()
        done: list[str] = []
        if self.print_before:
            self._out.write("// -----// IR Dump Before any pass //----- //\n")
            self._out.write(print_graph(graph))
        for p in self.passes:
            t0 = time.perf_counter()
            try:
                p.run(graph, ctx)
                if self.verify_each:
                    verify(graph, after=p.name)
            except SqnxtError as exc:
                ran = ", ".join(done) or "none"
                exc.message = f"{exc.message} [in pass '{p.name}'; passes completed: {ran}]"
                raise
            self.times.append((p.name, time.perf_counter() - t0))
            done.append(p.name)
            if self.print_after_all or p.name in self.print_after:
                self._out.write(f"// -----// IR Dump After {p.name} //----- //\n")
                self._out.write(print_graph(graph))
        if self.timing:
            self.write_timing()
        if self.statistics:
            self.write_statistics()
        return graph

    def write_timing(self) -> None:
        total = sum(t for _, t in self.times) or 1e-12
        o = self._out
        o.write("===-------------------------------------------------------------------------===\n")
        o.write("                         ... Pass execution timing report ...\n")
        o.write("===-------------------------------------------------------------------------===\n")
        o.write(f"  Total Execution Time: {total:.4f} seconds\n\n")
        o.write("   ---Wall Time---  --- Name ---\n")
        for name, t in self.times:
            o.write(f"   {t:.4f} ({100 * t / total:5.1f}%)  {name}\n")
        o.write(f"   {total:.4f} (100.0%)  Total\n")

    def write_statistics(self) -> None:
        o = self._out
        o.write("===-------------------------------------------------------------------------===\n")
        o.write("                         ... Pass statistics report ...\n")
        o.write("===-------------------------------------------------------------------------===\n")
        for p in self.passes:
            o.write(f"{p.name}\n")
            if not p.stats:
                o.write("  (no changes)\n")
            for key, n in sorted(p.stats.items()):
                o.write(f"  ({n}) {key}\n")
