"""The compile flow, one way: frontend -> IR -> pass pipeline -> (schedule) -> outputs.

The CLI parses options and calls these functions; tests call them directly.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import IO, Any

from .frontend import load
from .ir.graph import Graph
from .pipeline import PassContext, PassManager, parse_pipeline


@dataclass
class CompileResult:
    graph: Graph
    model: Any  # the shape-inferred onnx.ModelProto (for the reference run)
    source: str
    pipeline: str
    notes: list[str] = field(default_factory=list)
    target: Any = None


def compile_model(spec: str, *, passes: str = "default", target: Any = None,
                  options: dict[str, Any] | None = None, print_after_all: bool = False,
                  print_after: tuple[str, ...] = (), timing: bool = False,
                  statistics: bool = False, stream: IO[str] | None = None) -> CompileResult:
    """Import ``spec`` (path or ``zoo:NAME``) and run the pipeline ``passes`` on it.

    The pipeline is parsed (and rejected if bad) before the model is read.
    """
    pm = PassManager(parse_pipeline(passes), print_after_all=print_after_all,
                     print_after=print_after, timing=timing, statistics=statistics,
                     stream=stream or sys.stderr)
    imported = load(spec)
    ctx = PassContext(target=target, options=dict(options or {}), notes=imported.notes)
    pm.run(imported.graph, ctx)
    return CompileResult(imported.graph, imported.model, imported.graph.source,
                         pm.pipeline_string(), ctx.notes, target)
