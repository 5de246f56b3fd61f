"""The compile flow, owned here: frontend -> IR -> pass pipeline -> network schedule -> outputs.

Every user of the flow (the command line, ``compare``, ``report``, ``regress``, the
benchmarks and the tests) calls these functions; none restates the flow.

* :func:`build_pipeline` turns a pipeline string, a target and the command line's schedule
  flags into pass instances.  A pass is its options: a flag sets the schedule pass's
  option, and a flag that contradicts an option the pipeline string spells out is a usage
  error.  With a target the pipeline ends in ``schedule`` unless a pass of it needs the
  target already, followed by ``plan-memory`` when the target's ``activation_home`` is
  ``planned``; without one a pass that needs a target is a usage error (before any model
  is read).
* :func:`compile` imports a model (path, ``zoo:NAME`` or an ``onnx.ModelProto``), runs the
  passes and returns a :class:`CompileResult`: the graph, the passes as they ran (their
  options are what the outputs record), the notes, and with a target the network schedule.
* :func:`compile_for_targets` imports once, runs the target-free prefix of the pipeline
  once and the rest per target (regress: every zoo model on both targets).
* :data:`LOWER_BY_DEFAULT` is the switch that decides whether the default pipeline with a
  target ends in ``lower-program`` (after ``schedule`` and ``plan-memory``);
  :func:`lowered_pipeline` adds it to any pipeline (``sqnxtc sim``, ``check --program``,
  ``compile --emit program``).  A compile whose pipeline lowered carries the program
  (``CompileResult.program``) and its timing simulation (``CompileResult.timing``, run
  once per compile, on first use), which ``schedule.json``, the summary and the goldens
  report beside the cost model's cycles.
* :func:`render` renders any of the output formats (:mod:`sqnxt_compiler.report.formats`)
  of a result, all computed before the caller writes any.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

from .diagnostics import UnsupportedError, UsageError
from .ir.graph import Graph
from .passes.schedule import ScheduleOptions
from .pipeline import Pass, PassContext, PassManager, parse_pipeline
from .pipeline.options import options_of

if TYPE_CHECKING:
    from .frontend import ImportResult

#: The schedule pass's options, each of which the command line has a flag for
#: (``--time-limit`` -> ``time_limit``), read from their declaration; a value of None means
#: "flag not given".
SCHEDULE_FLAGS = tuple(o.name for o in options_of(ScheduleOptions))
#: The passes the driver appends with a target (:func:`build_pipeline`).
SCHEDULE, PLAN_MEMORY = "schedule", "plan-memory"
#: The lowering pass (``passes/lower_program.py``).
LOWER_PROGRAM = "lower-program"
#: The switch: whether the default pipeline with a target lowers the schedule to a program
#: (``lower-program`` after ``schedule`` and ``plan-memory``), so that every compile with a
#: target carries the program and its simulated cycles (``schedule.json``, the summary,
#: ``-o DIR``'s program.s / program.bin, the goldens).  Off while the lowering does not
#: cover every layer kind (a network it cannot lower would fail every compile, exit 4).
LOWER_BY_DEFAULT = False


def lowers_by_default() -> bool:
    """Whether :func:`build_pipeline` puts ``lower-program`` after ``schedule`` and
    ``plan-memory`` (:data:`LOWER_BY_DEFAULT`)."""
    return LOWER_BY_DEFAULT


@dataclass(frozen=True)
class Instrumentation:
    """MLIR's pass instrumentation flags, all written to ``stream`` (stderr by default)."""

    print_before: bool = False           # the IR as imported
    print_after_all: bool = False
    print_after: tuple[str, ...] = ()
    timing: bool = False
    statistics: bool = False
    stream: IO[str] | None = None


