"""Pass options are declared once (sqnxt_compiler/pipeline/options.py): the pipeline
parser, the construction checks, the command line's flags and the sweep spec's checks are
all derived from the declaration, so they accept the same values and nothing else.

Two halves:

* a toy pass whose options use every part of a declaration, held in all four places to
  it (a choice added to the declaration is accepted everywhere, a bound moves everywhere);
* the schedule pass's real options held to their declaration in every command that takes
  them (compile, report, compare, sweep, explore), the sweep spec and the docs, with the
  error messages pinned as they read before the options were derived.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sqnxt_compiler.cli import main as cli_main
from sqnxt_compiler.cli.options import flag, schedule_flags
from sqnxt_compiler.cost.model import OBJECTIVES
from sqnxt_compiler.diagnostics import UsageError
from sqnxt_compiler.passes import PASSES
from sqnxt_compiler.passes.schedule import Schedule, ScheduleOptions
from sqnxt_compiler.pipeline import Pass, parse_pipeline
from sqnxt_compiler.pipeline.options import PassOptions, option, options_of
from sqnxt_compiler.sweep import spec as sweep_spec

ROOT = Path(__file__).resolve().parent.parent
DECLARED = {o.name: o for o in options_of(ScheduleOptions)}


# ----------------------------------------------------------------------------- a toy pass
def toy_options(modes=("fast", "slow"), least=1):
    """A fresh options class with every kind of declaration (``modes``: the choices of
    ``mode``; ``least``: the least ``level``)."""

    @dataclass(frozen=True)
    class ToyOptions(PassOptions):
        mode: str = option(modes[0], choices=modes, axis="modes", help="How")
        scale: float = option(1.0, min=0, unit="metres", help="How far")
        level: int = option(least, min=least, note=f"{least}: the least", short="-l", help="How deep")
        strict: bool = option(False, help="Refuse more")
        scratch: str = option("", recorded=False, directory=True, help="Where")

    return ToyOptions


def toy_pass(monkeypatch, options):
    cls = type("ToyPass", (Pass,), {"name": "toy", "summary": "test only", "Options": options,
                                    "run": lambda self, graph, ctx: None})
    monkeypatch.setitem(PASSES, "toy", cls)
    return cls


def toy_command(options):
    """A command taking every option of ``options`` as a flag; prints what it got."""
    def cmd(**kw):
        click.echo(repr(sorted(kw.items())))
    for o in reversed(options_of(options)):
        cmd = flag(o)(cmd)
    return click.command()(cmd)


def via_click(options, *args):
    r = CliRunner().invoke(toy_command(options), list(args))
    return r.exit_code, (r.output if r.exit_code == 0 else r.output.strip().splitlines()[-1])


def via_pipeline(*items):
    (p,) = parse_pipeline("toy{" + ",".join(items) + "}")
    return p.options


def via_toml(options, name, value):
    return {o.name: o for o in options_of(options)}[name].from_toml(value, f"sweep.{name}", "<spec>")


def test_a_choice_added_to_the_declaration_is_accepted_everywhere(monkeypatch):
    for modes, ok in ((("fast", "slow"), False), (("fast", "slow", "medium"), True)):
        opts = toy_options(modes)
        toy_pass(monkeypatch, opts)
        code, _ = via_click(opts, "--mode", "medium")
        assert (code == 0) is ok
        if ok:
            assert via_pipeline("mode=medium").mode == "medium"
            assert via_toml(opts, "mode", "medium") == "medium"
            assert opts(mode="medium").mode == "medium"
        else:
            with pytest.raises(UsageError, match="option 'mode' must be one of fast, slow, got 'medium'"):
                via_pipeline("mode=medium")
            with pytest.raises(UsageError, match=r"""'sweep.mode' must be "fast" or "slow", got 'medium'"""):
                via_toml(opts, "mode", "medium")
            with pytest.raises(UsageError, match="must be one of fast, slow"):
                opts(mode="medium")


def test_a_bound_moves_everywhere(monkeypatch):
    for least in (1, 3):
        opts = toy_options(least=least)
        toy_pass(monkeypatch, opts)
        code, msg = via_click(opts, "-l", "2")
        assert (code == 0) is (least <= 2), msg
        if least <= 2:
            assert via_pipeline("level=2").level == 2 == via_toml(opts, "level", 2)
        else:
            assert "2 is not in the range x>=3" in msg
            with pytest.raises(UsageError, match=r"option 'level' must be an integer >= 3 \(3: the least\), got 2"):
                via_pipeline("level=2")
            with pytest.raises(UsageError, match=r"'sweep.level' must be an integer >= 3 \(3: the least\), got 2"):
                via_toml(opts, "level", 2)
            with pytest.raises(UsageError, match="must be an integer >= 3"):
                opts(level=2)


@pytest.mark.parametrize("name,text,value", [
    ("mode", "slow", "slow"), ("scale", "2.5", 2.5), ("scale", "0", 0.0), ("level", "4", 4),
    ("strict", "true", True), ("scratch", "somewhere", "somewhere"),
])
def test_what_one_place_accepts_the_others_accept_as_the_same_value(monkeypatch, name, text, value):
    opts = toy_options()
    toy_pass(monkeypatch, opts)
    o = {o.name: o for o in options_of(opts)}[name]
    assert getattr(via_pipeline(f"{o.key}={text}"), name) == value
    args = [o.flag] if o.type is bool else [o.flag, text]
    code, out = via_click(opts, *args)
    assert code == 0 and f"('{name}', {value!r})" in out
    assert via_toml(opts, name, value) == value
    assert getattr(opts(**{name: value}), name) == value


@pytest.mark.parametrize("name,text,toml", [
    ("mode", "medium", "medium"), ("scale", "-1", -1), ("scale", "nan", float("nan")),
    ("scale", "inf", float("inf")), ("level", "0", 0), ("level", "1.5", 1.5), ("scale", "x", "x"),
])
def test_what_one_place_refuses_the_others_refuse(monkeypatch, name, text, toml):
    opts = toy_options()
    toy_pass(monkeypatch, opts)
    o = {o.name: o for o in options_of(opts)}[name]
    with pytest.raises(UsageError, match="pass 'toy': option"):
        via_pipeline(f"{o.key}={text}")
    code, msg = via_click(opts, o.flag, text)
    assert code == 2 and ("Invalid value for '" in msg and f"'{o.flag}'" in msg), msg
    with pytest.raises(UsageError, match=f"'sweep.{name}' must be"):
        via_toml(opts, name, toml)


def test_help_and_flag_names_come_from_the_declaration():
    opts = toy_options()
    text = CliRunner().invoke(toy_command(opts), ["--help"], terminal_width=200).output
    assert re.search(r"--mode \[fast\|slow\] +How \[default: fast\]\.", text), text
    assert re.search(r"--scale FINITE FLOAT RANGE +How far \[default: 1\]\. +\[x>=0\]", text), text
    assert "-l, --level INTEGER RANGE" in text and "How deep [default: 1]." in text
    assert "--strict" in text and "Refuse more." in text
    assert "--scratch DIRECTORY" in text and "Where." in text


def test_recorded_options_are_the_spec():
    opts = toy_options()
    p = type("P", (Pass,), {"name": "", "Options": opts, "run": lambda *a: None})()
    assert p.spec() == "{mode=fast,scale=1.0,level=1,strict=false}"   # no scratch: not recorded


def test_a_bad_declaration_is_refused_when_it_is_read():
    def refused(**fields):
        cls = dataclasses.make_dataclass("Bad", [(k, t, f) for k, (t, f) in fields.items()], frozen=True)
        with pytest.raises(TypeError):
            options_of(cls)

    refused(n=(int, option(1, choices=("1", "2"))))            # choices on a number
    refused(s=(str, option("a", min=0)))                        # a bound on a string
    refused(x=(list, option(None)))                             # not bool, int, float, str
    with pytest.raises(UsageError):                             # a default its rules refuse
        options_of(dataclasses.make_dataclass("Bad", [("m", str, option("x", choices=("a",)))], frozen=True))


def test_an_options_class_serves_one_pass():
    opts = toy_options()
    type("One", (Pass,), {"name": "one", "Options": opts, "run": lambda *a: None})
    assert opts.pass_name == "one"
    with pytest.raises(TypeError, match="options of pass 'one'"):
        type("Two", (Pass,), {"name": "two", "Options": opts, "run": lambda *a: None})


# ----------------------------------------------------------------------------- the schedule pass
def test_the_objectives_are_stated_once():
    from sqnxt_compiler.schedule import oracle, solver

    assert DECLARED["objective"].choices is OBJECTIVES
    assert oracle.OBJECTIVES is OBJECTIVES and solver.OBJECTIVES is OBJECTIVES
    assert sweep_spec.AXIS is DECLARED["objective"] and sweep_spec.AXIS.axis == "objectives"
    assert set(oracle.SECONDARY) == set(OBJECTIVES)


def test_the_recorded_pipeline_is_unchanged():
    """Goldens and schedule.json record this text (sqnxtc regress checks it byte for byte)."""
    assert Schedule().spec() == "schedule{objective=cycles,time-limit=0.0,fallback=none,measured-sparsity=false}"
    (p,) = parse_pipeline("schedule{objective=edp,time-limit=5}")
    assert p.spec() == "schedule{objective=edp,time-limit=5.0,fallback=none,measured-sparsity=false}"
    assert p.options == ScheduleOptions(objective="edp", time_limit=5) and p.explicit == {"objective", "time_limit"}


def _params(*path):
    cmd = cli_main
    for p in path:
        cmd = cmd.commands[p]
    return {p.name: p for p in cmd.params}


@pytest.mark.parametrize("command", ["compile", "report", "compare"])
def test_every_schedule_flag_is_its_declaration(command):
    params = _params(command)
    for o in DECLARED.values():
        p = params[o.name]
        assert p.opts == ([o.short] if o.short else []) + [o.flag] and p.default is None
        assert p.help.startswith(o.help) and p.help.endswith(".")
        t = p.type
        if o.choices:
            assert tuple(t.choices) == o.choices
        elif o.type in (int, float):
            assert t.min == o.min and t.max is None
        else:
            assert p.is_flag if o.type is bool else True


def test_check_and_regress_take_no_schedule_flags():
    for command in ("check", "regress"):
        assert not set(_params(command)) & set(DECLARED), command


def test_sweep_and_explore_flags_are_the_declaration():
    params = _params("sweep")
    axis = params["objectives"]
    assert axis.opts == ["--objective"] and tuple(axis.type.choices) == OBJECTIVES and axis.multiple
    for name in sweep_spec.SCHEDULE_OPTIONS:
        assert params[name].help.startswith("Without SPEC: ")
    assert not set(params) & {"cache_dir", "jobs"}          # the sweep's own business
    explore = _params("explore")["objective"]
    assert tuple(explore.type.choices) == OBJECTIVES and explore.default == DECLARED["objective"].default


def test_the_sweep_spec_keys_are_the_recorded_options():
    assert sweep_spec.SCHEDULE_OPTIONS == ("time_limit", "fallback", "measured_sparsity")
    assert sweep_spec.SCHEDULE_OPTIONS == tuple(n for n, o in DECLARED.items() if o.recorded and not o.axis)
    with pytest.raises(UsageError, match=r"unknown key 'sweep.jobs' \(allowed: fallback, measured_sparsity, "
                                         r"objectives, time_limit\)"):
        sweep_spec.parse_spec({"models": {"zoo": ["1.0-SqNxt-23"]}, "sweep": {"jobs": 2}}, "s.toml", ROOT)
    spec = sweep_spec.parse_spec({"models": {"zoo": ["1.0-SqNxt-23"]},
                                  "sweep": {"time_limit": 5, "fallback": "none", "measured_sparsity": True}},
                                 "s.toml", ROOT)
    assert spec.objectives == ("cycles",) and spec.options == (("measured_sparsity", True), ("time_limit", 5.0))


# The messages as they read before the options were derived (sqnxtc's one error line
# carries them verbatim, exit 2).
@pytest.mark.parametrize("text,message", [
    ("schedule{objective=x}", "pass 'schedule': option 'objective' must be one of cycles, energy, edp, got 'x'"),
    ("schedule{jobs=-1}", "pass 'schedule': option 'jobs' must be an integer >= 0 (0: one per CPU), got -1"),
    ("schedule{jobs=1.5}", "pass 'schedule': option 'jobs' expects int, got '1.5'"),
    ("schedule{time-limit=-1}", "pass 'schedule': option 'time-limit' must be >= 0 seconds, got -1.0"),
    ("schedule{time-limit=nan}", "pass 'schedule': option 'time-limit' must be >= 0 seconds, got nan"),
    ("schedule{time-limit=1e999}", "pass 'schedule': option 'time-limit' must be >= 0 seconds, got inf"),
    ("schedule{time-limit=abc}", "pass 'schedule': option 'time_limit' expects float, got 'abc'"),
    ("schedule{fallback=}", "pass 'schedule': option 'fallback' must be one of none, heuristic, got ''"),
    ("schedule{measured-sparsity=maybe}", "pass 'schedule': option 'measured_sparsity' expects bool, got 'maybe'"),
    ("schedule{objectiv=edp}", "pass 'schedule' has no option 'objectiv' (did you mean 'objective'?); options: "
                               "cache, cache-dir, fallback, jobs, measured-sparsity, objective, time-limit"),
    ("schedule{objective}", "pass 'schedule': option 'objective' needs a value (key=value)"),
])
def test_pipeline_messages(text, message):
    with pytest.raises(UsageError) as ei:
        parse_pipeline(text)
    assert str(ei.value) == message


@pytest.mark.parametrize("sweep,message", [
    ({"objectives": ["cycles", "bogus"]}, "'sweep.objectives': unknown objective 'bogus' (allowed: cycles, energy, edp)"),
    ({"objectives": "cycles"}, "'sweep.objectives' must be a list of non-empty strings"),
    ({"time_limit": -1}, "'sweep.time_limit' must be a number of seconds >= 0, got -1"),
    ({"time_limit": "5"}, "'sweep.time_limit' must be a number of seconds >= 0, got '5'"),
    ({"time_limit": True}, "'sweep.time_limit' must be a number of seconds >= 0, got True"),
    ({"time_limit": float("inf")}, "'sweep.time_limit' must be a number of seconds >= 0, got inf"),
    ({"fallback": "nope"}, "'sweep.fallback' must be \"none\" or \"heuristic\", got 'nope'"),
    ({"fallback": 1}, "'sweep.fallback' must be \"none\" or \"heuristic\", got 1"),
    ({"measured_sparsity": "yes"}, "'sweep.measured_sparsity' must be true or false, got 'yes'"),
])
def test_sweep_spec_messages(sweep, message):
    with pytest.raises(UsageError) as ei:
        sweep_spec.parse_spec({"models": {"zoo": ["1.0-SqNxt-23"]}, "sweep": sweep}, "s.toml", ROOT)
    assert str(ei.value) == f"s.toml: {message}"


@pytest.mark.parametrize("args,message", [
    (["--objective", "bogus"], "Invalid value for '--objective': 'bogus' is not one of 'cycles', 'energy', 'edp'."),
    (["--time-limit", "-1"], "Invalid value for '--time-limit': -1.0 is not in the range x>=0."),
    (["--time-limit", "nan"], "Invalid value for '--time-limit': 'nan' is not a finite number"),
    (["--fallback", "nope"], "Invalid value for '--fallback': 'nope' is not one of 'none', 'heuristic'."),
    (["-j", "-1"], "Invalid value for '-j' / '--jobs': -1 is not in the range x>=0."),
])
def test_flag_messages(cli, args, message):
    r = cli("compile", "m.onnx", "-t", "pe16x16", *args)
    assert r.exit_code == 2 and r.stderr == f"sqnxtc: error: {message} (try 'sqnxtc compile --help')\n"


def test_construction_checks_every_value():
    assert ScheduleOptions(time_limit=5).time_limit == 5.0 and isinstance(ScheduleOptions(time_limit=5).time_limit, float)
    for kw, piece in (({"jobs": -1}, "option 'jobs' must be an integer >= 0"), ({"jobs": True}, "'jobs'"),
                      ({"time_limit": float("nan")}, "option 'time-limit' must be >= 0 seconds"),
                      ({"objective": "speed"}, "option 'objective' must be one of cycles, energy, edp"),
                      ({"fallback": None}, "option 'fallback' must be one of none, heuristic"),
                      ({"measured_sparsity": 1}, "option 'measured_sparsity' expects bool")):
        with pytest.raises(UsageError, match=re.escape(piece)):
            ScheduleOptions(**kw)


def test_the_schedule_flags_paragraph_lists_the_declared_flags():
    doc = schedule_flags(lambda: None).__doc__
    assert doc.strip() == ("--objective, --time-limit, --fallback, --measured-sparsity, --cache, --cache-dir and "
                           "--jobs set "
                           "the schedule pass's options: a flag may repeat, never contradict, an option of the "
                           "--passes string (schedule{objective=...}).")


def _doc_row(o) -> str:
    off = [f"--no-{o.key}"] if o.type is bool and o.default is True else []
    flags = ", ".join(f"`{f}`" for f in ([o.short] if o.short else []) + [o.flag] + off)
    default = ("true" if o.default else "false") if o.type is bool else (o.default_text or "")
    if o.choices:
        accepts = ", ".join(o.choices)
    elif o.type is bool:
        accepts = "true, false"
    elif o.type in (int, float):
        accepts = o.bound()
    else:
        accepts = "a directory" if o.directory else "a string"
    sweep = f"`{o.axis}` (a list)" if o.axis else (f"`{o.name}`" if o.recorded else "")
    return (f"| `{o.key}` | {flags} | {o.type.__name__} | {default} | {accepts} | "
            f"{'yes' if o.recorded else 'no'} | {sweep} |")


def test_the_docs_table_of_schedule_options_is_the_declaration():
    text = (ROOT / "docs" / "passes.md").read_text()
    table = text.split("<!-- schedule options: begin -->\n", 1)[1].split("<!-- schedule options: end -->", 1)[0]
    rows = table.strip().splitlines()[2:]
    assert rows == [_doc_row(o) for o in DECLARED.values()], "\n".join(_doc_row(o) for o in DECLARED.values())


def test_the_docs_table_of_plan_memory_options_is_the_declaration():
    from sqnxt_compiler.passes.plan_memory import PlanMemoryOptions

    def row(o) -> str:
        default = ("true" if o.default else "false") if o.type is bool else (o.default_text or "")
        accepts = ", ".join(o.choices) if o.choices else ("true, false" if o.type is bool else
                                                          o.bound() if o.type in (int, float) else "a string")
        return (f"| `{o.key}` | {o.type.__name__} | {default} | {accepts} | "
                f"{'yes' if o.recorded else 'no'} | {o.help} |")

    text = (ROOT / "docs" / "passes.md").read_text()
    table = text.split("<!-- plan-memory options: begin -->\n", 1)[1].split("<!-- plan-memory options: end -->", 1)[0]
    want = [row(o) for o in options_of(PlanMemoryOptions)]
    assert table.strip().splitlines()[2:] == want, "\n".join(want)


def test_the_docs_name_every_option_and_choice():
    passes_md = (ROOT / "docs" / "passes.md").read_text()
    section = passes_md.split("## Options: a pass is its options", 1)[1].split("\n## ", 1)[0]
    for o in DECLARED.values():
        assert f"`{o.key}`" in section, o.key
        for c in o.choices or ():
            assert c in section, (o.key, c)
    sweep_md = (ROOT / "docs" / "sweep.md").read_text()
    block = sweep_md.split("```toml\n[sweep]\n", 1)[1].split("```", 1)[0]
    for key in (sweep_spec.AXIS.axis, *sweep_spec.SCHEDULE_OPTIONS):
        assert f"\n{key} = " in "\n" + block, key
    assert ", ".join(OBJECTIVES) in block
