"""Options shared by several commands, and how they reach the driver.

* :func:`pipeline_options`: ``--passes`` and MLIR's instrumentation flags (compile, check);
  :func:`instrumentation` turns them into the driver's :class:`Instrumentation`.
* :func:`schedule_flags`: the schedule pass's options as flags, ``--objective``,
  ``--time-limit``, ``--fallback``, ``--measured-sparsity``, ``--cache-dir``, ``--jobs``
  (compile, report, compare).  Each sets the schedule pass's option of the same name; a
  flag not given is None, so the pipeline string (or the option's default) decides, and a
  flag that contradicts the pipeline string is a usage error
  (:func:`sqnxt_compiler.driver.with_schedule_flags`).
* :func:`flag`: the click option of a pass option, derived from its declaration
  (:mod:`sqnxt_compiler.pipeline.options`): name, type, choices, bounds, default, help.
  ``sweep`` and ``explore`` build theirs with it too.
* :func:`progress_option`: ``--progress/--no-progress``.
* :func:`scheduler_options`: ``--scheduler`` and ``--workers``, where the sweep engine runs
  its tasks (sweep, explore, compare; docs/sweep.md).
"""
from __future__ import annotations

import inspect

import click

from ..driver import Instrumentation
from ..passes import PASSES
from ..passes.schedule import Schedule
from ..pipeline.options import Option, options_of


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange that also rejects NaN and the infinities (a usage error, exit 2):
    NaN compares false with every bound, so FloatRange alone lets it through."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        import math

        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v


def _apply(fn, opts):
    for o in reversed(opts):
        fn = o(fn)
    return fn


def progress_option(fn):
    return click.option("--progress/--no-progress", default=None,
                        help="Show scheduling progress on stderr [default: when stderr is a terminal].")(fn)


def pipeline_options(fn):
    """The pass pipeline and its instrumentation (all printed on stderr)."""
    return _apply(fn, [
        click.option("--passes", "passes", default="default", show_default=True, metavar="PIPELINE",
                     help="Pass pipeline, e.g. 'canonicalize,fold-bn' or a named one ('default', 'none'); "
                          "options in braces: 'default,schedule{objective=energy}'. Passes: "
                          + ", ".join(PASSES) + ". With --target, schedule is appended unless the "
                          "pipeline has a pass that needs the target, and plan-memory after it when the "
                          "target's activation home is planned."),
        click.option("--print-ir-after-all", is_flag=True, help="Print the IR after every pass (stderr)."),
        click.option("--print-ir-after", "print_after", multiple=True, metavar="PASS",
                     help="Print the IR after the named pass (repeatable; stderr)."),
        click.option("--print-ir-before-passes", "print_before", is_flag=True,
                     help="Print the IR as imported, before any pass (stderr)."),
        click.option("--pass-statistics", is_flag=True, help="Per-pass counts of rewrites (stderr)."),
        click.option("--pass-timing", is_flag=True, help="Per-pass wall time (stderr)."),
        progress_option,
    ])


def instrumentation(kw: dict) -> Instrumentation:
    """The driver's instrumentation from :func:`pipeline_options`' parameters."""
    return Instrumentation(print_before=kw["print_before"], print_after_all=kw["print_ir_after_all"],
                           print_after=tuple(kw["print_after"]), timing=kw["pass_timing"],
                           statistics=kw["pass_statistics"])


def _click_type(o: Option):
    """The click type that accepts what the option's declaration accepts (its type,
    choices, bounds; a float is finite; a directory is not a file)."""
    if o.choices:
        return click.Choice(list(o.choices))
    if o.type is float:
        return FiniteFloatRange(min=o.min)
    if o.type is int:
        return click.IntRange(min=o.min)
    if o.directory:
        return click.Path(file_okay=False)
    return click.STRING


