"""The fp64 arbiter of ``sqnxtc check``: fp32 rounding noise told apart from a bug.

A fixed tolerance cannot tell the rounding a deep or ill-conditioned network accumulates
in float32 from a wrong kernel: onnxruntime's own fp32 result is that far from the exact
one.  So when an output is beyond the tolerance (``check.compare``) on a sample, the
model's *imported* IR (no passes: the ONNX model's own semantics, every weight as the file
stores it) is evaluated with every floating tensor in float64 (:func:`run_fp64`), the
"exact" result ``x``, and the output is judged by the errors of both fp32 results against it:

    e(a) = (max|a - x|, rms(a - x))           over the elements
    pass  iff  e(ours) <= M * e(ort)  (both the max and the rms)
          and  max|ort - x| <= R * max(1, max|x|)

with ``M`` = :data:`MULTIPLE` (4) and ``R`` = :data:`PLAUSIBLE` (1e-3).  The first line:
sqnxtc's result is no further from the exact one than a few times onnxruntime's (a wrong
kernel or rewrite puts sqnxtc far from the exact result while onnxruntime stays near it;
and when onnxruntime is exact, ``e(ort) = 0`` grants nothing, so a result that is merely
close still fails).  The rms catches an error spread thinly over many elements, the max
one concentrated on a few (a border).  The second line guards the arbiter itself: its
kernels are sqnxtc's own numpy kernels, so a kernel wrong in both the compiled and the
fp64 run would make onnxruntime look far off; onnxruntime further than ``R`` from the fp64
result is not fp32 rounding, and the output fails with that said.  An int16 execution is
not arbitrated (its error is quantization, held by its own tolerance).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.core import Op
from ..ir.graph import Graph
from ..ir.types import DTYPES
from .executor import Interpreter, bind_input, eval_op

#: ``M``: sqnxtc's error against float64 may be this many times onnxruntime's own
MULTIPLE = 4.0
#: ``R``: onnxruntime's largest error against float64, relative to max(1, max|x|), beyond
#: which the fp64 evaluation (not onnxruntime) is in doubt
PLAUSIBLE = 1e-3


def _to64(a: np.ndarray) -> np.ndarray:
    """``a`` in float64 if it is floating, else as it is."""
    a = np.asarray(a)
    return a.astype(np.float64) if a.dtype.kind == "f" and a.dtype != np.float64 else a


def _erf64(op: Op, args: list) -> np.ndarray:
    """erf to double precision (``math.erf`` per element: the executor's float32-grade
    approximation would cap the arbiter at 1.5e-7)."""
    x = np.asarray(args[0], dtype=np.float64)
    return np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)


def _cast64(op: Op, args: list) -> np.ndarray:
    """A cast to a floating type gives float64 (every floating tensor is float64 here);
    to any other type, as the model says."""
    to = np.dtype(DTYPES[op.attrs["to"]])
    x = np.asarray(args[0])
    return x.astype(np.float64) if to.kind == "f" else x.astype(to)


#: kernels replaced in the fp64 evaluation (the rest keep their input's dtype)
EXACT = {"sqnxt.erf": _erf64, "sqnxt.cast": _cast64}


class Float64Interpreter(Interpreter):
    """The numpy executor with every floating value in float64: inputs and constants are
    widened, the kernels (which compute in their operands' dtype) run on float64, and the
    kernels that would not (:data:`EXACT`) are replaced."""

    failure = "the fp64 arbiter failed"

    def bind(self, op: Op, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The input as given (exact fp32 values), widened to float64."""
        return _to64(bind_input(self.graph, op, inputs))

    def run_op(self, op: Op, args: list) -> np.ndarray:
        """The op's kernel on float64 operands; a floating result is float64."""
        if op.name == "sqnxt.constant":
            return _to64(op.attrs["value"])
        fn = EXACT.get(op.name)
        return _to64(fn(op, args) if fn is not None else eval_op(op, args))


def run_fp64(graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``graph``'s outputs on ``inputs`` with every floating tensor in float64."""
    return Float64Interpreter(graph).run(inputs)


@dataclass(frozen=True)
class Errors:
    """An fp32 result's distance from the fp64 one: largest and root-mean-square."""
    max_abs: float
    rms: float


def errors(a: np.ndarray, exact: np.ndarray) -> Errors:
    """:class:`Errors` of ``a`` against ``exact`` over the elements both give finite values
    (a non-finite value where the other is finite: infinite error)."""
    a = np.asarray(a, dtype=np.float64)
    x = np.asarray(exact, dtype=np.float64)
    fa, fx = np.isfinite(a), np.isfinite(x)
    if np.any(fa != fx):
        return Errors(float("inf"), float("inf"))
    d = np.abs(a[fa] - x[fa])
    if d.size == 0:
        return Errors(0.0, 0.0)
    return Errors(float(d.max()), float(np.sqrt(np.mean(d * d))))


@dataclass(frozen=True)
class Verdict:
    """The arbiter's judgement of one output on one sample."""
    ours: Errors
    ort: Errors
    scale: float      # max(1, max|exact|)
    ok: bool
    why: str


def arbitrate(ours: np.ndarray, ort: np.ndarray, exact: np.ndarray) -> Verdict:
    """The rule of the module docstring for one output."""
    eo, er = errors(ours, exact), errors(ort, exact)
    fin = np.asarray(exact, dtype=np.float64)
    fin = fin[np.isfinite(fin)]
    scale = max(1.0, float(np.max(np.abs(fin))) if fin.size else 0.0)
    if er.max_abs > PLAUSIBLE * scale:
        return Verdict(eo, er, scale, False,
                       f"onnxruntime is {er.max_abs:.3g} from the fp64 evaluation (more than "
                       f"{PLAUSIBLE:g} x {scale:.3g}): not fp32 rounding, sqnxtc's kernels are in doubt")
    if eo.max_abs <= MULTIPLE * er.max_abs and eo.rms <= MULTIPLE * er.rms:
        return Verdict(eo, er, scale, True,
                       f"within {MULTIPLE:g}x onnxruntime's own error against fp64: fp32 rounding")
    return Verdict(eo, er, scale, False,
                   f"sqnxtc is further from fp64 than {MULTIPLE:g}x onnxruntime's own error")
