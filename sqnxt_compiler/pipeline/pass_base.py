"""The pass base class and the context passes run in.

A pass is its options (xDSL's model): a class with a ``name`` (as used in pipeline
strings), a one-line ``summary``, a frozen ``Options`` dataclass (each field an option:
``name{field=value}``, declared once with its type, default, choices, bounds and help:
:mod:`.options`), what it needs (``needs_target``, the passes it ``requires`` before it),
and ``run(graph, ctx)`` that rewrites the graph in place and counts
what it changed in ``self.stats``.  Options reach a pass by one channel only: its
``Options`` instance, built from the pipeline string (and, for the command line's flags,
by :meth:`Pass.with_options`).  The :class:`PassContext` carries what is not an option:
the target, the notes for the user and a progress callback.

:meth:`Pass.spec` writes the pass back as pipeline text with *every* recorded option, so
the pipeline recorded in an output, fed back with ``--passes``, runs the same passes with
the same options.  An option declared ``recorded=False`` (a cache path, the number of
threads: it changes how fast, never what) is left out of the spec.
"""
from __future__ import annotations

import abc
import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from ..ir.graph import Graph
from .options import PassOptions, options_of


@dataclass(frozen=True)
class NoOptions:
    """A pass without options."""


#: ``progress(done, total, layer)``: told before each distinct layer shape is solved and
#: once at the end with ``layer`` None (the schedule pass's protocol).
ProgressFn = Callable[[int, int, Any], None]


@dataclass
class PassContext:
    """What passes may read beyond the graph and their options."""

    target: Any = None                      # targets.Target, or None (graph passes only)
    notes: list[str] = field(default_factory=list)
    progress: ProgressFn | None = None


def format_option(value: Any) -> str:
    """An option value as pipeline text: booleans ``true``/``false``, numbers by ``repr``,
    strings as they are (the parser reads each back to the same value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


class Pass(abc.ABC):
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    #: True for a pass that needs ``ctx.target`` (the pipeline is rejected without one).
    needs_target: ClassVar[bool] = False
    #: The passes that must run before this one (by name): a pipeline without one of them
    #: earlier is rejected (``sqnxt_compiler.driver.build_pipeline``), and the pass checks
    #: the graph for their results when it runs (``plan-memory`` needs ``schedule``).
    requires: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kw):
        """Read (and so check) the options' declaration when the pass is declared; options
        that check themselves (:class:`~.options.PassOptions`) learn the pass's name for
        their messages (one pass per such class)."""
        super().__init_subclass__(**kw)
        options_of(cls.Options)
        opts = cls.Options
        if cls.name and isinstance(opts, type) and issubclass(opts, PassOptions):
            if opts.pass_name and opts.pass_name != cls.name:
                raise TypeError(f"{opts.__name__} are the options of pass '{opts.pass_name}', "
                                f"not of '{cls.name}'")
            opts.pass_name = cls.name

    def __init__(self, options=None, *, explicit: frozenset[str] = frozenset()):
        self.options = options if options is not None else self.Options()
        #: the option fields the pipeline string spelled out (flags may not contradict them)
        self.explicit = frozenset(explicit)
        self.stats: Counter[str] = Counter()

    @abc.abstractmethod
    def run(self, graph: Graph, ctx: PassContext) -> None:
        """Rewrite ``graph`` in place; count changes in ``self.stats``."""

    def recorded_options(self) -> dict[str, Any]:
        """The options that shape the result, in declaration order (no cache paths)."""
        return {o.name: getattr(self.options, o.name) for o in options_of(type(self.options)) if o.recorded}

    def spec(self) -> str:
        """This pass as pipeline text, every recorded option spelled out (``key=value``,
        keys with ``-``): parsing it gives a pass with the same recorded options."""
        opts = [f"{o.key}={format_option(getattr(self.options, o.name))}"
                for o in options_of(type(self.options)) if o.recorded]
        return self.name + ("{" + ",".join(opts) + "}" if opts else "")

    def with_options(self, **values: Any) -> "Pass":
        """A fresh pass of this class with ``values`` replacing options (explicit ones
        stay explicit)."""
        return type(self)(dataclasses.replace(self.options, **values), explicit=self.explicit)
