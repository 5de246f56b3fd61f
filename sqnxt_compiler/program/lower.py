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

Not lowered (a one-line :class:`UnsupportedLowering`): layers that stand for their op's
cost (matmul by constants, reductions, resize, concat and the other moves, element-wise
layers with per-channel parameters or broadcast operands), batch > 1, an input window that
is not one strided box along an axis (a dilated or strided kernel whose taps leave gaps),
a tile that reads padding only, a measured sparsity whose fraction does not fit the
descriptor.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache

from ..cost.features import nonzero_fraction, touched
from ..cost.tiling import largest_cover, pooled_geometry, tile_steps
from ..diagnostics import SqnxtError
from ..ir.core import view_origin
from ..ir.ops import layer_operands
from ..layers import data_operands, rule_of
from . import isa
from .isa import Compute, Finish, Layer as LayerDesc, Load, Program, Store, Sync
from .layout import DramLayout, dram_layout


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
    for li, op, sched, *_ in layers:
        _check_lowerable(op, sched.layer)
    layout = dram_layout(graph, layers, target)
    em = _Emitter(target)
    infos = []
    for entry in layers:
        infos.append(_lower_layer(em, graph, entry, layout, target, layers))
    em.finish()
    return Lowered(em.program(), layout, infos, target)


def _check_lowerable(op, L) -> None:
    def no(why: str):
        return UnsupportedLowering(f"layer '{L.name}' ({L.kind}): not lowered yet: {why}")

    shape = op.result.type.shape
    if shape and shape[0] != 1:
        raise no(f"batch {shape[0]} (programs run batch 1)")
    rule = rule_of(op)
    if L.kind in ("conv", "fc", "maxpool", "avgpool", "gap", "add"):
        if not rule.native:
            raise no(f"a {op.name} standing for a {L.kind} (its operands are not the layer's)")
        return
    if L.kind == "eltwise":
        data = data_operands(op)
        if L.element.params:
            raise no("per-channel parameter vectors")
        if len(data) != L.n_inputs or any(v.type.numel != L.K * L.P * L.Q for v in data):
            raise no("operands that are not all of the output's shape")
        return
    raise no("data movement (a gather the LOAD boxes do not express)")


# ----------------------------------------------------------------------------- emission
class _Emitter:
    """The instruction stream under construction: entries (record class, fields, queue,
    dependencies on earlier entries), token flags assigned at the end."""

    def __init__(self, target):
        self.target = target
        self.descs: list = []
        self.ents: list[list] = []      # [cls, fields, queue, deps]
        self.last_store = -1            # entry of the latest STORE

    def add(self, cls, queue: str, deps=(), **fields) -> int:
        self.ents.append([cls, fields, queue, [d for d in deps if d is not None and d >= 0]])
        if cls is Store:
            self.last_store = len(self.ents) - 1
        return len(self.ents) - 1

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


_NEXT = {"load": "compute", "compute": "store"}
_PREV = {"compute": "load", "store": "compute"}


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
            if _NEXT.get(pq) == q:
                pop, push = "pop_prev", "push_next"
            elif _PREV.get(pq) == q:
                pop, push = "pop_next", "push_prev"
            else:
                raise AssertionError(f"entry {i} ({q}) depends on the {pq} queue, not a neighbour")
            if d > last.get((pq, q), -1):
                flags[i][pop] = 1
                flags[d][push] = 1
                last[(pq, q)] = d
    return flags


