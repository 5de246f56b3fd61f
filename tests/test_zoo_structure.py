"""SqueezeNext structure: Table 4 row by row, and the spec's rules on the built graphs."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import onnx
import pytest
from onnx import shape_inference

from sqnxt_compiler.diagnostics import UsageError
from sqnxt_compiler.zoo import SqueezeNextConfig
from sqnxt_compiler.zoo.builder import run_definition
from sqnxt_compiler.zoo.registry import lookup
from sqnxt_compiler.zoo.squeezenext import define, separable_kernels

#: The paper's Table 4 for 1.0-SqNxt-23, the spec's CSV byte for byte (also read by the
#: cost-model tests); its sha256 is the spec file's, recorded when it was copied in.
TABLE4 = Path(__file__).resolve().parents[1] / "docs" / "spec" / "sqnxt23_table4.csv"
TABLE4_SHA256 = "91bc22c40e6b1a5c3cd857b6fa7f77f013bc5a30d9cabb10a6e9a1309dfdf25d"
BLOCK_CONVS = 5  # squeeze1, squeeze2, sep1, sep2, expand (first blocks add the projection)


@pytest.fixture
def model(zoo_models):
    """``model(name)``: the zoo model (built once per session) with inferred shapes."""
    def _model(name: str) -> onnx.ModelProto:
        return shape_inference.infer_shapes(zoo_models.model(name), strict_mode=True)
    return _model


def conv_layers(m: onnx.ModelProto) -> list[dict]:
    """Conv and Gemm nodes in graph order with their shapes, read from the built model."""
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output)}
    dims = {t.name: list(t.dims) for t in m.graph.initializer}
    out = []
    for n in m.graph.node:
        if n.op_type not in ("Conv", "Gemm"):
            continue
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        w = dims[n.input[1]]
        i, o = shapes[n.input[0]], shapes[n.output[0]]
        if n.op_type == "Conv":
            kh, kw = a["kernel_shape"]
            pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
            assert (pt, pl) == (pb, pr)
            out.append(dict(node=n, name=n.name, Wi=i[3], Hi=i[2], Ci=i[1], Kw=kw, Kh=kh, Wo=o[3],
                            Ho=o[2], Co=o[1], S=a["strides"][0], Pw=pl, Ph=pt,
                            group=a.get("group", 1), weights=w, bias=len(n.input) > 2))
        else:
            out.append(dict(node=n, name=n.name, Wi=1, Hi=1, Ci=w[1], Kw=1, Kh=1, Wo=1, Ho=1,
                            Co=w[0], S=1, Pw=0, Ph=0, group=1, weights=w, bias=len(n.input) > 2))
    return out


def table4_rows() -> list[dict]:
    assert TABLE4.is_file(), f"the Table 4 data is missing: {TABLE4}"
    with open(TABLE4, newline="") as fh:
        return list(csv.DictReader(fh))


def test_table4_copy_is_the_spec_table():
    assert TABLE4.is_file(), f"the Table 4 data is missing: {TABLE4}"
    assert hashlib.sha256(TABLE4.read_bytes()).hexdigest() == TABLE4_SHA256, \
        f"{TABLE4.name} differs from the spec's sqnxt23_table4.csv"
    rows = table4_rows()
    assert len(rows) == 42 and rows[0]["name"] == "conv1" and rows[-1]["name"] == "fc1000"


def test_1_0_sqnxt_23_matches_table4_row_by_row(model):
    """Row ``convN`` with repeat R is conv layer N and the R-1 layers 5, 10, ... after it.

    Table 4 folds the alternating 3x1/1x3 order into one row, so the kernel and padding of
    the k-th repeat are the row's for even k and swapped for odd k.  Params and MACs are
    the row's totals over its repeats, with the table's bias term, within its rounding
    (0.1K params, 1K MACs); ActSize is KiB of the output at 4 bytes per value.
    """
    layers = conv_layers(model("1.0-SqNxt-23"))
    assert len(layers) == 112  # conv1 .. conv111 and fc1000
    covered = []
    for row in table4_rows():
        n = 112 if row["name"] == "fc1000" else int(row["name"][4:])
        reps = int(row["Repeat"])
        params = macs = 0
        for k in range(reps):
            idx = n - 1 + BLOCK_CONVS * k
            covered.append(idx)
            layer = layers[idx]
            want = {c: int(row[c]) for c in ("Wi", "Hi", "Ci", "Kw", "Kh", "Wo", "Ho", "Co", "S", "Pw", "Ph")}
            if k % 2:
                want["Kw"], want["Kh"] = want["Kh"], want["Kw"]
                want["Pw"], want["Ph"] = want["Ph"], want["Pw"]
            got = {c: layer[c] for c in want}
            assert got == want, (row["name"], k, layer["name"])
            per_out = layer["Ci"] * layer["Kw"] * layer["Kh"] + 1  # + the table's bias term
            params += layer["Co"] * per_out
            macs += layer["Wo"] * layer["Ho"] * layer["Co"] * per_out
        assert abs(params / 1000 - float(row["Params_k"])) <= 0.05 + 1e-9, row["name"]
        assert abs(macs / 1000 - float(row["MAC_k"])) <= 0.5 + 1e-9, row["name"]
        act_kib = layers[n - 1]["Wo"] * layers[n - 1]["Ho"] * layers[n - 1]["Co"] * 4 / 1024
        if row["name"] == "conv11":  # the paper's misprint: 89 for 189
            assert abs(act_kib - 189) <= 0.5 and row["ActSize_k"] == "89"
        else:
            assert abs(act_kib - int(row["ActSize_k"])) <= 0.5, row["name"]
    assert sorted(covered) == list(range(112))


def test_every_squeezenext_conv_is_biasless_then_batchnorm_then_relu(model):
    m = model("1.0-SqNxt-23")
    users = {}
    for n in m.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    for layer in conv_layers(m):
        node = layer["node"]
        if node.op_type == "Gemm":
            assert not layer["bias"] and node.name == "fc1000"
            continue
        assert not layer["bias"], node.name
        (bn,) = users[node.output[0]]
        assert bn.op_type == "BatchNormalization" and bn.name == f"{node.name}/bn"
        (relu,) = users[bn.output[0]]
        assert relu.op_type == "Relu"
    adds = [n for n in m.graph.node if n.op_type == "Add"]
    assert len(adds) == 21
    for add in adds:
        assert [u.op_type for u in users[add.output[0]]] == ["Relu"]
    pool1 = next(n for n in m.graph.node if n.name == "pool1")
    assert onnx.helper.get_attribute_value(pool1.attribute[[a.name for a in pool1.attribute].index("ceil_mode")]) == 1


def test_separable_order_alternates_over_the_whole_network():
    b, _ = run_definition(define(SqueezeNextConfig(depth=(5, 17, 19, 1))), "t", 227, materialize=False)
    seps = {r.name: (r.kh, r.kw) for r in b.layers if "/sep" in r.name}
    names = [r.name.rsplit("/", 1)[0] for r in b.layers if r.name.endswith("/sep1")]
    assert len(names) == 42
    for index, block in enumerate(names, start=1):
        first, second = seps[f"{block}/sep1"], seps[f"{block}/sep2"]
        assert first == ((3, 1) if index % 2 else (1, 3)), block
        assert {first, second} == {(3, 1), (1, 3)}
    assert separable_kernels(1) == ((3, 1), (1, 3)) and separable_kernels(2) == ((1, 3), (3, 1))


def test_groups_apply_to_squeeze1_and_the_separable_convs_only(model):
    for layer in conv_layers(model("1.0-G-SqNxt-23")):
        kind = layer["name"].rsplit("/", 1)[-1]
        assert layer["group"] == (2 if kind in ("squeeze1", "sep1", "sep2") else 1), layer["name"]


def test_width_multiplier_scales_block_channels_only(model):
    layers = {l["name"]: l for l in conv_layers(model("2.0-SqNxt-23"))}
    assert (layers["conv1"]["Ci"], layers["conv1"]["Co"]) == (3, 64)
    assert (layers["stage1/block1/proj"]["Ci"], layers["stage1/block1/proj"]["Co"]) == (64, 64)
    assert (layers["bottleneck"]["Ci"], layers["bottleneck"]["Co"]) == (512, 128)
    assert [layers[f"stage{s}/block1/expand"]["Co"] for s in range(1, 5)] == [64, 128, 256, 512]


def test_v5_first_block_runs_the_body_on_the_projection(model):
    m = model("1.0-SqNxt-23v5")
    nodes = {n.name: n for n in m.graph.node}
    layers = {l["name"]: l for l in conv_layers(m)}
    for s in range(1, 5):
        sq1 = nodes[f"stage{s}/block1/squeeze1"]
        assert sq1.input[0] == f"stage{s}/block1/proj/relu"
        assert layers[f"stage{s}/block1/squeeze1"]["S"] == 1
        assert layers[f"stage{s}/block1/proj"]["S"] == (1 if s == 1 else 2)
        add = nodes[f"stage{s}/block1/add"]
        assert add.input[0] == f"stage{s}/block1/proj/relu"
    base = {l["name"]: l for l in conv_layers(model("1.0-SqNxt-23"))}
    assert base["stage2/block1/squeeze1"]["S"] == 2
    assert next(n for n in model("1.0-SqNxt-23").graph.node
                if n.name == "stage2/block1/squeeze1").input[0] == "stage1/block6/add/relu"


def test_5x5_conv1_gives_the_spec_sizes(model):
    layers = {l["name"]: l for l in conv_layers(model("1.0-SqNxt-23v5"))}
    assert (layers["conv1"]["Kh"], layers["conv1"]["Ho"]) == (5, 112)
    assert [layers[f"stage{s}/block1/expand"]["Ho"] for s in range(1, 5)] == [56, 28, 14, 7]


def test_depth_presets_and_ida_wiring(model):
    for name, blocks in (("1.0-SqNxt-34", 32), ("2.0-SqNxt-44", 42), ("1.0-SqNxt-44-IDA", 42)):
        b, _ = run_definition(lookup(name).definition, name, 227, materialize=False)
        assert sum(1 for r in b.layers if r.name.endswith("/expand")) == blocks, name
    m = model("1.0-SqNxt-23-IDA")
    nodes = {n.name: n for n in m.graph.node}
    assert nodes["bottleneck"].input[0] == "ida/agg4/node/relu"
    assert list(nodes["ida/agg2/concat"].input) == ["ida/agg2/proj/relu", "stage2/block6/add/relu"]
    assert nodes["ida/agg2/proj"].input[0] == "stage1/block6/add/relu"
    assert nodes["ida/agg3/proj"].input[0] == "ida/agg2/node/relu"


@pytest.mark.parametrize("kwargs", [dict(depth=(6, 6, 8)), dict(depth=(6, 0, 8, 1)), dict(conv1_kernel=3),
                                    dict(first_block="v9"), dict(width=1.1), dict(groups=3),
                                    dict(input_size=30)])
def test_bad_configs_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        define(SqueezeNextConfig(**kwargs))
