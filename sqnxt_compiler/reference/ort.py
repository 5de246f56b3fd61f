"""onnxruntime as the numerical reference: the original model, graph optimizations off, CPU."""
from __future__ import annotations

import numpy as np
import onnx

from ..diagnostics import InputError, Location, UnsupportedError


def ort_session(model: onnx.ModelProto | None, source: str):
    """An InferenceSession of ``model`` with ``ORT_DISABLE_ALL`` on the CPU provider; None:
    the file ``source`` itself (a model imported without keeping its large weights)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4  # fatal only: a failure is reported once, as sqnxtc's one line
    so.intra_op_num_threads = 1  # deterministic reductions, and fair on a shared machine
    try:
        src = source if model is None else model.SerializeToString()
        return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"onnxruntime cannot load the model: {first}", Location(file=source)) from None


def run_ort(session, feeds: dict[str, np.ndarray], source: str = "") -> dict[str, np.ndarray]:
    """The session's outputs for ``feeds``; a model onnxruntime loads but cannot run (a
    kernel rejecting its attributes) is unsupported (exit 4): there is no reference."""
    names = [o.name for o in session.get_outputs()]
    try:
        return dict(zip(names, session.run(names, feeds)))
    except Exception as exc:  # onnxruntime raises its own exception types
        text = " ".join(str(exc).split()) or type(exc).__name__
        text = text.split("Status Message: ", 1)[-1]
        raise UnsupportedError(f"onnxruntime cannot run the model, so there is no reference: {text}",
                               Location(file=source or None)) from None
