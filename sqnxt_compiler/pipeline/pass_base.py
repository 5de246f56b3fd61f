"""The pass base class and the context passes run in.

A pass is a class with a ``name`` (as used in pipeline strings), a one-line ``summary``,
an ``Options`` dataclass (each field an option: ``name{field=value}``), and ``run(graph,
ctx)`` that rewrites the graph in place and counts what it changed in ``self.stats``.
"""
from __future__ import annotations

import abc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..ir.graph import Graph


@dataclass(frozen=True)
class NoOptions:
    """A pass without options."""


@dataclass
class PassContext:
    """What passes may read beyond the graph: the target and the command-line options."""

    target: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Pass(abc.ABC):
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, options=None):
        self.options = options if options is not None else self.Options()
        self.stats: Counter[str] = Counter()

    @abc.abstractmethod
    def run(self, graph: Graph, ctx: PassContext) -> None:
        """Rewrite ``graph`` in place; count changes in ``self.stats``."""

    def spec(self) -> str:
        """This pass as it would appear in a pipeline string (options that differ from defaults)."""
        defaults = self.Options()
        opts = [f"{k}={v}" for k, v in vars(self.options).items() if getattr(defaults, k) != v]
        return self.name + ("{" + ",".join(opts) + "}" if opts else "")
