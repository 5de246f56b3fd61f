"""The rewrite-pattern driver (sqnxt_compiler/pipeline/rewrite.py): dispatch by declared op
names, a pattern that makes work for another reaching a fixpoint, the deterministic
order, a declined op counted once, a pattern whose reach is too small caught, one that
never converges stopped; and the driver equal, op for op, to the plain algorithm it
replaces (sweep every op in ``Graph.ops()`` order until a sweep changes nothing) with the
real passes' patterns on real models."""
from __future__ import annotations

import sys
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz_nets import build as build_net, net_specs
from support import ROOT
from sqnxt_compiler.diagnostics import Location, UnsupportedError
from sqnxt_compiler.frontend import import_model, load
from sqnxt_compiler.ir import Graph, TensorType, print_graph, verify
from sqnxt_compiler.passes import PASSES, canonicalize, fuse_relu
from sqnxt_compiler.pipeline import rewrite
from sqnxt_compiler.pipeline.rewrite import (RewriteDidNotConverge, RewritePattern, Rewriter,
                                             apply_patterns)

#: (pass name, its patterns) for every registered pass made of rewrite patterns, in the
#: registry's order (the default pipeline's)
PASS_PATTERNS = [(name, sys.modules[cls.__module__].PATTERNS) for name, cls in PASSES.items()
                 if hasattr(sys.modules[cls.__module__], "PATTERNS")]


@pytest.fixture
def check_fixpoint(monkeypatch):
    """The driver proves each fixpoint (a pattern still matching fails the test)."""
    monkeypatch.setattr(rewrite, "CHECK_FIXPOINT", True)


def chain(*names: str) -> tuple[Graph, list]:
    """input(1x4) -> names[0] -> names[1] -> ... -> output; returns the graph and the ops."""
    g = Graph("t")
    v = g.add_op("sqnxt.input", (), {"name": "x", "type": TensorType((1, 4))},
                 loc=Location(node="x"), result_names=["x"]).result
    ops = []
    for i, n in enumerate(names):
        ops.append(g.add_op("sqnxt." + n, [v], loc=Location(node=f"n{i}"), result_names=[f"v{i}"]))
        v = ops[-1].result
    g.add_op("sqnxt.output", [v], {"names": ("y",)})
    return g, ops


def names(g: Graph) -> list[str]:
    return [op.name.split(".")[1] for op in g.ops()]


class Record(RewritePattern):
    """Rewrites nothing; records the ops it is offered."""

    def __init__(self, ops):
        self.ops, self.seen = tuple(ops), []

    def match_and_rewrite(self, op, rw):
        self.seen.append(op)


class AbsToNeg(RewritePattern):
    """abs(x) -> neg(x) (not sound arithmetic: a pattern that makes work for NegNeg)."""

    ops = ("sqnxt.abs",)

    def match_and_rewrite(self, op, rw):
        new = rw.add_op("sqnxt.neg", op.operands, loc=op.loc, result_names=[op.result.name + "_n"])
        rw.replace_all_uses(op.result, new.result)
        rw.erase(op)
        rw.count("abs-to-neg")


class NegNeg(RewritePattern):
    """neg(neg(x)) -> x."""

    ops = ("sqnxt.neg",)

    def match_and_rewrite(self, op, rw):
        inner = op.operands[0].owner
        if inner.name != "sqnxt.neg":
            return rw.decline("skipped-not-double")
        rw.replace_all_uses(op.result, inner.operands[0])
        rw.erase(op)
        if not rw.graph.uses(inner.result):
            rw.erase(inner)
        rw.count("neg-neg-removed")


# ---------------------------------------------------------------------------- dispatch, order
def test_a_pattern_is_offered_only_ops_of_its_declared_names():
    g, _ = chain("relu", "neg", "relu", "abs", "sigmoid")
    rec = Record(["sqnxt.relu", "sqnxt.sigmoid"])
    assert apply_patterns(g, [rec]) == 1
    assert [op.name for op in rec.seen] == ["sqnxt.relu", "sqnxt.relu", "sqnxt.sigmoid"]


def test_a_pattern_without_op_names_is_rejected():
    with pytest.raises(ValueError, match="declares no op names"):
        apply_patterns(chain("relu")[0], [Record([])])


