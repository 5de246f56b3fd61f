"""Op traits (``TRAITS`` in sqnxt_compiler/ir/core.py) agree with the code that relies on
them: the reference kernels, the ONNX lowerings, the cost model's layers, relu fusion and
parameter counting; the traits that carry data (``Elementwise``, ``Move``, ``Activation``,
``RunsOnArray``) agree with the layers they give, the layer rules of layers.py, the
epilogue's activation choices and the kernels that apply a fused activation.

The op instances come from the frontend's own test models (``CASES`` in
tests/test_frontend_ops.py, one or more per ONNX lowering, kept complete by its
``test_every_lowering_is_exercised``), imported with no passes; ops that only passes
create are listed in ``PASS_ONLY`` with the pass and model that produce them.
"""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest

import sqnxt_compiler.ir.core as core
from sqnxt_compiler.cost import ElementFn
from sqnxt_compiler.frontend import import_model
from sqnxt_compiler.ir.core import (DATA_TRAITS, OPS, TRAITS, Activation, Elementwise, Move, OpTrait,
                                    RunsOnArray, declare)
from sqnxt_compiler.ir.ops import ACTIVATIONS, ACTS, LAYER_ACTS, SWISH
from sqnxt_compiler.layers import RULES, data_operands, layer_of
from sqnxt_compiler.pipeline import PassManager, parse_pipeline
from sqnxt_compiler.reference.executor import KERNELS, activate
from test_frontend_ops import CASES

EXTENDING = Path(__file__).resolve().parents[1] / "docs" / "extending.md"

#: Declared ops the frontend never creates directly: op -> (pass that creates it, a
#: frontend test model it creates it from).  ``sqnxt.fc`` is canonicalize's rewrite of a
#: Gemm / MatMul (+ Add) with constant weights; ONNX has no fully-connected op.
PASS_ONLY = {"sqnxt.fc": ("canonicalize", "gemm-flatten-gap"),
             "sqnxt.input_layout": ("canonicalize", "transpose-nhwc"),
             "sqnxt.concat_view": ("concat-in-place", "concat-of-convs")}


def with_trait(trait: str) -> set[str]:
    """The declared ops that have ``trait``."""
    return {name for name, d in OPS.items() if trait in d.traits}


def trait_of(name: str, cls):
    """The declared trait of class ``cls`` of op ``name``, or None."""
    return OPS[name].get_trait(cls)


def rule_name(name: str) -> str | None:
    """The layer rule op ``name`` declares (its ``RunsOnArray``), or None."""
    t = trait_of(name, RunsOnArray)
    return None if t is None else t.layer


@pytest.fixture(scope="module")
def imported():
    """Every frontend test model, imported with no passes: case name -> graph."""
    return {name: import_model(build(), f"{name}.onnx").graph for name, build in CASES.items()}


@pytest.fixture(scope="module")
def instances(imported):
    """Op name -> every instance of it in the imported models and, for the ``PASS_ONLY``
    ops, in their model after the pass that creates them."""
    out: dict[str, list] = {}
    graphs = list(imported.values())
    for pass_name, case in PASS_ONLY.values():
        g = import_model(CASES[case](), f"{case}.onnx").graph
        PassManager(parse_pipeline(pass_name), stream=io.StringIO()).run(g)
        graphs.append(g)
    for g in graphs:
        for op in g.ops():
            out.setdefault(op.name, []).append(op)
    return out


# ---------------------------------------------------------------------------- the trait list
def test_every_declared_trait_is_known():
    for name, d in OPS.items():
        assert isinstance(d.traits, frozenset), name
        assert d.traits <= TRAITS.keys(), (name, sorted(d.traits - TRAITS.keys()))
        # every data trait is declared as its object, and named among the traits
        assert {t.name for t in d.data_traits} == d.traits & DATA_TRAITS.keys(), name
        assert all(type(t) is DATA_TRAITS[t.name] for t in d.data_traits), name