@dataclass
class CompileResult:
    """What a compile produced.  ``passes`` are the pass instances that ran: the pipeline
    string and the schedule options every output records are read from them."""

    graph: Graph
    model: Any                      # the shape-inferred onnx.ModelProto (for the reference run)
    source: str
    passes: list[Pass]
    notes: list[str] = field(default_factory=list)
    target: Any = None
    tail: Any = None                # the host tail (frontend.cut.Split) when the model was cut

    @property
    def pipeline(self) -> str:
        """The pipeline as it ran, every recorded option spelled out: fed back with
        ``--passes`` it runs the same passes with the same options."""
        return ",".join(p.spec() for p in self.passes)

    @property
    def schedule_options(self) -> dict[str, Any] | None:
        """The recorded options of the (last) schedule pass, or None."""
        sched = [p for p in self.passes if p.name == SCHEDULE]
        return sched[-1].recorded_options() if sched else None

    @property
    def statistics(self) -> dict[str, dict[str, int]]:
        """Per pass (in order, by name), what it counted."""
        return {p.name: dict(sorted(p.stats.items())) for p in self.passes}

    @property
    def program(self):
        """The :class:`~sqnxt_compiler.program.lower.Lowered` network when the pipeline ran
        ``lower-program``, else None."""
        attr = self.graph.attrs.get("program")
        return attr.lowered if attr is not None else None

    @cached_property
    def timing(self):
        """The timing simulation of :attr:`program` on the target
        (:func:`sqnxt_compiler.program.timing.simulate`, with the target's queue depth and
        DRAM channels, as ``sqnxtc sim`` runs it), or None when the pipeline did not lower.
        Simulated once per compile, on first use: every output reads this one."""
        low = self.program
        if low is None or self.target is None:
            return None
        from .program.timing import simulate
        return simulate(low.program, self.target)

    @cached_property
    def simulated(self):
        """The simulated figures per scheduled op and in total
        (:class:`~sqnxt_compiler.report.simulated.Simulated`), or None when the pipeline did
        not lower."""
        if self.timing is None:
            return None
        from .report.simulated import simulated
        return simulated(self.program, self.timing)

    @cached_property
    def network(self):
        """The network schedule (:class:`~sqnxt_compiler.report.network.NetworkSchedule`),
        or None without a target."""
        if self.target is None:
            return None
        from .report.network import collect
        return collect(self.graph, self.target)

    @cached_property
    def document(self) -> dict | None:
        """The schedule document (``schedule.json``), built once: every schedule format is
        rendered from it, so their numbers agree.  None without a target."""
        if self.network is None:
            return None
        from .report.schedule_json import schedule_dict
        return schedule_dict(self.network, pipeline=self.pipeline, options=self.schedule_options,
                             simulated=self.simulated)


def with_schedule_flags(passes: list[Pass], flags: dict[str, Any]) -> list[Pass]:
    """``passes`` with the command line's schedule ``flags`` (None: not given) applied to
    every schedule pass.  A flag whose value differs from an option the pipeline string
    spelled out is a UsageError."""
    given = {k: v for k, v in flags.items() if v is not None}
    out = []
    for p in passes:
        if p.name == SCHEDULE and given:
            for k, v in given.items():
                mine = getattr(p.options, k)
                if k in p.explicit and mine != v:
                    flag = "--" + k.replace("_", "-")
                    raise UsageError(f"{flag} {v} contradicts the pipeline's "
                                     f"{p.name}{{{k.replace('_', '-')}={mine}}}: give it once")
            p = p.with_options(**given)
        out.append(p)
    return out