# ----------------------------------------------------------------------------- descriptors
def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def _descriptor(op, L, m, target, in_res: bool, in2_res: bool) -> LayerDesc:
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
    if kind in ("maxpool", "avgpool"):
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
    has_bias = kind in ("conv", "fc") and layer_operands(op)[2] is not None
    try:
        return LayerDesc(
            name=L.name, kind=kind, df=m.dataflow, chanwise=int(L.channelwise), act=act, res=int(e.residual),
            post_act=post, pool="none" if pool is None else pool.kind, inc_pad=inc, bias=int(has_bias),
            in_res=int(in_res), in2_res=int(in2_res), out_res=int(L.homes.resident_output),
            n_in=L.n_inputs, fn=fn, e_ops=0 if el is None else el.ops, e_funcs=0 if el is None else el.funcs,
            params=0 if el is None else el.params, C=L.C, K=L.K, groups=L.groups, H=L.H, W=L.W, P=L.P, Q=L.Q,
            R=L.R, S=L.S, sh=L.stride_h, sw=L.stride_w, dh=L.dilation_h, dw=L.dilation_w,
            pt=L.pad_top, pl=L.pad_left, pb=L.pad_bottom, pr=L.pad_right, xb=xb, xr=xr, **pool_f,
            alpha=_f32(alpha), beta=_f32(beta), nz_num=nz_num, nz_den=nz_den)
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
    """Buffer word of a resident tensor (its producer's plan)."""
    o = view_origin(v)
    return o.owner.attrs["plan"].offset


