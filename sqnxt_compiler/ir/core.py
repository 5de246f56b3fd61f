"""The IR's building blocks: values, operations, and op declarations (``OpDef``).

An operation is an instance of a *declared* op: its ``OpDef`` names it (``sqnxt.conv``),
fixes how many operands and results it takes, declares each attribute with a kind, a
default and whether it is required, infers its result types from its operands and
attributes, and verifies its own rules.  The verifier checks every op against its
declaration, so an op that was never declared, or that breaks its declaration, cannot
survive a pass unnoticed.

A declaration also carries *traits*: facts about the op that passes, the cost model, the
reports and the frontend read instead of keeping their own lists of op names.  The known
traits (:data:`TRAITS`, the one list; ``declare`` rejects any other name).  Most are
plain names (``op.has_trait(name)``):

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
* ``act_fusible``: has an ``act`` attribute whose choices are the activations that
  fuse-relu may fold into it (every kind for conv / fc / matmul, relu and relu6 for add).
* ``host``: runs on the host CPU, not the accelerator: executed by the reference
  executor, its operands read from DRAM and its result written to DRAM (a detection or
  classification tail: TopK, ArgMax, comparisons, Where, GatherElements, ...).  Not a
  layer and never free: the memory planner keeps every tensor a host op reads in DRAM
  (schedule.liveness), an accelerator layer reads a host result from DRAM, and the reports
  list each host op as host work (its DRAM words read and written, its elements; the
  host's time is not modelled).  docs/ir.md, "The host partition".
* ``in_place_parts``: its result's words are its operands' words laid one after the
  other (a concatenation whose every axis before the concat axis has size 1): the ops
  that produce the operands write them straight into their slices of the result, so it
  moves nothing (``sqnxt.concat_view``, made by the ``concat-in-place`` pass;
  :func:`part_offsets`).

The others carry data (xDSL's ``OpTrait``): each is a frozen dataclass (:class:`OpTrait`)
whose fields are its parameters, declared as an object (``Elementwise(1, 0)``), read
with ``op.get_trait(Elementwise)``, checked against the declaration by its ``verify``
when the op is declared, and still answered by ``op.has_trait(name)``:

* ``elementwise``: :class:`Elementwise` ``(ops, funcs)``: an element-wise function, its
  PE operations and nonlinear function evaluations per output element (the ``eltwise``
  layer's ``elem_ops`` and ``elem_funcs``; docs/cost-model.md).
* ``move``: :class:`Move` ``(parts)``: data movement, each output word a copy of one
  input word (a ``move`` layer); ``parts``: the operands are parts of one input (concat).
* ``activation``: :class:`Activation` ``(kind, alpha, beta, when, epilogue, by_adder)``:
  an activation function an epilogue can apply as ``act = kind`` (fuse-relu folds it),
  with the op attributes that become ``act_alpha`` / ``act_beta``, the attribute values
  it needs (a clip is relu6 only on [0, 6]), its operations when fused, and whether the
  adder applies it too.
* ``runs_on_array``: :class:`RunsOnArray` ``(layer)``: the accelerator runs it and the
  cost model costs it; ``layer`` names the rule of :mod:`sqnxt_compiler.layers` that
  makes it a cost-model layer (:func:`sqnxt_compiler.layers.layer_of`; one instance may
  still be unmodelled, e.g. a matmul of two activations).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, TypeVar

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

    def get_trait(self, cls: "type[T]") -> "T | None":
        """This op's declared trait of class ``cls`` (an :class:`OpTrait`), or None."""
        return OPS[self.name].get_trait(cls)

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


