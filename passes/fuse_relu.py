"""fuse-relu: fold a ReLU or ReLU6 into the conv, fc or add that feeds it (the ops with
the ``act_fusible`` trait).

``relu(conv(x))`` -> ``conv(x) {act = "relu"}``; ``clip(conv(x)) {min = 0, max = 6}`` ->
``conv(x) {act = "relu6"}``; likewise for ``sqnxt.fc`` and ``sqnxt.add``.  The accelerator
applies the activation as results leave the array, so a fused op costs no extra pass over
the output.

Before::

    %s = sqnxt.add(%a, %b) {act = "none"}
    %y = sqnxt.relu(%s)

After::

    %y' = sqnxt.add(%a, %b) {act = "relu"}

A conv / fc that already carries a fused residual add (``fuse-add`` ran first) takes the
activation as its ``post_act``: it applies to the sum, as the ReLU did.

Left alone (and counted): a producer with other users (they need the pre-activation
value), one that already has an activation, a conv with a fused pool (the activation
would run before the pool), a clip with other bounds than [0, 6].
"""
from __future__ import annotations

from ..ir.graph import Graph
from ..pipeline.pass_base import Pass, PassContext
from .patterns import fusible_producer


def activation_of(op) -> str | None:
    """``relu`` for a relu, ``relu6`` for clip(0, 6), else None."""
    if op.name == "sqnxt.relu":
        return "relu"
    if op.name == "sqnxt.clip" and op.attrs["min"] == 0.0 and op.attrs["max"] == 6.0:
        return "relu6"
    return None


class FuseReLU(Pass):
    name = "fuse-relu"
    summary = "Fuse ReLU / ReLU6 (Clip 0..6) into the preceding conv / fc / add."

    def run(self, graph: Graph, ctx: PassContext) -> None:
        for op in graph.ops():
            if op.name not in ("sqnxt.relu", "sqnxt.clip") or op not in graph:
                continue
            act = activation_of(op)
            if act is None:
                self.stats["skipped-clip-bounds"] += 1
                continue
            src, why = fusible_producer(graph, op.operands[0], "act_fusible")
            if src is None:
                self.stats[f"skipped-{why}"] += 1
                continue
            if src.attrs.get("pool") is not None:     # act(pool(y)) is not pool(act(y))
                self.stats["skipped-pool-between"] += 1
                continue
            slot = "post_act" if src.attrs.get("residual") else "act"
            if src.attrs[slot] != "none":
                self.stats["skipped-already-activated"] += 1
                continue
            src.attrs[slot] = act
            graph.replace_all_uses(op.result, src.result)
            graph.erase(op)
            self.stats[f"{act}-fused-into-{src.name.split('.')[1]}"] += 1