def _lower_layer(em: _Emitter, graph, entry, layout: DramLayout, target, layers) -> LayerInfo:

    li, op, sched, plan, data, residual, w, b = entry
    L, m, cost = sched.layer, sched.mapping, sched.cost
    pw = target.psum_words
    copies = 2 if target.double_buffering else 1
    homes_in = list(plan.inputs) if plan is not None else ["dram"] * L.n_inputs
    in_res = [h == "buffer" for h in homes_in[:len(data)]]
    res_res = bool(L.epilogue.residual and L.homes.resident_residual)
    if sum(in_res) != L.homes.resident_inputs:
        raise RuntimeError(f"layer '{L.name}': the plan's input homes disagree with the schedule's")
    n_dram_in = L.n_inputs - sum(in_res)
    if L.n_inputs > 2 and any(in_res[1:]):
        # COMPUTE has two operand addresses: operands 2.. follow operand 1's tile packed,
        # which only a LOAD into the tile region gives (docs/isa.md)
        raise UnsupportedLowering(f"layer '{L.name}' ({L.kind}): not lowered yet: an add of "
                                  f"{L.n_inputs} operands with operands 1.. resident in the buffer")
    in2_res = res_res if L.epilogue.residual else (len(in_res) > 1 and in_res[1])
    desc = _descriptor(op, L, m, target, bool(in_res and in_res[0]), in2_res)
    em.descs.append(desc)

    # ---- the tile region: copies x (input + weights + outputs + residual) ----
    fp = cost.footprint
    tiles_at = plan.tiles if plan is not None else 0
    info = LayerInfo(li, L.name, op.name, sched, tiles_at)
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
            raise UnsupportedLowering(f"layer '{L.name}': not lowered yet: the input window of tile "
                                      f"y{tc.y} x{tc.x} is not one strided box (or reads padding only)")
        if cw:
            ch0, nch = t.k[0], t.k[1] - t.k[0]
        else:
            ch0, nch = t.g * Cg + t.c[0], t.c[1] - t.c[0]
        return (ch0 * H + ry[0]) * W + rx[0], rx[1], ry[1], nch, rx[2], ry[2] * W, ry[0], rx[0]

    # ---- boundary: after the previous layer (its STOREs, its COMPUTEs) ----
    boundary = em.add(Sync, "compute", [em.last_store], layer=li, q="compute") if li > 0 else None
    last_reader: dict = {}       # slot -> the COMPUTE entry that last read it
    last_store_of: dict = {}     # acc slot -> the STORE entry that last read it
    spill_of: dict = {}          # out tile -> its last spill STORE entry
    n_in = n_w = n_res = 0
    cur_in = cur_w = None
    ensure = [boundary]          # dependencies of this layer's first LOAD
    if dram_b is not None:
        em.add(Load, "load", ensure, layer=li, kind="bias", ew=pw, padv="zero", dram=dram_b.base, buf=0,
               n0=L.K, n1=1, n2=1, ds0=pw, ds1=0, ds2=0)
    P, Q = L.P, L.Q
    for s in tile_steps(L, m):
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
                loads.append(em.add(Load, "load", [last_reader.get(slot)] + ensure, layer=li, kind="input", ew=1,
                                    padv="zero", dram=reg.base + off, buf=base + j * n0 * n1 * n2,
                                    n0=n0, n1=n1, n2=n2, ds0=ds0, ds1=ds1, ds2=H * W if L.kind != "fc" else 1,
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
            loads.append(em.add(Load, "load", [last_reader.get(slot)] + ensure, layer=li, kind="weight", ew=1,
                                padv="zero", dram=dram_w.base + (k0 * Cg + t.c[0]) * RS,
                                buf=info.slots[slot][0], n0=RS, n1=cc, n2=kc, ds0=1, ds1=RS, ds2=Cg * RS,
                                pt=0, pb=0, pl=0, pr=0))
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
                loads.append(em.add(Load, "load", [last_reader.get(slot)] + ensure, layer=li, kind="residual",
                                    ew=1, padv="zero", dram=dram_res.base + (k0 * P + t.y[0]) * Q + t.x[0],
                                    buf=res_addr, n0=ow, n1=oh, n2=kc, ds0=1, ds1=Q, ds2=P * Q,
                                    pt=0, pb=0, pl=0, pr=0))
                ensure = []
                last_reader_res = slot
            else:
                res_addr = _buffer_at(residual) + (k0 * P + t.y[0]) * Q + t.x[0]
        # partial sums back from DRAM (after the other loads: it waits for a STORE)
        if s.reload_psum:
            sync = em.add(Sync, "compute", [last_store_of.get(acc_slot), spill_of.get(s.out_key)],
                          layer=li, q="compute")
            loads.append(em.add(Load, "load", [sync, last_reader.get(acc_slot)] + ensure, layer=li, kind="psum",
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
        in2 = 0
        if L.epilogue.residual:
            in2 = res_addr
        elif L.n_inputs > 1:
            in2 = in_addrs[1]
        deps = loads + ([last_store_of.get(acc_slot)] if s.new_visit else [])
        comp = em.add(Compute, "compute", deps, layer=li, acc=int(s.accumulate), fin=int(s.finish), padded=0,
                      oy=t.y[0], ox=t.x[0], oh=oh, ow=ow, k0=k0, kc=kc,
                      cc=kc if cw else t.c[1] - t.c[0], in_addr=in_addrs.get(0, 0),
                      w_addr=info.slots[cur_w][0] if L.has_weights else 0, acc_addr=acc_addr,
                      out_addr=out_addr, in2_addr=in2)
        info.tiles += 1
        if n_dram_in:
            last_reader[cur_in] = comp
        if L.has_weights:
            last_reader[cur_w] = comp
        last_reader[acc_slot] = comp
        if L.epilogue.residual and s.finish and dram_res is not None:
            last_reader[last_reader_res] = comp
        # the output tile leaves
        if s.leaves == "psum":
            st = em.add(Store, "store", [comp], layer=li, kind="psum", ew=pw,
                        dram=dram_ps.base + psum_at[s.out_key], buf=acc_addr, n0=cols, n1=rows, n2=kc,
                        ds0=pw, ds1=cols * pw, ds2=rows * cols * pw)
            last_store_of[acc_slot] = st
            spill_of[s.out_key] = st
        elif s.leaves == "final" and dram_out is not None:
            st = em.add(Store, "store", [comp], layer=li, kind="output", ew=1,
                        dram=dram_out.base + (k0 * P + t.y[0]) * Q + t.x[0], buf=out_addr,
                        n0=ow, n1=oh, n2=kc, ds0=1, ds1=Q, ds2=P * Q)
            last_store_of[acc_slot] = st
    return info


def max_cover(L, m, Lc, cover) -> int:
    """The largest rows x columns a tile of ``m`` computes (a fused pool's cover)."""
    return largest_cover(L, m)
