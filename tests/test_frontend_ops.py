"""Every supported ONNX op, in tiny models: imported, then compiled with the default
pipeline AND with no passes, each matches onnxruntime (graph optimizations off).

Both pipelines are checked so that a wrong lowering cannot hide behind a pass that
rewrites it, and a wrong pass cannot hide behind a lowering that happens to agree."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sqnxt_compiler.frontend import import_model
from support import compile_and_check, inferred_model, int64s, make_model

N = helper.make_node
_RNG = np.random.default_rng(20240611)


def W(*shape, positive=False):
    a = _RNG.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.5 if positive else a


I = int64s
model = inferred_model


def bn_params(c, p="bn"):
    """Non-trivial BN statistics: scale and shift far from 1 and 0, var far from 1."""
    return [(p + "_g", W(c) * 2), (p + "_b", W(c)), (p + "_m", W(c)),
            (p + "_v", W(c, positive=True) * 3)]


def bn(i, o, p="bn", eps=1e-5):
    return N("BatchNormalization", [i, p + "_g", p + "_b", p + "_m", p + "_v"], [o], epsilon=eps)


X8 = [("x", [1, 4, 8, 8])]
CASES: dict[str, callable] = {}


def case(name):
    def wrap(fn):
        CASES[name] = fn
        return fn
    return wrap


# ------------------------------------------------------------------------ Conv
_CONVS = {
    # name: (cin, cout, kernel, strides, pads, groups, auto_pad, bias)
    "3x3-pad1": (4, 6, (3, 3), (1, 1), (1, 1, 1, 1), 1, None, True),
    "1x1": (4, 8, (1, 1), (1, 1), (0, 0, 0, 0), 1, None, True),
    "1x1-nobias": (4, 8, (1, 1), (1, 1), (0, 0, 0, 0), 1, None, False),
    "3x1-1x3-asym": (4, 5, (3, 1), (2, 1), (1, 0, 0, 2), 1, None, True),
    "5x5-stride2": (4, 4, (5, 5), (2, 2), (2, 2, 2, 2), 1, None, True),
    "7x7-stride3-nopad": (4, 3, (7, 7), (3, 3), (0, 0, 0, 0), 1, None, True),
    "groups2": (4, 6, (3, 3), (1, 1), (1, 1, 1, 1), 2, None, True),
    "depthwise": (4, 4, (3, 3), (2, 2), (1, 1, 1, 1), 4, None, True),
    "depthwise-mult2": (4, 8, (3, 3), (1, 1), (1, 1, 1, 1), 4, None, False),
    "same-upper-s1": (4, 4, (3, 3), (1, 1), None, 1, "SAME_UPPER", True),
    "same-upper-s2-even-k": (4, 4, (2, 2), (2, 2), None, 1, "SAME_UPPER", True),
    "same-upper-s2-odd": (4, 4, (4, 4), (3, 3), None, 1, "SAME_UPPER", True),
    "same-lower-even-k": (4, 4, (2, 2), (1, 1), None, 1, "SAME_LOWER", True),
    "same-lower-s3": (4, 4, (4, 4), (3, 3), None, 1, "SAME_LOWER", True),
    "valid": (4, 4, (3, 3), (2, 2), None, 1, "VALID", True),
}


def _conv_case(cin, cout, k, s, pads, g, auto, bias):
    def build():
        kw = {"strides": list(s), "group": g, "kernel_shape": list(k)}
        if auto:
            kw["auto_pad"] = auto
        else:
            kw["pads"] = list(pads)
        ins = ["x", "w"] + (["b"] if bias else [])
        inits = [("w", W(cout, cin // g, *k))] + ([("b", W(cout))] if bias else [])
        return model([N("Conv", ins, ["y"], **kw)], [("x", [1, cin, 9, 8])], inits=inits)
    return build


for _n, _args in _CONVS.items():
    CASES[f"conv-{_n}"] = _conv_case(*_args)


# ConvTranspose (the sub-pixel lowering; the full attribute matrix is tests/test_conv_transpose.py)
@case("convtranspose-k4-s2-p1-group2-bias")
def _():
    return model([N("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1], group=2)],
                 [("x", [1, 4, 5, 6])], inits=[("w", W(4, 3, 4, 4)), ("b", W(6))])


# ------------------------------------------------------------------------ BN, activations
@case("batchnorm-opset9")
def _():
    return model([bn("x", "y", eps=1e-3)], X8, inits=bn_params(4), opset=9)


@case("batchnorm-opset15")
def _():
    return model([bn("x", "y")], X8, inits=bn_params(4), opset=15)


@case("conv-bn-relu")
def _():
    return model([N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), bn("c", "b"),
                  N("Relu", ["b"], ["y"])], X8, inits=[("w", W(6, 4, 3, 3))] + bn_params(6))


@case("relu")
def _():
    return model([N("Relu", ["x"], ["y"])], X8)


for _op in (6, 10):
    CASES[f"clip-attrs-opset{_op}"] = (lambda o: lambda: model(
        [N("Clip", ["x"], ["y"], min=0.0, max=6.0)], X8, opset=o))(_op)
    CASES[f"clip-attrs-opset{_op}-min-only"] = (lambda o: lambda: model(
        [N("Clip", ["x"], ["y"], min=-0.25)], X8, opset=o))(_op)
for _op in (11, 13):
    for _ins, _tag in ((["x", "lo", "hi"], "both"), (["x", "", "hi"], "no-min"),
                       (["x", "lo"], "no-max"), (["x"], "none")):
        CASES[f"clip-inputs-opset{_op}-{_tag}"] = (lambda o, ins: lambda: model(
            [N("Clip", ins, ["y"])], X8, inits=[("lo", np.float32(-0.5)), ("hi", np.float32(0.75))],
            opset=o))(_op, _ins)


@case("clip-relu6-after-conv-opset11")
def _():
    return model([N("Conv", ["x", "w", "b"], ["c"]), N("Clip", ["c", "lo", "hi"], ["y"])], X8,
                 inits=[("w", W(4, 4, 1, 1) * 4), ("b", W(4)), ("lo", np.float32(0)),
                        ("hi", np.float32(6))], opset=11)


# ------------------------------------------------------------------------ elementwise
@case("add-same-shape")
def _():
    return model([N("Add", ["x", "z"], ["y"])], X8 + [("z", [1, 4, 8, 8])])


@case("add-broadcast-channel")
def _():
    return model([N("Add", ["x", "c"], ["y"])], X8, inits=[("c", W(4, 1, 1))])


@case("add-broadcast-row-and-scalar")
def _():
    return model([N("Add", ["x", "c"], ["t"]), N("Add", ["s", "t"], ["y"])], X8,
                 inits=[("c", W(8)), ("s", W(1))])


@case("add-x-x")
def _():
    return model([N("Add", ["x", "x"], ["y"])], X8)


@case("sum-of-3")
def _():
    return model([N("Sum", ["x", "z", "c"], ["y"])], X8 + [("z", [1, 4, 8, 8])],
                 inits=[("c", W(4, 1, 1))])


@case("sum-of-1-relu-and-reuse")
def _():
    # a one-operand sum with a ReLU fused into it; its input is used again afterwards
    return model([N("Sum", ["x"], ["s"]), N("Relu", ["s"], ["r"]), N("Add", ["r", "x"], ["y"])], X8)


for _op in ("Sub", "Mul", "Div"):
    CASES[f"{_op.lower()}-broadcast"] = (lambda o: lambda: model(
        [N(o, ["x", "c"], ["y"])], X8, inits=[("c", W(4, 1, 1, positive=True))]))(_op)
    CASES[f"{_op.lower()}-two-inputs"] = (lambda o: lambda: model(
        [N("Relu", ["z"], ["za"]),
         N("Add", ["za", "one"], ["zp"]), N(o, ["x", "zp"], ["y"])],
        X8 + [("z", [1, 4, 8, 8])], inits=[("one", np.float32(1.0))]))(_op)


# ------------------------------------------------------------------------ pooling
_POOLS = {
    # name: (kernel, strides, pads, ceil)
    "k2s2": ((2, 2), (2, 2), (0, 0, 0, 0), 0),
    "k3s2-pad1": ((3, 3), (2, 2), (1, 1, 1, 1), 0),
    "k3s2-ceil": ((3, 3), (2, 2), (0, 0, 0, 0), 1),
    "k3s2-ceil-pad1": ((3, 3), (2, 2), (1, 1, 1, 1), 1),
    "k3s1-asym": ((3, 2), (1, 2), (0, 1, 2, 0), 0),
    "k3s2-ceil-asym": ((3, 3), (2, 2), (1, 0, 0, 2), 1),
    "k2s3-ceil": ((2, 2), (3, 3), (0, 0, 0, 0), 1),
}
for _n, (_k, _s, _p, _c) in _POOLS.items():
    CASES[f"maxpool-{_n}"] = (lambda k, s, p, c: lambda: model(
        [N("MaxPool", ["x"], ["y"], kernel_shape=list(k), strides=list(s), pads=list(p),
           ceil_mode=c)], [("x", [1, 3, 9, 9])]))(_k, _s, _p, _c)
    for _cip in (0, 1):
        CASES[f"avgpool-{_n}-cip{_cip}"] = (lambda k, s, p, c, cip: lambda: model(
            [N("AveragePool", ["x"], ["y"], kernel_shape=list(k), strides=list(s), pads=list(p),
               ceil_mode=c, count_include_pad=cip)], [("x", [1, 3, 9, 9])]))(_k, _s, _p, _c, _cip)


def _ceil_pool_then(opset, pool="MaxPool"):
    """A ceil-mode pool whose last window would start in the end padding (ONNX inference
    before opset 22 keeps it, onnxruntime drops it), then a conv, a computed Reshape
    (Shape -> Gather -> Unsqueeze -> Concat) and a Gemm: the values after the pool must
    follow the runtime's sizes, not the file's inferred ones."""
    def build():
        nodes = [N(pool, ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1],
                   ceil_mode=1),
                 N("Conv", ["p", "w"], ["c"], pads=[1, 1, 1, 1]),
                 N("Shape", ["c"], ["s"]), N("Gather", ["s", "i0"], ["n"], axis=0)]
        inits = [("w", W(5, 3, 3, 3)), ("i0", np.array(0, np.int64)), ("m1", I(-1)),
                 ("B", W(80, 4)), ("C", W(4))]
        if opset < 13:
            nodes.append(N("Unsqueeze", ["n"], ["nu"], axes=[0]))
        else:
            nodes.append(N("Unsqueeze", ["n", "a0"], ["nu"]))
            inits.append(("a0", I(0)))
        nodes += [N("Concat", ["nu", "m1"], ["shp"], axis=0), N("Reshape", ["c", "shp"], ["f"]),
                  N("Gemm", ["f", "B", "C"], ["y"])]
        return model(nodes, [("x", [1, 3, 7, 7])], [("y", [1, 4])], inits, opset=opset)
    return build


CASES["maxpool-ceil-window-in-padding-opset11-then-conv-reshape-gemm"] = _ceil_pool_then(11)
CASES["avgpool-ceil-window-in-padding-opset13-then-conv-reshape-gemm"] = _ceil_pool_then(13, "AveragePool")
CASES["maxpool-ceil-window-in-padding-opset22"] = _ceil_pool_then(22)


@case("maxpool-opset10-ceil")
def _():
    return model([N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
                 [("x", [1, 3, 8, 8])], opset=10)


@case("maxpool-same-upper")
def _():
    return model([N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                    auto_pad="SAME_UPPER")], [("x", [1, 3, 8, 8])])


@case("global-avgpool")
def _():
    return model([N("GlobalAveragePool", ["x"], ["y"])], X8)


# ------------------------------------------------------------------------ Gemm, MatMul
def _gemm(cshape, ta, tb, alpha, beta, m=1):
    """A of shape (m, 4) (or (4, m) with transA, made by a Reshape of the (1, 4m) input)."""
    def build():
        B = W(*((5, 4) if tb else (4, 5)))
        nodes, inits = [], [("B", B)]
        a = "x"
        if ta or m != 1:
            nodes.append(N("Reshape", ["x", "ashape"], ["a"]))
            inits.append(("ashape", I(*((4, m) if ta else (m, 4)))))
            a = "a"
        ins = [a, "B"]
        if cshape is not None:
            ins.append("C")
            inits.append(("C", W(*cshape)))
        nodes.append(N("Gemm", ins, ["y"], alpha=alpha, beta=beta, transA=ta, transB=tb))
        return model(nodes, [("x", [1, 4 * m])], inits=inits)
    return build


for _c, _tag in (((5,), "K"), ((1, 5), "1xK"), ((), "scalar"), ((1,), "one"), (None, "noC")):
    for _ta, _tb, _al, _be in ((0, 0, 1.0, 1.0), (0, 1, 0.5, 2.0), (1, 0, 1.5, 0.25), (1, 1, -1.0, 1.0)):
        CASES[f"gemm-C{_tag}-tA{_ta}-tB{_tb}"] = _gemm(_c, _ta, _tb, _al, _be)
CASES["gemm-C-MxK-stays-gemm"] = _gemm((3, 5), 0, 1, 0.5, 2.0, m=3)
CASES["gemm-C-Mx1-transA"] = _gemm((3, 1), 1, 0, 1.0, 0.5, m=3)


@case("gemm-flatten-gap")
def _():
    return model([N("GlobalAveragePool", ["x"], ["p"]), N("Flatten", ["p"], ["f"]),
                  N("Gemm", ["f", "B", "C"], ["y"], transB=1)], X8,
                 inits=[("B", W(10, 4)), ("C", W(10))])


@case("gemm-reshape-conv")
def _():
    return model([N("Conv", ["x", "w"], ["c"], strides=[2, 2]), N("Reshape", ["c", "s"], ["f"]),
                  N("Gemm", ["f", "B"], ["y"])], X8,
                 inits=[("w", W(2, 4, 3, 3)), ("s", I(1, -1)), ("B", W(18, 7))])


@case("matmul")
def _():
    return model([N("MatMul", ["x", "B"], ["y"])], [("x", [1, 6])], inits=[("B", W(6, 3))])


@case("matmul-add")
def _():
    return model([N("MatMul", ["x", "B"], ["m"]), N("Add", ["m", "c"], ["y"])], [("x", [1, 6])],
                 inits=[("B", W(6, 3)), ("c", W(3))])


@case("matmul-add-reversed-1xK")
def _():
    return model([N("MatMul", ["x", "B"], ["m"]), N("Add", ["c", "m"], ["y"])], [("x", [1, 6])],
                 inits=[("B", W(6, 3)), ("c", W(1, 3))])


@case("matmul-4d")
def _():
    return model([N("MatMul", ["x", "B"], ["y"])], X8, inits=[("B", W(8, 3))])


# ------------------------------------------------------------------------ shape-ish ops
for _ax in (1, 2, 0, -1):
    CASES[f"flatten-axis{_ax}"] = (lambda a: lambda: model(
        [N("Flatten", ["x"], ["y"], axis=a)], [("x", [1, 4, 3, 5])]))(_ax)
for _shape in ((0, -1), (1, -1), (-1, 12), (0, 4, -1), (0, 0, 5, -1)):
    CASES["reshape-" + "_".join(map(str, _shape))] = (lambda sh: lambda: model(
        [N("Reshape", ["x", "s"], ["y"])], [("x", [1, 4, 3, 5])], inits=[("s", I(*sh))]))(_shape)


@case("concat-channels")
def _():
    return model([N("Conv", ["x", "w"], ["a"]), N("Concat", ["a", "x", "a"], ["y"], axis=1)], X8,
                 inits=[("w", W(3, 4, 1, 1))])


@case("concat-of-convs")
def _():
    """Two convs' results read only by a concat: concat-in-place writes it in place."""
    return model([N("Conv", ["x", "w"], ["a"]), N("Conv", ["x", "v"], ["b"], pads=[1, 1, 1, 1]),
                  N("Concat", ["a", "b"], ["y"], axis=1)], X8,
                 inits=[("w", W(3, 4, 1, 1)), ("v", W(2, 4, 3, 3))])


