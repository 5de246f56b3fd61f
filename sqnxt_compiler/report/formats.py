"""The output formats of ``sqnxtc compile`` (``--emit NAME``), in one registry.

Each format has a file name (used when ``-o`` names a directory), whether it needs a
schedule (a ``--target``), and a renderer ``render(ctx) -> str`` where ``ctx`` is an
:class:`EmitContext`.  :func:`sqnxt_compiler.driver.render` renders every requested format
before the caller writes any.  A format may write more files into a directory (``also``:
name and renderer, text or bytes): ``program`` is ``program.s`` (its text, what goes to
standard output) and ``program.bin``.  A format that ``needs_program`` needs a compile
whose pipeline ran ``lower-program``.  Adding a format: docs/extending.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class EmitContext:
    result: Any          # driver.CompileResult (its network schedule and schedule document)
    top: int = 10        # summary: how many layers to show

    @property
    def net(self):
        return self.result.network

    @property
    def doc(self) -> dict:
        return self.result.document


@dataclass(frozen=True)
class Format:
    name: str
    filename: str
    needs_target: bool
    render: Callable[[EmitContext], str]
    help: str
    needs_program: bool = False
    also: tuple = ()          # (file name, render(ctx) -> str | bytes): more files in a directory

    @property
    def filenames(self) -> tuple[str, ...]:
        """Every file the format writes into a directory."""
        return (self.filename,) + tuple(name for name, _ in self.also)


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
    return summary_text(ctx.net, top=ctx.top, simulated=ctx.result.simulated)


def _program_text(ctx: EmitContext) -> str:
    from ..program import format_program
    return format_program(ctx.result.program.program)


def _program_bin(ctx: EmitContext) -> bytes:
    from ..program import encode
    return encode(ctx.result.program.program)


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
register(Format("program", "program.s", True, _program_text,
                "the accelerator's program (lower-program): program.s (text) and program.bin (binary), "
                "in a directory; the text on standard output", needs_program=True,
                also=(("program.bin", _program_bin),)))
