"""One layer as the cost model sees it: batch 1, NCHW, shapes only.

The compiler builds a :class:`Layer` from each IR op; tests and benchmarks build them from
the paper's Table 4 (:mod:`sqnxt_compiler.cost.reference_layers`).

Conventions
-----------
* ``C``/``K`` input/output channels; ``H``/``W`` unpadded input size; ``R``/``S`` kernel
  height/width; ``P``/``Q`` output height/width.  The output size must satisfy
  ``P == (H + pad_top + pad_bottom - R_eff) // stride_h + 1`` (likewise ``Q``), with the
  dilated kernel's extent ``R_eff = (R - 1) * dilation_h + 1`` (``R`` without dilation;
  ``dilation_*`` > 1 only for conv: the taps are spread, their number is still R x S): a
  Caffe ceil-mode pooling is expressed by the extra bottom/right padding that makes it so.
* ``kind``: ``"conv"`` (grouped and depthwise included: ``groups`` divides C and K),
  ``"fc"`` (a 1x1 convolution on a 1x1 image: H = W = P = Q = R = S = 1),
  ``"maxpool"``/``"avgpool"`` (C == K, window R x S), ``"gap"`` (global average pool:
  R = H, S = W, P = Q = 1), ``"add"`` (element-wise sum of ``n_inputs`` tensors, R = S = 1),
  ``"eltwise"`` (any other element-wise function: ``elem_ops`` PE operations and
  ``elem_funcs`` nonlinear function evaluations per output element over ``n_inputs``
  output-sized tensors and ``params`` per-channel parameter vectors; ``fn`` names the IR
  op) and ``"move"`` (a data-movement op, concat, transpose, pad, resize, ...: each output
  word copied from one gathered input word, no operation).  Both are channel-wise on the
  output's grid: C = K, H x W = P x Q, R = S = 1 (docs/cost-model.md, "Element-wise and
  data-movement layers").
* ``weight_zero_fraction``: the fraction of zero weights measured in the layer's actual
  weights (exact Fraction), or None to use the target's assumed sparsity.
* Operand homes (docs/cost-model.md, "Operand homes"), what the network around the layer
  decides: ``resident_inputs`` of the ``n_inputs`` input tensors are already whole in the
  global buffer (read in place: no DMA, no tile region); ``resident_output``: the output
  stays in the global buffer (no write-back); ``capacity``: the buffer words left to the
  layer's tiles (None: the whole buffer), what the resident tensors of the network leave.
  The defaults are the layer alone, every operand through DRAM.
* ``residual`` (conv and fc only): a fused element-wise add (the ``fuse-add`` pass): the
  layer reads one more tensor of its output's shape, the residual, and adds it to each
  output tile as the tile leaves the array (after the fused activation).  The residual is
  read once per output element, one DMA transfer per output tile, into a tile region of
  ``tx * ty * tk`` words; ``resident_residual``: it is already whole in the global buffer
  (read in place: no DMA, no tile region).
* ``act_ops``, ``act_funcs`` (conv and fc only): the fused activation's operations and
  nonlinear function evaluations per conv output, applied as results leave the array
  (docs/cost-model.md, "Fused activations"): 0 for none, relu and relu6.
* ``pool`` (conv only): a fused pooling (the ``fuse-pool`` pass): ``"max"`` or ``"avg"``
  over the conv's output, window ``pool_R x pool_S``, stride ``pool_stride_*``, pads
  ``pool_pad_*`` (a ceil-mode window as extra end padding, as for a pool layer).  ``P`` x
  ``Q`` is then the *pooled* output and the tile loops x, y run over it; each tile computes
  the conv outputs its pool windows cover (:attr:`conv_P` x :attr:`conv_Q` in all), so the
  rows and columns shared by neighbouring tiles' windows are computed twice
  (docs/cost-model.md, "Fused pooling").
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from fractions import Fraction

from sqnxt_compiler.diagnostics import UnsupportedError

#: Layer fields that are not its shape (see :meth:`Layer.shape_key`).
_NOT_SHAPE = ("name", "weight_zero_fraction", "resident_inputs", "resident_output", "capacity",
              "residual", "resident_residual", "act_ops", "act_funcs")
#: The pool fields of a layer without a fused pool.
_NO_POOL = {"pool": "", "pool_R": 1, "pool_S": 1, "pool_stride_h": 1, "pool_stride_w": 1,
            "pool_pad_top": 0, "pool_pad_left": 0, "pool_pad_bottom": 0, "pool_pad_right": 0}
MAC_KINDS = ("conv", "fc")
#: Element-wise and data-movement layers: channel-wise on the output's grid (C = K,
#: H x W = P x Q, R = S = 1), described by ``fn``, ``elem_ops``, ``elem_funcs``, ``params``.
ELEMENT_KINDS = ("eltwise", "move")
NON_MAC_KINDS = ("maxpool", "avgpool", "gap", "add") + ELEMENT_KINDS
KINDS = MAC_KINDS + NON_MAC_KINDS


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    C: int
    K: int
    H: int
    W: int
    R: int
    S: int
    P: int
    Q: int
    stride_h: int = 1
    stride_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    pad_bottom: int = 0
    pad_right: int = 0
    groups: int = 1
    n_inputs: int = 1
    weight_zero_fraction: Fraction | None = None
    resident_inputs: int = 0
    resident_output: bool = False
    capacity: int | None = None
    residual: bool = False
    resident_residual: bool = False
    pool: str = ""
    pool_R: int = 1
    pool_S: int = 1
    pool_stride_h: int = 1
    pool_stride_w: int = 1
    pool_pad_top: int = 0
    pool_pad_left: int = 0
    pool_pad_bottom: int = 0
    pool_pad_right: int = 0
    dilation_h: int = 1
    dilation_w: int = 1
    act_ops: int = 0
    act_funcs: int = 0
    fn: str = ""
    elem_ops: int = 0
    elem_funcs: int = 0
    params: int = 0

    def __post_init__(self) -> None:
        if self.weight_zero_fraction is not None and not isinstance(self.weight_zero_fraction, Fraction):
            object.__setattr__(self, "weight_zero_fraction", Fraction(self.weight_zero_fraction))
        self.validate()

    def key(self) -> tuple:
        """Every field but the name: layers with equal keys get the same schedule (the
        measured sparsity as its exact string; the fused pool's fields included)."""
        return tuple(str(v) if f.name == "weight_zero_fraction" and v is not None else v
                     for f in fields(self) if f.name != "name" for v in (getattr(self, f.name),))

    def shape_key(self) -> tuple:
        """The layer's shape: every field but the name, ``weight_zero_fraction`` and the
        operand homes and the fused residual add (kind, sizes, strides, pads, groups,
        inputs), in field order.  Equal shape keys mean the same tile loops over the same
        tensor shapes, whatever weight sparsity was measured, wherever the operands live
        and whether an epilogue add follows: a schedule made for one runs the other tile
        for tile."""
        return tuple(getattr(self, f.name) for f in fields(self) if f.name not in _NOT_SHAPE)

    @property
    def R_eff(self) -> int:
        """Rows the kernel spans = (R - 1) * dilation_h + 1 (R without dilation)."""
        return (self.R - 1) * self.dilation_h + 1

    @property
    def S_eff(self) -> int:
        """Columns the kernel spans = (S - 1) * dilation_w + 1 (S without dilation)."""
        return (self.S - 1) * self.dilation_w + 1

    @property
    def conv_P(self) -> int:
        """Rows of the conv's output = (H + pads - R_eff) // stride_h + 1 (P without a fused pool)."""
        return (self.H + self.pad_top + self.pad_bottom - self.R_eff) // self.stride_h + 1

    @property
    def conv_Q(self) -> int:
        """Columns of the conv's output = (W + pads - S_eff) // stride_w + 1 (Q without a fused pool)."""
        return (self.W + self.pad_left + self.pad_right - self.S_eff) // self.stride_w + 1

    def without_pool(self) -> "Layer":
        """The conv alone: this layer with its fused pool removed (P x Q = the conv's output)."""
        return replace(self, P=self.conv_P, Q=self.conv_Q, **_NO_POOL)

    @property
    def inputs_from_dram(self) -> int:
        """Input tensors read from DRAM = n_inputs - resident_inputs."""
        return self.n_inputs - self.resident_inputs

    # ---- derived shape quantities ----
    @property
    def is_mac(self) -> bool:
        """conv and fc run MACs on the array and are scheduled by the solver."""
        return self.kind in MAC_KINDS

    @property
    def has_weights(self) -> bool:
        """The layer reads weights: conv/fc, or an eltwise layer's per-channel parameters
        (loaded per k tile like a weight tile)."""
        return self.is_mac or self.params > 0

    @property
    def channelwise(self) -> bool:
        """Output channel k reads input channel k only: pool, gap, add, and depthwise conv
        (groups == C == K).  These run with one channel loop (k) that also tiles the
        input channels; the c loop is trivial (docs/cost-model.md, "Layer kinds")."""
        return (not self.is_mac) or (self.groups > 1 and self.groups == self.C == self.K)

    @property
    def eff_groups(self) -> int:
        """Groups the machine runs one after another: ``groups`` for grouped conv, 1 for
        ordinary and channel-wise layers."""
        return 1 if self.channelwise else self.groups

    @property
    def Cg(self) -> int:
        """Bound of the c loop: input channels per group (1 when channel-wise)."""
        return 1 if self.channelwise else self.C // self.groups

    @property
    def Kg(self) -> int:
        """Bound of the k loop: output channels per group (all K when channel-wise)."""
        return self.K if self.channelwise else self.K // self.groups

    @property
    def macs(self) -> int:
        """Dense MACs of the layer = K * P * Q * (C / groups) * R * S (every kernel tap,
        padded ones included, as the paper's Table 4 counts them); for non-MAC layers the
        number of element operations K * P * Q * R * S * n_inputs."""
        if self.is_mac:
            return self.K * self.conv_P * self.conv_Q * (self.C // self.groups) * self.R * self.S
        if self.kind in ELEMENT_KINDS:
            return self.K * self.P * self.Q * (self.elem_ops + self.elem_funcs)
        return self.K * self.P * self.Q * self.R * self.S * self.n_inputs

    def act_cost(self, nonlinear_cycles: int) -> int:
        """Operations of the fused activation = K * conv_P * conv_Q * (act_ops + act_funcs *
        nonlinear_cycles): one per conv output and operation (before a fused pool)."""
        return self.K * self.conv_P * self.conv_Q * (self.act_ops + self.act_funcs * nonlinear_cycles)

    @property
    def pool_ops(self) -> int:
        """Element operations of a fused pool = K * P * Q * pool_R * pool_S (0 without)."""
        return self.K * self.P * self.Q * self.pool_R * self.pool_S if self.pool else 0

    @property
    def weight_words(self) -> int:
        """Weights (words) = K * (C / groups) * R * S; K * params for an eltwise layer's
        per-channel parameters; 0 for other non-MAC layers."""
        if not self.is_mac:
            return self.K * self.params
        return self.K * (self.C // self.groups) * self.R * self.S

    def describe(self) -> str:
        g = f" g{self.groups}" if self.groups != 1 else ""
        if self.kind in ELEMENT_KINDS:
            ins = f" x{self.n_inputs}" if self.n_inputs > 1 else ""
            par = f" +{self.params} per-channel" if self.params else ""
            return (f"{self.kind} {self.fn} {self.K}x{self.P}x{self.Q}{ins}{par}: "
                    f"{self.elem_ops} ops + {self.elem_funcs} functions per element")
        if self.pool:
            return (f"{self.kind} {self.C}x{self.H}x{self.W} -> {self.K}x{self.conv_P}x{self.conv_Q} "
                    f"k{self.R}x{self.S} s{self.stride_h}x{self.stride_w}{g} + {self.pool}pool "
                    f"{self.pool_R}x{self.pool_S} s{self.pool_stride_h}x{self.pool_stride_w} -> "
                    f"{self.K}x{self.P}x{self.Q}")
        d = (f" d{self.dilation_h}x{self.dilation_w}"
             if (self.dilation_h, self.dilation_w) != (1, 1) else "")
        return (f"{self.kind} {self.C}x{self.H}x{self.W} -> {self.K}x{self.P}x{self.Q} "
                f"k{self.R}x{self.S} s{self.stride_h}x{self.stride_w}{d}{g}")

    def validate(self) -> None:
        """Raise UnsupportedError naming the layer if the shape is inconsistent."""
        def bad(msg: str) -> UnsupportedError:
            return UnsupportedError(f"layer '{self.name}' ({self.kind}): {msg}")

        if self.kind not in KINDS:
            raise bad(f"unknown layer kind (known: {', '.join(KINDS)})")
        for f in ("C", "K", "H", "W", "R", "S", "P", "Q", "stride_h", "stride_w", "groups", "n_inputs"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(f"{f} must be a positive integer, got {v!r}")
        for f in ("pad_top", "pad_left", "pad_bottom", "pad_right"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(f"{f} must be a non-negative integer, got {v!r}")
        if self.pool not in ("", "max", "avg"):
            raise bad(f"pool must be '', 'max' or 'avg', got {self.pool!r}")
        if self.pool and self.kind != "conv":
            raise bad("only conv takes a fused pool")
        for f in ("pool_R", "pool_S", "pool_stride_h", "pool_stride_w"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(f"{f} must be a positive integer, got {v!r}")
        for f in ("pool_pad_top", "pool_pad_left", "pool_pad_bottom", "pool_pad_right"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(f"{f} must be a non-negative integer, got {v!r}")
        if not self.pool and any(getattr(self, f) != v for f, v in _NO_POOL.items()):
            raise bad("pool_* fields need a pool")
        if self.pool and self.residual:
            raise bad("a conv takes a fused residual add or a fused pool, not both")
        for f in ("dilation_h", "dilation_w"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(f"{f} must be a positive integer, got {v!r}")
        if (self.dilation_h, self.dilation_w) != (1, 1) and self.kind != "conv":
            raise bad("only conv takes a dilation")
        cp, cq = (self.conv_P, self.conv_Q) if self.pool else (self.P, self.Q)
        if self.conv_P != cp or self.H + self.pad_top + self.pad_bottom < self.R_eff:
            raise bad(f"P={cp} does not match (H + pads - R_eff) // stride + 1")
        if self.conv_Q != cq or self.W + self.pad_left + self.pad_right < self.S_eff:
            raise bad(f"Q={cq} does not match (W + pads - S_eff) // stride + 1")
        if self.pool:
            for out, n, k, st, p0, p1, what in (
                    (self.P, cp, self.pool_R, self.pool_stride_h, self.pool_pad_top, self.pool_pad_bottom, "P"),
                    (self.Q, cq, self.pool_S, self.pool_stride_w, self.pool_pad_left, self.pool_pad_right, "Q")):
                if n + p0 + p1 < k or (n + p0 + p1 - k) // st + 1 != out:
                    raise bad(f"{what}={out} does not match the pool of the conv's {n} "
                              "(conv + pool pads - pool window) // pool stride + 1")
                if p0 >= k or (out - 1) * st - p0 >= n:
                    raise bad("a pool window must start inside the conv's output")
        if self.C % self.groups or self.K % self.groups:
            raise bad(f"groups={self.groups} must divide C={self.C} and K={self.K}")
        if self.kind == "fc" and (self.H, self.W, self.R, self.S, self.P, self.Q) != (1,) * 6:
            raise bad("fc must be a 1x1 convolution on a 1x1 image (H=W=R=S=P=Q=1)")
        if not self.is_mac:
            if self.C != self.K or self.groups != 1:
                raise bad("pool/gap/add/eltwise/move need C == K and groups == 1")
        if self.kind in ("add",) + ELEMENT_KINDS and (
                (self.R, self.S, self.H, self.W, self.stride_h, self.stride_w) != (1, 1, self.P, self.Q, 1, 1)
                or (self.pad_top, self.pad_left, self.pad_bottom, self.pad_right) != (0, 0, 0, 0)):
            raise bad("an element-wise layer has R = S = 1, stride 1, no padding and H x W == P x Q")
        if self.kind not in ("add", "eltwise") and self.n_inputs != 1:
            raise bad("only add and eltwise have n_inputs > 1")
        if not isinstance(self.fn, str) or bool(self.fn) != (self.kind in ELEMENT_KINDS):
            raise bad("fn names the op of an eltwise or move layer (and only of those)")
        for f in ("elem_ops", "elem_funcs", "params"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(f"{f} must be a non-negative integer, got {v!r}")
            if v and self.kind != "eltwise":
                raise bad(f"only eltwise takes {f}")
        if self.weight_zero_fraction is not None and not (0 <= self.weight_zero_fraction < 1):
            raise bad("weight_zero_fraction must be in [0, 1)")
        r = self.resident_inputs
        if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= self.n_inputs:
            raise bad(f"resident_inputs must be an integer in 0..n_inputs={self.n_inputs}, got {r!r}")
        if not isinstance(self.resident_output, bool):
            raise bad(f"resident_output must be true or false, got {self.resident_output!r}")
        for f in ("residual", "resident_residual"):
            if not isinstance(getattr(self, f), bool):
                raise bad(f"{f} must be true or false, got {getattr(self, f)!r}")
        if self.residual and not self.is_mac:
            raise bad("only conv and fc take a fused residual add")
        for f in ("act_ops", "act_funcs"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(f"{f} must be a non-negative integer, got {v!r}")
            if v and not self.is_mac:
                raise bad(f"only conv and fc take {f} (a fused activation)")
        if self.resident_residual and not self.residual:
            raise bad("resident_residual needs a residual")
        c = self.capacity
        if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
            raise bad(f"capacity must be a positive number of words, got {c!r}")