@case("concat-negative-axis")
def _():
    return model([N("Concat", ["x", "z"], ["y"], axis=-3)], X8 + [("z", [1, 2, 8, 8])])


@case("dropout-opset10")
def _():
    return model([N("Dropout", ["x"], ["y"], ratio=0.3)], X8, opset=10)


@case("dropout-opset13")
def _():
    return model([N("Dropout", ["x", "r"], ["y"])], X8, inits=[("r", np.float32(0.2))])


@case("dropout-opset13-unused-mask")
def _():
    return model([N("Dropout", ["x"], ["y", "mask"])], X8)


@case("leaky-relu")
def _():
    return model([N("LeakyRelu", ["x"], ["y"], alpha=0.1)], X8)


@case("leaky-relu-default-alpha")
def _():
    return model([N("LeakyRelu", ["x"], ["y"])], X8)


@case("identity")
def _():
    return model([N("Identity", ["x"], ["i"]), N("Relu", ["i"], ["y"])], X8)


for _size in (3, 5):
    CASES[f"lrn-size{_size}"] = (lambda s: lambda: model(
        [N("LRN", ["x"], ["y"], size=s, alpha=0.05, beta=0.75, bias=2.0)], [("x", [1, 7, 4, 4])]))(_size)


@case("softmax-opset11-coerce2d-axis1")
def _():
    return model([N("Softmax", ["x"], ["y"], axis=1)], [("x", [1, 3, 4, 4])], opset=11)


