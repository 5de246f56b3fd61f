"""A hypothesis strategy of small, valid CNN graphs over the ops sqnxtc supports, and the
builder that turns one into an ONNX model (used by test_fuzz.py).

A drawn net is a plain dict (``spec``), so a failing case can be kept verbatim as a
regression example (``@example(spec=...)``): ``{"opset", "input": [C, H, W], "layers":
[...]}``; each layer is a dict with its op and parameters, applied in order to the
running tensor; ``add`` / ``concat`` also read an earlier tensor (``"with"``: its index
in the list of tensors so far, 0 being the input).  Shapes are tracked while drawing, so
every spec is a valid model: kernels fit, strides keep >= 1 output, groups divide.

:func:`pool_net_specs` draws larger nets of odd sizes (15x15 to 41x41, like the 37x37 CNN
that crashed CP-SAT inside the planner: tests/fixtures/repro) rich in pools: every
combination of ceil mode, ``count_include_pad`` and asymmetric padding, around convs,
residual adds and concats.
"""
from __future__ import annotations

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

OPSETS = (11, 13, 15, 17, 18)
AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
KINDS = ("conv", "conv", "conv", "bn", "act", "pool", "add", "concat")
#: pool_net_specs: pools as often as convs, and the ops that make a tensor live across steps
POOL_KINDS = ("conv", "conv", "pool", "pool", "pool", "act", "add", "concat")
#: pool_net_specs' pool padding: explicit pads (the only mode with a ceil mode) 3 times in 4
POOL_AUTO_PADS = ("NOTSET",) * 9 + AUTO_PADS[1:]
ODD_SIZES = tuple(range(15, 42, 2))