def test_the_first_round_offers_every_op_in_graph_order_and_a_rewrite_revisits_only_its_neighbours():
    # two independent branches: the abs -> neg -> neg rewrites leave the relus alone
    g = Graph("t")
    x = g.add_op("sqnxt.input", (), {"name": "x", "type": TensorType((1, 4))}, result_names=["x"]).result
    a = g.add_op("sqnxt.abs", [x], result_names=["a"])             # AbsToNeg: a new neg
    n1 = g.add_op("sqnxt.neg", [a.result], result_names=["n1"])   # then NegNeg
    r = g.add_op("sqnxt.relu", [x], result_names=["r"])
    relus = [r]
    for _ in range(4):
        relus.append(g.add_op("sqnxt.relu", [relus[-1].result]))
    g.add_op("sqnxt.output", [n1.result, relus[-1].result], {"names": ("p", "q")})
    rec = Record(["sqnxt.relu", "sqnxt.neg", "sqnxt.abs"])
    rounds = apply_patterns(g, [AbsToNeg(), NegNeg(), rec])
    # round 1, in order: the abs (rewritten: not offered further), the neg after it (now
    # neg(neg): rewritten), each relu once; the new neg is erased, so no round 2
    assert rounds == 1
    assert rec.seen == relus
    assert names(g) == ["input", "relu", "relu", "relu", "relu", "relu", "output"]


def test_the_same_graph_gives_the_same_rewrites_in_the_same_order():
    texts = set()
    for _ in range(3):
        g, _ = chain("abs", "neg", "abs", "abs", "neg", "relu")
        stats = Counter()
        apply_patterns(g, [AbsToNeg(), NegNeg()], stats)
        texts.add((print_graph(g), tuple(sorted(stats.items()))))
    assert len(texts) == 1


# ---------------------------------------------------------------------------- fixpoint
@pytest.mark.usefixtures("check_fixpoint")
def test_a_pattern_that_makes_work_for_another_reaches_a_fixpoint():
    # neg(abs(abs(neg(x)))): each abs becomes a neg (later in the round: the second abs's
    # new neg pairs with the last neg at once), the first abs's new neg pairs with the
    # first neg, already visited: in round 2
    g, _ = chain("neg", "abs", "abs", "neg", "relu")
    stats = Counter()
    rounds = apply_patterns(g, [AbsToNeg(), NegNeg()], stats)
    verify(g)
    assert names(g) == ["input", "relu", "output"]
    assert stats == {"abs-to-neg": 2, "neg-neg-removed": 2}   # the first neg's declines: erased
    assert rounds == 2


def test_a_declined_op_is_counted_once_however_often_it_is_revisited():
    g, ops = chain("relu", "neg", "abs", "exp", "neg")
    rec = Record(["sqnxt.neg"])
    stats = Counter()
    apply_patterns(g, [AbsToNeg(), NegNeg(), rec], stats)
    # the last neg (of an exp) declines in round 1 and again in round 2, when the pair of
    # negs before the exp goes; the first neg's declines went with it
    assert names(g) == ["input", "relu", "exp", "neg", "output"]
    assert [op for op in rec.seen if op is ops[4]] == [ops[4], ops[4]]
    assert stats == {"abs-to-neg": 1, "neg-neg-removed": 1, "skipped-not-double": 1}


class ReluBeforeTwoNegs(RewritePattern):
    """relu whose result feeds neg -> neg -> exp: the exp becomes a sigmoid.  It reads the
    user of its user of its user, so its reach is 2 (that user's uses are the neg's)."""

    ops = ("sqnxt.relu",)

    def __init__(self, reach):
        self.reach = reach

    def match_and_rewrite(self, op, rw):
        u1 = rw.graph.users(op.result)
        u2 = rw.graph.users(u1[0].result) if len(u1) == 1 else []
        u3 = rw.graph.users(u2[0].result) if len(u2) == 1 else []
        if len(u3) == 1 and u3[0].name == "sqnxt.exp":
            new = rw.add_op("sqnxt.sigmoid", u3[0].operands)
            rw.replace_all_uses(u3[0].result, new.result)
            rw.erase(u3[0])


class AbsToExp(RewritePattern):
    ops = ("sqnxt.abs",)

    def match_and_rewrite(self, op, rw):
        new = rw.add_op("sqnxt.exp", op.operands)
        rw.replace_all_uses(op.result, new.result)
        rw.erase(op)


