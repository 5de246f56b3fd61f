"""The model zoo: the SqueezeNext family and the paper's comparison networks, as ONNX.

    from sqnxt_compiler.zoo import list_models, build, get_info

    list_models() -> list[ModelInfo]       # sorted by name; cheap (no weights are built)
    get_info(name) -> ModelInfo
    build(name, *, seed=0, weight_sparsity=0.0) -> onnx.ModelProto

Models are built with ``onnx.helper`` from seeded, calibrated weights (no downloads):
opset 13, input ``input`` [1, 3, S, S], output ``output`` [1, 1000] logits, float32.
See ``docs/zoo.md`` for every preset, its reconstruction choices and its published figures.
"""
from .registry import ModelInfo, build, get_info, list_models
from .squeezenext import SqueezeNextConfig

__all__ = ["ModelInfo", "SqueezeNextConfig", "build", "get_info", "list_models"]
