"""The IR's building blocks: values, operations, and op declarations (``OpDef``).

An operation is an instance of a *declared* op: its ``OpDef`` names it (``sqnxt.conv``),
fixes how many operands and results it takes, declares each attribute with a kind, a
default and whether it is required, infers its result types from its operands and
attributes, and verifies its own rules.  The verifier checks every op against its
declaration, so an op that was never declared, or that breaks its declaration, cannot
survive a pass unnoticed.

A declaration also carries *traits*: facts about the op that passes, the cost model, the
reports and the frontend read instead of keeping their own lists of op names.  The known
traits (:data:`TRAITS`, the one list; ``declare`` rejects any other name):

* ``structural``: graph structure (``sqnxt.input``, ``sqnxt.output``, ``sqnxt.constant``):
  never executed as arithmetic, never folded.
* ``free``: moves no data and does no arithmetic on the machine (views, layout and shape
  ops, and the structural ops): left out of the network's layers and schedule rows.
* ``shape_op``: a shape computation exporters emit (``Shape -> Gather -> Unsqueeze ->
  Concat`` reshape chains, views such as Squeeze); canonicalize folds it on constants.
* ``view``: passes operand 0's words on unchanged (reshape, flatten, squeeze, unsqueeze,
  identity, dropout): whoever reads its result reads those words (:func:`view_origin`).
  A ``shape_op`` that is not a view (gather, slice, cast) applied to an activation reads
  its words like any op.
* ``reads_shape_only``: reads only its operands' static shapes (``sqnxt.shape``), never
  their words: the one kind of user that is not a reader of an activation.
* ``has_weights``: operands 1.. are the layer's weight (output channels on axis 0) and
  optional bias (one per output channel): the network's parameters as the reports count
  them (an unfolded batchnorm's statistics are not), and what fold-bn rescales.
* ``act_fusible``: has an ``act`` attribute that a following relu / relu6 can fold into.
* ``runs_on_array``: the accelerator runs it and the cost model costs it
  (:func:`sqnxt_compiler.layers.layer_of` maps it to a layer; one instance may still be
  unmodelled, e.g. a broadcasting add).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..diagnostics import Location
from .types import TensorType


class VerifyError(Exception):
    """An op breaks its declaration (raised by ``OpDef.verify`` functions)."""


@dataclass(eq=False)
class Value:
    """An SSA value: the ``index``-th result of ``owner``, with a static tensor type."""

    name: str
    type: TensorType
    owner: "Op | None" = None
    index: int = 0

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


@dataclass(eq=False)
class Op:
    """One operation: a declared op name, ordered operands, results, attributes, location."""

    name: str
    operands: list[Value]
    results: list[Value]
    attrs: dict[str, Any]
    loc: Location = field(default_factory=Location)
    id: int = -1  # assigned by the Graph: creation order, used for deterministic ordering

    @property
    def result(self) -> Value:
        """The single result of a one-result op."""
        if len(self.results) != 1:
            raise ValueError(f"{self.name} has {len(self.results)} results")
        return self.results[0]

    @property
    def opdef(self) -> "OpDef":
        return OPS[self.name]

    def has_trait(self, trait: str) -> bool:
        """True if this op's declaration has ``trait`` (a name in :data:`TRAITS`)."""
        if trait not in TRAITS:
            raise KeyError(f"unknown op trait '{trait}'")
        return trait in OPS[self.name].traits

    def const_value(self) -> np.ndarray | None:
        """The array of a ``sqnxt.constant`` op, else None."""
        return self.attrs["value"] if self.name == "sqnxt.constant" else None

    def __repr__(self) -> str:
        return f"<{self.name} #{self.id} {self.loc.node!r}>"


def view_origin(v: Value) -> Value:
    """The value whose words ``v`` are: walk back through ops with the ``view`` trait
    (operand 0 of each) to the first value not produced by a view."""
    while v.owner is not None and v.owner.has_trait("view"):
        v = v.owner.operands[0]
    return v


#: Attribute kinds and the Python values each accepts.
ATTR_KINDS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float, np.floating)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "ints": lambda v: isinstance(v, tuple) and all(ATTR_KINDS["int"](x) for x in v),
    "floats": lambda v: isinstance(v, tuple) and all(ATTR_KINDS["float"](x) for x in v),
    "strs": lambda v: isinstance(v, tuple) and all(isinstance(x, str) for x in v),
    "array": lambda v: isinstance(v, np.ndarray),
    "any": lambda v: True,
}


