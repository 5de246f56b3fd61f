"""The textual form of the IR: deterministic, one op per line, every type and attribute.

    sqnxt.graph @name(%input: tensor<1x3x227x227xf32>) {
      %w = sqnxt.constant {value = dense<64x3x7x7xf32 #1a2b3c4d>} : tensor<64x3x7x7xf32>  loc("conv1")
      %conv1 = sqnxt.conv(%input, %w) {act = "none", groups = 1, ...}
          : (tensor<...>, tensor<...>) -> tensor<...>  loc("conv1")
      sqnxt.output(%prob) {names = ["prob"]} : (tensor<1x1000xf32>)
    }

Constants print their shape and a CRC-32 of their bytes (never the data), so a change to
weights, such as BatchNorm folding, is visible in a diff.  Attributes print sorted by
name.  An op's schedule, once attached, prints as ``schedule = {...}``; graph attributes
(the network memory plan) print after the arguments as ``attributes {...}``.
"""
from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np

from .graph import Graph
from .types import TensorType, dtype_name


def format_attr(value: Any) -> str:
    """One attribute value in textual form."""
    if isinstance(value, np.ndarray):
        shape = "x".join(str(d) for d in value.shape)
        # crc32 of the array's bytes, read in place (a weight is not copied to print it)
        digest = zlib.crc32(np.ascontiguousarray(value).reshape(-1).view(np.uint8)) & 0xFFFFFFFF
        if value.size <= 8 and value.dtype.kind in "iub":
            return f"dense<{value.reshape(-1).tolist()} : {shape}x{dtype_name(value.dtype)}>"
        return f"dense<{shape + 'x' if shape else ''}{dtype_name(value.dtype)} #{digest:08x}>"
    if isinstance(value, TensorType):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else json.dumps(str(value))
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {format_attr(v)}" for k, v in sorted(value.items())) + "}"
    if hasattr(value, "to_ir_attr"):
        return format_attr(value.to_ir_attr())
    return str(value)


def print_op(op) -> str:
    """One op's line (without indentation)."""
    lhs = ", ".join(f"%{r.name}" for r in op.results)
    args = ", ".join(f"%{v.name}" for v in op.operands)
    attrs = {k: v for k, v in op.attrs.items() if not (op.name == "sqnxt.input")}
    attr_s = (" {" + ", ".join(f"{k} = {format_attr(v)}" for k, v in sorted(attrs.items())) + "}"
              if attrs else "")
    in_t = ", ".join(str(v.type) for v in op.operands)
    out_t = ", ".join(str(r.type) for r in op.results)
    sig = f"({in_t}) -> {out_t}" if op.operands else out_t
    if not op.results:
        sig = f"({in_t})"
    loc = f'  loc("{op.loc.node}")' if op.loc.node else ""
    head = f"{lhs} = " if lhs else ""
    return f"{head}{op.name}({args}){attr_s} : {sig}{loc}"


def print_graph(graph: Graph) -> str:
    """The whole graph in textual form (inputs as arguments, then every other op in order)."""
    ins = ", ".join(f"%{op.result.name}: {op.result.type}" for op in graph.inputs)
    attrs = (" attributes {" + ", ".join(f"{k} = {format_attr(v)}" for k, v in sorted(graph.attrs.items()))
             + "}") if graph.attrs else ""
    lines = [f"sqnxt.graph @{graph.name}({ins}){attrs} {{"]
    for op in graph.ops():
        if op.name != "sqnxt.input":
            lines.append("  " + print_op(op))
    lines.append("}")
    return "\n".join(lines) + "\n"