def test_every_data_trait_is_a_known_frozen_op_trait():
    assert DATA_TRAITS.keys() <= TRAITS.keys()
    for name, cls in DATA_TRAITS.items():
        assert issubclass(cls, OpTrait) and cls.name == name
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, name
    t = Elementwise(1, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.ops = 2
    assert t == Elementwise(1, 0) and hash(t) == hash(Elementwise(1, 0))


def test_every_known_trait_is_documented_and_used():
    table = [line for line in EXTENDING.read_text().splitlines() if line.startswith("| `")]
    documented = {line.split("`")[1] for line in table}
    for trait, meaning in TRAITS.items():
        assert meaning.strip() and "\n" not in meaning, trait
        assert f"``{trait}``" in core.__doc__, f"trait {trait} missing from ir/core.py's docstring"
        assert trait in documented, f"trait {trait} missing from docs/extending.md's table"
        assert with_trait(trait), f"trait {trait} is declared by no op"
    for name, cls in DATA_TRAITS.items():
        assert f"`{name}`: `{cls.__name__}(" in "\n".join(table), f"docs/extending.md: {name} without {cls.__name__}"


def test_declare_rejects_an_unknown_trait():
    try:
        with pytest.raises(ValueError, match="unknown trait"):
            declare("sqnxt.test_bogus", "never registered", traits=("runs_on_aray",))(lambda op: [])
        assert "sqnxt.test_bogus" not in OPS
    finally:
        OPS.pop("sqnxt.test_bogus", None)  # keep the registry clean if declare ever accepts it


@pytest.mark.parametrize("traits,match", [
    (("runs_on_array",), r"carry data: declare RunsOnArray\(\.\.\.\)"),
    (("free", "free"), "given twice"),
    ((Elementwise(1, 0), Elementwise(2, 0)), "given twice"),
])
def test_declare_rejects_a_data_trait_by_name_and_a_trait_given_twice(traits, match):
    try:
        with pytest.raises(ValueError, match=match):
            declare("sqnxt.test_bogus", "never registered", traits=traits)(lambda op: [])
        assert "sqnxt.test_bogus" not in OPS
    finally:
        OPS.pop("sqnxt.test_bogus", None)


@pytest.mark.parametrize("kwargs,match", [
    ({"traits": (RunsOnArray("eltwise"),)}, r"RunsOnArray needs the attribute\(s\) \['plan', 'schedule'\]"),
    ({"traits": (Activation("relu6", when=(("min", 0.0),)),)}, "undeclared attribute"),
    ({"traits": (Activation("relu"),), "operands": (2, 2)}, "takes one operand"),
    ({"traits": (Elementwise(0, 0),)}, "not both 0"),
])
def test_declare_runs_each_data_trait_s_verify_on_the_declaration(kwargs, match):
    try:
        with pytest.raises(ValueError, match=match):
            declare("sqnxt.test_bogus", "never registered", **kwargs)(lambda op: [])
        assert "sqnxt.test_bogus" not in OPS
    finally:
        OPS.pop("sqnxt.test_bogus", None)


def test_has_trait_reads_the_declaration_and_rejects_unknown_names(instances):
    conv, flat = instances["sqnxt.conv"][0], instances["sqnxt.flatten"][0]
    assert conv.has_trait("runs_on_array") and not flat.has_trait("runs_on_array")
    with pytest.raises(KeyError, match="unknown op trait"):
        conv.has_trait("runs_on_aray")
    assert conv.get_trait(RunsOnArray) == RunsOnArray("conv") and flat.get_trait(RunsOnArray) is None


def test_traits_are_consistent():
    """Structure and shape computations are free; nothing free runs on the array; weights
    belong to ops the array runs."""
    free = with_trait("free")
    assert with_trait("structural") <= free
    assert with_trait("shape_op") <= free
    assert with_trait("view") <= free and not with_trait("view") & with_trait("structural")
    assert with_trait("reads_shape_only") <= with_trait("shape_op")
    assert not with_trait("view") & with_trait("reads_shape_only")
    assert not with_trait("runs_on_array") & free
    assert with_trait("has_weights") <= with_trait("runs_on_array")
    # the cost-carrying traits belong to ops the array runs; an activation is element-wise
    assert with_trait("elementwise") | with_trait("move") <= with_trait("runs_on_array")
    assert not with_trait("elementwise") & with_trait("move")
    assert with_trait("activation") <= with_trait("elementwise")


# ---------------------------------------------------------------------------- kernels, lowerings
def test_every_executed_op_has_a_numpy_kernel():
    missing = sorted(n for n, d in OPS.items() if "structural" not in d.traits and n not in KERNELS)
    assert not missing, f"declared ops without a kernel in reference/executor.py: {missing}"


def test_every_kernel_is_of_a_declared_op():
    assert set(KERNELS) <= set(OPS), sorted(set(KERNELS) - set(OPS))


def test_every_op_the_frontend_may_create_is_lowered(imported):
    produced = {op.name for g in imported.values() for op in g.ops()}
    missing = sorted(set(OPS) - set(PASS_ONLY) - produced)
    assert not missing, f"declared ops no ONNX lowering creates (add one, or to PASS_ONLY): {missing}"


def test_pass_only_ops_come_from_their_pass_not_the_frontend(imported, instances):
    produced = {op.name for g in imported.values() for op in g.ops()}
    for name, (pass_name, case) in PASS_ONLY.items():
        assert name in OPS
        assert name not in produced, f"{name} is created by the frontend: drop it from PASS_ONLY"
        assert instances.get(name), f"{pass_name} creates no {name} from model {case}"


def test_every_declared_op_has_an_instance(instances):
    assert set(OPS) <= set(instances), sorted(set(OPS) - set(instances))


# ---------------------------------------------------------------------------- per-trait facts
def test_runs_on_array_ops_are_exactly_those_with_a_cost_layer(instances):
    """``layers.layer_of`` maps some instance of an op to a layer iff the op runs on the array."""
    costed = {name for name, ops in instances.items() if any(layer_of(op) is not None for op in ops)}
    assert costed == with_trait("runs_on_array"), {
        "costed, not runs_on_array": sorted(costed - with_trait("runs_on_array")),
        "runs_on_array, never costed": sorted(with_trait("runs_on_array") - costed)}


def test_runs_on_array_ops_are_exactly_those_declaring_a_schedule_attribute():
    """The schedule pass attaches ``schedule`` to every costed op; the verifier rejects an
    undeclared attribute."""
    with_schedule = {name for name, d in OPS.items() if "schedule" in d.attrs}
    assert with_schedule == with_trait("runs_on_array")


def test_act_fusible_ops_are_exactly_those_with_an_act_attribute():
    with_act = {name for name, d in OPS.items() if "act" in d.attrs}
    assert with_act == with_trait("act_fusible")
    for name in with_trait("act_fusible"):
        assert {"none", "relu", "relu6"} <= set(OPS[name].attrs["act"].choices), name


def test_has_weights_ops_take_at_least_two_operands():
    for name in with_trait("has_weights"):
        assert OPS[name].operands[0] >= 2, (name, OPS[name].operands)



# ---------------------------------------------------------------------------- data traits
def test_every_layer_rule_is_registered_and_named_by_some_op():
    named = {rule_name(name) for name in with_trait("runs_on_array")}
    assert named == set(RULES), {"named, not registered": sorted(named - set(RULES)),
                                 "registered, named by no op": sorted(set(RULES) - named)}


def test_the_generic_rules_read_the_trait_they_need():
    """The ``eltwise`` rule builds from the ``Elementwise`` trait, ``move`` from ``Move``."""
    for name in with_trait("runs_on_array"):
        if rule_name(name) == "eltwise":
            assert trait_of(name, Elementwise), name
        if rule_name(name) == "move":
            assert trait_of(name, Move), name


def test_element_wise_and_move_ops_give_the_layers_their_traits_declare(instances):
    """Every instance of an ``elementwise`` op is an ``eltwise`` layer (an add of same-shape
    operands: an ``add``) named by its op; of the ``eltwise`` rule, with the declared counts
    exactly; every instance of a ``move`` op is a ``move`` layer with no operation; and
    only these ops, a resize and a reduction give ``eltwise`` / ``move`` layers."""
    for name, ops in instances.items():
        for op in ops:
            L = layer_of(op)
            if L is None:
                continue
            ew, mv = trait_of(name, Elementwise), trait_of(name, Move)
            if ew is not None and L.kind != "add":
                assert (L.kind, L.element.fn) == ("eltwise", name.split(".")[1]), name
                if rule_name(name) == "eltwise":
                    assert (L.element.ops, L.element.funcs) == (ew.ops, ew.funcs), name
            elif mv is not None:
                assert (L.kind, L.element) == ("move", ElementFn(name.split(".")[1])), name
            else:
                assert L.kind not in ("eltwise", "move") or rule_name(name) in ("resize", "reduce"), name


def test_data_operands_are_operands_and_a_moves_parts_are_none(instances):
    for name, ops in instances.items():
        for op in ops:
            if layer_of(op) is None:
                continue
            ids = [id(v) for v in data_operands(op)]
            assert set(ids) <= {id(v) for v in op.operands}, name
            if trait_of(name, Move) is not None:
                assert ids == ([] if trait_of(name, Move).parts else [id(op.operands[0])]), name


def test_the_activation_kinds_are_the_epilogue_s_choices():
    """``ACTIVATIONS``: none, one kind per activation op, swish; a conv / fc's ``act`` takes
    every kind, an add's ``act`` and a residual's ``post_act`` those the adder applies."""
    kinds = [trait_of(name, Activation).kind for name in with_trait("activation")]
    assert len(kinds) == len(set(kinds))
    assert list(ACTIVATIONS) == list(LAYER_ACTS) and set(LAYER_ACTS) == {"none", *kinds, SWISH.kind}
    assert ACTS == tuple(k for k, a in ACTIVATIONS.items() if a.by_adder) == ("none", "relu", "relu6")
    for name in ("sqnxt.conv", "sqnxt.fc"):
        assert OPS[name].attrs["act"].choices == LAYER_ACTS
        assert OPS[name].attrs["post_act"].choices == ACTS
    assert OPS["sqnxt.add"].attrs["act"].choices == ACTS
    for name in with_trait("act_fusible"):
        assert set(ACTS) <= set(OPS[name].attrs["act"].choices) <= set(LAYER_ACTS), name


def test_a_fused_activation_never_costs_more_than_its_op():
    """Fused, an activation's operations and functions are at most the op's (the clamps of
    relu and relu6 are free in the output path); none is free."""
    assert ACTIVATIONS["none"].epilogue == (0, 0)
    for name in with_trait("activation"):
        act, ew = trait_of(name, Activation), trait_of(name, Elementwise)
        assert act.epilogue[0] <= ew.ops and act.epilogue[1] <= ew.funcs, name


def test_a_fused_activation_computes_what_its_op_computes(instances):
    """``activate`` (the epilogue, reference/executor.py) on the kind and the
    ``act_alpha`` / ``act_beta`` an activation op's trait gives equals the op's own kernel,
    for every instance whose attributes are the activation's; swish is x * sigmoid(x);
    every kind but none changes some value (no kind falls through as the identity)."""
    y = np.linspace(-9, 9, 73, dtype=np.float32).reshape(1, 1, 1, 73)
    for name in with_trait("activation"):
        act = trait_of(name, Activation)
        fusible = [op for op in instances[name] if act.epilogue_attrs(op) is not None]
        assert fusible, f"no instance of {name} is its activation {act.kind}"
        for op in fusible:
            p = act.epilogue_attrs(op)
            fused = activate(y.copy(), act.kind, p.get("act_alpha", 0.0), p.get("act_beta", 0.0))
            np.testing.assert_allclose(fused, KERNELS[name](op, [y.copy()]), rtol=1e-6, atol=1e-7)
    sig = KERNELS["sqnxt.sigmoid"](None, [y.copy()])
    np.testing.assert_allclose(activate(y.copy(), SWISH.kind), y * sig, rtol=1e-6)
    for kind in LAYER_ACTS:
        assert (kind == "none") == np.array_equal(activate(y.copy(), kind, 0.1, 0.5), y), kind