@pytest.mark.usefixtures("check_fixpoint")
def test_a_pattern_whose_reach_is_too_small_is_caught():
    # the abs becomes an exp after the relu was visited, two edges from the relu's user's user
    g, _ = chain("relu", "neg", "neg", "abs")
    with pytest.raises(RewriteDidNotConverge, match=r"ReluBeforeTwoNegs still rewrites .*reach \(1\) is too small"):
        apply_patterns(g, [ReluBeforeTwoNegs(reach=1), AbsToExp()], name="test")
    g, _ = chain("relu", "neg", "neg", "abs")
    apply_patterns(g, [ReluBeforeTwoNegs(reach=2), AbsToExp()], name="test")
    assert names(g) == ["input", "relu", "neg", "neg", "sigmoid", "output"]


class Churn(RewritePattern):
    """relu(x) -> a new relu(x), forever."""

    ops = ("sqnxt.relu",)

    def match_and_rewrite(self, op, rw):
        new = rw.add_op("sqnxt.relu", op.operands)
        rw.replace_all_uses(op.result, new.result)
        rw.erase(op)


def test_a_pattern_that_never_converges_is_stopped_after_a_bound():
    g, _ = chain("relu")
    with pytest.raises(RewriteDidNotConverge,
                       match=r"churner: the rewrite patterns did not reach a fixpoint in 7 rounds "
                             r"\(round 7 rewrote Churn on <sqnxt.relu #\d+"):
        apply_patterns(g, [Churn()], max_rounds=7, name="churner")
    g, _ = chain("relu")
    with pytest.raises(RewriteDidNotConverge, match=f"in {rewrite.MAX_ROUNDS} rounds"):
        apply_patterns(g, [Churn()])


def test_the_command_line_reports_a_pass_that_never_converges_as_an_internal_error(cli, monkeypatch):
    monkeypatch.setattr(canonicalize, "PATTERNS", (Churn(),))
    monkeypatch.setattr(rewrite, "MAX_ROUNDS", 5)
    r = cli("compile", ROOT / "tests" / "fixtures" / "modern" / "squeezenet_ts13.onnx", "--emit", "ir")
    assert r.exit_code == 70
    assert r.stderr.startswith("sqnxtc: internal error: RewriteDidNotConverge: canonicalize: the rewrite "
                               "patterns did not reach a fixpoint in 5 rounds (round 5 rewrote Churn on")
    assert r.stdout == ""


@pytest.mark.usefixtures("check_fixpoint")
def test_an_edit_behind_the_rewriters_back_is_caught():
    class Sneaky(RewritePattern):
        ops = ("sqnxt.leaky_relu",)

        def match_and_rewrite(self, op, rw):
            op.attrs["alpha"] += 1.0          # not through rw: the driver cannot know

    g, _ = chain("leaky_relu")
    with pytest.raises(RewriteDidNotConverge, match="Sneaky changed the graph at .* without the rewriter"):
        apply_patterns(g, [Sneaky()])


# ---------------------------------------------------------------------------- the real passes
def sweep(graph: Graph, patterns, stats: Counter) -> None:
    """The plain algorithm the driver replaces: every op in ``Graph.ops()`` order, each
    offered its patterns in list order until one changes the graph, sweep after sweep
    until a sweep changes nothing (declines: each op's last, once)."""
    rw = Rewriter(graph, stats)
    declined = {}
    changed = True
    while changed:
        changed = False
        rw._position = {op.id: i for i, op in enumerate(graph.ops())}
        for op in graph.ops():
            if op not in graph:
                continue
            for k, p in enumerate(patterns):
                if op.name not in p.ops:
                    continue
                rw._begin()
                p.match_and_rewrite(op, rw)
                if rw.reason is not None or (k, op.id) in declined:
                    declined[(k, op.id)] = (op, rw.reason)
                if rw.done:
                    changed = True
                    break
    stats.update(r for op, r in declined.values() if r is not None and op in graph)


def assert_driver_equals_sweep(graph: Graph) -> None:
    a, b = graph, graph.clone()
    for name, patterns in PASS_PATTERNS:
        sa, sb = Counter(), Counter()
        apply_patterns(a, patterns, sa, name=name)
        sweep(b, patterns, sb)
        assert print_graph(a) == print_graph(b), name
        assert sa == sb, name


