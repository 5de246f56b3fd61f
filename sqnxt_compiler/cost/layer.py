"""One layer as the cost model sees it: batch 1, NCHW, shapes only.

The compiler builds a :class:`Layer` from each IR op; tests and benchmarks build them from
the paper's Table 4 (:mod:`sqnxt_compiler.cost.reference_layers`).

A layer is its loops, flat on :class:`Layer`, plus three parts, each a frozen record that
checks its own invariants when it is made (the checks that relate a part to the layer's
loops are :meth:`Layer.validate`'s):

The loops (:class:`Layer`)
--------------------------
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
  ``"eltwise"`` (any other element-wise function, described by its :class:`ElementFn`)
  and ``"move"`` (a data-movement op, concat, transpose, pad, resize, ...: each output word
  copied from one gathered input word, no operation; its :class:`ElementFn` names the op).
  Both are channel-wise on the output's grid: C = K, H x W = P x Q, R = S = 1
  (docs/cost-model.md, "Element-wise and data-movement layers").
* ``weight_zero_fraction``: the fraction of zero weights measured in the layer's actual
  weights (exact Fraction), or None to use the target's assumed sparsity.

``epilogue`` (:class:`Epilogue`): what conv and fc apply to results leaving the array
--------------------------------------------------------------------------------------
* ``act_ops``, ``act_funcs``: the fused activation's operations and nonlinear function
  evaluations per conv output (docs/cost-model.md, "Fused activations"): 0 for none, relu
  and relu6.
* ``residual``: a fused element-wise add (the ``fuse-add`` pass): the layer reads one more
  tensor of its output's shape, the residual, and adds it to each output tile as the tile
  leaves the array (after the fused activation).  The residual is read once per output
  element, one DMA transfer per output tile, into a tile region of ``tx * ty * tk`` words
  (unless resident: :class:`Homes`).
* ``bias`` (conv and fc): the layer adds a bias per output channel as results leave the
  array (before the activation): ``K`` accumulator-width entries (``psum_words`` words
  each) read from DRAM once per layer into the output path's bias memory, one addition per
  conv output (docs/cost-model.md, "Bias").
* ``pool`` (conv only; a :class:`Pool` or None): a fused pooling (the ``fuse-pool`` pass)
  over the conv's output.  ``P`` x ``Q`` is then the *pooled* output and the tile loops x,
  y run over it; each tile computes the conv outputs its pool windows cover
  (:attr:`Layer.conv_P` x :attr:`Layer.conv_Q` in all), so the rows and columns shared by
  neighbouring tiles' windows are computed twice (docs/cost-model.md, "Fused pooling").
  A conv takes a residual or a pool, not both.

:class:`Pool`: a fused pool's window
------------------------------------
``kind`` ``"max"`` or ``"avg"``, window ``R x S``, ``stride_h``/``stride_w``, pads
``pad_top``/``pad_left``/``pad_bottom``/``pad_right`` (a ceil-mode window as extra end
padding, as for a pool layer).

``homes`` (:class:`Homes`): where the operands live, what the network around decides
------------------------------------------------------------------------------------
(docs/cost-model.md, "Operand homes"; the network memory planner chooses them):
``resident_inputs`` of the ``n_inputs`` input tensors are already whole in the global
buffer (read in place: no DMA, no tile region); ``resident_output``: the output stays in
the global buffer (no write-back); ``resident_residual``: the epilogue's residual is
already whole in the global buffer; ``resident_weights``: the weights and the bias are
already whole in the global buffer (a fused stack keeps its members' across its bands:
no weight or bias DMA, no weight tile region); ``capacity``: the buffer words left to
the layer's tiles (None: the whole buffer), what the resident tensors of the network
leave.  The
default is the layer alone, every operand through DRAM (:meth:`Layer.with_homes`).

``element`` (:class:`ElementFn` or None): an eltwise or move layer's function
----------------------------------------------------------------------------
Present exactly for ``eltwise`` and ``move``: ``fn`` names the IR op; ``ops`` PE
operations and ``funcs`` nonlinear function evaluations per output element over
``n_inputs`` output-sized tensors, and ``params`` per-channel parameter vectors (its
weights); ``ops``, ``funcs`` and ``params`` are 0 for a move.

Keys
----
:meth:`Layer.key` and :meth:`Layer.shape_key` are the flat tuples the schedule caches key
on; they are stated once, in :meth:`Layer._flat` (their order is the on-disk cache's).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from sqnxt_compiler.diagnostics import UnsupportedError

MAC_KINDS = ("conv", "fc")
#: Element-wise and data-movement layers: channel-wise on the output's grid (C = K,
#: H x W = P x Q, R = S = 1), described by their :class:`ElementFn`.
ELEMENT_KINDS = ("eltwise", "move")
NON_MAC_KINDS = ("maxpool", "avgpool", "gap", "add") + ELEMENT_KINDS
KINDS = MAC_KINDS + NON_MAC_KINDS


def _is_int(v, least: int) -> bool:
    """``v`` is an int (not a bool) >= ``least``."""
    return not isinstance(v, bool) and isinstance(v, int) and v >= least


def _need_ints(part, names: tuple[str, ...], least: int, prefix: str = "") -> None:
    """Raise UnsupportedError unless each named field of ``part`` is an int >= ``least``."""
    what = "a positive integer" if least == 1 else "a non-negative integer"
    for f in names:
        v = getattr(part, f)
        if not _is_int(v, least):
            raise UnsupportedError(f"{prefix}{f} must be {what}, got {v!r}")


def _need_bools(part, names: tuple[str, ...]) -> None:
    for f in names:
        if not isinstance(getattr(part, f), bool):
            raise UnsupportedError(f"{f} must be true or false, got {getattr(part, f)!r}")


@dataclass(frozen=True)
class Pool:
    """A conv's fused pool (module doc): ``kind`` over windows ``R x S`` of the conv's
    output, with its strides and pads."""
    kind: str
    R: int
    S: int
    stride_h: int = 1
    stride_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    pad_bottom: int = 0
    pad_right: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UnsupportedError if a field is out of its range."""
        if self.kind not in ("max", "avg"):
            raise UnsupportedError(f"pool must be 'max' or 'avg', got {self.kind!r}")
        _need_ints(self, ("R", "S", "stride_h", "stride_w"), 1, "pool ")
        _need_ints(self, ("pad_top", "pad_left", "pad_bottom", "pad_right"), 0, "pool ")

    def flat(self) -> tuple:
        """The fields in order, as the layer's keys hold them (:meth:`Layer._flat`)."""
        return (self.kind, self.R, self.S, self.stride_h, self.stride_w,
                self.pad_top, self.pad_left, self.pad_bottom, self.pad_right)


