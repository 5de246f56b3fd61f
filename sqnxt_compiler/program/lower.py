"""Lowering: a scheduled (and planned) graph -> the accelerator's :class:`~.isa.Program`.

Per scheduled op in program order: its layer descriptor, then per step of the layer's
tile walk (:func:`sqnxt_compiler.cost.tiling.tile_steps`, the walk the tiled executor
counts its transfers from) the LOADs of the operand tiles the step fetches, one COMPUTE,
and the STORE of the output tile if it leaves the buffer after the step (a partial-sum
spill or the final write-back).  docs/isa.md, "Programs", is the reference; in short:

* **DRAM**: :mod:`.layout` (every tensor's word address).
* **Buffer**: resident tensors at the memory plan's offsets, read and written in place
  (no LOAD, no STORE); the layer's tile region at the plan's ``tiles_at`` (0 without a
  plan) holds ``copies`` slots of each operand's largest tile, in the order input,
  weights, accumulators (with a fused pool, the pooled tile after them), residual: the
  cost model's footprint, ``copies x (input + weights + outputs + residual)``.  An
  operand's n-th tile goes to slot ``n mod copies``; output tile visit m to slot
  ``m mod copies``.
* **Tokens**: from the dependencies each instruction really has (the slot it overwrites
  was last read by a COMPUTE, the accumulators a STORE still reads, the partial sums a
  STORE spilled, the LOADs of the step, the COMPUTE a STORE writes back, the previous
  layer): :func:`_assign_tokens` keeps, per token counter, only the waits not implied by an
  earlier one of the same engine (engines run in order), so every pop has its push
  earlier in program order and the counters balance.

Every layer kind is lowered (docs/isa.md, "Lowering of each layer kind"): conv, fc, the
pools, gap and add as their op; eltwise layers by :func:`element_plan` (data tiles, broadcast
operands read with stride 0, per-channel parameter vectors as the weight tile, an
immediate, the reducing softmax and lrn); a concat as a copy of its input, its parts laid
out as one tensor (:mod:`.layout`); the stand-ins as the layer they are costed as (a matmul
by a constant matrix: a conv over channels-last tensors or an fc; a mean or max over rows
and columns: a pool; a mean or sum over channels: a conv with synthesized weights).

Host ops (the ``host`` trait) are not in the program: those that depend on no layer (the
input's layout) run before it, as the host writes the input; the others after it, on the
DRAM values it wrote; a host op after a layer whose result a layer reads is not lowered
(the program cannot wait for the host between layers).

Not lowered (a one-line :class:`UnsupportedLowering` naming the layer and why): what
cannot run as the cost model costs it: a softmax or lrn whose tiles do not span the axes
it reduces (input in DRAM), the other moves and stand-ins whose words are not one box per
tile, an add of more than two operands with operands 1.. resident, batch > 1, an input
window that is not one strided box along an axis, a tile that reads padding only, a
measured sparsity whose fraction does not fit the descriptor.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..cost.features import nonzero_fraction, touched
from ..cost.tiling import largest_cover, pooled_geometry, tile_steps
from ..diagnostics import SqnxtError
from ..ir.core import view_origin
from ..ir.ops import layer_operands
from ..layers import data_operands, resident_at, rule_of
from . import isa
from .isa import Compute, Finish, Layer as LayerDesc, Load, Program, Store, Sync
from .layout import DramLayout, concat_parts, dram_layout, is_concat, value_key


class UnsupportedLowering(SqnxtError):
    """A network (or a layer of it) the lowering does not handle yet."""


@dataclass
class LayerInfo:
    """What the lowering decided for one layer, for the verifier and the simulators."""

    index: int
    name: str
    op_name: str
    schedule: object                     # the LayerSchedule (layer, mapping, cost)
    tiles_at: int                        # buffer word of the tile region
    slots: dict = field(default_factory=dict)        # (operand, copy) -> (buffer word, words)
    resident: dict = field(default_factory=dict)     # role -> (buffer word, words): in-place operands
    live: list = field(default_factory=list)         # (name, buffer word, words) resident tensors live
    dram: dict = field(default_factory=dict)         # LOAD/STORE kind -> DRAM region
    tiles: int = 0
    element: object = None                           # eltwise: its ElementPlan


@dataclass
class Lowered:
    """A lowered network: the program, its DRAM layout and the per-layer decisions."""

    program: Program
    layout: DramLayout
    layers: list[LayerInfo]
    target: object


# ----------------------------------------------------------------------------- entry point
def scheduled_layers(graph) -> list:
    """(index, op, schedule, plan or None, data operands, residual or None, weights or None,
    bias or None) of every scheduled op, in program order."""
    out = []
    for op in graph.ops():
        attr = op.attrs.get("schedule")
        if attr is None:
            continue
        sched = attr.schedule
        L = sched.layer
        w = b = r = None
        if L.kind in ("conv", "fc") and rule_of(op).native:
            _x, w, b, r = layer_operands(op)
        elif op.name == "sqnxt.matmul":       # by a constant matrix B (C x K): the layer's weights
            w = op.operands[1]
            b = op.operands[2] if len(op.operands) > 2 else None    # its bias (bias-into-matmul)
        elif op.name == "sqnxt.reduce" and L.kind == "conv" and op.attrs["kind"] in ("mean", "sum"):
            # over the channels: a conv to one channel with constant weights (the mean's 1/n)
            n = L.C * L.R * L.S
            w = np.full((1, L.C, L.R, L.S), 1.0 / n if op.attrs["kind"] == "mean" else 1.0, np.float32)
        out.append((len(out), op, sched, op.attrs.get("plan"), list(data_operands(op)), r, w, b))
    return out


def lower(graph, target) -> Lowered:
    """The program of ``graph`` (after ``schedule``, and ``plan-memory`` when it ran) on
    ``target`` (module doc)."""
    if target.buffer_words > 1 << isa.BUF_ADDR_BITS:
        raise UnsupportedLowering(f"target '{target.name}': a buffer of {target.buffer_words} words does not "
                                  f"fit the {isa.BUF_ADDR_BITS}-bit buffer addresses")
    layers = scheduled_layers(graph)
    if not layers:
        raise UnsupportedLowering("the graph has no scheduled layer (run the schedule pass first)")
    _check_host_ops(graph)
    claimed: dict = {}
    for li, op, sched, *_ in layers:
        _check_lowerable(op, sched.layer, sched.mapping)
        if is_concat(op):
            for v, _off in concat_parts(op)[0]:
                other = claimed.setdefault(value_key(v), sched.layer.name)
                if other != sched.layer.name:
                    raise UnsupportedLowering(
                        f"layer '{sched.layer.name}' (move): not lowered: its part '{v.name}' is also a part "
                        f"of '{other}': one tensor cannot sit in two concatenated inputs")
    plans = {li: element_plan(op, sched.layer, sched.mapping)
             for li, op, sched, *_ in layers if sched.layer.kind == "eltwise"}
    params = {}
    for li, ep in plans.items():
        if ep.params:
            params[li] = (ep.params[0] if not ep.param_const else None,
                          layers[li][2].layer.K * layers[li][2].layer.element.params)
    layout = dram_layout(graph, layers, target, params, {li: ep.data for li, ep in plans.items()})
    em = _Emitter(target)
    infos = []
    for entry in layers:
        infos.append(_lower_layer(em, graph, entry, layout, target, layers, plans.get(entry[0])))
    em.finish()
    return Lowered(em.program(), layout, infos, target)


def _after_a_layer(graph) -> set[int]:
    """The ids of the ops that depend on a scheduled layer's result (through any ops): one
    pass in program order (``graph.ops()`` is topological), no recursion however deep the
    network."""
    after: set[int] = set()
    for op in graph.ops():
        if any(v.owner is not None and (v.owner.attrs.get("schedule") is not None or v.owner.id in after)
               for v in op.operands):
            after.add(op.id)
    return after


def _check_host_ops(graph) -> None:
    """A host op (the ``host`` trait) that depends on no layer (the input's layout: an
    exporter's NHWC transpose) runs before the program, as the host writes the input; any
    other runs after it: one whose result a scheduled layer reads (through views, shape
    ops, other host ops) would need the program to stop and wait for the host between
    layers, which the instruction set cannot say: not lowered (docs/ir.md, "The host
    partition")."""
    after = _after_a_layer(graph)
    for op in graph.ops():
        if not op.has_trait("host") or op.id not in after:
            continue
        todo, seen = [op], set()
        while todo:
            for u in (u for r in todo.pop().results for u in graph.users(r)):
                if u.id in seen or u.name == "sqnxt.output":
                    continue
                seen.add(u.id)
                if u.attrs.get("schedule") is not None:
                    raise UnsupportedLowering(
                        f"host op '{op.loc.node or op.id}' ({op.name}): not lowered: layer "
                        f"'{u.loc.node or u.id}' reads its result, and the program cannot wait for the "
                        f"host between layers (host ops run after the program)")
                if u.has_trait("free") or u.has_trait("host"):
                    todo.append(u)


def _check_lowerable(op, L, m=None) -> None:
    def no(why: str):
        return UnsupportedLowering(f"layer '{L.name}' ({L.kind}): not lowered: {why}")

    shape = op.result.type.shape
    rows = op.name == "sqnxt.matmul" and len(shape) == 2 and L.kind == "conv"   # (L, K): 1 x L positions
    if shape and shape[0] != 1 and not rows:
        raise no(f"batch {shape[0]} (programs run batch 1)")
    rule = rule_of(op)
    if L.kind in ("conv", "fc", "maxpool", "avgpool", "gap", "add"):
        if rule.native:
            return
        if op.name == "sqnxt.matmul":
            if L.kind == "conv" and (L.C > 255 or L.K > 255):
                raise no(f"a channels-last matmul of {L.C} -> {L.K} channels: a box steps {max(L.C, L.K)} words "
                         "between columns, past its 8-bit ds0")
            if L.kind == "conv" and (L.homes.resident_inputs or L.homes.resident_output):
                raise no("a channels-last tensor resident in the buffer (COMPUTE reads and writes resident "
                         "tensors channel-major)")
            return
        if op.name == "sqnxt.reduce":
            x = op.operands[0].type.shape
            axes = {a % len(x) for a in op.attrs["axes"]} - {0}
            kind = op.attrs["kind"]
            ok = len(x) == 4 and ((L.kind == "conv" and kind in ("mean", "sum"))
                                  or (L.kind != "conv" and kind in ("mean", "max")))
            if not ok:
                raise no(f"a {kind} reduction over axes {sorted(axes)} of {list(x)} (lowered: the mean or max "
                         "over rows and columns of NCHW, a pooling; the mean or sum over its channels, a conv "
                         "with constant weights)")
            return
        raise no(f"a {op.name} standing for a {L.kind} (its operands are not the layer's)")
    if L.kind == "eltwise":
        element_plan(op, L, m)         # raises what it cannot express
        return
    if is_concat(op):
        why = concat_parts(op)[1]
        if why is not None:
            raise no(why)
        return
    gather = move_gather(op, L)
    if isinstance(gather, str):
        raise no(gather)


# ----------------------------------------------------------------------------- moves
def move_gather(op, L):
    """A move other than a concat (transpose, slice, gather by constant indices, expand,
    ...) as one box per tile: ``(offset, (channel, row, column) strides)`` such that output
    element (k, p, q) of the layer's grid is input word ``offset + k*s2 + p*s1 + q*s0``; or
    a string saying why the words it gathers are not one box per tile.  Found by running
    the op's kernel on the input's word indices (the ops' semantics stated once)."""
    from ..reference.executor import eval_op

    x = op.operands[0]
    n = x.type.numel
    if n >= 1 << 53:
        return "an input too large to index"
    args = [np.arange(n, dtype=np.float64).reshape(x.type.shape)]
    for v in op.operands[1:]:
        if not _is_const(v):
            return f"operand '{v.name}' computed at run time (a gather's indices are a constant)"
        args.append(const_value(v, {}))
    try:
        idx = np.asarray(eval_op(op, args))
    except Exception as exc:        # noqa: BLE001 - a kernel that cannot run on indices
        return f"its words cannot be traced ({exc})"
    K, P, Q = L.K, L.P, L.Q
    if idx.size != K * P * Q or np.any(idx != np.rint(idx)) or np.any(idx < 0):
        return "a gather the LOAD boxes do not express (not a copy of input words)"
    g = idx.reshape(K, P, Q).astype(np.int64)
    base = int(g[0, 0, 0])
    s2 = int(g[1, 0, 0] - base) if K > 1 else 0
    s1 = int(g[0, 1, 0] - base) if P > 1 else 0
    s0 = int(g[0, 0, 1] - base) if Q > 1 else 1
    k, p, q = np.ogrid[:K, :P, :Q]
    if not np.array_equal(g, base + k * s2 + p * s1 + q * s0):
        return "a gather the LOAD boxes do not express (not one strided box per tile)"
    if s2 < 0 or s1 < 0 or not 1 <= s0 <= 255:
        return (f"a gather of strides ({s2}, {s1}, {s0}) per channel, row and column: a box's strides are "
                "non-negative and ds0 is 1..255")
    if L.homes.resident_inputs and (base, s2, s1, s0) != (0, P * Q, Q, 1):
        return "a gather from a resident input (COMPUTE reads resident tensors with the output's strides)"
    return base, (s2, s1, s0)


# ----------------------------------------------------------------------------- element functions
#: Element functions a COMPUTE evaluates (docs/isa.md, "Lowering of each layer kind"): of
#: one data tile (and the descriptor's alpha, beta), of two arguments (a data tile and a
#: second data tile, a parameter vector or an immediate), of any number of data tiles (add),
#: and the reducing ones (softmax, lrn: over the descriptor's ``axes``).
UNARY_FNS = ("relu", "leaky_relu", "clip", "hard_sigmoid", "hard_swish", "sigmoid", "tanh", "exp", "sqrt",
             "reciprocal", "neg", "abs", "erf", "gelu", "gelu_tanh")
BINARY_FNS = ("add", "sub", "mul", "div", "pow", "prelu")
_F32_MAX = float(struct.unpack("<f", struct.pack("<I", 0x7F7FFFFF))[0])


def _is_const(v) -> bool:
    """``v`` is known when the program is built: a constant, through views and shape ops."""
    op = v.owner
    if op is None or op.name == "sqnxt.input":
        return False
    if op.name == "sqnxt.constant":
        return True
    if op.has_trait("free") or op.has_trait("view"):
        return all(_is_const(a) for a in op.operands)
    return False


def _finite32(x: float) -> float:
    """``x`` as a binary32 value, infinities clamped to the largest finite one (a clip bound
    of +-inf clips nothing, nor does +-FLT_MAX on finite values)."""
    x = float(x)
    if x != x:
        raise ValueError("NaN")
    return _f32(max(-_F32_MAX, min(_F32_MAX, x)))


@dataclass
class ElementPlan:
    """How an eltwise layer's op becomes COMPUTE operands (:func:`element_plan`)."""

    fn: str
    data: list                 # the values read as data tiles, in operand order
    strides: list              # per data value: (channel, row, column) element strides in its tensor
    params: list               # the parameter-vector operands (values), in order
    param_const: bool          # all parameter vectors are constants (packed in one region)
    imm: float | None = None   # the immediate second argument
    swap: bool = False
    axes: int = 0
    lrn_k: int = 0
    window: int = 1            # lrn: channels summed
    alpha: float = 0.0
    beta: float = 0.0
    eps: float = 0.0           # batchnorm: epsilon


def const_value(v, memo: dict, error=None):
    """The value of a constant operand (weights, bias, parameter vectors, immediates),
    through views and shape ops; an array (weights the lowering synthesized, e.g. a
    reduction's) is its own value.  Not a constant: ``error`` (an exception class, by
    default :class:`UnsupportedLowering`) naming the value."""
    from ..reference.executor import eval_op

    if isinstance(v, np.ndarray):
        return v
    if id(v) in memo:
        return memo[id(v)]
    op = v.owner
    if op is None or op.name == "sqnxt.input":
        raise (error or UnsupportedLowering)(f"'{v.name}' is not a constant")
    if op.name == "sqnxt.constant":
        val = np.asarray(op.attrs["value"])
    else:
        val = eval_op(op, [const_value(a, memo, error) for a in op.operands])
    memo[id(v)] = val
    return val


def _grid_axes(rank: int) -> tuple:
    """The tensor axes of a rank-``rank`` output that are the grid's (channels, rows,
    columns) (None: the grid axis is 1): NCHW (1, 2, 3); (N, C, L) (1, None, 2); (N, C)
    (1, None, None)."""
    return {4: (1, 2, 3), 3: (1, None, 2), 2: (1, None, None)}.get(rank)


def _broadcast_strides(shape, out) -> tuple | None:
    """(channel, row, column) element strides of an operand of ``shape`` read broadcast to
    ``out`` over the output's grid (a broadcast axis: stride 0), or None when the grid has
    no such strides (rank above 4, or a broadcast along the columns: a box's ``ds0`` is at
    least 1)."""
    ax = _grid_axes(len(out))
    if ax is None or len(shape) > len(out):
        return None
    s = (1,) * (len(out) - len(shape)) + tuple(shape)
    dense, acc = [0] * len(s), 1
    for i in range(len(s) - 1, -1, -1):
        dense[i] = acc if s[i] != 1 else 0
        acc *= s[i]
    out_st = []
    for a in ax:
        out_st.append(0 if a is None else dense[a])
    if ax[2] is not None and out[ax[2]] > 1 and out_st[2] == 0:
        return None
    if ax[2] is None or out[ax[2]] == 1:
        out_st[2] = max(out_st[2], 1)
    return tuple(out_st)


def element_plan(op, L, m=None) -> ElementPlan:
    """The COMPUTE operands of eltwise layer ``L`` of ``op`` (mapping ``m``: the tiles of
    a reducing function must span its axes unless the input is resident), or an
    :class:`UnsupportedLowering` naming what the instruction set cannot express."""
    def no(why: str):
        return UnsupportedLowering(f"layer '{L.name}' (eltwise {op.name.split('.')[1]}): not lowered: {why}")

    from ..layers import operand_role

    fn = op.name.split(".")[1]
    y = op.result.type.shape
    numel = L.K * L.P * L.Q
    ep = ElementPlan(fn, [], [], [], True)

    def full(v):
        ep.data.append(v)
        ep.strides.append((L.P * L.Q, L.Q, 1))

    if fn == "batchnorm":
        if not all(_is_const(v) for v in op.operands[1:]):
            raise no("scale, shift, mean or variance computed at run time (folded into 2 constant "
                     "parameter vectors when the program is built)")
        if op.operands[0].type.numel != numel:
            raise no("a data operand that is not of the output's shape")
        full(op.operands[0])
        ep.params = list(op.operands[1:])
        ep.eps = op.attrs["epsilon"]
        return ep
    if fn in ("layer_norm", "reduce", "resize"):
        raise no({"layer_norm": "a normalization over whole rows of the tensor the tile walk splits",
                  "reduce": "a sum of slices of one tensor (n boxes per tile, not the cost model's transfers)",
                  "resize": "a linear resize reads 4 gathered taps per output, not one box per tile"}[fn])
    roles = [operand_role(v.type.shape, y) for v in op.operands]
    other = []                 # (position, role, value) of the non-data operands
    for i, (v, r) in enumerate(zip(op.operands, roles)):
        if r == "full":
            full(v)
        elif r == "other":
            st = _broadcast_strides(v.type.shape, y)
            if st is None:
                raise no(f"operand {i} {list(v.type.shape)} broadcast to {list(y)}: not one box per tile "
                         "(a broadcast along the columns, or a rank above 4)")
            ep.data.append(v)
            ep.strides.append(st)
        else:
            other.append((i, r, v))
    if len(ep.data) != L.n_inputs or not ep.data:
        raise no(f"{len(ep.data)} data operands for the layer's {L.n_inputs}")
    if fn in ("lrn", "softmax"):
        if len(op.operands) != 1:
            raise no("more than one operand")
        if fn == "lrn":
            if len(y) != 4:
                raise no("an lrn of a tensor that is not NCHW")
            ep.axes, ep.window = 1, op.attrs["size"]
            k8 = op.attrs["bias"] * 8
            if k8 != int(k8) or not 0 <= k8 < 128:
                raise no(f"bias {op.attrs['bias']} is not a multiple of 1/8 in [0, 16) (the descriptor's lrn_k)")
            if not 1 <= ep.window <= 65535:
                raise no(f"size {ep.window}")
            ep.lrn_k = int(k8)
            ep.alpha, ep.beta = op.attrs["alpha"] / ep.window, op.attrs["beta"]
        else:
            ax = op.attrs["axis"] % len(y)
            span = range(ax, len(y)) if op.attrs["coerce_2d"] else (ax,)
            gax = _grid_axes(len(y))
            if len(y) == 3 and L.K == 1 and L.P == y[1] > 1:    # (N, C, L) as rows (layers._eltwise)
                gax = (None, 1, 2)
            if gax is None:
                raise no(f"a softmax of a rank-{len(y)} tensor")
            for a in span:
                if a == 0 or y[a] == 1:
                    continue
                ep.axes |= 1 << gax.index(a)
        if m is not None and not L.homes.resident_inputs:
            bounds = (("k", m.tk, L.Kg, "channels"), ("y", m.ty, L.P, "rows"), ("x", m.tx, L.Q, "columns"))
            for bit, (_n, t, bound, what) in enumerate(bounds):
                if ep.axes >> bit & 1 and t < bound:
                    raise no(f"its tiles of {t} of the {bound} {what} need the {what} outside the tile, which "
                             f"the cost model does not load (it counts each tile's own words): a schedule "
                             f"whose tiles span the {what}, or a resident input, lowers")
        return ep
    if fn in UNARY_FNS:
        if other:
            raise no("a unary function with more operands")
        if fn == "leaky_relu":
            ep.alpha = op.attrs["alpha"]
        elif fn == "clip":
            ep.alpha, ep.beta = op.attrs["min"], op.attrs["max"]
        elif fn == "hard_sigmoid":
            ep.alpha, ep.beta = op.attrs["alpha"], op.attrs["beta"]
        return ep
    if fn not in BINARY_FNS:
        raise no(f"the element function '{fn}' has no COMPUTE")
    if fn == "add" and not other:
        return ep
    if len(op.operands) != 2:
        raise no(f"{len(op.operands)} operands of a broadcasting {fn}")
    if not other:
        return ep
    (pos, role, v), = other
    ep.swap = pos == 0
    if role == "scalar":
        if not _is_const(v):
            raise no(f"operand {pos} is a scalar computed at run time (an immediate is a constant)")
        try:
            ep.imm = _finite32(np.asarray(const_value(v, {}), np.float64).reshape(-1)[0])
        except ValueError:
            raise no(f"operand {pos} is a NaN scalar") from None
        ep.alpha = ep.imm
        return ep
    ep.params = [v]
    ep.param_const = _is_const(v)
    if not ep.param_const and v.type.numel != L.K:
        raise no(f"operand {pos}'s per-channel vector of {v.type.numel} values for {L.K} channels")
    return ep


def param_matrix(ep: ElementPlan, L, const_of, y_shape) -> np.ndarray:
    """The constant parameter vectors of an eltwise layer as a ``K x params`` matrix (row
    k: channel k's parameters), ``const_of(value)`` the value of a constant operand:
    batchnorm folded to (scale, shift) with y = x * scale + shift; any other parameter
    vector broadcast over the grid's channels."""
    if ep.fn == "batchnorm":
        scale, bias, mean, var = (np.asarray(const_of(v), np.float64).reshape(-1) for v in ep.params)
        inv = scale / np.sqrt(var + ep.eps)
        return np.stack([inv, bias - mean * inv], axis=1).astype(np.float32)
    cols = []
    rank = len(y_shape)
    spatial = 2 if rank >= 4 else (1 if rank == 3 else 0)
    target = tuple(y_shape[:rank - spatial]) + (1,) * spatial
    for v in ep.params:
        a = np.asarray(const_of(v), np.float32)
        a = a.reshape((1,) * (rank - a.ndim) + a.shape)
        cols.append(np.broadcast_to(a, target).reshape(-1))
    return np.stack(cols, axis=1).astype(np.float32)


# ----------------------------------------------------------------------------- emission
class _Emitter:
    """The instruction stream under construction: entries (record class, fields, queue,
    dependencies on earlier entries), token flags assigned at the end."""

    def __init__(self, target):
        self.target = target
        self.descs: list = []
        self.ents: list[list] = []      # [cls, fields, queue, deps]
        self.last_store = -1            # entry of the latest STORE
        self.keys: list | None = None   # in a layer: the sort key of each of its entries
        self.base = 0                   # the layer's first entry

    def add(self, cls, queue: str, deps=(), key=None, **fields) -> int:
        """Append an entry; in a layer (:meth:`begin_layer`) its place in program order is
        its ``key`` (default: after every entry so far), settled by :meth:`end_layer`."""
        self.ents.append([cls, fields, queue, [d for d in deps if d is not None and d >= 0]])
        i = len(self.ents) - 1
        if self.keys is not None:
            self.keys.append(key if key is not None else (i - self.base, 0))
        if cls is Store:
            self.last_store = i
        return i

    def key_of(self, i: int) -> tuple:
        """The sort key of entry ``i`` of the current layer."""
        return self.keys[i - self.base]

    def begin_layer(self) -> None:
        self.keys, self.base = [], len(self.ents)

    def end_layer(self) -> None:
        """Put the layer's entries in the order of their keys (stable) and renumber the
        dependencies; every dependency must stay earlier than its dependant."""
        keys, base = self.keys, self.base
        self.keys = None
        order = sorted(range(len(keys)), key=keys.__getitem__)
        if order == list(range(len(keys))):
            return
        new_of = {base + o: base + n for n, o in enumerate(order)}
        ents = [self.ents[base + o] for o in order]
        for n, e in enumerate(ents):
            e[3] = [new_of.get(d, d) for d in e[3]]
            if any(d >= base + n for d in e[3]):
                raise AssertionError(f"entry {base + n} depends on a later one after reordering")
        self.ents[base:] = ents
        self.last_store = new_of.get(self.last_store, self.last_store)

    def finish(self) -> None:
        self.add(Finish, "compute", [self.last_store])

    def program(self) -> Program:
        flags = _assign_tokens([(e[2], e[3]) for e in self.ents])
        insns = []
        for (cls, fields, queue, _deps), fl in zip(self.ents, flags):
            if cls is Sync and not any(fl.values()):
                continue              # a SYNC whose waits an earlier one implied: nothing to do
            if cls is Finish:
                fl = {k: v for k, v in fl.items() if k.startswith("pop")}
            try:
                insns.append(cls(**fields, **{k: v for k, v in fl.items() if v}))
            except ValueError as exc:
                raise UnsupportedLowering(f"layer {fields.get('layer')}: {exc}") from None
        return Program(tuple(self.descs), tuple(insns))


_NEXT, _PREV = isa.NEXT_QUEUE, isa.PREV_QUEUE


def _assign_tokens(ents: list[tuple[str, list[int]]]) -> list[dict]:
    """Token flags from dependencies: entry i of queue q waits for the entries ``deps``
    (each in a neighbouring queue: the producer's completion).  Per counter (producer
    queue -> q) only a wait on a later producer than the counter's previous wait is kept
    (an engine runs in order: the earlier wait implies the others); it pops that counter,
    and the producer pushes it.  Each counter's waits are then strictly increasing, so the
    n-th pop matches the n-th push, which comes earlier in program order."""
    flags = [{"pop_prev": 0, "pop_next": 0, "push_prev": 0, "push_next": 0} for _ in ents]
    last: dict[tuple[str, str], int] = {}
    for i, (q, deps) in enumerate(ents):
        by_queue: dict[str, int] = {}
        for d in deps:
            pq = ents[d][0]
            if d >= i:
                raise AssertionError(f"entry {i} depends on a later entry {d}")
            by_queue[pq] = max(by_queue.get(pq, -1), d)
        for pq, d in by_queue.items():
            if pq == q:
                continue              # same engine: in order already
            pop, push = ("pop_prev", "push_next") if _NEXT[pq] == q else ("pop_next", "push_prev")
            if pop not in isa.ALLOWED_TOKENS[q] or push not in isa.ALLOWED_TOKENS[pq]:
                raise AssertionError(f"entry {i} ({q}) depends on the {pq} queue (no {pq} -> {q} counter)")
            if d > last.get((pq, q), -1):
                flags[i][pop] = 1
                flags[d][push] = 1
                last[(pq, q)] = d
    return flags


# ----------------------------------------------------------------------------- descriptors
def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def _descriptor(op, L, m, target, in_res: bool, in2_res: bool, ep=None) -> LayerDesc:
    kind = L.kind
    e = L.epilogue
    act = post = "none"
    alpha = beta = 0.0
    if kind in ("conv", "fc"):
        act = op.attrs.get("act", "none")
        alpha, beta = op.attrs.get("act_alpha", 0.0), op.attrs.get("act_beta", 0.0)
        post = op.attrs.get("post_act", "none") if e.residual else "none"
    elif kind == "add":
        post = op.attrs.get("act", "none")
    if act not in isa.ACTS or post not in isa.POST_ACTS:
        raise UnsupportedLowering(f"layer '{L.name}': activation {act}/{post} has no descriptor code")
    pool = e.pool
    inc = 0
    xb = xr = 0
    pool_f = dict(pool_r=0, pool_s=0, pool_sh=0, pool_sw=0, pool_pt=0, pool_pl=0, pool_pb=0, pool_pr=0,
                  pool_xb=0, pool_xr=0)
    if op.name == "sqnxt.reduce" and op.attrs["kind"] == "max":
        kind = "maxpool"          # the max over the whole axis: a max pool of that window
    if kind in ("maxpool", "avgpool") and "pads" in op.attrs:
        pads = op.attrs["pads"]
        xb, xr = L.pad_bottom - pads[2], L.pad_right - pads[3]
        inc = int(op.attrs.get("count_include_pad", 0)) if kind == "avgpool" else 0
    if pool is not None:
        pa = op.attrs["pool"]
        pool_f = dict(pool_r=pool.R, pool_s=pool.S, pool_sh=pool.stride_h, pool_sw=pool.stride_w,
                      pool_pt=pool.pad_top, pool_pl=pool.pad_left, pool_pb=pool.pad_bottom,
                      pool_pr=pool.pad_right, pool_xb=pool.pad_bottom - pa["pads"][2],
                      pool_xr=pool.pad_right - pa["pads"][3])
        inc = int(pa.get("count_include_pad", 0)) if pool.kind == "avg" else 0
    if L.is_mac:
        nz = nonzero_fraction(L, target)
        if nz.denominator >= 1 << 16 or nz.numerator >= 1 << 16:
            raise UnsupportedLowering(f"layer '{L.name}': nonzero fraction {nz} does not fit the descriptor")
        nz_num, nz_den = nz.numerator, nz.denominator
    else:
        nz_num = nz_den = 1
    el = L.element
    fn = "none" if el is None else (el.fn if el.fn in isa.ELEMENT_FNS else "other")
    extra = {}
    R = L.R
    if ep is not None:
        alpha, beta = _finite32(ep.alpha), _finite32(ep.beta)
        extra = dict(swap=int(ep.swap), axes=ep.axes, lrn_k=ep.lrn_k)
        if ep.fn == "lrn":
            R = ep.window
    has_bias = kind in ("conv", "fc") and (layer_operands(op)[2] is not None if rule_of(op).native
                                           else op.name == "sqnxt.matmul" and len(op.operands) > 2)
    try:
        return LayerDesc(
            name=L.name, kind=kind, df=m.dataflow, chanwise=int(L.channelwise), act=act, res=int(e.residual),
            post_act=post, pool="none" if pool is None else pool.kind, inc_pad=inc, bias=int(has_bias),
            in_res=int(in_res), in2_res=int(in2_res), out_res=int(L.homes.resident_output),
            n_in=L.n_inputs, fn=fn, e_ops=0 if el is None else el.ops, e_funcs=0 if el is None else el.funcs,
            params=0 if el is None else el.params, C=L.C, K=L.K, groups=L.groups, H=L.H, W=L.W, P=L.P, Q=L.Q,
            R=R, S=L.S, sh=L.stride_h, sw=L.stride_w, dh=L.dilation_h, dw=L.dilation_w,
            pt=L.pad_top, pl=L.pad_left, pb=L.pad_bottom, pr=L.pad_right, xb=xb, xr=xr, **pool_f,
            alpha=_f32(alpha), beta=_f32(beta), nz_num=nz_num, nz_den=nz_den, **extra)
    except ValueError as exc:
        raise UnsupportedLowering(f"layer '{L.name}': descriptor: {exc}") from None


# ----------------------------------------------------------------------------- boxes
@lru_cache(maxsize=None)
def axis_box(o0: int, o1: int, stride: int, pad: int, kernel: int, dil: int, n: int):
    """The input indices outputs [o0, o1) read along one axis, clipped to [0, n), as one
    arithmetic progression (first, count, step); None when they are not one (taps with
    gaps of different sizes) or there are none.  The count is the cost model's
    ``touched`` (checked)."""
    idx = sorted({i for o in range(o0, o1) for j in range(kernel)
                  if 0 <= (i := o * stride - pad + j * dil) < n})
    if not idx:
        return None
    step = idx[1] - idx[0] if len(idx) > 1 else 1
    if any(b - a != step for a, b in zip(idx, idx[1:])):
        return None
    assert len(idx) == touched(o0, o1, stride, kernel, pad, n, dil), (o0, o1, stride, kernel, pad, n, dil)
    return idx[0], len(idx), step


# ----------------------------------------------------------------------------- one layer
def _buffer_at(v) -> int:
    """Buffer word of a resident tensor (:func:`~sqnxt_compiler.layers.resident_at`)."""
    return resident_at(v)


def _lower_layer(em: _Emitter, graph, entry, layout: DramLayout, target, layers, ep=None) -> LayerInfo:

    li, op, sched, plan, data, residual, w, b = entry
    L, m, cost = sched.layer, sched.mapping, sched.cost
    pw = target.psum_words
    copies = 2 if target.double_buffering else 1
    homes_in = list(plan.inputs) if plan is not None else ["dram"] * L.n_inputs
    in_res = [h == "buffer" for h in homes_in[:len(data)]]
    strides = None
    move_at = 0
    if L.kind == "move" and not is_concat(op):     # a gather: one strided box per tile
        move_at, st = move_gather(op, L)
        strides = [st]
    if ep is not None:            # the data tiles in operand order; broadcast ones from DRAM
        home = {id(v): r for v, r in zip(data, in_res)}
        in_res = [home.get(id(v), False) for v in ep.data]
        data, strides = list(ep.data), list(ep.strides)
    res_res = bool(L.epilogue.residual and L.homes.resident_residual)
    if sum(in_res) != L.homes.resident_inputs:
        raise RuntimeError(f"layer '{L.name}': the plan's input homes disagree with the schedule's")
    n_dram_in = L.n_inputs - sum(in_res)
    if L.kind == "add" and L.n_inputs > 2 and any(in_res):
        # a sum is the same in any order: one resident operand goes first (in place at
        # in_addr, the others packed from in2_addr); of 3 operands, two resident go last
        # and three all in place (operand 2 at in2_addr + d2)
        res_i = [i for i, r in enumerate(in_res) if r]
        dram_i = [i for i, r in enumerate(in_res) if not r]
        order = res_i + dram_i if len(res_i) == 1 or L.n_inputs != 3 else dram_i + res_i
        data = [data[i] for i in order]
        in_res = [in_res[i] for i in order]
    if L.n_inputs > 2 and any(in_res[1:]) and not (L.n_inputs == 3 and in_res[1] and in_res[2]):
        # COMPUTE's operand addresses: in_addr, in2_addr (operands 2.. packed after operand
        # 1's tile, which only LOADs give) and d2 (operand 2 of 3 in place) (docs/isa.md)
        raise UnsupportedLowering(f"layer '{L.name}' ({L.kind}): not lowered: an add of "
                                  f"{L.n_inputs} operands with {sum(in_res)} of them resident in the buffer "
                                  "(COMPUTE addresses one resident operand and the packed others, or 3 in "
                                  "place)")
    in2_res = res_res if L.epilogue.residual else (len(in_res) > 1 and in_res[1])
    desc = _descriptor(op, L, m, target, bool(in_res and in_res[0]), in2_res, ep)
    em.descs.append(desc)

    # ---- the tile region: copies x (input + weights + outputs + residual) ----
    fp = cost.footprint
    tiles_at = plan.tiles if plan is not None else 0
    info = LayerInfo(li, L.name, op.name, sched, tiles_at, element=ep)
    at = tiles_at
    for role, words in (("input", fp["input"]), ("weight", fp["weights"]), ("acc", fp["outputs"]),
                        ("residual", fp["residual"])):
        for c in range(copies):
            if words:
                info.slots[(role, c)] = (at, words)
            at += words
    if at > target.buffer_words:
        raise RuntimeError(f"layer '{L.name}': tile region [{tiles_at}, {at}) past the buffer")
    # resident operands (in place) and the tensors live at this step
    if plan is not None:
        for i, v in enumerate(data):
            if in_res[i]:
                info.resident[f"in{i}"] = (_buffer_at(v), view_origin(v).type.numel)
        if res_res:
            info.resident["residual"] = (_buffer_at(residual), view_origin(residual).type.numel)
        if L.homes.resident_output:
            info.resident["out"] = (plan.offset, op.result.type.numel)
        for _lj, o2, _s2, p2, *_ in layers:
            if p2 is not None and p2.output == "buffer" and p2.live[0] <= li <= p2.live[1]:
                info.live.append((o2.loc.node or o2.result.name, p2.offset, o2.result.type.numel))
    # DRAM regions by transfer kind
    dram_in = [layout.tensor(v) if not in_res[i] else None for i, v in enumerate(data)]
    if li in layout.concat_input:          # a concat reads its parts as one tensor (layout.py)
        dram_in = [layout.concat_input[li]]
    if len(dram_in) < L.n_inputs:
        raise UnsupportedLowering(f"layer '{L.name}': inputs no tensor stands for")
    dram_w = layout.weights.get(li)
    dram_b = layout.bias.get(li)
    dram_out = None if L.homes.resident_output else layout.tensor(op.result)
    dram_res = layout.tensor(residual) if L.epilogue.residual and not res_res else None
    dram_ps = layout.psum.get(li)
    psum_at = layout.psum_at.get(li, {})
    info.dram = {"input": [r for r in dram_in if r is not None], "weight": dram_w, "bias": dram_b,
                 "output": dram_out, "residual": dram_res, "psum": dram_ps}

    # ---- the geometry of a tile ----
    chlast = op.name == "sqnxt.matmul" and L.kind == "conv"     # channels-last x and y
    Lc, cover = (pooled_geometry(L) if L.epilogue.pool is not None else (L, lambda t: t))
    cw = L.channelwise
    RS = L.R * L.S
    Cg, Kg = L.Cg, L.Kg
    if L.kind == "fc":
        in_dims = (L.C, 1, 1)
    else:
        in_dims = (L.C, L.H, L.W)
    acc_words = (max_cover(L, m, Lc, cover) * m.tk * pw) if L.epilogue.pool is not None else None

    def in_box(t, tc):
        """(dram offset in the tensor, n0, n1, n2, ds0, ds1, first row, first col) of the
        input tile; channels per the layer kind."""
        C, H, W = in_dims
        if L.kind == "fc":
            ch0, nch = t.g * Cg + t.c[0], t.c[1] - t.c[0]
            return ch0, 1, 1, nch, 1, 1, 0, 0
        ry = axis_box(tc.y[0], tc.y[1], Lc.stride_h, Lc.pad_top, Lc.R, Lc.dilation_h, H)
        rx = axis_box(tc.x[0], tc.x[1], Lc.stride_w, Lc.pad_left, Lc.S, Lc.dilation_w, W)
        if ry is None or rx is None:
            raise UnsupportedLowering(f"layer '{L.name}': not lowered: the input window of tile "
                                      f"y{tc.y} x{tc.x} is not one strided box (or reads padding only)")
        if cw:
            ch0, nch = t.k[0], t.k[1] - t.k[0]
        else:
            ch0, nch = t.g * Cg + t.c[0], t.c[1] - t.c[0]
        return (ch0 * H + ry[0]) * W + rx[0], rx[1], ry[1], nch, rx[2], ry[2] * W, ry[0], rx[0]

    # ---- boundary: after the previous layer (its STOREs, its COMPUTEs) ----
    em.begin_layer()
    boundary = em.add(Sync, "compute", [em.last_store], layer=li, q="compute") if li > 0 else None
    last_reader: dict = {}       # slot -> the COMPUTE entry that last read it
    last_store_of: dict = {}     # acc slot -> the STORE entry that last read it
    spill_of: dict = {}          # out tile -> its last spill STORE entry
    n_in = n_w = n_res = 0
    cur_in = cur_w = None
    step_comp: list = []         # step -> its COMPUTE entry
    read_at: dict = {}           # slot -> the step of the COMPUTE that last read it

    def early(slot, step: int):
        """The key placing a LOAD into ``slot`` for ``step`` early (docs/isa.md, "Load
        placement"): before the COMPUTE of step ``min(step, j + 2)``, ``j`` the step that
        last read the slot (-1: never), so the load engine fetches it while the steps
        between compute; None: its own step."""
        at = min(step, read_at.get(slot, -1) + 2)
        if at >= step:
            return None
        return (em.key_of(step_comp[at])[0], -1, len(em.ents))
    ensure = [boundary]          # dependencies of this layer's first LOAD
    if dram_b is not None:
        em.add(Load, "load", ensure, layer=li, kind="bias", ew=pw, padv="zero", dram=dram_b.base, buf=0,
               n0=L.K, n1=1, n2=1, ds0=pw, ds1=0, ds2=0)
    P, Q = L.P, L.Q
    for si, s in enumerate(tile_steps(L, m)):
        t = s.tile
        tc = cover(t)
        loads = []
        k0, kc = t.g * Kg + t.k[0], t.k[1] - t.k[0]
        oh, ow = t.y[1] - t.y[0], t.x[1] - t.x[0]
        rows, cols = tc.y[1] - tc.y[0], tc.x[1] - tc.x[0]
        in_addrs = {}
        # input tiles
        if s.load_input and n_dram_in:
            slot = ("input", n_in % copies)
            n_in += 1
            cur_in = slot
            base = info.slots[slot][0]
            off, n0, n1, n2, ds0, ds1, _r0, _c0 = in_box(t, tc)
            j = 0
            H, W = in_dims[1], in_dims[2]
            for i, reg in enumerate(dram_in):
                if reg is None:
                    continue
                at, d0, d1, d2 = off, ds0, ds1, H * W if L.kind != "fc" else 1
                if strides is not None:          # an element operand (broadcast or not), a gather
                    sc, sr, sx = strides[i]
                    at, d0, d1, d2 = move_at + k0 * sc + t.y[0] * sr + t.x[0] * sx, sx, sr, sc
                elif chlast:                     # a matmul's x: [h][w][c]
                    c0 = t.g * Cg + t.c[0]
                    at, d0, d1, d2 = (_r0 * W + _c0) * L.C + c0, L.C, W * L.C, 1
                loads.append(em.add(Load, "load", [last_reader.get(slot)] + ensure, key=early(slot, si),
                                    layer=li, kind="input", ew=1,
                                    padv="zero", dram=reg.base + at, buf=base + j * n0 * n1 * n2,
                                    n0=n0, n1=n1, n2=n2, ds0=d0, ds1=d1, ds2=d2,
                                    pt=0, pb=0, pl=0, pr=0))
                ensure = []
                in_addrs[i] = base + j * n0 * n1 * n2
                j += 1
        elif n_dram_in:
            base = info.slots[cur_in][0]
            _off, n0, n1, n2, *_ = in_box(t, tc)
            j = 0
            for i, reg in enumerate(dram_in):
                if reg is not None:
                    in_addrs[i] = base + j * n0 * n1 * n2
                    j += 1
        for i, v in enumerate(data):
            if in_res[i]:
                off, *_ = in_box(t, tc)
                in_addrs[i] = _buffer_at(v) + off
        # weights
        if s.load_weights:
            slot = ("weight", n_w % copies)
            n_w += 1
            cur_w = slot
            cc = t.c[1] - t.c[0]
            if op.name == "sqnxt.matmul":     # B as the op holds it: [c][k]
                box = dict(dram=dram_w.base + t.c[0] * L.K + k0, n0=1, n1=cc, n2=kc, ds0=1, ds1=L.K, ds2=1)
            elif L.is_mac:
                box = dict(dram=dram_w.base + (k0 * Cg + t.c[0]) * RS, n0=RS, n1=cc, n2=kc, ds0=1, ds1=RS,
                           ds2=Cg * RS)
            else:                   # an eltwise layer's parameter vectors, [K][params]
                npar = L.element.params
                box = dict(dram=dram_w.base + k0 * npar, n0=npar, n1=1, n2=kc, ds0=1, ds1=npar, ds2=npar)
            loads.append(em.add(Load, "load", [last_reader.get(slot)] + ensure, key=early(slot, si),
                                layer=li, kind="weight", ew=1, padv="zero", buf=info.slots[slot][0], pt=0, pb=0, pl=0, pr=0, **box))
            ensure = []
        acc_slot = ("acc", s.visit % copies)
        acc_addr = info.slots[acc_slot][0]
        # residual tile (with the finishing step)
        res_addr = 0
        if L.epilogue.residual and s.finish:
            if dram_res is not None:
                slot = ("residual", n_res % copies)
                n_res += 1
                res_addr = info.slots[slot][0]
                loads.append(em.add(Load, "load", [last_reader.get(slot)] + ensure, key=early(slot, si),
                                    layer=li, kind="residual",
                                    ew=1, padv="zero", dram=dram_res.base + (k0 * P + t.y[0]) * Q + t.x[0],
                                    buf=res_addr, n0=ow, n1=oh, n2=kc, ds0=1, ds1=Q, ds2=P * Q,
                                    pt=0, pb=0, pl=0, pr=0))
                ensure = []
                last_reader_res = slot
            else:
                res_addr = _buffer_at(residual) + (k0 * P + t.y[0]) * Q + t.x[0]
        # partial sums back from DRAM (after the other loads): a store -> load token from the
        # STORE that spilled them and from the one that last read the slot
        if s.reload_psum:
            loads.append(em.add(Load, "load", [last_store_of.get(acc_slot), spill_of.get(s.out_key),
                                               last_reader.get(acc_slot)] + ensure, layer=li, kind="psum",
                                ew=pw, padv="zero", dram=dram_ps.base + psum_at[s.out_key], buf=acc_addr,
                                n0=cols, n1=rows, n2=kc, ds0=pw, ds1=cols * pw, ds2=rows * cols * pw,
                                pt=0, pb=0, pl=0, pr=0))
            ensure = []
        # the COMPUTE
        if L.homes.resident_output:
            out_addr = plan.offset + (k0 * P + t.y[0]) * Q + t.x[0]
        elif L.epilogue.pool is not None:
            out_addr = acc_addr + acc_words
        else:
            out_addr = acc_addr
        in2 = d2 = 0
        if L.epilogue.residual:
            in2 = res_addr
        elif L.n_inputs > 1:
            in2 = in_addrs[1]
            if L.n_inputs == 3 and in_res[1] and in_res[2]:
                d2 = in_addrs[2] - in_addrs[1]
        deps = loads + ([last_store_of.get(acc_slot)] if s.new_visit else [])
        comp = em.add(Compute, "compute", deps, layer=li, acc=int(s.accumulate), fin=int(s.finish), padded=0,
                      oy=t.y[0], ox=t.x[0], oh=oh, ow=ow, k0=k0, kc=kc,
                      cc=kc if cw else t.c[1] - t.c[0], in_addr=in_addrs.get(0, 0),
                      w_addr=info.slots[cur_w][0] if L.has_weights else 0, acc_addr=acc_addr,
                      out_addr=out_addr, in2_addr=in2, d2=d2)
        info.tiles += 1
        step_comp.append(comp)
        read = [acc_slot]
        if n_dram_in:
            read.append(cur_in)
        if L.has_weights:
            read.append(cur_w)
        if L.epilogue.residual and s.finish and dram_res is not None:
            read.append(last_reader_res)
        for slot in read:
            last_reader[slot] = comp
            read_at[slot] = si
        # the output tile leaves
        if s.leaves == "psum":
            st = em.add(Store, "store", [comp], layer=li, kind="psum", ew=pw,
                        dram=dram_ps.base + psum_at[s.out_key], buf=acc_addr, n0=cols, n1=rows, n2=kc,
                        ds0=pw, ds1=cols * pw, ds2=rows * cols * pw)
            last_store_of[acc_slot] = st
            spill_of[s.out_key] = st
        elif s.leaves == "final" and dram_out is not None:
            if chlast:                  # a matmul's y: [h][w][k]
                obox = dict(dram=dram_out.base + (t.y[0] * Q + t.x[0]) * L.K + k0, ds0=L.K, ds1=Q * L.K, ds2=1)
            else:
                obox = dict(dram=dram_out.base + (k0 * P + t.y[0]) * Q + t.x[0], ds0=1, ds1=Q, ds2=P * Q)
            st = em.add(Store, "store", [comp], layer=li, kind="output", ew=1, buf=out_addr,
                        n0=ow, n1=oh, n2=kc, **obox)
            last_store_of[acc_slot] = st
    em.end_layer()
    return info


def max_cover(L, m, Lc, cover) -> int:
    """The largest rows x columns a tile of ``m`` computes (a fused pool's cover)."""
    return largest_cover(L, m)