MODELS = ["modern/convnext_ts13.onnx", "modern/mobilenetv3_ts13.onnx", "modern/tfsame_dynamo18.onnx",
          "modern/efficientnet_dynamo18.onnx", "modern/ghostnet_ts13.onnx", "modern/densenet_ts13.onnx",
          "external/torch_resnetish_op13_bnkept.onnx", "external/caffe_style_sqnxt_block_op11_ceil.onnx"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.usefixtures("check_fixpoint")
def test_the_driver_makes_the_rewrites_a_sweep_to_no_change_makes(model):
    assert_driver_equals_sweep(load(str(ROOT / "tests" / "fixtures" / model)).graph)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(spec=net_specs())
@pytest.mark.usefixtures("check_fixpoint")
def test_the_driver_makes_the_rewrites_a_sweep_makes_on_random_nets(spec):
    try:
        graph = import_model(build_net(spec), "fuzz").graph
    except UnsupportedError:     # a documented limit a valid net can hit (test_fuzz.py)
        return
    assert_driver_equals_sweep(graph)


def hard_sigmoid_with_a_dead_user() -> Graph:
    """mul(x, hard_sigmoid(x)) whose hard_sigmoid also feeds an unused identity, made after
    the mul: the mul is visited while the hard_sigmoid has two users."""
    g = Graph("t")
    x = g.add_op("sqnxt.input", (), {"name": "x", "type": TensorType((1, 4))}, result_names=["x"]).result
    h = g.add_op("sqnxt.hard_sigmoid", [x], {"alpha": 1 / 6, "beta": 0.5}, result_names=["h"])
    m = g.add_op("sqnxt.mul", [x, h.result], result_names=["m"])
    g.add_op("sqnxt.identity", [h.result], result_names=["dead"])
    g.add_op("sqnxt.output", [m.result], {"names": ("y",)})
    return g


@pytest.mark.usefixtures("check_fixpoint")
def test_a_real_pattern_is_revisited_when_a_later_rewrite_enables_it(monkeypatch):
    g = hard_sigmoid_with_a_dead_user()
    stats = Counter()
    # round 1: the mul declines (two users of the hard_sigmoid), the identity goes;
    # round 2: the mul, dirty, becomes a hard_swish; round 3 offers the new op
    assert apply_patterns(g, canonicalize.PATTERNS, stats) == 3
    assert names(g) == ["input", "hard_swish", "output"]
    assert stats == {"identity-removed": 1, "hard-swish-from-mul": 1}
    assert_driver_equals_sweep(hard_sigmoid_with_a_dead_user())
    # the hard_sigmoid losing a use is one edge from the mul: a reach of 0 (for every
    # pattern offered muls: constant folding too) misses it
    monkeypatch.setattr(canonicalize.HardSwishFromMul, "reach", 0)
    monkeypatch.setattr(canonicalize.FoldConstant, "reach", 0)
    monkeypatch.setattr(canonicalize.GeluFromParts, "reach", 0)
    monkeypatch.setattr(canonicalize.IdentityArithmetic, "reach", 0)
    monkeypatch.setattr(canonicalize.TransposesThroughBinary, "reach", 0)
    monkeypatch.setattr(canonicalize.TransposeSunk, "reach", 0)
    with pytest.raises(RewriteDidNotConverge, match="HardSwishFromMul still rewrites"):
        apply_patterns(hard_sigmoid_with_a_dead_user(), canonicalize.PATTERNS)


def test_the_passes_declare_their_patterns_and_run_them_with_the_driver():
    assert [n for n, _ in PASS_PATTERNS] == ["canonicalize", "fold-bn", "fuse-relu", "fuse-add", "fuse-pool", "concat-in-place"]
    for _, patterns in PASS_PATTERNS:
        for p in patterns:
            assert p.ops and all(isinstance(n, str) and n.startswith("sqnxt.") for n in p.ops), p
            assert p.reach >= 1
    assert "sqnxt.constant" not in canonicalize.FoldConstant.ops      # structural: never folded
    acts = fuse_relu.FuseActivation.ops + fuse_relu.FuseSigmoid.ops
    assert sorted(acts) == sorted(rewrite.ops_with_trait("activation")) and "sqnxt.relu" in acts
