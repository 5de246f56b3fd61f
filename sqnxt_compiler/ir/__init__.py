"""The sqnxt IR: declared ops on a networkx dataflow graph (see :mod:`.graph`)."""
from . import ops as _ops  # noqa: F401  (declares the op set)
from .core import OPS, Op, OpDef, Value, VerifyError
from .graph import Graph
from .printer import print_graph, print_op
from .types import TensorType
from .verifier import IRVerificationError, verify

__all__ = ["OPS", "Op", "OpDef", "Value", "VerifyError", "Graph", "print_graph", "print_op",
           "TensorType", "IRVerificationError", "verify"]