#: :meth:`Pool.flat` of a layer without a fused pool (the pool fields' defaults when they
#: were flat on the layer: the keys keep them).
_NO_POOL_KEY = ("", 1, 1, 1, 1, 0, 0, 0, 0)


@dataclass(frozen=True)
class Epilogue:
    """What a conv or fc applies to its results as they leave the array (module doc): the
    fused activation's ``act_ops`` and ``act_funcs`` per conv output, a fused residual
    add, a fused pool."""
    act_ops: int = 0
    act_funcs: int = 0
    residual: bool = False
    pool: Pool | None = None
    bias: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UnsupportedError if a field is out of its range, or both a residual and a
        pool are fused."""
        _need_ints(self, ("act_ops", "act_funcs"), 0)
        _need_bools(self, ("residual", "bias"))
        if self.pool is not None and not isinstance(self.pool, Pool):
            raise UnsupportedError(f"pool must be a Pool or None, got {self.pool!r}")
        if self.pool is not None and self.residual:
            raise UnsupportedError("a conv takes a fused residual add or a fused pool, not both")


_NO_EPILOGUE = Epilogue()


@dataclass(frozen=True)
class Homes:
    """Where the layer's operands live (module doc), as the network memory planner decides:
    the default is every operand through DRAM and the whole buffer for the tiles."""
    resident_inputs: int = 0
    resident_output: bool = False
    resident_residual: bool = False
    capacity: int | None = None
    resident_weights: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UnsupportedError if a field is out of its range."""
        _need_ints(self, ("resident_inputs",), 0)
        _need_bools(self, ("resident_output", "resident_residual", "resident_weights"))
        c = self.capacity
        if c is not None and not _is_int(c, 1):
            raise UnsupportedError(f"capacity must be a positive number of words, got {c!r}")