def part_offsets(op: "Op") -> list[tuple[Value, int]]:
    """Each operand of an ``in_place_parts`` op with the word offset of its slice in the
    result: operand i starts at ``sum(numel of operands 0..i-1)`` (the parts laid one after
    the other, which the op's declaration verifies its axis allows)."""
    out, off = [], 0
    for v in op.operands:
        out.append((v, off))
        off += v.type.numel
    return out


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
    "in_place_parts": "its result is its operands' words one after the other: their producers "
                      "write into their slices of it, so it moves nothing (concat-in-place)",
    "reads_shape_only": "reads only its operands' static shapes, never their words (Shape): "
                        "not a reader of the data",
    "has_weights": "operands 1.. are the layer's weight (output channels on axis 0) and "
                   "optional bias (counted as the network's parameters; what fold-bn rescales)",
    "act_fusible": "has an 'act' attribute; its choices are the activations fuse-relu may fold "
                   "into it",
    "host": "runs on the host CPU, not the accelerator: executed by the reference executor, its "
            "operands read from DRAM and its result written to DRAM",
    "elementwise": "Elementwise(ops, funcs): an element-wise function, its PE operations and "
                   "nonlinear evaluations per output element (an eltwise layer)",
    "move": "Move(parts): data movement, each output word a copy of one input word (a move "
            "layer); parts: the operands are parts of one input (concat)",
    "activation": "Activation(kind, alpha, beta, when, epilogue, by_adder): an activation an "
                  "epilogue applies as act = kind (what fuse-relu folds, and its fused cost)",
    "runs_on_array": "RunsOnArray(layer): the accelerator runs it and the cost model costs it; "
                     "layer names the rule of layers.py that makes it a layer (layers.layer_of)",
}

T = TypeVar("T", bound="OpTrait")


@dataclass(frozen=True)
class OpTrait:
    """A trait that carries data (xDSL's ``OpTrait``): a frozen dataclass whose fields are
    its parameters; ``name`` is its entry in :data:`TRAITS`.  ``declare`` calls ``verify``
    on the declaration of every op that carries it."""

    name: ClassVar[str] = ""

    def verify(self, d: "OpDef") -> None:
        """Raise ValueError when the declaration ``d`` breaks a rule of this trait (the
        base trait has none)."""


@dataclass(frozen=True)
class Elementwise(OpTrait):
    """An element-wise function: ``ops`` PE operations and ``funcs`` nonlinear function
    evaluations per output element (an ``eltwise`` layer's ``elem_ops`` and
    ``elem_funcs``).  Counts that depend on an instance's attributes or operands (a
    division by a constant is a multiply only) are its layer rule's, in layers.py."""

    name: ClassVar[str] = "elementwise"
    ops: int
    funcs: int

    def verify(self, d: "OpDef") -> None:
        """Both counts are integers >= 0, and the function does some work."""
        if not all(isinstance(v, int) and v >= 0 for v in (self.ops, self.funcs)) \
                or self.ops + self.funcs == 0:
            raise ValueError(f"op {d.name}: Elementwise({self.ops}, {self.funcs}) needs counts >= 0, "
                             f"not both 0")


@dataclass(frozen=True)
class Move(OpTrait):
    """Data movement: each output word is a copy of one input word, no arithmetic (a
    ``move`` layer).  ``parts``: the operands are parts of one input (concat), so none of
    them is read whole."""

    name: ClassVar[str] = "move"
    parts: bool = False


@dataclass(frozen=True)
class Activation(OpTrait):
    """An activation function an epilogue can apply: ``act = kind`` on a conv or fc
    computes what the op computes on its operand.

    ``alpha`` / ``beta``: the op's attributes that become ``act_alpha`` / ``act_beta``;
    ``when``: the (attribute, value) pairs an instance needs to be this activation (a clip
    is relu6 only on [0, 6]); ``epilogue``: (operations, nonlinear functions) per output
    element once fused (max / min in the output path are free, multiplies and functions
    are not: docs/cost-model.md, "Fused activations"); ``by_adder``: the adder applies it
    too (an add's ``act``, a fused residual's ``post_act``).
    """

    name: ClassVar[str] = "activation"
    kind: str
    alpha: str | None = None
    beta: str | None = None
    when: tuple[tuple[str, float], ...] = ()
    epilogue: tuple[int, int] = (0, 0)
    by_adder: bool = False

    def verify(self, d: "OpDef") -> None:
        """An activation takes one operand; ``alpha``, ``beta`` and the ``when`` attributes
        are attributes the op declares."""
        if d.operands != (1, 1):
            raise ValueError(f"op {d.name}: an Activation takes one operand, not {d.operands}")
        used = [a for a in (self.alpha, self.beta) if a is not None] + [k for k, _ in self.when]
        missing = sorted(set(used) - d.attrs.keys())
        if missing:
            raise ValueError(f"op {d.name}: Activation({self.kind!r}) reads undeclared attribute(s) {missing}")

    def epilogue_attrs(self, op: Op) -> dict[str, Any] | None:
        """The epilogue attributes besides ``act`` that apply ``op`` as this activation
        (``act_alpha``, ``act_beta`` from the op's ``alpha``, ``beta`` attributes), or None
        when the op's attributes are not this activation's (``when``)."""
        if any(op.attrs[key] != value for key, value in self.when):
            return None
        out = {}
        if self.alpha is not None:
            out["act_alpha"] = op.attrs[self.alpha]
        if self.beta is not None:
            out["act_beta"] = op.attrs[self.beta]
        return out


