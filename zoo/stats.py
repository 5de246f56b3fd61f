"""Parameter and MAC counting on built ONNX models, and the published-figures table.

:class:`~.registry.ModelInfo` counts come from the builder's layer records (no weights);
:func:`count_model` recounts them from an actual ``onnx.ModelProto`` (initializer sizes
and inferred shapes), so the tests can check that the two agree.  :func:`published_table`
renders the comparison with the paper's figures that ``docs/zoo.md`` embeds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import onnx
from onnx import helper, shape_inference


@dataclass(frozen=True)
class Counts:
    """Counts of one model, the same definitions as :class:`~.registry.ModelInfo`."""

    params: int
    macs: int
    macs_with_bias: int


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without weight data: initializers become typed graph inputs (for shapes)."""
    g = model.graph
    inputs = list(g.input) + [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                              for t in g.initializer]
    graph = helper.make_graph(list(g.node), g.name, inputs, list(g.output))
    return helper.make_model(graph, opset_imports=list(model.opset_import),
                             ir_version=model.ir_version)


def count_model(model: onnx.ModelProto) -> Counts:
    """Count conv/fc weights+biases and BatchNorm scale+shift, and conv/fc MACs.

    MACs of a ``Conv``: output elements x (input channels / group) x kernel area; of a
    ``Gemm``: output features x input features.  ``macs_with_bias`` adds one per output.
    """
    dims = {t.name: list(t.dims) for t in model.graph.initializer}
    inferred = shape_inference.infer_shapes(_skeleton(model), strict_mode=True)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(inferred.graph.value_info) + list(inferred.graph.output)
              + list(inferred.graph.input)}
    params = macs = bias_macs = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            w = dims[node.input[1]]
            params += math.prod(w)
            if len(node.input) > 2:
                params += math.prod(dims[node.input[2]])
            out = shapes[node.output[0]]
            per_output = math.prod(w[1:])
            if node.op_type == "Conv":
                macs += math.prod(out) * per_output
            else:
                macs += out[-1] * w[1]
            bias_macs += math.prod(out)
        elif node.op_type == "BatchNormalization":
            params += math.prod(dims[node.input[1]]) + math.prod(dims[node.input[2]])
    return Counts(params, macs, macs + bias_macs)


def _dev(ours: float, published: float | None) -> str:
    return "" if published is None else f"{(ours / published - 1) * 100:+.2f}%"


def published_table() -> str:
    """Markdown table: every model's counts against the paper's figures and the rule used."""
    from .registry import list_models, lookup

    head = ("| model | source | params (M) | published | dev. | params rule "
            "| MACs+bias (M) | published | dev. | MACs rule |\n"
            "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |\n")
    rows = []
    for i in list_models():
        p = i.params / 1e6
        m = i.macs_with_bias / 1e6
        preset = lookup(i.name)
        rows.append(
            f"| {i.name} | {i.source} | {p:.4f} | {preset.published_params or ''} "
            f"| {_dev(p, i.published_params)} | {i.params_rule} "
            f"| {m:.1f} | {preset.published_macs or ''} "
            f"| {_dev(m, i.published_macs)} | {i.macs_rule} |")
    return head + "\n".join(rows) + "\n"
