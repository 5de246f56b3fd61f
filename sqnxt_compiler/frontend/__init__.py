"""ONNX frontend: load, check, infer shapes, lower into the IR."""
from .onnx_import import ImportResult, import_model, load, load_onnx

__all__ = ["ImportResult", "import_model", "load", "load_onnx"]
