"""fuse-relu: fold an activation into the conv, fc or add that feeds it (the ops with the
``act_fusible`` trait).  The activations are the ops with the ``activation`` trait: its
``Activation(kind, alpha, beta, when)`` says which ``act`` the op becomes, with which
``act_alpha`` / ``act_beta``, and on which attribute values (ir/ops.py).

``relu(conv(x))`` -> ``conv(x) {act = "relu"}``; ``clip(conv(x)) {min = 0, max = 6}`` ->
``conv(x) {act = "relu6"}``; likewise for ``sqnxt.fc`` and ``sqnxt.add``.  Into a conv or
fc (not an add) also every other activation the epilogue applies: leaky_relu (``act_alpha``
= its slope), hard_sigmoid (``act_alpha``, ``act_beta``), hard_swish, sigmoid, tanh, and
swish, the pattern ``mul(y, sigmoid(y))`` (SiLU as exporters write it).  The accelerator
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
"""
from __future__ import annotations

from ..ir.core import Activation
from ..ir.graph import Graph
from ..ir.ops import SWISH
from ..pipeline.pass_base import Pass, PassContext
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


class FuseReLU(Pass):
    name = "fuse-relu"
    summary = ("Fuse activations (ReLU, ReLU6 = Clip 0..6, LeakyReLU, HardSigmoid, HardSwish, "
               "Sigmoid, Tanh, x * sigmoid(x)) into the preceding conv / fc (ReLU, ReLU6 also add).")

    def run(self, graph: Graph, ctx: PassContext) -> None:
        for op in graph.ops():
            if op not in graph:
                continue
            sw = swish_of(graph, op)
            if sw is not None:
                self._swish(graph, op, *sw)
                continue
            act = op.get_trait(Activation)
            if act is None:
                continue
            users = graph.uses(op.result)
            if op.name == "sqnxt.sigmoid" and len(users) == 1 and swish_of(graph, users[0][0]):
                continue          # half of a swish: fused with its mul
            params = act.epilogue_attrs(op)
            if params is None:    # not this activation's attribute values (a clip not on [0, 6])
                self.stats[f"skipped-{op.name.split('.')[1]}-bounds"] += 1
                continue
            src, why = fusible_producer(graph, op.operands[0], "act_fusible")
            if src is None:
                self.stats[f"skipped-{why}"] += 1
                continue
            if self._fuse(graph, src, act.kind, params, op.result):
                graph.erase(op)

    def _swish(self, graph: Graph, mul, y, sig) -> None:
        """mul(y, sigmoid(y)) -> y's producer with act = swish, when y feeds only these two."""
        src = y.owner
        if src is None or not src.has_trait("act_fusible"):
            self.stats["skipped-no-producer"] += 1
            return
        if {u.id for u, _ in graph.uses(src.result)} != {mul.id, sig.id}:
            self.stats["skipped-multi-use"] += 1
            return
        if self._fuse(graph, src, SWISH.kind, {}, mul.result):
            graph.erase(mul)
            graph.erase(sig)

    def _fuse(self, graph: Graph, src, kind: str, params: dict, result) -> bool:
        """Give ``src`` the activation ``kind`` (its slot: ``post_act`` after a fused
        residual add, else ``act``) with ``params`` (``act_alpha``, ``act_beta``) and let
        ``result``'s users read ``src``; False (and counted) when it cannot take it: a
        fused pool, a kind the slot's declared choices do not take (the adder applies
        relu and relu6 only), a slot already set."""
        if src.attrs.get("pool") is not None:     # act(pool(y)) is not pool(act(y))
            self.stats["skipped-pool-between"] += 1
            return False
        slot = "post_act" if src.attrs.get("residual") else "act"
        if kind not in src.opdef.attrs[slot].choices:
            self.stats[f"skipped-{kind}-after-add"] += 1
            return False
        if src.attrs[slot] != "none":
            self.stats["skipped-already-activated"] += 1
            return False
        src.attrs[slot] = kind
        src.attrs.update(params)
        graph.replace_all_uses(result, src.result)
        self.stats[f"{kind}-fused-into-{src.name.split('.')[1]}"] += 1
        return True
