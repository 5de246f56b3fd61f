"""Matching helpers shared by the fusion passes' rewrite patterns (fold-bn, fuse-relu,
fuse-add, fuse-pool; the patterns and their driver: :mod:`sqnxt_compiler.pipeline.rewrite`).

A fusion folds an op into the op that produces its input.  That is legal only when the
producer is of the right kind (it has the trait the fusion needs) and nothing else reads
the producer's result (folding would change what the other users see: ONNX Runtime's and
torch.fx's conv-BN fusions skip such a producer too).
"""
from __future__ import annotations

from ..ir.core import Op, Value
from ..ir.graph import Graph


def fusible_producer(graph: Graph, v: Value, trait: str) -> tuple[Op | None, str]:
    """``(producer of v, "")`` when the producer has ``trait`` and ``v`` is its result's
    only use; otherwise ``(None, reason)``, reason ``"no-producer"`` (no producer, or one
    without the trait) or ``"multi-use"`` (the result has other users)."""
    src = v.owner
    if src is None or not src.has_trait(trait):
        return None, "no-producer"
    if len(graph.uses(src.result)) != 1:
        return None, "multi-use"
    return src, ""