@dataclass(frozen=True)
class AttrSpec:
    """One declared attribute: its kind, whether it must be given, its default, allowed values."""

    kind: str
    required: bool = False
    default: Any = None
    choices: tuple | None = None


#: Op traits, name -> meaning (module docstring): the only names ``declare`` accepts.
TRAITS: dict[str, str] = {
    "structural": "graph structure (input, output, constant): never executed as arithmetic, "
                  "never folded",
    "free": "moves no data and does no arithmetic on the machine (views, layout, shape ops, "
            "structure): not a layer, not in the schedule",
    "shape_op": "a shape computation exporters emit (Shape -> Gather -> Unsqueeze -> Concat); "
                "folded on constants",
    "view": "passes operand 0's words on unchanged (reshape, flatten, (un)squeeze, identity): "
            "a reader of its result reads those words (schedule.liveness, the DRAM image)",
    "reads_shape_only": "reads only its operands' static shapes, never their words (Shape): "
                        "not a reader of the data",
    "has_weights": "operands 1.. are the layer's weight (output channels on axis 0) and "
                   "optional bias (counted as the network's parameters; what fold-bn rescales)",
    "act_fusible": "has an 'act' attribute a following relu / relu6 can fold into",
    "runs_on_array": "the accelerator runs it and the cost model costs it (layers.layer_of)",
}


def check_traits(name: str, traits) -> frozenset[str]:
    """``traits`` as a frozenset, after checking every name is in :data:`TRAITS`."""
    out = frozenset(traits)
    unknown = sorted(out - TRAITS.keys())
    if unknown:
        raise ValueError(f"op {name}: unknown trait(s) {unknown}; known: {sorted(TRAITS)}")
    return out


@dataclass(frozen=True)
class OpDef:
    """The declaration of one op.

    ``operands`` is ``(min, max)`` (``max`` None = variadic); ``infer`` maps an op to its
    result types; ``verify`` raises :class:`VerifyError` when an op breaks a rule that
    types alone do not capture; ``traits`` are names from :data:`TRAITS`.
    """

    name: str
    summary: str
    operands: tuple[int, int | None]
    num_results: int
    attrs: dict[str, AttrSpec]
    infer: Callable[[Op], list[TensorType]]
    verify: Callable[[Op], None] | None = None
    traits: frozenset[str] = frozenset()


#: The op registry: every op the IR knows, by name.
OPS: dict[str, OpDef] = {}


def declare(name: str, summary: str, *, operands=(1, 1), results: int = 1,
            attrs: dict[str, AttrSpec] | None = None, verify=None, traits=()):
    """Decorator: declare an op whose type-inference function is the decorated function.

    ``traits`` are names from :data:`TRAITS`; an unknown name is an error.
    """
    checked = check_traits(name, traits)

    def wrap(infer):
        if name in OPS:
            raise ValueError(f"op {name} declared twice")
        OPS[name] = OpDef(name, summary, tuple(operands), results, dict(attrs or {}),
                          infer, verify, checked)
        return infer

    return wrap


def check_attrs(op: Op) -> None:
    """Attributes present are declared and of their kind; required ones are present."""
    d = op.opdef
    for key, val in op.attrs.items():
        spec = d.attrs.get(key)
        if spec is None:
            raise VerifyError(f"undeclared attribute '{key}'")
        if not ATTR_KINDS[spec.kind](val):
            raise VerifyError(f"attribute '{key}' must be of kind {spec.kind}, got {val!r}")
        if spec.choices is not None and val not in spec.choices:
            raise VerifyError(f"attribute '{key}' = {val!r} not in {spec.choices}")
    for key, spec in d.attrs.items():
        if spec.required and key not in op.attrs:
            raise VerifyError(f"missing required attribute '{key}'")


def with_defaults(name: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` completed with the declared defaults of op ``name`` (explicit IR)."""
    out = {}
    for key, spec in OPS[name].attrs.items():
        if key in attrs:
            out[key] = attrs[key]
        elif spec.default is not None:
            out[key] = spec.default
    for key in attrs:
        if key not in out:
            out[key] = attrs[key]  # undeclared: let the verifier name it
    return out
