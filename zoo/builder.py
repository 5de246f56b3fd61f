"""A small graph builder over ``onnx.helper`` that also records every layer.

A network definition is a plain function ``define(b: GraphBuilder) -> Value`` that calls
``b.conv``, ``b.max_pool``, ``b.add`` ... in order.  The same function serves two purposes:

* **dry run** (``materialize=False``): only shapes and :class:`LayerRecord` s are computed,
  no weights, no ONNX nodes.  This is how :func:`sqnxt_compiler.zoo.get_info` counts
  parameters and MACs in milliseconds.
* **build** (``materialize=True``): every layer also gets seeded weights, an ONNX node (or
  a few: ``Conv`` -> ``BatchNormalization`` -> ``Relu``), and the builder propagates one
  calibration image through the layer with numpy (:mod:`.numerics`) to condition it.

Conditioning rules (so that numerical checks on a whole network are meaningful):

* conv and fc weights are drawn ``N(0, 2 / fan_in)`` (He), then a ``weight_sparsity``
  fraction of them is zeroed (an independent Bernoulli mask per weight);
* a layer followed by BatchNormalization gets the BatchNorm's ``mean`` / ``var`` set to the
  per-channel statistics of its output on the calibration batch, a scale drawn from
  ``U(0.75, 1.25)`` and a shift from ``U(-0.1, 0.1)``: the BatchNorm output is normalized;
* the last BatchNorm of a residual branch (SqueezeNext's ``expand``) has its scale
  multiplied by :data:`RESIDUAL_BRANCH_SCALE` (0.1), as in the small-/zero-gamma
  initializations of deep residual networks: with unit scales the 20-40 stacked branches
  make the network chaotic (a 1e-3 input perturbation moved the logits of 2.0-SqNxt-44 by
  30%, and float32 summation order alone changed them by 4e-2); with 0.1 the gain is ~2
  and numpy and onnxruntime agree to ~5e-6, while each branch still adds ~10% to its sum;
* a layer without BatchNorm has its weights rescaled so that its output (before the bias)
  has unit standard deviation on the calibration batch (LSUV), and a bias from
  ``U(-0.1, 0.1)`` when it has one.

The calibration batch is :data:`CALIBRATION_IMAGES` standard-normal images: statistics of
a single image over-fit its spatial means, and the logits of other images then blew up by
1000x on the deeper models; two images were enough to stop that.

Randomness: each layer draws from ``numpy.random.default_rng([seed, crc32(layer name)])``
(and ``[seed, crc32(name), 1]`` for its sparsity mask), so a layer's weights do not depend
on the layers built before it and the model bytes depend only on (name, seed, sparsity).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import numerics

OPSET = 13
IR_VERSION = 8
BN_EPSILON = 1e-5
LEAKY_ALPHA = 0.1
CALIBRATION_IMAGES = 2
RESIDUAL_BRANCH_SCALE = 0.1
_MASK_CHUNK = 1 << 22  # weights per chunk of the sparsity mask (bounds its temporary memory)


def _unit_std_(w: np.ndarray, y: np.ndarray) -> None:
    """Scale a layer without BatchNorm in place so its calibration output has std 1:
    ``w *= 1/std(y)`` and ``y *= 1/std(y)`` (float32 factor; nothing when std is 0)."""
    std = float(y.std(dtype=np.float64))
    if std > 0:
        s = np.float32(1.0 / std)
        w *= s
        y *= s


@dataclass(frozen=True)
class Value:
    """A tensor of the graph being built: its ONNX name and shape without the batch dim."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class LayerRecord:
    """One conv or fc layer: the shapes and attributes that fix its params and MACs."""

    name: str
    kind: str  # "conv" or "fc"
    cin: int
    hin: int
    win: int
    cout: int
    hout: int
    wout: int
    kh: int = 1
    kw: int = 1
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # ONNX order: top, left, bottom, right
    group: int = 1
    bias: bool = False
    batchnorm: bool = False

    @property
    def weights(self) -> int:
        """Weight count: ``cout * cin/group * kh * kw``."""
        return self.cout * (self.cin // self.group) * self.kh * self.kw

    @property
    def params(self) -> int:
        """Weights, plus ``cout`` biases if any, plus ``2*cout`` for a BatchNorm scale+shift."""
        return self.weights + (self.cout if self.bias else 0) + (2 * self.cout if self.batchnorm else 0)

    @property
    def macs(self) -> int:
        """Multiply-accumulates without bias: ``hout*wout*cout * cin/group*kh*kw``."""
        return self.hout * self.wout * self.weights

    @property
    def bias_macs(self) -> int:
        """One MAC per output value: the bias term the paper's Table 4 adds to every layer."""
        return self.hout * self.wout * self.cout


def layer_rng(seed: int, name: str, *extra: int) -> np.random.Generator:
    """The random generator of one layer: seeded by (seed, crc32 of its name, extra...)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8")), *extra])


def calibration_input(seed: int, size: int, images: int = CALIBRATION_IMAGES) -> np.ndarray:
    """The calibration batch of a build: ``[images, 3, size, size]`` standard normal float32."""
    return layer_rng(seed, "input").standard_normal((images, 3, size, size), dtype=np.float32)


def _bc(v: np.ndarray, ndim: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast over a CNHW (4-D) or [F, N] (2-D) array."""
    return v.reshape((-1,) + (1,) * (ndim - 1))


def sparsify_(w: np.ndarray, fraction: float, rng: np.random.Generator) -> None:
    """Zero each weight independently with probability ``fraction``, in place, in chunks.

    The mask is drawn chunk by chunk (fixed chunk size), so even a 100M-weight layer needs
    only a few MB of temporaries, and the mask depends only on the shape and the generator.
    """
    if fraction <= 0.0:
        return
    flat = w.reshape(-1)
    thr = np.float32(fraction)
    for start in range(0, flat.size, _MASK_CHUNK):
        part = flat[start:start + _MASK_CHUNK]
        part[rng.random(part.size, dtype=np.float32) < thr] = 0.0


@dataclass
class GraphBuilder:
    """Builds one network: records layers always, ONNX nodes and weights when materializing."""

    name: str
    input_size: int
    materialize: bool = False
    seed: int = 0
    weight_sparsity: float = 0.0
    doc: str = ""
    layers: list[LayerRecord] = field(default_factory=list)
    # Nodes and initializers go straight into the model under construction: building a
    # GraphProto first and handing it to onnx.helper.make_graph / make_model would copy
    # every weight twice more (3.3 GB peak for VGG-19 instead of 1.3 GB).
    model: onnx.ModelProto = field(default_factory=onnx.ModelProto)
    calibration_images: int = CALIBRATION_IMAGES
    calibration_output: np.ndarray | None = None  # the logits of the calibration image
    _node_names: set[str] = field(default_factory=set)
    _acts: dict[str, np.ndarray] = field(default_factory=dict)

    # ------------------------------------------------------------------ plumbing
    def input(self) -> Value:
        """The graph input ``input``: ``[1, 3, S, S]`` float32 (a calibration image when building)."""
        v = Value("input", (3, self.input_size, self.input_size))
        if self.materialize:
            batch = calibration_input(self.seed, self.input_size, self.calibration_images)
            self._acts[v.name] = np.ascontiguousarray(batch.transpose(1, 0, 2, 3))
        return v

    def _claim(self, name: str) -> str:
        if name in self._node_names or name in ("input", "output"):
            raise ValueError(f"duplicate node name '{name}'")
        self._node_names.add(name)
        return name

    def _node(self, op: str, name: str, inputs: Sequence[str], **attrs) -> str:
        self._claim(name)
        if self.materialize:
            self.model.graph.node.append(helper.make_node(op, list(inputs), [name], name=name, **attrs))
        return name

    def _act(self, v: Value) -> np.ndarray:
        return self._acts[v.name]

    def _set(self, name: str, shape: tuple[int, ...], arr: np.ndarray | None) -> Value:
        if self.materialize:
            want = (shape[0], self.calibration_images) + shape[1:]
            assert arr is not None and arr.shape == want, (name, want, None if arr is None else arr.shape)
            self._acts[name] = arr
        return Value(name, shape)

    def _init(self, name: str, arr: np.ndarray) -> str:
        """Add a float32 initializer to the model under construction."""
        return self._init_take(name, [arr])

    def _init_take(self, name: str, box: list[np.ndarray]) -> str:
        """Add the array in the one-element ``box`` as an initializer, releasing it early.

        The caller hands over its only reference inside ``box``; the array is freed as soon
        as its bytes exist, so a weight is held at most twice (bytes + protobuf copy).
        """
        arr = np.ascontiguousarray(box.pop(), dtype=np.float32)
        shape = arr.shape
        data = arr.tobytes()
        del arr
        t = self.model.graph.initializer.add()
        t.name = name
        t.data_type = TensorProto.FLOAT
        t.dims.extend(shape)
        t.raw_data = data
        return name

    def _activation(self, v: Value, base: str, act: str | None) -> Value:
        """Append ``Relu`` (``base/relu``) or ``LeakyRelu`` (``base/leaky``) or nothing."""
        if act is None:
            return v
        if act == "relu":
            name = self._node("Relu", f"{base}/relu", [v.name])
            arr = np.maximum(self._act(v), 0) if self.materialize else None
        elif act == "leaky":
            name = self._node("LeakyRelu", f"{base}/leaky", [v.name], alpha=LEAKY_ALPHA)
            arr = None
            if self.materialize:
                x = self._act(v)
                arr = np.where(x > 0, x, np.float32(LEAKY_ALPHA) * x).astype(np.float32)
        else:
            raise ValueError(f"unknown activation '{act}'")
        return self._set(name, v.shape, arr)

    # ------------------------------------------------------------------ layers
    def conv(self, x: Value, name: str, cout: int, kernel: int | tuple[int, int] = 1,
             stride: int | tuple[int, int] = 1, pads: tuple[int, int, int, int] | None = None,
             group: int = 1, bias: bool = False, bn: bool = True, act: str | None = "relu",
             bn_scale: float = 1.0) -> Value:
        """``Conv`` (+ ``BatchNormalization`` named ``name/bn``) (+ activation).

        ``kernel`` is ``(kh, kw)``; ``pads`` defaults to ``kh//2, kw//2`` on both sides.
        ``bn_scale`` multiplies the BatchNorm's drawn scale (a residual branch's last
        BatchNorm uses a small one, see :data:`RESIDUAL_BRANCH_SCALE`).
        """
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        if pads is None:
            pads = (kh // 2, kw // 2, kh // 2, kw // 2)
        cin, hin, win = x.shape
        if cin % group or cout % group:
            raise ValueError(f"{name}: channels {cin}->{cout} not divisible by group {group}")
        hout = (hin + pads[0] + pads[2] - kh) // sh + 1
        wout = (win + pads[1] + pads[3] - kw) // sw + 1
        rec = LayerRecord(name, "conv", cin, hin, win, cout, hout, wout, kh, kw, (sh, sw),
                          tuple(pads), group, bias, bn)
        self.layers.append(rec)
        shape = (cout, hout, wout)
        if not self.materialize:
            out = Value(self._node("Conv", name, []), shape)
            if bn:
                out = Value(self._node("BatchNormalization", f"{name}/bn", []), shape)
            return self._activation(out, name, act)

        rng = layer_rng(self.seed, name)
        fan_in = (cin // group) * kh * kw
        w = rng.standard_normal((cout, cin // group, kh, kw), dtype=np.float32)
        w *= np.float32(math.sqrt(2.0 / fan_in))
        sparsify_(w, self.weight_sparsity, layer_rng(self.seed, name, 1))
        y = numerics.conv2d(self._act(x), w, stride=(sh, sw), pads=tuple(pads), group=group)
        inputs = [x.name, f"{name}.weight"]
        if bn:
            mean, var = numerics.channel_stats(y)
            gamma = (rng.uniform(0.75, 1.25, cout) * bn_scale).astype(np.float32)
            beta = rng.uniform(-0.1, 0.1, cout).astype(np.float32)
            mean32, var32 = mean.astype(np.float32), var.astype(np.float32)
            scale = gamma / np.sqrt(var32 + np.float32(BN_EPSILON))
            y -= _bc(mean32, 4)
            y *= _bc(scale, 4)
            y += _bc(beta, 4)
        else:
            _unit_std_(w, y)
        box = [w]
        del w
        self._init_take(f"{name}.weight", box)
        if bias:
            b = rng.uniform(-0.1, 0.1, cout).astype(np.float32)
            y += _bc(b, 4)
            inputs.append(self._init(f"{name}.bias", b))
        attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=list(pads))
        if group != 1:
            attrs["group"] = group
        self._node("Conv", name, inputs, **attrs)
        out = Value(name, shape)
        if bn:
            bn_name = f"{name}/bn"
            for suffix, arr in (("scale", gamma), ("bias", beta), ("mean", mean32), ("var", var32)):
                self._init(f"{bn_name}.{suffix}", arr)
            self._node("BatchNormalization", bn_name,
                       [name, f"{bn_name}.scale", f"{bn_name}.bias", f"{bn_name}.mean", f"{bn_name}.var"],
                       epsilon=BN_EPSILON)
            out = Value(bn_name, shape)
        self._acts[out.name] = y
        return self._activation(out, name, act)

    def fc(self, x: Value, name: str, cout: int, bias: bool = True, act: str | None = None) -> Value:
        """Fully connected layer as ``Gemm(x, W, b, transB=1)`` on a flattened value."""
        if len(x.shape) != 1:
            raise ValueError(f"{name}: fc needs a flattened input, got shape {x.shape}")
        cin = x.shape[0]
        self.layers.append(LayerRecord(name, "fc", cin, 1, 1, cout, 1, 1, bias=bias))
        if not self.materialize:
            return self._activation(Value(self._node("Gemm", name, []), (cout,)), name, act)
        rng = layer_rng(self.seed, name)
        w = rng.standard_normal((cout, cin), dtype=np.float32)
        w *= np.float32(math.sqrt(2.0 / cin))
        sparsify_(w, self.weight_sparsity, layer_rng(self.seed, name, 1))
        y = w @ self._act(x)
        _unit_std_(w, y)
        box = [w]
        del w
        inputs = [x.name, self._init_take(f"{name}.weight", box)]
        if bias:
            b = rng.uniform(-0.1, 0.1, cout).astype(np.float32)
            y = y + _bc(b, 2)
            inputs.append(self._init(f"{name}.bias", b))
        self._node("Gemm", name, inputs, transB=1)
        out = self._set(name, (cout,), y.astype(np.float32))
        return self._activation(out, name, act)

    def max_pool(self, x: Value, name: str, kernel: int, stride: int,
                 pads: tuple[int, int, int, int] = (0, 0, 0, 0), ceil_mode: bool = True) -> Value:
        """``MaxPool`` with a square kernel; ``ceil_mode`` rounds the output size up (Caffe)."""
        c, h, w = x.shape
        ho = numerics.pool_output_size(h, kernel, stride, pads[0], pads[2], ceil_mode)
        wo = numerics.pool_output_size(w, kernel, stride, pads[1], pads[3], ceil_mode)
        attrs = dict(kernel_shape=[kernel, kernel], strides=[stride, stride])
        if any(pads):
            attrs["pads"] = list(pads)
        if ceil_mode:
            attrs["ceil_mode"] = 1
        self._node("MaxPool", name, [x.name], **attrs)
        arr = None
        if self.materialize:
            arr = numerics.max_pool(self._act(x), kernel=kernel, stride=stride, pads=pads,
                                    ceil_mode=ceil_mode)
        return self._set(name, (c, ho, wo), arr)

    def global_avg_pool(self, x: Value, name: str) -> Value:
        """``GlobalAveragePool``: CxHxW -> Cx1x1."""
        self._node("GlobalAveragePool", name, [x.name])
        arr = numerics.global_avg_pool(self._act(x)) if self.materialize else None
        return self._set(name, (x.shape[0], 1, 1), arr)

    def lrn(self, x: Value, name: str, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
            bias: float = 2.0) -> Value:
        """``LRN`` across channels (AlexNet's local response normalization)."""
        self._node("LRN", name, [x.name], size=size, alpha=alpha, beta=beta, bias=bias)
        arr = None
        if self.materialize:
            arr = numerics.lrn(self._act(x), size=size, alpha=alpha, beta=beta, bias=bias)
        return self._set(name, x.shape, arr)

    def add(self, a: Value, b: Value, name: str, act: str | None = "relu") -> Value:
        """Element-wise ``Add`` (node ``name``), then the activation (``name/relu``)."""
        if a.shape != b.shape:
            raise ValueError(f"{name}: cannot add shapes {a.shape} and {b.shape}")
        self._node("Add", name, [a.name, b.name])
        arr = self._act(a) + self._act(b) if self.materialize else None
        return self._activation(self._set(name, a.shape, arr), name, act)

    def concat(self, xs: Sequence[Value], name: str) -> Value:
        """``Concat`` along channels."""
        hw = {x.shape[1:] for x in xs}
        if len(hw) != 1:
            raise ValueError(f"{name}: cannot concatenate spatial shapes {sorted(hw)}")
        self._node("Concat", name, [x.name for x in xs], axis=1)
        shape = (sum(x.shape[0] for x in xs),) + xs[0].shape[1:]
        arr = np.concatenate([self._act(x) for x in xs], axis=0) if self.materialize else None
        return self._set(name, shape, arr)

    def flatten(self, x: Value, name: str) -> Value:
        """``Flatten(axis=1)``: CxHxW -> C*H*W."""
        self._node("Flatten", name, [x.name], axis=1)
        n = math.prod(x.shape)
        arr = numerics.flatten(self._act(x)) if self.materialize else None
        return self._set(name, (n,), arr)

    # ------------------------------------------------------------------ result
    def finish(self, out: Value) -> onnx.ModelProto | None:
        """Rename ``out`` to the graph output ``output`` ([1, N]) and assemble the model."""
        if len(out.shape) != 1:
            raise ValueError(f"the network output must be flat, got shape {out.shape}")
        if not self.materialize:
            return None
        model, graph = self.model, self.model.graph
        last = graph.node[-1]
        if list(last.output) != [out.name]:
            raise ValueError(f"the output '{out.name}' is not produced by the last node")
        last.output[0] = "output"
        self.calibration_output = np.ascontiguousarray(self._acts[out.name].T)
        graph.name = self.name.replace(".", "_").replace("-", "_")
        graph.input.append(helper.make_tensor_value_info(
            "input", TensorProto.FLOAT, [1, 3, self.input_size, self.input_size]))
        graph.output.append(helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, out.shape[0]]))
        model.ir_version = IR_VERSION
        model.opset_import.append(helper.make_opsetid("", OPSET))
        model.producer_name = "sqnxtc-zoo"
        model.producer_version = "1"
        model.doc_string = self.doc
        self.model, self._acts = onnx.ModelProto(), {}
        return model


def run_definition(define: Callable[[GraphBuilder], Value], name: str, input_size: int, *,
                   materialize: bool, seed: int = 0, weight_sparsity: float = 0.0,
                   doc: str = "", calibration_images: int = CALIBRATION_IMAGES,
                   ) -> tuple[GraphBuilder, onnx.ModelProto | None]:
    """Run a network definition through a fresh builder; return the builder and the model."""
    b = GraphBuilder(name, input_size, materialize=materialize, seed=seed,
                     weight_sparsity=weight_sparsity, doc=doc,
                     calibration_images=calibration_images)
    out = define(b)
    return b, b.finish(out)
