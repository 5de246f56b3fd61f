"""``sqnxtc ops``: the ONNX ops sqnxtc imports, the IR op each becomes, and how the
accelerator's cost model treats it."""
from __future__ import annotations

import click

from ..outputs import echo


def cost_class(ir_op: str) -> str:
    """How reports treat an IR op, from its declared traits: ``array`` (scheduled on the
    PE array and costed), ``host`` (run by the host CPU: reported as host work, its DRAM
    words, no accelerator cycles), ``free`` (a view, shape computation or graph structure:
    no work), else ``not modelled`` (listed in reports with no cycles)."""
    from ..ir.core import OPS

    traits = OPS[ir_op].traits
    if "runs_on_array" in traits:
        return "array"
    if "host" in traits:
        return "host"
    if "free" in traits:
        return "free"
    return "not modelled"


def ops_table() -> list[tuple[str, str, str]]:
    """(ONNX op, IR op(s), cost classes) of every supported ONNX op, sorted by name."""
    from ..frontend.cut import DYNAMIC_SHAPE
    from ..frontend.onnx_import import LOWERS_INTO

    import re

    rows = []
    for onnx_op in sorted(LOWERS_INTO):
        into = LOWERS_INTO[onnx_op]
        classes = dict.fromkeys(cost_class(n) for n in re.findall(r"sqnxt\.\w+", into))
        rows.append((onnx_op, into, " / ".join(classes) or
                     ("host tail" if onnx_op in DYNAMIC_SHAPE else "unsupported")))
    return rows


@click.command("ops")
def ops_cmd() -> None:
    """List the ONNX ops sqnxtc imports (default domain): the IR op each becomes and how
    the cost model treats it (array: scheduled and costed; host: run by the host CPU,
    reported as host work; free: views, shapes, graph structure; not modelled: listed in
    reports with no cycles; host tail: an op of data-dependent output shape, before which
    the model is cut, the rest run on the host after the accelerator; unsupported:
    refused with the reason).  docs/ir.md has the IR's op set and the import rules."""
    rows = ops_table()
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    echo(f"{'ONNX op':<{w0}}  {'IR op':<{w1}}  cost")
    for onnx_op, into, cls in rows:
        echo(f"{onnx_op:<{w0}}  {into:<{w1}}  {cls}")