def flag(o: Option, *, dest: str | None = None, prefix: str = "", help: str | None = None,  # noqa: A002
         **attrs):
    """The click option ``--KEY`` (and its ``short`` form) of the pass option ``o``: its click
    type from the declaration, default None (not given: the pipeline string or the
    option's default decides), a bool as an on-flag, help from the declaration (its
    sentence, then ``[default: X]``; ``prefix`` before it, the sentence's first letter then
    lower case); a bool that defaults to true is an on/off pair (``--cache/--no-cache``).  ``dest`` names the parameter (default: the option's name), ``help``
    replaces the help, ``attrs`` replace click's arguments."""
    if help is None:
        text = o.help
        if prefix:
            text = prefix + text[:1].lower() + text[1:]
        help = text + (f" [default: {o.default_text}]" if o.default_text is not None else "") + "."  # noqa: A001
    kw: dict = {"is_flag": True} if o.type is bool else {"type": _click_type(o)}
    kw.update(default=None, help=help)
    kw.update(attrs)
    name = f"{o.flag}/--no-{o.key}" if o.type is bool and o.default is True else o.flag
    return click.option(*([o.short] if o.short else []), name, dest or o.name, **kw)


def _and(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def schedule_flags(fn):
    """The schedule pass's options as flags (module doc): one :func:`flag` per declared
    option, in declaration order."""
    opts = options_of(Schedule.Options)
    fn.__doc__ = inspect.cleandoc(fn.__doc__ or "") + (
        f"\n\n{_and([o.flag for o in opts])} set the {Schedule.name} pass's options: a flag may repeat, "
        f"never contradict, an option of the --passes string ({Schedule.name}{{{opts[0].key}=...}}).")
    return _apply(fn, [flag(o) for o in opts])


def scheduler_options(default: str):
    """``--scheduler`` (default ``default``) and ``--workers``: where the sweep engine runs
    the tasks (:class:`sqnxt_compiler.sweep.engine.Runner`; checked there)."""
    def deco(fn):
        return _apply(fn, [
            click.option("--scheduler", default=default, show_default=True,
                         metavar="serial|inprocess|local|tcp://HOST:PORT",
                         help="Where the tasks run: one after another in this process (serial, no Dask), "
                              "threads of this process, a LocalCluster of worker processes, or a running "
                              "Dask cluster (all but serial need pip install 'sqnxtc[sweep]')."),
            click.option("--workers", type=click.IntRange(1, 1024), default=None,
                         help="Workers of a LocalCluster (inprocess, local) [default: one per core]."),
        ])
    return deco


def schedule_values(kw: dict) -> dict:
    """The schedule flags given on the command line (None: not given)."""
    return {o.name: kw[o.name] for o in options_of(Schedule.Options)}


def activation_home_option(fn):
    """``--activation-home``: override the target's ``dram.activation_home``, which decides
    whether the pipeline gets the ``plan-memory`` pass
    (:func:`sqnxt_compiler.driver.build_pipeline`)."""
    return click.option("--activation-home", type=click.Choice(["dram", "planned"]), default=None,
                        help="Where activations live between layers, overriding the target's "
                             "dram.activation_home: dram (every one through DRAM) or planned (the "
                             "plan-memory pass keeps some in the global buffer; docs/memory-planning.md).")(fn)


def load_target_with(name: str, activation_home: str | None = None):
    """The target ``name`` (bundled name or .toml path), with ``activation_home`` replacing
    the file's when given (the fingerprint follows the field, as for any field)."""
    from dataclasses import replace

    from ..targets import load_target

    t = load_target(name)
    if activation_home is not None and activation_home != t.activation_home:
        t = replace(t, activation_home=activation_home)
    return t


def load_targets(names, activation_home: str | None = None) -> list:
    """Load each ``--target`` once (bundled name or .toml path); two files naming the same
    target are a usage error (their columns or panels would be indistinguishable)."""
    from ..diagnostics import UsageError

    out = []
    for n in dict.fromkeys(names):
        t = load_target_with(n, activation_home)
        if any(o.name == t.name for o in out):
            raise UsageError(f"two targets are named '{t.name}' ({n}): give each target once")
        out.append(t)
    return out


def notes(messages) -> None:
    """The frontend's and passes' notes, one ``sqnxtc: note:`` line each on stderr."""
    for n in messages:
        click.echo(f"sqnxtc: note: {n}", err=True)