@dataclass(frozen=True)
class RunsOnArray(OpTrait):
    """The accelerator runs the op and the cost model costs it: ``layer`` names the rule
    that makes it a cost-model layer (``RULES`` in :mod:`sqnxt_compiler.layers`, which
    registers each rule's builder under that name: ir/ does not import the cost model)."""

    name: ClassVar[str] = "runs_on_array"
    layer: str

    def verify(self, d: "OpDef") -> None:
        """The op declares the ``schedule`` and ``plan`` attributes (the schedule pass and
        the memory planner attach them; the verifier rejects undeclared attributes)."""
        missing = sorted({"schedule", "plan"} - d.attrs.keys())
        if missing:
            raise ValueError(f"op {d.name}: RunsOnArray needs the attribute(s) {missing} "
                             f"(declare them with SCHEDULE, PLAN)")


#: The traits that carry data, by name: declared as objects, never as bare names.
DATA_TRAITS: dict[str, type[OpTrait]] = {c.name: c for c in (Elementwise, Move, Activation, RunsOnArray)}


def check_traits(name: str, traits) -> tuple[frozenset[str], tuple[OpTrait, ...]]:
    """``traits`` as (the names of all of them, the data-carrying ones as objects), after
    checking: every name is in :data:`TRAITS`, a trait with parameters is given as its
    :class:`OpTrait` object (``RunsOnArray("conv")``, not ``"runs_on_array"``), and no
    trait is given twice."""
    names = [t.name if isinstance(t, OpTrait) else t for t in traits]
    unknown = sorted(set(names) - TRAITS.keys())
    if unknown:
        raise ValueError(f"op {name}: unknown trait(s) {unknown}; known: {sorted(TRAITS)}")
    bare = sorted({t for t in traits if not isinstance(t, OpTrait)} & DATA_TRAITS.keys())
    if bare:
        raise ValueError(f"op {name}: trait(s) {bare} carry data: declare "
                         + ", ".join(f"{DATA_TRAITS[b].__name__}(...)" for b in bare))
    if len(set(names)) != len(names):
        raise ValueError(f"op {name}: a trait is given twice: {sorted(names)}")
    return frozenset(names), tuple(t for t in traits if isinstance(t, OpTrait))


@dataclass(frozen=True)
class OpDef:
    """The declaration of one op.

    ``operands`` is ``(min, max)`` (``max`` None = variadic); ``infer`` maps an op to its
    result types; ``verify`` raises :class:`VerifyError` when an op breaks a rule that
    types alone do not capture; ``traits`` are the names (from :data:`TRAITS`) of all its
    traits, ``data_traits`` the ones that carry data, as objects.
    """

    name: str
    summary: str
    operands: tuple[int, int | None]
    num_results: int
    attrs: dict[str, AttrSpec]
    infer: Callable[[Op], list[TensorType]]
    verify: Callable[[Op], None] | None = None
    traits: frozenset[str] = frozenset()
    data_traits: tuple[OpTrait, ...] = ()

    def get_trait(self, cls: type[T]) -> T | None:
        """The declared trait of class ``cls`` (an :class:`OpTrait`), or None."""
        return next((t for t in self.data_traits if isinstance(t, cls)), None)


#: The op registry: every op the IR knows, by name.
OPS: dict[str, OpDef] = {}


def declare(name: str, summary: str, *, operands=(1, 1), results: int = 1,
            attrs: dict[str, AttrSpec] | None = None, verify=None, traits=()):
    """Decorator: declare an op whose type-inference function is the decorated function.

    ``traits`` are names from :data:`TRAITS` and data-carrying :class:`OpTrait` objects
    (:func:`check_traits`); each object's ``verify`` checks the declaration.
    """
    names, data = check_traits(name, traits)

    def wrap(infer):
        if name in OPS:
            raise ValueError(f"op {name} declared twice")
        d = OpDef(name, summary, tuple(operands), results, dict(attrs or {}), infer, verify,
                  names, data)
        for trait in data:
            trait.verify(d)
        OPS[name] = d
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