@case("softmax-opset11-default-axis")
def _():
    return model([N("Softmax", ["x"], ["y"])], [("x", [1, 3, 4, 4])], opset=11)


@case("softmax-opset13-axis-1")
def _():
    return model([N("Softmax", ["x"], ["y"], axis=-1)], [("x", [1, 3, 4, 4])], opset=13)


@case("softmax-opset13-axis1")
def _():
    return model([N("Softmax", ["x"], ["y"], axis=1)], [("x", [1, 3, 4, 4])], opset=13)


@case("constant-value")
def _():
    return model([N("Constant", [], ["c"], value=numpy_helper.from_array(W(4, 1, 1), "c")),
                  N("Add", ["x", "c"], ["y"])], X8)


@case("constant-value-float")
def _():
    return model([N("Constant", [], ["c"], value_float=2.5), N("Mul", ["x", "c"], ["y"])], X8)


@case("constant-value-ints")
def _():
    return model([N("Constant", [], ["c"], value_ints=[1, -1]), N("Reshape", ["x", "c"], ["y"])], X8)


def _shape_chain(opset, with_slice_cast):
    """Shape -> Gather -> Unsqueeze -> Concat(-1) -> Reshape (a PyTorch flatten); with
    ``with_slice_cast``: Shape -> Slice -> Cast(f32) -> Cast(i64) -> Concat(-1) -> Reshape."""
    def build():
        inits = [("m1", I(-1))]
        if with_slice_cast:
            nodes = [N("Shape", ["x"], ["s"]), N("Slice", ["s", "st", "en", "ax"], ["s2"])]
            inits += [("st", I(0)), ("en", I(2)), ("ax", I(0))]
            nodes += [N("Cast", ["s2"], ["s3"], to=TensorProto.FLOAT),
                      N("Cast", ["s3"], ["s4"], to=TensorProto.INT64),
                      N("Concat", ["s4", "m1"], ["shp"], axis=0)]
            out = ("y", [1, 4, 9])
        else:
            nodes = [N("Shape", ["x"], ["s"]), N("Gather", ["s", "i0"], ["n"], axis=0)]
            inits.append(("i0", np.array(0, np.int64)))
            if opset < 13:
                nodes.append(N("Unsqueeze", ["n"], ["nu"], axes=[0]))
            else:
                nodes.append(N("Unsqueeze", ["n", "a0"], ["nu"]))
                inits.append(("a0", I(0)))
            nodes.append(N("Concat", ["nu", "m1"], ["shp"], axis=0))
            out = ("y", [1, 36])
        nodes.append(N("Reshape", ["x", "shp"], ["y"]))
        return model(nodes, [("x", [1, 4, 3, 3])], [out], inits, opset=opset)
    return build