def build_pipeline(pipeline: str, *, target: Any = None, schedule: dict[str, Any] | None = None,
                   activation_home: str | None = None) -> list[Pass]:
    """The passes to run: ``pipeline`` parsed; with a ``target``, followed by ``schedule``
    unless a pass of it needs the target already, and ``plan-memory`` inserted after the
    last schedule pass when the target's ``activation_home`` is ``planned`` and the
    pipeline has no plan-memory; when :func:`lowers_by_default`, ``lower-program``
    inserted after the last schedule (and its plan-memory) when the pipeline has none (as
    plan-memory is: ``--passes default,schedule{jobs=2}`` runs what ``-j 2`` runs); the
    ``schedule`` flags applied.

    ``activation_home``: the ``--activation-home`` flag (None: not given), already applied
    to ``target``; only checked here: ``dram`` with a plan-memory the pipeline string
    spells out is a contradiction.  (With a target whose own home is ``dram``, a
    plan-memory written in the pipeline runs: an explicit pass is what was asked for.)
    Every pass must find the passes it ``requires`` before it.  Every problem is a
    UsageError raised before any model is read."""
    passes = parse_pipeline(pipeline)
    needing = [p.name for p in passes if p.needs_target]
    if target is None:
        if needing:
            raise UsageError(f"pass '{needing[0]}' needs a target but no --target was given")
    else:
        planned = PLAN_MEMORY in needing
        if planned and activation_home == "dram":
            raise UsageError(f"--activation-home dram contradicts the pipeline's {PLAN_MEMORY}: give one of them")
        if not needing:
            passes += parse_pipeline(SCHEDULE)
        last = max((i for i, p in enumerate(passes) if p.name == SCHEDULE), default=None)
        if target.activation_home == "planned" and not planned and last is not None:
            passes[last + 1:last + 1] = parse_pipeline(PLAN_MEMORY)
        ends = [i for i, p in enumerate(passes) if p.name in (SCHEDULE, PLAN_MEMORY)]
        if lowers_by_default() and ends and not any(p.name == LOWER_PROGRAM for p in passes):
            passes[ends[-1] + 1:ends[-1] + 1] = parse_pipeline(LOWER_PROGRAM)
    for i, p in enumerate(passes):
        for need in p.requires:
            if not any(q.name == need for q in passes[:i]):
                raise UsageError(f"pass '{p.name}' needs pass '{need}' before it in the pipeline "
                                 f"(e.g. --passes default,{need},{p.name})")
    unknown = set(schedule or {}) - set(SCHEDULE_FLAGS)
    if unknown:
        raise UsageError(f"unknown schedule option(s): {', '.join(sorted(unknown))}")
    return with_schedule_flags(passes, schedule or {})


def lowered_pipeline(passes: str, target, schedule: dict | None, activation_home: str | None) -> list[Pass]:
    """The passes of ``passes`` as ``compile`` builds them for ``target`` (schedule, and
    plan-memory on a planned target), followed by ``lower-program`` unless it is there."""
    pipeline = build_pipeline(passes, target=target, schedule=schedule, activation_home=activation_home)
    if not any(p.name == LOWER_PROGRAM for p in pipeline):
        pipeline += parse_pipeline(LOWER_PROGRAM)
    return pipeline


def _run(pm: PassManager, graph: Graph, ctx: PassContext) -> None:
    """Run the passes; a network the lowering does not handle is an unsupported model
    (exit 4, one line naming the layer), whichever command asked for the program."""
    from .program.lower import UnsupportedLowering

    try:
        pm.run(graph, ctx)
    except UnsupportedLowering as exc:
        raise UnsupportedError(f"cannot lower to a program: {exc.message}",
                               exc.location or graph.source) from None


def _import(model, cached: bool = False) -> ImportResult:
    """A path or ``zoo:NAME`` through the frontend's loader; an ``onnx.ModelProto`` (a
    model built in memory) imported as ``<model>`` (or the name given as ``(proto, name)``).
    The frontend (and with it onnx, most of a command's start-up time) is imported here,
    when a model is, not when the driver is: ``sqnxtc --help`` or ``targets list`` never
    load it.  ``cached``: a path or ``zoo:NAME`` imported before comes from the imported-IR
    cache (:mod:`.import_cache`) without the frontend, its ``model`` None (no onnxruntime
    reference: for commands that run none)."""
    if cached and isinstance(model, str):
        from . import import_cache

        k = import_cache.key(model)
        got = import_cache.get(k) if k is not None else None
        if got is not None:
            return got
        imported = _import(model)
        if k is not None and imported.tail is None and not import_cache.external_data(model):
            import_cache.put(k, imported.graph, imported.notes)
        return imported
    from .frontend import import_model, load

    if isinstance(model, str):
        return load(model)
    if isinstance(model, tuple):
        proto, name = model
        return import_model(proto, name)
    return import_model(model)


def _manager(passes: list[Pass], instrument: Instrumentation | None) -> PassManager:
    i = instrument or Instrumentation()
    return PassManager(passes, print_before=i.print_before, print_after_all=i.print_after_all,
                       print_after=i.print_after, timing=i.timing, statistics=i.statistics,
                       stream=i.stream or sys.stderr)


