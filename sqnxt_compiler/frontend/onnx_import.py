"""Read an ONNX model and lower it into the sqnxt IR.

Steps, each failing with a one-line located error:

1. load the file (or build ``zoo:NAME``): missing file, directory, empty file, not a
   protobuf, truncated protobuf, a protobuf that is not a model;
2. bind a symbolic batch dimension (axis 0 of a graph input) to 1, with a note; any other
   dynamic dimension, or a batch other than 1, is unsupported;
3. ``onnx.checker.check_model`` and strict ``onnx.shape_inference`` (with data
   propagation, so exporters' Shape -> Reshape chains get static shapes);
3b. a model with ops of data-dependent output shape (NonMaxSuppression, NonZero) is cut
   before them (:mod:`.cut`): the head is imported, the host tail kept for ``check`` and
   the reports;
4. lower node by node; every result's type is inferred by the IR's op declarations and
   must agree with ONNX shape inference.

Opset differences (Clip/Dropout/Slice/Squeeze/Unsqueeze attributes that became inputs,
Softmax's coerce-to-2D rule before opset 13) are resolved in the lowerings, so the IR has
one form.

This module composes the steps (:func:`import_model`, :func:`load`); each lives in its
own module, data flowing one way: :mod:`.load` (step 1), :mod:`.shapes` (steps 2 and 3),
:mod:`.lowering` (step 4's context, walk and ``@lowers`` registry), and the lowerings by
op family in :mod:`.lower_nn`, :mod:`.lower_elementwise`, :mod:`.lower_shape` and
:mod:`.lower_host`.  The
names other modules import from here (``LOWERINGS``, ``LOWERS_INTO``, ``load_onnx``, ...)
are re-exported.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import onnx

from ..diagnostics import InputError
from ..ir.graph import Graph
from ..ir.verifier import IRVerificationError, verify
from . import lower_elementwise, lower_nn, lower_shape  # noqa: F401  (registers the lowerings)
from . import lower_host  # noqa: F401  (registers the host ops' lowerings)
from .cut import HostTail, Split, materialize, split_model
from .load import _opset, _read, load_onnx
from .lower_elementwise import UNARY
from .lowering import (LOWERINGS, LOWERS_INTO, MAX_ELEMENTS, _Lowering, lowers, node_label,
                       static_value, unsupported_message, unsupported_ops)
from .shapes import ONNX_DTYPES, WEIGHT_SLOTS, _bind_batch, _check_and_infer
from .weights import LazyTensor

__all__ = ["ImportResult", "import_model", "load", "load_onnx", "LOWERINGS", "LOWERS_INTO",
           "lowers", "node_label", "unsupported_ops", "unsupported_message", "static_value",
           "MAX_ELEMENTS", "ONNX_DTYPES", "WEIGHT_SLOTS", "UNARY"]


@dataclass
class ImportResult:
    """The imported graph, the notes of the import, and the model onnxruntime runs as the
    reference: the ModelProto, or None when it was read from a file whose large weights
    were not kept in it (:mod:`.weights`): onnxruntime then reads the file itself."""

    graph: Graph
    notes: list[str] = field(default_factory=list)
    model: onnx.ModelProto | None = None
    #: the host tail of a model cut before its dynamic-shape ops (:mod:`.cut`): ``model`` is
    #: then the head, ``tail.full`` the whole model (None: the file itself)
    tail: Split | None = None


def import_model(model: onnx.ModelProto, source: str = "<model>", *,
                 lazy: dict[str, LazyTensor] | None = None) -> ImportResult:
    """Check, shape-infer and lower ``model``; the IR is verified before it is returned.
    A model may have several outputs (multi-head networks, feature extractors, a network
    cut into parts): ``sqnxt.output`` lists them in the model's order.  ``lazy``: the
    initializers of the file ``source`` that ``model`` holds as stand-ins
    (:func:`.weights.read_model`), read when first used."""
    notes: list[str] = []
    g = model.graph
    if len(g.node) == 0:
        raise InputError("empty graph: the model has no nodes", source)
    if len(g.output) == 0:
        raise InputError("the graph has no outputs: nothing to compute", source)
    if _opset(model) == 0:
        raise InputError("model imports no default-domain opset", source)
    newest = onnx.defs.onnx_opset_version()
    if _opset(model) > newest:
        raise InputError(f"opset {_opset(model)} does not exist (the newest ONNX opset this onnx "
                         f"{onnx.__version__} knows is {newest})", source)
    _bind_batch(model, source, notes)
    inferred = _check_and_infer(model, source, notes, lazy)
    split = split_model(inferred, source)
    if split is not None:
        inferred = split.head
        split.full = None if lazy else model
        t = split.tail
        notes.append(f"{source}: host tail: {len(t.ops)} node{'s' if len(t.ops) != 1 else ''} from "
                     + ", ".join(f"'{n}' ({o})" for n, o in t.cut_at)
                     + f" run on the host after the accelerator (a data-dependent output shape); "
                     f"compiled: the network up to the cut ({', '.join(x.name for x in t.reads)})")
        arr = t.array_ops()
        if arr:
            notes.append(f"{source}: the host tail holds {len(arr)} array op{'s' if len(arr) != 1 else ''} ("
                         + ", ".join(f"'{n}' ({o})" for n, o in arr[:3]) + (", ..." if len(arr) > 3 else "")
                         + "): they run on the host and are not costed")
    lowering = _Lowering(inferred, source, notes, lazy)
    del inferred
    graph = lowering.run()
    if split is not None:
        graph.attrs["host_tail"] = split.tail
    try:
        verify(graph)
    except IRVerificationError as exc:
        # straight after import, a broken op rule is the model's (weights that disagree with
        # the input channels, groups that divide nothing, pads as large as the window): a bad
        # input model, not a bug (after a pass the same error is one: exit 70)
        raise InputError(exc.message.replace("IR verification failed", "invalid model", 1),
                         exc.location) from None
    if split is not None:      # onnxruntime runs the head: it cannot read the file's stand-ins
        return ImportResult(graph, notes, materialize(lowering.model, lazy), split)
    return ImportResult(graph, notes, None if lazy else lowering.model)


def load(spec: str) -> ImportResult:
    """Load ``spec`` (path or ``zoo:NAME``) and import it (see :func:`import_model`); a
    file's large weights are read lazily (:mod:`.weights`), so its peak memory stays near
    the size of the weights once."""
    model, source, lazy = _read(spec, lazy=True)
    return import_model(model, source, lazy=lazy)
