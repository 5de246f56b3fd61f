"""fuse-relu: fold an activation into the conv, fc or add that feeds it (the ops with the
``act_fusible`` trait).  The activations are the ops with the ``activation`` trait: its
``Activation(kind, alpha, beta, when)`` says which ``act`` the op becomes, with which
``act_alpha`` / ``act_beta``, and on which attribute values (ir/ops.py).

``relu(conv(x))`` -> ``conv(x) {act = "relu"}``; ``clip(conv(x)) {min = 0, max = 6}`` ->
``conv(x) {act = "relu6"}``; likewise for ``sqnxt.fc``, ``sqnxt.add`` and a
``sqnxt.matmul`` by a constant B (a conv / fc layer; not a matmul of two activations,
which no layer stands for: ``skipped-unmodelled-producer``).  Into a conv or
fc (not an add) also every other activation the epilogue applies: leaky_relu (``act_alpha``
= its slope), hard_sigmoid (``act_alpha``, ``act_beta``), hard_swish, sigmoid, tanh, gelu,
gelu_tanh, and
swish, the pattern ``mul(y, sigmoid(y))`` (SiLU as exporters write it: PyTorch and
tf2onnx alike; either operand order, the sigmoid read by nothing but the mul and y by
nothing but the two).  The accelerator
applies the activation as results leave the array (docs/cost-model.md, "Fused
activations"), so a fused op costs no extra pass over the output.

Before::

    %c = sqnxt.conv(%x, %w) {act = "none"}
    %s = sqnxt.sigmoid(%c)
    %y = sqnxt.mul(%c, %s)

After::

    %y' = sqnxt.conv(%x, %w) {act = "swish"}

A conv / fc that already carries a fused residual add (``fuse-add`` ran first) takes a
relu or relu6 as its ``post_act``: it applies to the sum, as the ReLU did.

Left alone (and counted): a producer with other users (they need the pre-activation
value), one that already has an activation, a conv with a fused pool (the activation
would run before the pool), a clip with other bounds than [0, 6] (an op whose attributes
are not its activation's), an activation other than relu / relu6 after an add or a fused
residual add (one the slot's ``act`` / ``post_act`` choices do not take: the adder
applies only those).

The rewrite is the patterns :class:`FuseSwish`, :class:`FuseActivation` and
:class:`FuseSigmoid`, run by the pattern driver
(:mod:`sqnxt_compiler.pipeline.rewrite`) until nothing more applies; an op left alone is
counted once, with the reason of its last try.
"""
from __future__ import annotations

from ..ir.core import Activation
from ..ir.graph import Graph
from ..ir.ops import SWISH
from ..layers import layer_of, stands_in
from ..pipeline.pass_base import Pass, PassContext
from ..pipeline.rewrite import RewritePattern, Rewriter, apply_patterns, ops_with_trait
from .patterns import fusible_producer


def swish_of(graph: Graph, mul) -> tuple | None:
    """(y, sigmoid op) when ``mul`` is mul(y, sigmoid(y)) (either order) and the sigmoid
    feeds nothing else, else None."""
    if mul.name != "sqnxt.mul":
        return None
    for i in (0, 1):
        s, y = mul.operands[i].owner, mul.operands[1 - i]
        if (s is not None and s.name == "sqnxt.sigmoid" and s.operands[0] is y
                and len(graph.uses(s.result)) == 1):
            return y, s
    return None


def _fuse(rw: Rewriter, src, kind: str, params: dict, result) -> bool:
    """Give ``src`` the activation ``kind`` (its slot: ``post_act`` after a fused
    residual add, else ``act``) with ``params`` (``act_alpha``, ``act_beta``) and let
    ``result``'s users read ``src``; False (and declined, with why) when it cannot take
    it: a fused pool, a kind the slot's declared choices do not take (the adder applies
    relu and relu6 only), a slot already set, a producer no cost-model layer stands for
    (a matmul of two activations: its activation would vanish from the costs)."""
    if src.attrs.get("pool") is not None:     # act(pool(y)) is not pool(act(y))
        rw.decline("skipped-pool-between")
        return False
    if stands_in(src) and layer_of(src) is None:    # a matmul of two activations: no layer applies it
        rw.decline("skipped-unmodelled-producer")
        return False
    slot = "post_act" if src.attrs.get("residual") else "act"
    if kind not in src.opdef.attrs[slot].choices:
        rw.decline(f"skipped-{kind}-after-add")
        return False
    if src.attrs[slot] != "none":
        rw.decline("skipped-already-activated")
        return False
    rw.update_attrs(src, {slot: kind, **params})
    rw.replace_all_uses(result, src.result)
    rw.count(f"{kind}-fused-into-{src.name.split('.')[1]}")
    return True


class FuseSwish(RewritePattern):
    """mul(y, sigmoid(y)) -> y's producer with act = swish, when y feeds only these two."""

    ops = ("sqnxt.mul",)

    def match_and_rewrite(self, mul, rw: Rewriter) -> None:
        sw = swish_of(rw.graph, mul)
        if sw is None:
            return
        y, sig = sw
        src = y.owner
        if src is None or not src.has_trait("act_fusible"):
            return rw.decline("skipped-no-producer")
        if {u.id for u, _ in rw.graph.uses(src.result)} != {mul.id, sig.id}:
            return rw.decline("skipped-multi-use")
        if _fuse(rw, src, SWISH.kind, {}, mul.result):
            rw.erase(mul)
            rw.erase(sig)


class FuseActivation(RewritePattern):
    """act(src(x)) -> src(x) {act = kind} for an op with the ``activation`` trait (a
    sigmoid: :class:`FuseSigmoid`)."""

    ops = tuple(n for n in ops_with_trait("activation") if n != "sqnxt.sigmoid")

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        act = op.get_trait(Activation)
        params = act.epilogue_attrs(op)
        if params is None:    # not this activation's attribute values (a clip not on [0, 6])
            return rw.decline(f"skipped-{op.name.split('.')[1]}-bounds")
        src, why = fusible_producer(rw.graph, op.operands[0], "act_fusible")
        if src is None:
            return rw.decline(f"skipped-{why}")
        if _fuse(rw, src, act.kind, params, op.result):
            rw.erase(op)


class FuseSigmoid(FuseActivation):
    """sigmoid(src(x)) -> src(x) {act = sigmoid}, unless the sigmoid is half of a swish
    (:class:`FuseSwish` fuses the pair at the mul)."""

    ops = ("sqnxt.sigmoid",)
    reach = 2       # its user's other operand's producer (is it half of a swish?)

    def match_and_rewrite(self, op, rw: Rewriter) -> None:
        users = rw.graph.uses(op.result)
        if len(users) == 1 and swish_of(rw.graph, users[0][0]):
            return            # half of a swish: fused with its mul
        super().match_and_rewrite(op, rw)


PATTERNS = (FuseSwish(), FuseActivation(), FuseSigmoid())


class FuseReLU(Pass):
    name = "fuse-relu"
    summary = ("Fuse activations (ReLU, ReLU6 = Clip 0..6, LeakyReLU, HardSigmoid, HardSwish, "
               "Sigmoid, Tanh, GELU, x * sigmoid(x)) into the preceding conv / fc (ReLU, ReLU6 also add).")

    def run(self, graph: Graph, ctx: PassContext) -> None:
        apply_patterns(graph, PATTERNS, self.stats, name=self.name)
