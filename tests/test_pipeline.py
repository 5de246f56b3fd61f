"""Pipeline strings and the pass manager: parsing, named pipelines, options and their
errors, IR printing / timing / statistics to the diagnostics stream, and a deliberately
broken pass caught by the verifier with the pass named."""
from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from onnx import helper

from sqnxt_compiler.diagnostics import ExitCode, SqnxtError, UsageError
from sqnxt_compiler import driver
from sqnxt_compiler.frontend import import_model
from sqnxt_compiler.ir import IRVerificationError, print_graph
from sqnxt_compiler.passes import PASSES, PIPELINES
from sqnxt_compiler.pipeline import Pass, PassManager, parse_pipeline
from support import make_model

N = helper.make_node


def names(text):
    return [p.name for p in parse_pipeline(text)]


def small_model():
    rng = np.random.default_rng(0)
    nodes = [N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             N("BatchNormalization", ["c", "g", "b", "m", "v"], ["n"]),
             N("Relu", ["n"], ["r"]), N("Identity", ["r"], ["y"])]
    inits = [("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
             ("g", rng.standard_normal(4).astype(np.float32)),
             ("b", rng.standard_normal(4).astype(np.float32)),
             ("m", rng.standard_normal(4).astype(np.float32)),
             ("v", np.abs(rng.standard_normal(4)).astype(np.float32) + 0.5)]
    return make_model(nodes, [("x", [1, 3, 6, 6])], [("y", [1, 4, 6, 6])], inits)


def imported():
    return import_model(small_model(), "m.onnx").graph


# ------------------------------------------------------------------------ parsing
def test_parse_names_in_order():
    assert names("canonicalize") == ["canonicalize"]
    assert names("fuse-relu,canonicalize, fold-bn") == ["fuse-relu", "canonicalize", "fold-bn"]
    assert names("canonicalize,canonicalize") == ["canonicalize", "canonicalize"]
    assert names("") == [] and names("   ") == []


def test_named_pipelines_expand():
    assert PIPELINES["default"] == "canonicalize,fold-bn,fuse-relu,fuse-add,fuse-pool,concat-in-place"
    assert names("default") == ["canonicalize", "fold-bn", "fuse-relu", "fuse-add", "fuse-pool", "concat-in-place"]
    assert names("none") == []
    assert names("none,default,fuse-relu") == ["canonicalize", "fold-bn", "fuse-relu", "fuse-add", "fuse-pool", "concat-in-place", "fuse-relu"]


def test_parse_gives_fresh_pass_instances():
    a, b = parse_pipeline("canonicalize,canonicalize")
    assert a is not b and isinstance(a, PASSES["canonicalize"]) and a.stats is not b.stats


@pytest.mark.parametrize("text,pieces", [
    ("canonicalise", ["unknown pass 'canonicalise'", "did you mean 'canonicalize'?",
                      "known passes: canonicalize, concat-in-place, fold-bn, fuse-add, fuse-pool, fuse-relu"]),
    ("fold_bn", ["unknown pass 'fold_bn'", "did you mean 'fold-bn'?"]),
    ("default,fuse-relus", ["unknown pass 'fuse-relus'", "did you mean 'fuse-relu'?"]),
    ("xyzzy", ["unknown pass 'xyzzy'; known passes"]),
    ("canonicalize{foo=1}", ["pass 'canonicalize' has no option 'foo'", "options: none"]),
    ("fold-bn{eps=1e-3}", ["pass 'fold-bn' has no option 'eps'"]),
    ("canonicalize{foo}", ["pass 'canonicalize': option 'foo' needs a value"]),
    ("canonicalize{", ["bad pipeline string at column 1", "'canonicalize{'"]),
    ("canonicalize{a=1}}", ["bad pipeline string"]),
    ("canonicalize,,fold-bn", ["bad pipeline string at column 14"]),
    (",canonicalize", ["bad pipeline string at column 1"]),
    ("canonicalize fold-bn", ["bad pipeline string"]),
    ("default{x=1}", ["named pipeline 'default' takes no options"]),
])
def test_parse_errors(text, pieces):
    with pytest.raises(UsageError) as ei:
        parse_pipeline(text)
    msg = str(ei.value)
    assert ei.value.code == ExitCode.USAGE
    assert "\n" not in msg
    for piece in pieces:
        assert piece in msg, msg


def test_unknown_pass_error_is_raised_before_the_model_is_read(tmp_path):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(UsageError, match="unknown pass 'nope'"):
        driver.compile(str(missing), pipeline="canonicalize,nope")
    with pytest.raises(UsageError, match="--print-ir-after"):
        driver.compile(str(missing), pipeline="canonicalize",
                       instrument=driver.Instrumentation(print_after=("fold-bn",)))


# ------------------------------------------------------------------------ options
@dataclasses.dataclass(frozen=True)
class _Opts:
    level: int = 1
    scale: float = 1.0
    strict: bool = False
    mode: str = dataclasses.field(default="fast", metadata={"choices": ("fast", "slow")})


class _OptionPass(Pass):
    name = "test-options"
    summary = "A pass with options (test only)."
    Options = _Opts

    def run(self, graph, ctx):
        self.stats["ran"] += 1


@pytest.fixture
def option_pass(monkeypatch):
    monkeypatch.setitem(PASSES, _OptionPass.name, _OptionPass)
    return _OptionPass


def test_options_are_converted(option_pass):
    (p,) = parse_pipeline("test-options{level=3, scale=0.5,strict=yes,mode=slow}")
    assert p.options == _Opts(level=3, scale=0.5, strict=True, mode="slow")
    assert p.spec() == "test-options{level=3,scale=0.5,strict=true,mode=slow}"
    assert p.explicit == {"level", "scale", "strict", "mode"}
    (d,) = parse_pipeline("test-options")
    assert d.options == _Opts() and not d.explicit
    # every option is spelled out, defaults included, so the spec reproduces the pass
    assert d.spec() == "test-options{level=1,scale=1.0,strict=false,mode=fast}"
    for q in (p, d):
        (again,) = parse_pipeline(q.spec())
        assert again.options == q.options
    (q,) = parse_pipeline("test-options{strict=off}")
    assert q.options.strict is False


@pytest.mark.parametrize("text,piece", [
    ("test-options{level=high}", "option 'level' expects int, got 'high'"),
    ("test-options{scale=x}", "option 'scale' expects float, got 'x'"),
    ("test-options{strict=maybe}", "option 'strict' expects bool, got 'maybe'"),
    ("test-options{mode=medium}", "option 'mode' must be one of fast, slow, got 'medium'"),
    ("test-options{levle=2}", "has no option 'levle' (did you mean 'level'?)"),
])
def test_option_errors(option_pass, text, piece):
    with pytest.raises(UsageError) as ei:
        parse_pipeline(text)
    assert "pass 'test-options'" in str(ei.value) and piece in str(ei.value)


# ------------------------------------------------------------------------ the manager
def test_print_ir_after_unknown_pass_rejected_at_construction():
    with pytest.raises(UsageError) as ei:
        PassManager(parse_pipeline("canonicalize"), print_after=("fold-bn", "bogus"))
    msg = str(ei.value)
    assert "bogus, fold-bn" in msg and "pipeline: canonicalize" in msg
    with pytest.raises(UsageError, match=r"\(empty\)"):
        PassManager(parse_pipeline("none"), print_after=("canonicalize",))


def test_print_ir_after_all():
    out = io.StringIO()
    g = imported()
    PassManager(parse_pipeline("default"), print_after_all=True, stream=out).run(g)
    text = out.getvalue()
    heads = [l for l in text.splitlines() if l.startswith("// -----// IR Dump After")]
    assert heads == [f"// -----// IR Dump After {n} //----- //"
                     for n in ("canonicalize", "fold-bn", "fuse-relu", "fuse-add", "fuse-pool", "concat-in-place")]
    assert text.endswith(print_graph(g))  # the last dump is the final IR
    after_canon = text.split(heads[1])[0]
    assert "sqnxt.batchnorm(" in after_canon and "sqnxt.identity(" not in after_canon
    assert "sqnxt.batchnorm(" not in text.split(heads[1])[1]


def test_print_ir_after_named_only():
    out = io.StringIO()
    PassManager(parse_pipeline("default"), print_after=("fold-bn",), stream=out).run(imported())
    text = out.getvalue()
    assert text.count("IR Dump After") == 1 and "IR Dump After fold-bn" in text
    assert 'act = "none"' in text and "sqnxt.relu(" in text  # before fuse-relu ran


def test_nothing_printed_by_default(capsys):
    out = io.StringIO()
    PassManager(parse_pipeline("default"), stream=out).run(imported())
    assert out.getvalue() == ""
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""


def test_timing_and_statistics_reports():
    out = io.StringIO()
    pm = PassManager(parse_pipeline("default,canonicalize"), timing=True, statistics=True, stream=out)
    pm.run(imported())
    text = out.getvalue()
    timing, stats = text.split("Pass statistics report")
    assert "Pass execution timing report" in timing and "Total Execution Time" in timing
    for n in ("canonicalize", "fold-bn", "fuse-relu", "fuse-add", "fuse-pool"):
        assert n in timing and n in stats
    assert [n for n, _ in pm.times] == ["canonicalize", "fold-bn", "fuse-relu", "fuse-add", "fuse-pool",
                                        "concat-in-place", "canonicalize"]
    assert all(t >= 0 for _, t in pm.times)
    assert "(1) identity-removed" in stats and "(1) bn-folded-into-conv" in stats
    assert "(1) relu-fused-into-conv" in stats and "(no changes)" in stats
    assert ",".join(p.spec() for p in pm.passes) == "canonicalize,fold-bn,fuse-relu,fuse-add,fuse-pool,concat-in-place,canonicalize"


def test_reports_go_to_stderr_by_default(capsys):
    PassManager(parse_pipeline("default"), statistics=True, print_after_all=True).run(imported())
    cap = capsys.readouterr()
    assert cap.out == ""
    assert "Pass statistics report" in cap.err and "IR Dump After fuse-relu" in cap.err


# ------------------------------------------------------------------------ broken passes
class _BreakIR(Pass):
    """Sets an activation the op set does not declare: the verifier must notice."""
    name = "break-ir"
    summary = "test only"

    def run(self, graph, ctx):
        graph.ops_named("sqnxt.conv")[0].attrs["act"] = "mish"


class _StaleEdge(Pass):
    """Rewires an operand behind the Graph API's back (a stale edge)."""
    name = "poke-edges"
    summary = "test only"

    def run(self, graph, ctx):
        conv = graph.ops_named("sqnxt.conv")[0]
        conv.operands[1] = conv.operands[2]


class _Raises(Pass):
    name = "raises"
    summary = "test only"

    def run(self, graph, ctx):
        raise UsageError("cannot do that", "m.onnx")


def _run_with(extra, verify_each=True):
    passes = parse_pipeline("canonicalize,fold-bn") + [extra()] + parse_pipeline("fuse-relu")
    PassManager(passes, verify_each=verify_each, stream=io.StringIO()).run(imported())


@pytest.mark.parametrize("cls,what", [
    (_BreakIR, "attribute 'act' = 'mish' not in"),
    (_StaleEdge, "has no dependency edge"),
])
def test_broken_pass_caught_by_verifier(cls, what):
    with pytest.raises(IRVerificationError) as ei:
        _run_with(cls)
    msg = str(ei.value)
    assert f"IR verification failed after pass '{cls.name}'" in msg
    assert f"[in pass '{cls.name}'; passes completed: canonicalize, fold-bn]" in msg
    assert "(sqnxt.conv)" in msg and what in msg
    assert ei.value.code == ExitCode.INTERNAL and "\n" not in msg


def test_without_verify_each_the_break_goes_unnoticed():
    _run_with(_BreakIR, verify_each=False)  # proves the verifier is what catches it above


def test_error_raised_inside_a_pass_is_annotated():
    with pytest.raises(SqnxtError) as ei:
        _run_with(_Raises)
    assert str(ei.value) == ("m.onnx: cannot do that [in pass 'raises'; passes completed: "
                             "canonicalize, fold-bn]")
    assert ei.value.code == ExitCode.USAGE


def test_first_pass_failure_says_none_completed():
    with pytest.raises(IRVerificationError, match=r"passes completed: none\]"):
        PassManager([_BreakIR()], stream=io.StringIO()).run(imported())


def test_trailing_comma_rejected():
    from sqnxt_compiler.diagnostics import UsageError
    from sqnxt_compiler.pipeline import parse_pipeline

    with pytest.raises(UsageError, match="empty item"):
        parse_pipeline("canonicalize,")


def test_every_registered_pass_spec_parses_back_to_the_same_options():
    """Pass.spec() spells out every recorded option; parsing it gives the same options
    (the recorded pipeline of an output reproduces the run)."""
    for name, cls in sorted(PASSES.items()):
        p = cls()
        (again,) = parse_pipeline(p.spec())
        assert type(again) is cls and again.recorded_options() == p.recorded_options(), name
        fields = {f.name for f in dataclasses.fields(cls.Options)}
        recorded = {f.name for f in dataclasses.fields(cls.Options) if f.metadata.get("recorded", True)}
        assert set(p.recorded_options()) == recorded <= fields
        for f in recorded:
            assert f"{f.replace('_', '-')}=" in p.spec(), (name, f)