def _out(size: int, k: int, s: int, pad: tuple[int, int], auto: str, ceil: bool = False) -> int:
    """Output size of one axis under ONNX's rules (explicit pads, or auto_pad)."""
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return -(-size // s)
    if auto == "VALID":
        return (size - k) // s + 1
    span = size + pad[0] + pad[1] - k
    return (-(-span // s) if ceil else span // s) + 1


@st.composite
def _window(draw, size: int, pool: bool, autos: tuple = AUTO_PADS, ceils: tuple = (False, True)):
    """Kernel, stride, padding (explicit or auto, from ``autos``), dilation of a 2-D window
    over a square ``size`` x ``size`` input, a pool's ceil mode (from ``ceils``: the first
    is the one hypothesis prefers); None when nothing fits."""
    k = draw(st.integers(1, min(5, size)))
    s = draw(st.integers(1, 3))
    dil = 1 if pool or k == 1 else draw(st.sampled_from((1, 1, 2)))
    ke = (k - 1) * dil + 1
    if ke > size:
        dil, ke = 1, k
    auto = draw(st.sampled_from(autos))
    pads = (0, 0, 0, 0)
    if auto == "NOTSET":
        hi = k - 1 if pool else ke - 1
        pads = tuple(draw(st.integers(0, hi)) for _ in range(4))
    # ceil mode: explicit pads only (ONNX ignores it under auto_pad), drawn with or without pads
    ceil = pool and auto == "NOTSET" and draw(st.sampled_from(ceils))
    oh = _out(size, ke, s, (pads[0], pads[2]), auto, ceil)
    ow = _out(size, ke, s, (pads[1], pads[3]), auto, ceil)
    if min(oh, ow) < 1:
        return None
    if ceil:  # ONNX: the last window must start inside the input or the left padding
        if (oh - 1) * s >= size + pads[0] or (ow - 1) * s >= size + pads[1]:
            ceil = False
            oh = _out(size, ke, s, (pads[0], pads[2]), auto)
            ow = _out(size, ke, s, (pads[1], pads[3]), auto)
    return {"k": k, "s": s, "dil": dil, "auto": auto, "pads": list(pads), "ceil": ceil, "out": [oh, ow]}


@st.composite
def net_specs(draw, max_layers: int = 6, sizes=st.integers(4, 14), kinds: tuple = KINDS,
              pool_pads: tuple = AUTO_PADS, pool_ceils: tuple = (False, True)):
    """A spec (module doc): input C in 1..8, H = W drawn from ``sizes`` (4..14), 1..max_layers
    layers of the ``kinds`` (a kind listed twice is drawn twice as often), pools padded by
    the modes of ``pool_pads`` with a ceil mode from ``pool_ceils``, an optional classifier
    head."""
    opset = draw(st.sampled_from(OPSETS))
    C, H = draw(st.integers(1, 8)), draw(sizes)
    shapes = [(C, H, H)]            # every tensor so far: (C, H, W) (W == H unless pads differ)
    layers = []
    for _ in range(draw(st.integers(1, max_layers))):
        c, h, w = shapes[-1]
        kind = draw(st.sampled_from(kinds))
        if kind == "conv":
            win = draw(_window(min(h, w), pool=False))
            if win is None:
                continue
            mode = draw(st.sampled_from(("dense", "grouped", "depthwise")))
            if mode == "depthwise":
                g, k_out = c, c * draw(st.integers(1, 2))
            elif mode == "grouped":
                divs = [d for d in range(2, c + 1) if c % d == 0]
                if not divs:
                    g, k_out = 1, draw(st.integers(1, 12))
                else:
                    g = draw(st.sampled_from(divs))
                    k_out = g * draw(st.integers(1, 3))
            else:
                g, k_out = 1, draw(st.integers(1, 12))
            win["out"] = [_out(h, (win["k"] - 1) * win["dil"] + 1, win["s"], (win["pads"][0], win["pads"][2]),
                               win["auto"]),
                          _out(w, (win["k"] - 1) * win["dil"] + 1, win["s"], (win["pads"][1], win["pads"][3]),
                               win["auto"])]
            if min(win["out"]) < 1:
                continue
            layers.append({"op": "conv", "K": k_out, "groups": g, "bias": draw(st.booleans()), **win})
            shapes.append((k_out, *win["out"]))
        elif kind == "bn":
            layers.append({"op": "bn"})
            shapes.append(shapes[-1])
        elif kind == "act":
            layers.append({"op": draw(st.sampled_from(("relu", "relu6", "leaky", "sigmoid", "hardswish",
                                                       "tanh")))})
            shapes.append(shapes[-1])
        elif kind == "pool":
            if min(h, w) < 2:
                continue
            win = draw(_window(min(h, w), pool=True, autos=pool_pads, ceils=pool_ceils))
            if win is None:
                continue
            win["out"] = [_out(h, win["k"], win["s"], (win["pads"][0], win["pads"][2]), win["auto"], win["ceil"]),
                          _out(w, win["k"], win["s"], (win["pads"][1], win["pads"][3]), win["auto"], win["ceil"])]
            op = draw(st.sampled_from(("maxpool", "avgpool")))
            layers.append({"op": op, "count_include_pad": draw(st.booleans()), **win})
            shapes.append((c, *win["out"]))
        else:
            same = [i for i, t in enumerate(shapes[:-1]) if (t == shapes[-1] if kind == "add" else t[1:] == (h, w))]
            if not same:
                continue
            j = draw(st.sampled_from(same))
            layers.append({"op": kind, "with": j})
            shapes.append(shapes[-1] if kind == "add" else (c + shapes[j][0], h, w))
    if not layers:
        layers.append({"op": "relu"})
    head = draw(st.sampled_from(("none", "none", "gap_fc")))
    if head == "gap_fc":
        layers.append({"op": "gap_fc", "classes": draw(st.integers(1, 10))})
    return {"opset": opset, "input": [C, H, H], "layers": layers}


def pool_net_specs(max_layers: int = 6):
    """Specs of odd sizes (:data:`ODD_SIZES`) rich in pools (:data:`POOL_KINDS`), mostly with
    explicit pads (:data:`POOL_AUTO_PADS`): each pool draws its ceil mode (ceil first),
    ``count_include_pad`` and four independent pads (module doc)."""
    return net_specs(max_layers, sizes=st.sampled_from(ODD_SIZES), kinds=POOL_KINDS, pool_pads=POOL_AUTO_PADS,
                     pool_ceils=(True, False))


def build(spec: dict, seed: int = 0) -> onnx.ModelProto:
    """The ONNX model of ``spec`` (weights from ``default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    opset = spec["opset"]
    nodes, inits = [], []
    names = ["x"]
    chans = [spec["input"][0]]

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    for i, L in enumerate(spec["layers"]):
        x, c, y = names[-1], chans[-1], f"t{i}"
        op = L["op"]
        if op == "conv":
            w = const(f"w{i}", rng.standard_normal((L["K"], c // L["groups"], L["k"], L["k"])) * 0.5)
            ins = [x, w] + ([const(f"b{i}", rng.standard_normal(L["K"]))] if L["bias"] else [])
            attrs = {"strides": [L["s"]] * 2, "group": L["groups"], "kernel_shape": [L["k"]] * 2}
            attrs.update(_pad_attrs(L))
            if L["dil"] != 1:
                attrs["dilations"] = [L["dil"]] * 2
            nodes.append(helper.make_node("Conv", ins, [y], name=f"conv{i}", **attrs))
            c = L["K"]
        elif op == "bn":
            ins = [x] + [const(f"bn{i}_{p}", v) for p, v in (
                ("s", rng.uniform(0.5, 1.5, c)), ("b", rng.standard_normal(c)),
                ("m", rng.standard_normal(c) * 0.1), ("v", rng.uniform(0.5, 1.5, c)))]
            nodes.append(helper.make_node("BatchNormalization", ins, [y], name=f"bn{i}", epsilon=1e-5))
        elif op == "relu":
            nodes.append(helper.make_node("Relu", [x], [y], name=f"relu{i}"))
        elif op == "relu6":
            lo, hi = const(f"lo{i}", 0.0), const(f"hi{i}", 6.0)
            nodes.append(helper.make_node("Clip", [x, lo, hi], [y], name=f"clip{i}"))
        elif op == "leaky":
            nodes.append(helper.make_node("LeakyRelu", [x], [y], name=f"leaky{i}", alpha=0.1))
        elif op == "sigmoid":
            nodes.append(helper.make_node("Sigmoid", [x], [y], name=f"sigmoid{i}"))
        elif op == "tanh":
            nodes.append(helper.make_node("Tanh", [x], [y], name=f"tanh{i}"))
        elif op == "hardswish":
            if opset >= 14:
                nodes.append(helper.make_node("HardSwish", [x], [y], name=f"hswish{i}"))
            else:
                nodes.append(helper.make_node("HardSigmoid", [x], [f"{y}_hs"], name=f"hsig{i}",
                                              alpha=1 / 6, beta=0.5))
                nodes.append(helper.make_node("Mul", [x, f"{y}_hs"], [y], name=f"hmul{i}"))
        elif op in ("maxpool", "avgpool"):
            attrs = {"kernel_shape": [L["k"]] * 2, "strides": [L["s"]] * 2}
            attrs.update(_pad_attrs(L))
            if L["ceil"]:
                attrs["ceil_mode"] = 1
            if op == "avgpool" and L["count_include_pad"]:
                attrs["count_include_pad"] = 1
            nodes.append(helper.make_node("MaxPool" if op == "maxpool" else "AveragePool", [x], [y],
                                          name=f"{op}{i}", **attrs))
        elif op == "add":
            nodes.append(helper.make_node("Add", [x, names[L["with"]]], [y], name=f"add{i}"))
        elif op == "concat":
            nodes.append(helper.make_node("Concat", [x, names[L["with"]]], [y], name=f"concat{i}", axis=1))
            c = c + chans[L["with"]]
        elif op == "gap_fc":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [f"{y}_g"], name=f"gap{i}"))
            nodes.append(helper.make_node("Flatten", [f"{y}_g"], [f"{y}_f"], name=f"flat{i}", axis=1))
            w = const(f"fc{i}", rng.standard_normal((L["classes"], c)) * 0.3)
            b = const(f"fcb{i}", rng.standard_normal(L["classes"]))
            nodes.append(helper.make_node("Gemm", [f"{y}_f", w, b], [y], name=f"fc{i}", transB=1))
            c = L["classes"]
        else:
            raise ValueError(op)
        names.append(y)
        chans.append(c)
    C, H, W = spec["input"]
    g = helper.make_graph(nodes, "fuzz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, W])],
                          [helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    m.graph.output[0].CopyFrom(inferred.graph.output[0])
    return m


def _pad_attrs(L: dict) -> dict:
    if L["auto"] == "NOTSET":
        return {"pads": L["pads"]}
    return {"auto_pad": L["auto"]}


def mutate(data: bytes, edits) -> bytes:
    """``data`` with byte edits applied in order: each (kind, position as a fraction of the
    length, value 0..255), kind one of set, insert, delete, truncate, duplicate (shared by
    tests/test_fuzz.py and benchmarks/bench_robustness.py)."""
    b = bytearray(data)
    for kind, frac, val in edits:
        i = min(len(b) - 1, int(frac * len(b))) if b else 0
        if kind == "set" and b:
            b[i] = val
        elif kind == "insert":
            b[i:i] = bytes([val]) * (1 + val % 4)
        elif kind == "delete" and b:
            del b[i:i + 1 + val % 8]
        elif kind == "truncate":
            del b[i:]
        elif kind == "duplicate" and b:
            b[i:i] = b[i:i + 1 + val]
    return bytes(b)