def _squeeze(opset):
    def build():
        if opset < 13:
            return model([N("Squeeze", ["x"], ["y"], axes=[2, 3])], [("x", [1, 4, 1, 1])], opset=opset)
        return model([N("Squeeze", ["x", "a"], ["y"])], [("x", [1, 4, 1, 1])],
                     inits=[("a", I(2, 3))], opset=opset)
    return build


def _slice_data(opset):
    def build():
        big = np.iinfo(np.int64).max
        return model([N("Slice", ["x", "st", "en", "ax", "sp"], ["y"])], [("x", [1, 4, 5, 6])],
                     inits=[("st", I(1, 0)), ("en", I(big, -1)), ("ax", I(1, 3)), ("sp", I(2, 1))],
                     opset=opset)
    return build


for _op in (11, 13):
    CASES[f"shape-gather-unsqueeze-concat-reshape-opset{_op}"] = _shape_chain(_op, False)
    CASES[f"shape-slice-cast-concat-reshape-opset{_op}"] = _shape_chain(_op, True)
    CASES[f"squeeze-opset{_op}"] = _squeeze(_op)
    CASES[f"slice-data-opset{_op}"] = _slice_data(_op)
CASES["squeeze-all-axes"] = lambda: model([N("Squeeze", ["x"], ["y"])], [("x", [1, 4, 1, 1])])


@case("squeezenext-style-block")
def _():
    """conv-bn-relu, 1x1 reductions, separable 3x1/1x3, expansion, residual add, relu."""
    nodes = [N("Conv", ["x", "w1"], ["c1"]), bn("c1", "b1", "p1"), N("Relu", ["b1"], ["r1"]),
             N("Conv", ["r1", "w2"], ["c2"]), bn("c2", "b2", "p2"), N("Relu", ["b2"], ["r2"]),
             N("Conv", ["r2", "w3"], ["c3"], pads=[1, 0, 1, 0]), bn("c3", "b3", "p3"),
             N("Relu", ["b3"], ["r3"]),
             N("Conv", ["r3", "w4"], ["c4"], pads=[0, 1, 0, 1]), bn("c4", "b4", "p4"),
             N("Relu", ["b4"], ["r4"]),
             N("Conv", ["r4", "w5"], ["c5"]), bn("c5", "b5", "p5"),
             N("Add", ["b5", "x"], ["s"]), N("Relu", ["s"], ["y"])]
    inits = ([("w1", W(4, 8, 1, 1)), ("w2", W(2, 4, 1, 1)), ("w3", W(4, 2, 3, 1)),
              ("w4", W(4, 4, 1, 3)), ("w5", W(8, 4, 1, 1))] + bn_params(4, "p1") + bn_params(2, "p2")
             + bn_params(4, "p3") + bn_params(4, "p4") + bn_params(8, "p5"))
    return model(nodes, [("x", [1, 8, 8, 8])], inits=inits)


