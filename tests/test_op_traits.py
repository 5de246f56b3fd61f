"""Op traits (``TRAITS`` in sqnxt_compiler/ir/core.py) agree with the code that relies on
them: the reference kernels, the ONNX lowerings, the cost model's layers, relu fusion and
parameter counting.

The op instances come from the frontend's own test models (``CASES`` in
tests/test_frontend_ops.py, one or more per ONNX lowering, kept complete by its
``test_every_lowering_is_exercised``), imported with no passes; ops that only passes
create are listed in ``PASS_ONLY`` with the pass and model that produce them.
"""
from __future__ import annotations

import io

import pytest

import sqnxt_compiler.ir.core as core
from sqnxt_compiler.frontend import import_model
from sqnxt_compiler.ir.core import OPS, TRAITS, declare
from sqnxt_compiler.layers import layer_of
from sqnxt_compiler.pipeline import PassManager, parse_pipeline
from sqnxt_compiler.reference.executor import KERNELS
from test_frontend_ops import CASES

#: Declared ops the frontend never creates directly: op -> (pass that creates it, a
#: frontend test model it creates it from).  ``sqnxt.fc`` is canonicalize's rewrite of a
#: Gemm / MatMul (+ Add) with constant weights; ONNX has no fully-connected op.
PASS_ONLY = {"sqnxt.fc": ("canonicalize", "gemm-flatten-gap")}


def with_trait(trait: str) -> set[str]:
    """The declared ops that have ``trait``."""
    return {name for name, d in OPS.items() if trait in d.traits}


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


def test_every_known_trait_is_documented_and_used():
    for trait, meaning in TRAITS.items():
        assert meaning.strip() and "\n" not in meaning, trait
        assert f"``{trait}``" in core.__doc__, f"trait {trait} missing from ir/core.py's docstring"
        assert with_trait(trait), f"trait {trait} is declared by no op"


def test_declare_rejects_an_unknown_trait():
    try:
        with pytest.raises(ValueError, match="unknown trait"):
            declare("sqnxt.test_bogus", "never registered", traits=("runs_on_aray",))(lambda op: [])
        assert "sqnxt.test_bogus" not in OPS
    finally:
        OPS.pop("sqnxt.test_bogus", None)  # keep the registry clean if declare ever accepts it


def test_has_trait_reads_the_declaration_and_rejects_unknown_names(instances):
    conv, flat = instances["sqnxt.conv"][0], instances["sqnxt.flatten"][0]
    assert conv.has_trait("runs_on_array") and not flat.has_trait("runs_on_array")
    with pytest.raises(KeyError, match="unknown op trait"):
        conv.has_trait("runs_on_aray")


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