def compile(model, *, pipeline: str | list[Pass] = "default", target: Any = None,
            schedule: dict[str, Any] | None = None, progress: Callable | None = None,
            instrument: Instrumentation | None = None, import_cache: bool = False) -> CompileResult:
    """Import ``model`` (a path, ``zoo:NAME``, an ``onnx.ModelProto`` or ``(proto, name)``)
    and run ``pipeline`` (a string for :func:`build_pipeline`, or pass instances) on it.

    The pipeline is built (and rejected if bad) before the model is read.  ``progress`` is
    the schedule pass's callback (``PassContext.progress``).  ``import_cache``: read and
    keep the imported IR in the user's cache (:mod:`.import_cache`); the result's ``model``
    is then None on a hit (for commands that run no onnxruntime reference)."""
    passes = (build_pipeline(pipeline, target=target, schedule=schedule)
              if isinstance(pipeline, str) else list(pipeline))
    pm = _manager(passes, instrument)
    imported = _import(model, cached=import_cache)
    ctx = PassContext(target=target, notes=imported.notes, progress=progress)
    _run(pm, imported.graph, ctx)
    return CompileResult(imported.graph, imported.model, imported.graph.source, passes,
                         ctx.notes, target, imported.tail)


def copy_graph(graph: Graph) -> Graph:
    """A copy of ``graph`` (same op ids, value names, attributes and locations) whose ops,
    values and attribute dicts are new, and whose constant arrays are shared (they are
    never written): a pass on the copy leaves the original as it was."""
    return graph.clone()


def compile_for_targets(model, targets: list, *, pipeline: str = "default",
                        schedule: dict[str, Any] | None = None,
                        progress_for: Callable[[Any], Callable | None] | None = None
                        ) -> Iterator[CompileResult]:
    """Yield one CompileResult per target, as :func:`compile` would give for each, but
    importing ``model`` and running the pipeline's target-free prefix (the passes before
    the first one that needs a target) once.  Each target's passes run on a copy of that
    graph (:func:`copy_graph`), so every result stands alone.  ``progress_for(target)``
    gives the schedule pass's callback for that target (or None)."""
    per_target = [build_pipeline(pipeline, target=t, schedule=schedule) for t in targets]
    if not per_target:
        return
    first = per_target[0]
    n = next((i for i, p in enumerate(first) if p.needs_target), len(first))
    imported = _import(model)
    prefix = first[:n]
    PassManager(prefix).run(imported.graph, PassContext(notes=imported.notes))
    for t, passes in zip(targets, per_target):
        graph = copy_graph(imported.graph)
        rest = passes[n:]
        ctx = PassContext(target=t, notes=list(imported.notes),
                          progress=progress_for(t) if progress_for else None)
        _run(PassManager(rest), graph, ctx)
        yield CompileResult(graph, imported.model, graph.source, prefix + rest, ctx.notes, t, imported.tail)


def render(result: CompileResult, formats: list[str] | tuple[str, ...], *, top: int = 10) -> dict[str, str]:
    """Every requested format of ``result`` (``--emit`` names), rendered before any is
    written.  A format that needs a schedule on a result without a target, or a program on
    a result whose pipeline did not lower, is a UsageError."""
    from .report.formats import FORMATS, EmitContext

    ctx = EmitContext(result, top)
    out = {}
    for name in formats:
        fmt = _usable(FORMATS[name], result)
        out[name] = fmt.render(ctx)
    return out


def render_files(result: CompileResult, formats: list[str] | tuple[str, ...], *,
                 top: int = 10) -> dict[str, str | bytes]:
    """The files of the requested formats for ``-o DIR`` (file name -> text or bytes), all
    rendered before any is written: each format's file, and the other files it writes
    (``program``: program.s and program.bin)."""
    from .report.formats import FORMATS, EmitContext

    ctx = EmitContext(result, top)
    text = render(result, formats, top=top)
    out: dict[str, str | bytes] = {}
    for name in formats:
        fmt = FORMATS[name]
        out[fmt.filename] = text[name]
        for fname, fn in fmt.also:
            out[fname] = fn(ctx)
    return out


def _usable(fmt, result: CompileResult):
    if fmt.needs_target and result.target is None:
        raise UsageError(f"--emit {fmt.name} needs --target")
    if fmt.needs_program and result.program is None:
        raise UsageError(f"--emit {fmt.name} needs the {LOWER_PROGRAM} pass "
                         f"(e.g. --passes default,{SCHEDULE},{LOWER_PROGRAM})")
    return fmt