@dataclass(frozen=True)
class ElementFn:
    """An eltwise or move layer's function (module doc): ``fn`` names the IR op; ``ops``
    operations and ``funcs`` nonlinear functions per output element, ``params``
    per-channel parameter vectors."""
    fn: str
    ops: int = 0
    funcs: int = 0
    params: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UnsupportedError if a field is out of its range."""
        if not isinstance(self.fn, str) or not self.fn:
            raise UnsupportedError(f"fn names the op of an eltwise or move layer, got {self.fn!r}")
        _need_ints(self, ("ops", "funcs", "params"), 0, "element ")

    def flat(self) -> tuple:
        """The fields in order, as the layer's keys hold them (:meth:`Layer._flat`)."""
        return (self.fn, self.ops, self.funcs, self.params)


#: :meth:`ElementFn.flat` of a layer without one (as :data:`_NO_POOL_KEY`).
_NO_ELEMENT_KEY = ("", 0, 0, 0)


@dataclass(frozen=True)
class Layer:
    """One layer: its loops, flat, and its parts (module doc)."""
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
    dilation_h: int = 1
    dilation_w: int = 1
    weight_zero_fraction: Fraction | None = None
    epilogue: Epilogue = _NO_EPILOGUE
    homes: Homes = Homes()
    element: ElementFn | None = None

    def __post_init__(self) -> None:
        if self.weight_zero_fraction is not None and not isinstance(self.weight_zero_fraction, Fraction):
            object.__setattr__(self, "weight_zero_fraction", Fraction(self.weight_zero_fraction))
        self.validate()

    def _flat(self, shape_only: bool) -> tuple:
        """The layer as one flat tuple, the parts flattened in place (the order is that of
        the on-disk schedule cache's keys): the loops, then (unless ``shape_only``) the
        measured sparsity, the homes and the residual, then the pool, the dilations, (unless
        ``shape_only``) the activation, the element function and (unless ``shape_only``)
        the bias."""
        e, h = self.epilogue, self.homes
        loops = (self.kind, self.C, self.K, self.H, self.W, self.R, self.S, self.P, self.Q,
                 self.stride_h, self.stride_w, self.pad_top, self.pad_left, self.pad_bottom,
                 self.pad_right, self.groups, self.n_inputs)
        pool = _NO_POOL_KEY if e.pool is None else e.pool.flat()
        elem = _NO_ELEMENT_KEY if self.element is None else self.element.flat()
        dil = (self.dilation_h, self.dilation_w)
        if shape_only:
            return (*loops, *pool, *dil, *elem)
        wzf = None if self.weight_zero_fraction is None else str(self.weight_zero_fraction)
        # resident weights only where they are (the keys of every other layer unchanged)
        rw = ("resident_weights",) if h.resident_weights else ()
        return (*loops, wzf, h.resident_inputs, h.resident_output, h.capacity, e.residual,
                h.resident_residual, *pool, *dil, e.act_ops, e.act_funcs, *elem, e.bias, *rw)

    def key(self) -> tuple:
        """Everything but the name: layers with equal keys get the same schedule (the
        measured sparsity as its exact string; every part flattened, :meth:`_flat`)."""
        return self._flat(shape_only=False)

    def shape_key(self) -> tuple:
        """The layer's shape: its loops, the fused pool and the element function; not the
        name, ``weight_zero_fraction``, the homes, the fused residual add or the fused
        activation (:meth:`_flat`).  Equal shape keys mean the same tile loops over the
        same tensor shapes, whatever weight sparsity was measured, wherever the operands
        live and whether an epilogue add follows: a schedule made for one runs the other
        tile for tile."""
        return self._flat(shape_only=True)

    def with_homes(self, **homes) -> "Layer":
        """This layer with the named :class:`Homes` fields changed (the others kept)."""
        return replace(self, homes=replace(self.homes, **homes))

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
        return replace(self, P=self.conv_P, Q=self.conv_Q, epilogue=replace(self.epilogue, pool=None))

    @property
    def inputs_from_dram(self) -> int:
        """Input tensors read from DRAM = n_inputs - homes.resident_inputs."""
        return self.n_inputs - self.homes.resident_inputs

    # ---- derived shape quantities ----
    @property
    def is_mac(self) -> bool:
        """conv and fc run MACs on the array and are scheduled by the solver."""
        return self.kind in MAC_KINDS

    @property
    def has_weights(self) -> bool:
        """The layer reads weights: conv/fc, or an eltwise layer's per-channel parameters
        (loaded per k tile like a weight tile)."""
        return self.is_mac or (self.element is not None and self.element.params > 0)

    @property
    def spanned(self) -> frozenset:
        """The tile loops whose tile must be the loop's whole bound: ``k`` for an lrn, whose
        window across channels reads the neighbouring channels of every output channel
        (the cost model counts each tile's own input words, so only a tile of every
        channel holds what it reads; docs/scheduler.md, "The space")."""
        if self.element is not None and self.element.fn == "lrn":
            return frozenset({"k"})
        return frozenset()

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
            return self.K * self.P * self.Q * (self.element.ops + self.element.funcs)
        return self.K * self.P * self.Q * self.R * self.S * self.n_inputs

    def act_cost(self, nonlinear_cycles: int) -> int:
        """Operations of the fused activation = K * conv_P * conv_Q * (act_ops + act_funcs *
        nonlinear_cycles): one per conv output and operation (before a fused pool)."""
        e = self.epilogue
        return self.K * self.conv_P * self.conv_Q * (e.act_ops + e.act_funcs * nonlinear_cycles)

    @property
    def bias_adds(self) -> int:
        """Additions of the bias = K * conv_P * conv_Q: one per conv output (before a fused
        pool), 0 without a bias."""
        return self.K * self.conv_P * self.conv_Q if self.epilogue.bias else 0

    @property
    def pool_ops(self) -> int:
        """Element operations of a fused pool = K * P * Q * pool.R * pool.S (0 without)."""
        pool = self.epilogue.pool
        return 0 if pool is None else self.K * self.P * self.Q * pool.R * pool.S

    @property
    def weight_words(self) -> int:
        """Weights (words) = K * (C / groups) * R * S; K * params for an eltwise layer's
        per-channel parameters; 0 for other non-MAC layers."""
        if not self.is_mac:
            return 0 if self.element is None else self.K * self.element.params
        return self.K * (self.C // self.groups) * self.R * self.S

    def describe(self) -> str:
        g = f" g{self.groups}" if self.groups != 1 else ""
        el, pool = self.element, self.epilogue.pool
        if self.kind in ELEMENT_KINDS:
            ins = f" x{self.n_inputs}" if self.n_inputs > 1 else ""
            par = f" +{el.params} per-channel" if el.params else ""
            return (f"{self.kind} {el.fn} {self.K}x{self.P}x{self.Q}{ins}{par}: "
                    f"{el.ops} ops + {el.funcs} functions per element")
        if pool is not None:
            return (f"{self.kind} {self.C}x{self.H}x{self.W} -> {self.K}x{self.conv_P}x{self.conv_Q} "
                    f"k{self.R}x{self.S} s{self.stride_h}x{self.stride_w}{g} + {pool.kind}pool "
                    f"{pool.R}x{pool.S} s{pool.stride_h}x{pool.stride_w} -> "
                    f"{self.K}x{self.P}x{self.Q}")
        d = (f" d{self.dilation_h}x{self.dilation_w}"
             if (self.dilation_h, self.dilation_w) != (1, 1) else "")
        return (f"{self.kind} {self.C}x{self.H}x{self.W} -> {self.K}x{self.P}x{self.Q} "
                f"k{self.R}x{self.S} s{self.stride_h}x{self.stride_w}{d}{g}")

    def validate(self) -> None:
        """Raise UnsupportedError naming the layer if the shape is inconsistent, or a part
        does not fit it (each part checks its own fields when made)."""
        def bad(msg: str) -> UnsupportedError:
            return UnsupportedError(f"layer '{self.name}' ({self.kind}): {msg}")

        if self.kind not in KINDS:
            raise bad(f"unknown layer kind (known: {', '.join(KINDS)})")
        for f in ("C", "K", "H", "W", "R", "S", "P", "Q", "stride_h", "stride_w", "groups", "n_inputs",
                  "dilation_h", "dilation_w"):
            v = getattr(self, f)
            if not _is_int(v, 1):
                raise bad(f"{f} must be a positive integer, got {v!r}")
        for f in ("pad_top", "pad_left", "pad_bottom", "pad_right"):
            v = getattr(self, f)
            if not _is_int(v, 0):
                raise bad(f"{f} must be a non-negative integer, got {v!r}")
        for f, part, ok in (("epilogue", Epilogue, False), ("homes", Homes, False),
                            ("element", ElementFn, True)):
            v = getattr(self, f)
            if not (isinstance(v, part) or (ok and v is None)):
                raise bad(f"{f} must be {'None or ' if ok else ''}{part.__name__}, got {v!r}")
        e, h, el = self.epilogue, self.homes, self.element
        pool = e.pool
        if pool is not None and self.kind != "conv":
            raise bad("only conv takes a fused pool")
        if (self.dilation_h, self.dilation_w) != (1, 1) and self.kind != "conv":
            raise bad("only conv takes a dilation")
        cp, cq = (self.conv_P, self.conv_Q) if pool is not None else (self.P, self.Q)
        if self.conv_P != cp or self.H + self.pad_top + self.pad_bottom < self.R_eff:
            raise bad(f"P={cp} does not match (H + pads - R_eff) // stride + 1")
        if self.conv_Q != cq or self.W + self.pad_left + self.pad_right < self.S_eff:
            raise bad(f"Q={cq} does not match (W + pads - S_eff) // stride + 1")
        if pool is not None:
            for out, n, k, st, p0, p1, what in (
                    (self.P, cp, pool.R, pool.stride_h, pool.pad_top, pool.pad_bottom, "P"),
                    (self.Q, cq, pool.S, pool.stride_w, pool.pad_left, pool.pad_right, "Q")):
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
        if (el is not None) != (self.kind in ELEMENT_KINDS):
            raise bad("fn names the op of an eltwise or move layer (and only of those)")
        if el is not None and self.kind != "eltwise":
            for f in ("ops", "funcs", "params"):
                if getattr(el, f):
                    raise bad(f"only eltwise takes element {f}")
        if self.weight_zero_fraction is not None and not (0 <= self.weight_zero_fraction < 1):
            raise bad("weight_zero_fraction must be in [0, 1)")
        if h.resident_inputs > self.n_inputs:
            raise bad(f"resident_inputs must be an integer in 0..n_inputs={self.n_inputs}, "
                      f"got {h.resident_inputs!r}")
        if e.residual and not self.is_mac:
            raise bad("only conv and fc take a fused residual add")
        if e.bias and not self.is_mac:
            raise bad("only conv and fc take a bias")
        for f in ("act_ops", "act_funcs"):
            if getattr(e, f) and not self.is_mac:
                raise bad(f"only conv and fc take {f} (a fused activation)")
        if h.resident_residual and not e.residual:
            raise bad("resident_residual needs a residual")
