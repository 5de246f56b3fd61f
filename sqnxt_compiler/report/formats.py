"""The output formats of ``sqnxtc compile`` (``--emit NAME``), in one registry.

Each format has a file name (used when ``-o`` names a directory), whether it needs a
schedule (a ``--target``), and a renderer ``render(ctx) -> str`` where ``ctx`` is an
:class:`EmitContext`.  The CLI renders every requested format before writing any.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class EmitContext:
    result: Any          # driver.CompileResult
    net: Any             # report.network.NetworkSchedule, or None without a target
    options: dict        # the schedule options that shaped the result (no cache paths)
    top: int = 10        # summary: how many layers to show
    _doc: Any = field(default=None, repr=False)

    @property
    def doc(self) -> dict:
        """The schedule document (schedule.json), built once: every schedule format is
        rendered from it, so their numbers agree."""
        if self._doc is None:
            from .schedule_json import schedule_dict
            self._doc = schedule_dict(self.net, pipeline=self.result.pipeline, options=self.options)
        return self._doc


@dataclass(frozen=True)
class Format:
    name: str
    filename: str
    needs_target: bool
    render: Callable[[EmitContext], str]
    help: str


def _ir(ctx: EmitContext) -> str:
    from ..ir import print_graph
    return print_graph(ctx.result.graph)


def _schedule(ctx: EmitContext) -> str:
    from .schedule_json import dumps
    return dumps(ctx.doc)


def _loops(ctx: EmitContext) -> str:
    from .loopnest import loopnest_text
    return loopnest_text(ctx.doc, ctx.net)


def _csv(ctx: EmitContext) -> str:
    from .tables import layers_csv
    return layers_csv(ctx.doc)


def _summary(ctx: EmitContext) -> str:
    from .summary import summary_text
    return summary_text(ctx.net, top=ctx.top)


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    FORMATS[fmt.name] = fmt
    return fmt


register(Format("ir", "ir.txt", False, _ir, "the IR after the pipeline"))
register(Format("schedule", "schedule.json", True, _schedule, "versioned JSON schedule"))
register(Format("loops", "loopnest.txt", True, _loops,
                "loop nest per layer: DRAM tile loops, buffer contents, array unrolling"))
register(Format("csv", "layers.csv", True, _csv, "one row per scheduled layer (spreadsheets)"))
register(Format("summary", "summary.txt", True, _summary, "top layers by cycles and totals"))