# ------------------------------------------------------------------------ modern CNN ops
X48 = [("x", [1, 4, 8, 8])]
for _name, _node, _opset in (
        ("sigmoid", N("Sigmoid", ["x"], ["y"]), 13),
        ("tanh", N("Tanh", ["x"], ["y"]), 13),
        ("hard-sigmoid", N("HardSigmoid", ["x"], ["y"], alpha=0.3, beta=0.4), 13),
        ("hard-sigmoid-defaults", N("HardSigmoid", ["x"], ["y"]), 6),
        ("hard-swish", N("HardSwish", ["x"], ["y"]), 14),
        ("gelu-opset20", N("Gelu", ["x"], ["y"]), 20),
        ("gelu-tanh-opset20", N("Gelu", ["x"], ["y"], approximate="tanh"), 20),
        ("transpose-nhwc", N("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1]), 13),
        ("transpose-default-reverses", N("Transpose", ["x"], ["y"]), 11)):
    CASES[_name] = (lambda n, o: lambda: model([n], X48, opset=o))(_node, _opset)


for _name, _kw, _w in (("dilated-3x3-d2-pad2", dict(dilations=[2, 2], pads=[2, 2, 2, 2]), (6, 4, 3, 3)),
                       ("dilated-3x3-d2x3-s2", dict(dilations=[2, 3], strides=[2, 2], pads=[1, 0, 2, 3]), (5, 4, 3, 3)),
                       ("dilated-depthwise-d4", dict(dilations=[4, 4], pads=[4, 4, 4, 4], group=4), (4, 1, 3, 3)),
                       ("dilated-5x1-d2", dict(dilations=[2, 1], pads=[4, 0, 4, 0]), (3, 4, 5, 1))):
    CASES[_name] = (lambda kw, w: lambda: model([N("Conv", ["x", "w"], ["y"], **kw)], X48,
                                                inits=[("w", W(*w))]))(_kw, _w)


@case("gelu-erf-as-exported")
def _():
    """GELU as TorchScript exports it: x * 0.5 * (1 + erf(x / sqrt(2)))."""
    return model([N("Div", ["x", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["a"]),
                  N("Mul", ["x", "a"], ["m"]), N("Mul", ["m", "half"], ["y"])], X48,
                 inits=[("r2", np.float32(np.sqrt(2))), ("one", np.float32(1)), ("half", np.float32(0.5))])


@case("sqrt-exp-neg-abs-reciprocal-pow")
def _():
    return model([N("Abs", ["x"], ["a"]), N("Sqrt", ["a"], ["s"]), N("Neg", ["s"], ["n"]),
                  N("Exp", ["n"], ["e"]), N("Reciprocal", ["e"], ["r"]), N("Pow", ["r", "two"], ["p"]),
                  N("Pow", ["a", "half"], ["q"]), N("Add", ["p", "q"], ["y"])], X48,
                 inits=[("two", np.float32(2)), ("half", np.float32(0.5))])


@case("layernorm-channels-last-and-linear-opset17")
def _():
    """ConvNeXt's block tail: to NHWC, LayerNormalization over C, a pointwise Linear
    (MatMul by a constant on a rank-4 tensor), back to NCHW."""
    return model([N("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
                  N("LayerNormalization", ["t", "g", "b"], ["l"], axis=-1, epsilon=1e-6),
                  N("MatMul", ["l", "w"], ["m"]), N("Transpose", ["m"], ["y"], perm=[0, 3, 1, 2])], X48,
                 inits=[("g", W(4)), ("b", W(4)), ("w", W(4, 6))], opset=17)


@case("instance-norm-and-group-norm-opset21")
def _():
    """A style-transfer InstanceNormalization (scale and bias per channel) and an ONNX
    GroupNormalization of 2 groups (opset 21: scale and bias per channel)."""
    return model([N("InstanceNormalization", ["x", "s", "b"], ["n"], epsilon=1e-5),
                  N("GroupNormalization", ["n", "gs", "gb"], ["y"], num_groups=2, epsilon=1e-5)], X48,
                 outputs=[("y", [1, 4, 8, 8])],       # ONNX's inference types no GroupNormalization
                 inits=[("s", W(4)), ("b", W(4)), ("gs", W(4)), ("gb", W(4))], opset=21)


@case("swish-x-times-sigmoid-after-conv")
def _():
    return model([N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), N("Sigmoid", ["c"], ["s"]),
                  N("Mul", ["c", "s"], ["y"])], X48, inits=[("w", W(6, 4, 3, 3))])


@case("squeeze-excitation")
def _():
    """SE block: global pool, fc down, relu, fc up, sigmoid, channel scale (broadcast Mul)."""
    return model([N("GlobalAveragePool", ["x"], ["g"]), N("Conv", ["g", "w1", "b1"], ["d"]),
                  N("Relu", ["d"], ["r"]), N("Conv", ["r", "w2", "b2"], ["u"]),
                  N("HardSigmoid", ["u"], ["s"], alpha=1 / 6, beta=0.5), N("Mul", ["x", "s"], ["y"])],
                 X48, inits=[("w1", W(2, 4, 1, 1)), ("b1", W(2)), ("w2", W(4, 2, 1, 1)), ("b2", W(4))])


for _slope, _shape in (("per-channel", (4, 1, 1)), ("scalar", (1,))):
    CASES[f"prelu-{_slope}"] = (lambda sh: lambda: model(
        [N("Conv", ["x", "w"], ["c"]), N("PRelu", ["c", "slope"], ["y"])], X48,
        inits=[("w", W(4, 4, 1, 1)), ("slope", W(*sh) * 0.5)], opset=13))(_shape)


@case("channel-shuffle-reshape-transpose-reshape")
def _():
    return model([N("Reshape", ["x", "s1"], ["a"]), N("Transpose", ["a"], ["t"], perm=[0, 2, 1, 3, 4]),
                  N("Reshape", ["t", "s2"], ["y"])], X48,
                 inits=[("s1", I(1, 2, 2, 8, 8)), ("s2", I(1, 4, 8, 8))])


def _split(opset, how):
    """Split x's 4 channels, scale the parts differently and concatenate them back."""
    if how == "sizes" and opset < 13:
        node, inits = N("Split", ["x"], ["a", "b"], axis=1, split=[1, 3]), []
    elif how == "sizes":
        node, inits = N("Split", ["x", "sp"], ["a", "b"], axis=1), [("sp", I(1, 3))]
    elif how == "num_outputs":
        node, inits = N("Split", ["x"], ["a", "b"], axis=1, num_outputs=2), []
    else:
        node, inits = N("Split", ["x"], ["a", "b"], axis=-3), []
    return lambda: model([node, N("Mul", ["a", "two"], ["a2"]), N("Concat", ["b", "a2"], ["y"], axis=1)],
                         X48, inits=inits + [("two", np.float32(2.0))], opset=opset)


for _op, _how in ((11, "sizes"), (13, "sizes"), (13, "equal"), (18, "num_outputs")):
    CASES[f"split-{_how}-opset{_op}"] = _split(_op, _how)


@case("gather-channels-of-data")
def _():
    """A channel gather of an activation (a data copy: sqnxt.take), reversed channel order."""
    return model([N("Relu", ["x"], ["r"]), N("Gather", ["r", "idx"], ["y"], axis=1)], X48,
                 inits=[("idx", I(3, 2, 1, 0))])


@case("expand-to-a-computed-shape")
def _():
    return model([N("GlobalAveragePool", ["x"], ["g"]), N("Shape", ["x"], ["sh"]),
                  N("Expand", ["g", "sh"], ["e"]), N("Sub", ["x", "e"], ["y"])], X48)


@case("constant-of-shape-from-a-shape")
def _():
    return model([N("Shape", ["x"], ["sh"]),
                  N("ConstantOfShape", ["sh"], ["c"], value=numpy_helper.from_array(np.array([0.5], np.float32))),
                  N("Add", ["x", "c"], ["y"])], X48)


def _pad(opset, mode, with_axes=False):
    if opset < 11:
        node, inits = N("Pad", ["x"], ["p"], pads=[0, 0, 1, 2, 0, 0, 2, 1], mode=mode, value=1.5), []
    elif with_axes:
        node = N("Pad", ["x", "pads", "v", "axes"], ["p"], mode=mode)
        inits = [("pads", I(1, 2, 2, 1)), ("v", np.float32(0.0)), ("axes", I(2, 3))]
    else:
        node = N("Pad", ["x", "pads"], ["p"], mode=mode)
        inits = [("pads", I(0, 0, 1, 2, 0, 0, 2, 1))]
    return lambda: model([node, N("Conv", ["p", "w"], ["y"])], X48, inits=inits + [("w", W(3, 4, 3, 3))],
                         opset=opset)


for _op, _mode, _axes in ((2, "constant", False), (11, "constant", False), (13, "reflect", False),
                          (13, "edge", False), (18, "constant", True)):
    CASES[f"pad-{_mode}-opset{_op}{'-axes' if _axes else ''}-then-conv"] = _pad(_op, _mode, _axes)


def _reduce(op_type, opset, axes, keepdims):
    moved = 13 if op_type == "ReduceSum" else 18
    if axes is None:
        node, inits = N(op_type, ["x"], ["y"], keepdims=keepdims), []
    elif opset < moved:
        node, inits = N(op_type, ["x"], ["y"], axes=axes, keepdims=keepdims), []
    else:
        node, inits = N(op_type, ["x", "ax"], ["y"], keepdims=keepdims), [("ax", I(*axes))]
    return lambda: model([node], X48, inits=inits, opset=opset)


for _t, _op, _axes, _keep in (("ReduceMean", 13, [2, 3], 1), ("ReduceMean", 18, [2, 3], 0),
                              ("ReduceMax", 13, [1], 1), ("ReduceMax", 18, [1], 1),
                              ("ReduceSum", 11, [-1], 0), ("ReduceSum", 13, [1, 3], 1),
                              ("ReduceMin", 13, None, 0)):
    CASES[f"{_t.lower()}-opset{_op}-axes{_axes}-keep{_keep}"] = _reduce(_t, _op, _axes, _keep)


def _resize(opset, mode, coord, *, scales=None, sizes=None, nearest=None):
    attrs = {"mode": mode}
    if coord:
        attrs["coordinate_transformation_mode"] = coord
    if nearest:
        attrs["nearest_mode"] = nearest
    inits = [("roi", np.zeros(0, np.float32))]
    if sizes is not None:
        ins = ["x", "roi", "", "sz"]
        inits.append(("sz", I(*sizes)))
    else:
        ins = ["x", "roi", "sc"]
        inits.append(("sc", np.array(scales, np.float32)))
    return lambda: model([N("Resize", ins, ["y"], **attrs)], [("x", [1, 3, 5, 6])], inits=inits, opset=opset)


for _k, _args in {
        "nearest-asymmetric-floor-x2-opset11": (11, "nearest", "asymmetric", {"scales": [1, 1, 2, 2], "nearest": "floor"}),
        "nearest-half-pixel-x1.5-opset13": (13, "nearest", "half_pixel", {"scales": [1, 1, 1.5, 1.5]}),
        "nearest-round-prefer-ceil-sizes-opset13": (13, "nearest", "half_pixel",
                                                    {"sizes": [1, 3, 7, 9], "nearest": "round_prefer_ceil"}),
        "linear-half-pixel-sizes-opset13": (13, "linear", "half_pixel", {"sizes": [1, 3, 10, 12]}),
        "linear-align-corners-x2-opset13": (13, "linear", "align_corners", {"scales": [1, 1, 2, 2]}),
        "linear-pytorch-half-pixel-down-opset13": (13, "linear", "pytorch_half_pixel", {"sizes": [1, 3, 3, 2]}),
        "linear-asymmetric-x2-opset18": (18, "linear", "asymmetric", {"scales": [1, 1, 2, 2]}),
}.items():
    CASES[f"resize-{_k}"] = _resize(_args[0], _args[1], _args[2], **_args[3])


@case("upsample-nearest-opset9")
def _():
    return model([N("Upsample", ["x", "sc"], ["y"], mode="nearest")], [("x", [1, 3, 5, 6])],
                 inits=[("sc", np.array([1, 1, 2, 3], np.float32))], opset=9)


@case("slice-with-bounds-computed-from-shapes-opset13")
def _():
    """ShuffleNet-v2 style: the channel half is Shape -> Gather -> Div, then Slice."""
    return model([N("Shape", ["x"], ["sh"]), N("Gather", ["sh", "one"], ["c"], axis=0),
                  N("Div", ["c", "two"], ["h"]), N("Unsqueeze", ["h", "ax0"], ["hv"]),
                  N("Slice", ["x", "zero", "hv", "ax1"], ["y"])], X48,
                 inits=[("one", I(1).reshape(())), ("two", I(2).reshape(())), ("ax0", I(0)),
                        ("zero", I(0)), ("ax1", I(1))])


# ------------------------------------------------------------------------ host ops (docs/ir.md, "The host partition")
_F = TensorProto.FLOAT
CASES["host-topk-cast"] = lambda: model(
    [N("TopK", ["x", "k"], ["v", "i"], axis=-1), N("Cast", ["i"], ["ic"], to=_F)], X8,
    outputs=("v", "ic"), inits=[("k", I(3))])
CASES["host-argmax-argmin-cast"] = lambda: model(
    [N("ArgMax", ["x"], ["a"], axis=1, keepdims=1), N("ArgMin", ["x"], ["b"], axis=2, keepdims=0, select_last_index=1),
     N("Cast", ["a"], ["af"], to=_F), N("Cast", ["b"], ["bf"], to=_F)], X8, outputs=("af", "bf"))
CASES["host-compare-logic-where"] = lambda: model(
    [N("Greater", ["x", "c0"], ["g"]), N("Less", ["x", "c1"], ["l"]), N("LessOrEqual", ["x", "c1"], ["le"]),
     N("GreaterOrEqual", ["x", "c0"], ["ge"]), N("Not", ["g"], ["ng"]), N("And", ["le", "ge"], ["a"]),
     N("Or", ["ng", "a"], ["o"]), N("Equal", ["o", "l"], ["e"]), N("Xor", ["e", "l"], ["xo"]),
     N("Where", ["xo", "x", "c0"], ["y"])], X8,
    inits=[("c0", np.float32(0.2)), ("c1", np.float32(0.7))])
CASES["host-mod-gather-elements"] = lambda: model(
    [N("ArgMax", ["x"], ["am"], axis=3), N("Mod", ["am", "three"], ["md"]),
     N("GatherElements", ["x", "md"], ["y"], axis=3), N("Mod", ["x", "c2"], ["y2"], fmod=1)], X8,
    outputs=("y", "y2"), inits=[("three", np.int64(3)), ("c2", np.float32(0.7))])


# ------------------------------------------------------------------------ the tests
@pytest.mark.parametrize("passes", ["default", "none"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_onnxruntime(name, passes):
    m = CASES[name]()
    onnx.checker.check_model(m)
    graph, report = compile_and_check(m, passes=passes, samples=2)
    assert report.ok, f"{name} [{passes}]\n{report.format()}"
    assert report.outputs and all(o.max_abs < 1e-3 for o in report.outputs)


# ------------------------------------------------------------------------ lowering details
def _imported(m):
    return import_model(m, "t.onnx").graph


def _only(graph, name):
    ops = graph.ops_named(name)
    assert len(ops) == 1, graph.count_by_name()
    return ops[0]


@pytest.mark.parametrize("opset,ins,want", [
    (6, None, (0.0, 6.0)), (10, None, (0.0, 6.0)),
    (11, ["x", "lo", "hi"], (-0.5, 0.75)), (13, ["x", "", "hi"], (float("-inf"), 0.75)),
    (13, ["x", "lo"], (-0.5, float("inf"))), (13, ["x"], (float("-inf"), float("inf"))),
])
def test_clip_bounds_lowered(opset, ins, want):
    if ins is None:
        m = model([N("Clip", ["x"], ["y"], min=0.0, max=6.0)], X8, opset=opset)
    else:
        m = model([N("Clip", ins, ["y"])], X8, inits=[("lo", np.float32(-0.5)),
                                                      ("hi", np.float32(0.75))], opset=opset)
    op = _only(_imported(m), "sqnxt.clip")
    assert (op.attrs["min"], op.attrs["max"]) == want


@pytest.mark.parametrize("auto,k,s,want", [
    ("SAME_UPPER", 2, 2, (0, 0, 1, 1)),   # 7x7, k2 s2: out 4, total pad 1, the extra at the end
    ("SAME_LOWER", 2, 1, (1, 1, 0, 0)),   # 7x7, k2 s1: out 7, total pad 1, at the begin
    ("VALID", 3, 2, (0, 0, 0, 0)),
])
def test_auto_pad_explicit_pads(auto, k, s, want):
    m = model([N("Conv", ["x", "w"], ["y"], auto_pad=auto, strides=[s, s])], [("x", [1, 2, 7, 7])],
              inits=[("w", W(2, 2, k, k))])
    op = _only(_imported(m), "sqnxt.conv")
    assert op.attrs["pads"] == want


def test_softmax_opset_rules_lowered():
    a = _only(_imported(model([N("Softmax", ["x"], ["y"])], X8, opset=11)), "sqnxt.softmax")
    b = _only(_imported(model([N("Softmax", ["x"], ["y"])], X8, opset=13)), "sqnxt.softmax")
    assert (a.attrs["axis"], a.attrs["coerce_2d"]) == (1, 1)
    assert (b.attrs["axis"], b.attrs["coerce_2d"]) == (-1, 0)


def test_every_lowering_is_exercised():
    from sqnxt_compiler.frontend.onnx_import import LOWERINGS
    used = set()
    for build in CASES.values():
        used |= {n.op_type for n in build().graph.node}
    from sqnxt_compiler.frontend.cut import DYNAMIC_SHAPE   # never lowered: the model is cut before them
    assert set(LOWERINGS) - set(DYNAMIC_SHAPE) <= used, sorted(set(LOWERINGS) - set(DYNAMIC_SHAPE) - used)


def test_ceil_pool_window_in_padding_follows_the_runtime():
    """ONNX shape inference (opset < 22) says 5x5 here; onnxruntime and sqnxtc say 4x4."""
    g = _imported(CASES["maxpool-ceil-window-in-padding-opset11-then-conv-reshape-gemm"]())
    assert _only(g, "sqnxt.maxpool").result.type.shape == (1, 3, 4, 4)
    assert _only(g, "sqnxt.reshape").result.type.shape == (1, 80)


def test_wrong_declared_output_of_computed_reshape_is_a_located_error():
    """The file declares 1x36 for a Reshape whose computed target is (1, 4, -1) = 1x4x9:
    a one-line unsupported-model error at the node, not a verifier failure in a pass."""
    from sqnxt_compiler.diagnostics import ExitCode, UnsupportedError
    m = _shape_chain(13, True)()
    m.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 36]))
    with pytest.raises(UnsupportedError) as ei:
        import_model(m, "t.onnx")
    msg = str(ei.value)
    assert ei.value.code == ExitCode.UNSUPPORTED
    assert "node 'Reshape_5' (sqnxt.reshape)" in msg and "tensor<1x4x9xf32>" in msg


def test_ceil_pool_with_runtime_shape_declared_is_accepted(cli, save):
    """A file may declare the runtime's (ORT/PyTorch/Caffe) shape of a ceil-mode pool whose
    last window starts in the padding, where ONNX < opset 22 infers one more: sqnxtc notes
    the disagreement, re-infers, and computes what onnxruntime computes."""
    from onnx import helper as h
    from support import inferred_model, int64s, make_model

    m = make_model([h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                                pads=[1, 1, 1, 1], ceil_mode=1)],
                   [("x", [1, 2, 7, 7])], [("y", [1, 2, 4, 4])], opset=13)
    r = cli("check", save(m))
    assert r.exit_code == 0, r.output
    assert "re-inferred" in r.stderr and "1x2x4x4" in r.stdout


@case("pad-zero-then-two-convs-and-avgpool")
def _():
    """A zero Pad shared by two convs and a padding-counting avgpool: folded into all three."""
    return model([N("Pad", ["x", "pads"], ["p"]), N("Conv", ["p", "w1"], ["a"]),
                  N("Conv", ["p", "w2"], ["b"], strides=[2, 2]),
                  N("AveragePool", ["p"], ["c"], kernel_shape=[3, 3], strides=[2, 2], count_include_pad=1),
                  N("Conv", ["c", "w3"], ["c2"]), N("Add", ["b", "c2"], ["s"]),
                  N("Conv", ["a", "w4"], ["a2"], strides=[2, 2]), N("Add", ["s", "a2"], ["y"])],
                 X48, inits=[("pads", I(0, 0, 1, 1, 0, 0, 1, 1)), ("w1", W(4, 4, 3, 3)),
                             ("w2", W(4, 4, 3, 3)), ("w3", W(4, 4, 1, 1)), ("w4", W(4, 4, 1, 1))])


@pytest.mark.parametrize("name,folded,kept", [
    ("pad-constant-opset11-then-conv", {"pad-into-conv": 1}, []),
    ("pad-zero-then-two-convs-and-avgpool", {"pad-into-window": 1}, []),
    ("pad-constant-opset2-then-conv", {}, ["sqnxt.pad"]),       # value 1.5: not a conv's zeros
    ("pad-reflect-opset13-then-conv", {}, ["sqnxt.pad"]),
    ("reducemean-opset13-axes[2, 3]-keep1", {"gap-from-reduce-mean": 1}, ["sqnxt.global_avgpool"]),
    ("reducemean-opset18-axes[2, 3]-keep0", {"gap-from-reduce-mean": 1}, ["sqnxt.global_avgpool", "sqnxt.flatten"]),
    ("reducemax-opset13-axes[1]-keep1", {}, ["sqnxt.reduce"]),
])
def test_canonicalize_folds_pads_and_mean_pools(name, folded, kept):
    """What canonicalize makes of the new ops (numerics: test_op_matches_onnxruntime)."""
    from sqnxt_compiler import driver

    res = driver.compile((CASES[name](), "t.onnx"), pipeline="canonicalize")
    stats = next(p for p in res.passes if p.name == "canonicalize").stats
    for k, n in folded.items():
        assert stats[k] == n, dict(stats)
    names = {op.name for op in res.graph.ops()}
    assert ("sqnxt.pad" in names) == ("sqnxt.pad" in kept)
    assert ("sqnxt.reduce" in names) == ("sqnxt.reduce" in kept)
    for k in kept:
        assert k in names


# ---- auto_pad SAME with a stride larger than the kernel ---------------------------------
SAME_GRID = [(size, k, s, auto) for size in (5, 7, 8, 9, 10) for k in (1, 2, 3) for s in (2, 3, 4, 5)
             for auto in ("SAME_UPPER", "SAME_LOWER") if s > k]


def _ort_pads(size, k, s, auto):
    """onnxruntime's (head, tail) for SAME padding: C division, no clamping."""
    o = -(-size // s)
    need = (o - 1) * s + k - size
    num = need + (auto == "SAME_LOWER")
    head = int(num / 2)
    return head, need - head


@pytest.mark.parametrize("size,k,s,auto", SAME_GRID)
def test_conv_same_padding_follows_onnxruntime_or_is_rejected(rng, size, k, s, auto):
    """Every conv with SAME padding and stride > kernel either matches onnxruntime (the
    padding is >= 0, or only its tail is negative) or is unsupported (exit 4) because
    onnxruntime's negative head padding shifts the windows."""
    from sqnxt_compiler.diagnostics import UnsupportedError

    o = -(-size // s)
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"], name="c", strides=[s, s], auto_pad=auto)],
                   [("x", [1, 2, size, size])], [("y", [1, 2, o, o])],
                   [("w", rng.standard_normal((2, 2, k, k)).astype(np.float32))])
    head, _ = _ort_pads(size, k, s, auto)
    if head < 0:
        with pytest.raises(UnsupportedError, match="shifts the windows"):
            compile_and_check(m)
    else:
        _, report = compile_and_check(m)
        assert report.ok, report.format()


def test_the_same_padding_grid_has_both_outcomes():
    heads = [_ort_pads(*c)[0] for c in SAME_GRID]
    tails = [_ort_pads(*c)[1] for c in SAME_GRID]
    assert any(h < 0 for h in heads) and any(t < 0 <= h for h, t in zip(heads, tails))
