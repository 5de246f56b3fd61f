"""fuse-relu: fold an activation into the conv, fc or add that feeds it (the ops with the
``act_fusible`` trait).

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
would run before the pool), a clip with other bounds than [0, 6], an activation other than
relu / relu6 after an add or a fused residual add.
"""
from __future__ import annotations

from ..ir.graph import Graph
from ..pipeline.pass_base import Pass, PassContext
from .patterns import fusible_producer

#: Activations an add (and a fused residual's post_act) takes: applied by the adder.
SIMPLE = ("relu", "relu6")


def activation_of(op) -> tuple[str, float, float] | None:
    """(act, alpha, beta) the epilogue applies for ``op``, or None: relu; relu6 for
    clip(0, 6); leaky_relu (alpha = its slope); hard_sigmoid (alpha, beta); hard_swish;
    sigmoid; tanh."""
    if op.name == "sqnxt.relu":
        return "relu", 0.0, 0.0
    if op.name == "sqnxt.clip":
        return ("relu6", 0.0, 0.0) if (op.attrs["min"], op.attrs["max"]) == (0.0, 6.0) else None
    if op.name == "sqnxt.leaky_relu":
        return "leaky_relu", op.attrs["alpha"], 0.0
    if op.name == "sqnxt.hard_sigmoid":
        return "hard_sigmoid", op.attrs["alpha"], op.attrs["beta"]
    if op.name in ("sqnxt.hard_swish", "sqnxt.sigmoid", "sqnxt.tanh"):
        return op.name.split(".")[1], 0.0, 0.0
    return None


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
            if op.name not in ("sqnxt.relu", "sqnxt.clip", "sqnxt.leaky_relu", "sqnxt.hard_sigmoid",
                               "sqnxt.hard_swish", "sqnxt.sigmoid", "sqnxt.tanh"):
                continue
            users = graph.uses(op.result)
            if op.name == "sqnxt.sigmoid" and len(users) == 1 and swish_of(graph, users[0][0]):
                continue          # half of a swish: fused with its mul
            act = activation_of(op)
            if act is None:
                self.stats["skipped-clip-bounds"] += 1
                continue
            src, why = fusible_producer(graph, op.operands[0], "act_fusible")
            if src is None:
                self.stats[f"skipped-{why}"] += 1
                continue
            if self._fuse(graph, src, act, op.result):
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
        if self._fuse(graph, src, ("swish", 0.0, 0.0), mul.result):
            graph.erase(mul)
            graph.erase(sig)

    def _fuse(self, graph: Graph, src, act: tuple[str, float, float], result) -> bool:
        """Give ``src`` the activation and let ``result``'s users read ``src``; False (and
        counted) when it cannot take it."""
        if src.attrs.get("pool") is not None:     # act(pool(y)) is not pool(act(y))
            self.stats["skipped-pool-between"] += 1
            return False
        slot = "post_act" if src.attrs.get("residual") else "act"
        if act[0] not in SIMPLE and (slot == "post_act" or src.name == "sqnxt.add"):
            self.stats[f"skipped-{act[0]}-after-add"] += 1
            return False
        if src.attrs[slot] != "none":
            self.stats["skipped-already-activated"] += 1
            return False
        src.attrs[slot] = act[0]
        if act[0] == "leaky_relu":
            src.attrs["act_alpha"] = act[1]
        elif act[0] == "hard_sigmoid":
            src.attrs["act_alpha"], src.attrs["act_beta"] = act[1], act[2]
        graph.replace_all_uses(result, src.result)
        self.stats[f"{act[0]}-fused-into-{src.name.split('.')[1]}"] += 1
        return True
