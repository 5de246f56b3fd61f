"""The analytical cost model: (layer, target, mapping) -> cycles, traffic, energy.

``evaluate`` is pure and integer-exact.  Its formulas are written once, in
:func:`cost_terms`, over the per-loop tables of :mod:`.features`; ``cost_terms`` accepts
Python ints (``evaluate``), numpy int64 arrays (the exhaustive oracle evaluates a whole
grid of tile sizes at once) and the CP-SAT model's symbolic values (the solver's model is
``cost_terms`` run over them: :mod:`sqnxt_compiler.schedule.cpsat`).  Every formula is in
docs/cost-model.md, with worked examples that tests recompute by hand.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from sqnxt_compiler.diagnostics import ScheduleError
from sqnxt_compiler.targets import Target

from .features import c_feat, element_cycles, k_feat, nonzero_fraction, ws_k_block, x_feat, y_feat
from .layer import Layer
from .mapping import DATAFLOWS, LOOPS, Mapping


@dataclass(frozen=True)
class Consts:
    """Layer- and target-constants of the formulas (docs/cost-model.md, "Constants").

    Not a mirror of the target's fields: these are the short names :func:`cost_terms` and
    the CP-SAT model write their formulas in, mostly quantities derived per layer or from
    several target fields; a target field appears here only when a formula uses it."""

    g: int          # groups run one after another (eff_groups)
    Cg: int
    Kg: int
    RS: int         # kernel taps R * S
    PQ: int         # output pixels per channel
    Wg: int         # weights per group = Kg * Cg * w_kc (0 without weights)
    w_kc: int       # weight words per (output, input channel) pair: R * S for conv/fc, an
                    # eltwise layer's per-channel parameter vectors, else 0
    has_w: int      # 1 if the layer has weights (or per-channel parameters)
    w_dram: int     # 1 if its weights and bias are read from DRAM, 0 if resident (homes.resident_weights)
    in_mult: int    # input tensors (n_inputs of add, else 1)
    in_dram: int    # input tensors read from DRAM (in_mult - resident inputs)
    out_dram: int   # 1 if the output is written back to DRAM, 0 if it stays resident
    res: int        # 1 if a fused residual add reads a tensor of the output's shape
    res_dram: int   # 1 if that residual is read from DRAM, 0 if it is resident
    pool: int       # 1 with a fused pool (P x Q is then the pooled output)
    pool_ops: int   # element operations of the fused pool = K * P * Q * pool window (epilogue.pool.R * S)
    act_ops: int    # operations of the fused activation (Layer.act_cost): energy, no cycles
    has_b: int      # 1 if the layer adds a bias (conv / fc with a bias operand)
    bias_words: int # bias words read from DRAM once per layer = K * pw (0 without a bias)
    bias_adds: int  # additions of the bias = K * conv_P * conv_Q (Layer.bias_adds): energy
    cw: bool        # channel-wise layer: input channel = output channel, tiled by k
    pw: int         # words per partial sum
    Lw: int         # WS weight-block load cycles per pass
    D_final: int    # OS: final exposed drain (drain cycles if accumulators double-buffered, else 0)
    fill: int       # pipeline fill + drain, once per layer
    pr: int         # array rows
    pc: int         # array columns
    blk: int        # WS output channels per pass (ws_k_block: pe_cols, depthwise min(pe_rows, pe_cols))
    z_num: int      # OS weights streamed per input channel of a pass = ceil(c * z_num / z_den) (MAC
    z_den: int      #   layers: R * S * nonzero fraction); z_num = 0: the constant z_elem per pass
    z_elem: int     # OS cycles of work per pass of a non-MAC layer (element_cycles)
    drain: int      # OS accumulator drain cycles per pass
    acc_double: bool  # OS accumulators double-buffered: a pass is max(z, drain), else z + drain
    lat: int        # DRAM latency per transfer
    bw_num: int     # DRAM words per cycle = bw_num / bw_den
    bw_den: int
    copies: int     # 2 with double buffering, else 1
    double: bool
    buffer_words: int   # words for the layer's tiles: the layer's capacity, else the buffer
    pes: int
    ws_rf: int
    ws_arr: int
    os_rf: int
    os_arr: int
    e_mac: int
    e_rf: int
    e_array: int
    e_buffer: int
    e_dram: int


def consts(layer: Layer, target: Target) -> Consts:
    """The constants of :func:`cost_terms` for one layer on one target."""
    bw = target.dram_words_per_cycle
    e, h = layer.epilogue, layer.homes
    w_kc = layer.R * layer.S if layer.is_mac else (0 if layer.element is None else layer.element.params)
    nz = nonzero_fraction(layer, target) if layer.is_mac else Fraction(1)
    return Consts(
        g=layer.eff_groups, Cg=layer.Cg, Kg=layer.Kg, RS=layer.R * layer.S, PQ=layer.P * layer.Q,
        Wg=layer.Kg * layer.Cg * w_kc, w_kc=w_kc,
        has_w=1 if w_kc else 0, w_dram=0 if h.resident_weights else 1, in_mult=layer.n_inputs, in_dram=layer.inputs_from_dram,
        out_dram=0 if h.resident_output else 1,
        res=int(e.residual), res_dram=int(e.residual and not h.resident_residual),
        pool=int(e.pool is not None), pool_ops=layer.pool_ops, act_ops=layer.act_cost(target.nonlinear_cycles),
        has_b=int(e.bias), bias_words=layer.K * target.psum_words if e.bias else 0,
        bias_adds=layer.bias_adds,
        cw=layer.channelwise, pw=target.psum_words,
        Lw=target.weight_load_cycles,
        D_final=target.os_drain_cycles if target.os_double_buffered_accumulators else 0,
        fill=target.pipeline_fill_cycles, lat=target.dram_latency_cycles,
        pr=target.pe_rows, pc=target.pe_cols, blk=ws_k_block(layer, target),
        z_num=layer.R * layer.S * nz.numerator if layer.is_mac else 0,
        z_den=nz.denominator if layer.is_mac else 1,
        z_elem=0 if layer.is_mac else element_cycles(layer, target),
        drain=target.os_drain_cycles, acc_double=target.os_double_buffered_accumulators,
        bw_num=bw.numerator, bw_den=bw.denominator,
        copies=2 if target.double_buffering else 1, double=target.double_buffering,
        buffer_words=capacity_words(layer, target),
        pes=target.num_pes,
        ws_rf=target.ws_rf_per_mac, ws_arr=target.ws_array_per_mac,
        os_rf=target.os_rf_per_mac, os_arr=target.os_array_per_mac,
        e_mac=target.e_mac, e_rf=target.e_rf, e_array=target.e_array,
        e_buffer=target.e_buffer, e_dram=target.e_dram)


def _cdiv(a, b):
    """ceil(a / b) for ints, int arrays or a symbolic value (its ``ceil_div``), b > 0."""
    sym = getattr(a, "ceil_div", None)
    return sym(b) if sym is not None else -((-a) // b)


def _where(cond, a, b):
    """cond ? a : b for a bool, a bool array or a symbolic literal (its ``select``)."""
    if isinstance(cond, np.ndarray):
        return np.where(cond, a, b)
    sym = getattr(cond, "select", None)
    if sym is not None:
        return sym(a, b)
    return a if cond else b


def _max(a, b):
    """max(a, b) for ints, int arrays or symbolic values (their ``maximum``)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.maximum(a, b)
    for x in (a, b):
        sym = getattr(x, "maximum", None)
        if sym is not None:
            return sym(a, b)
    return max(a, b)


def _any(xs: list):
    """OR of conditions (bools, bool arrays, or symbolic literals: their ``any_of``); False
    for none."""
    for x in xs:
        sym = getattr(x, "any_of", None)
        if sym is not None:
            return sym(xs)
    acc = False
    for x in xs:
        acc = acc | x
    return acc


def order_before(order) -> Any:
    """``before(a, b)``: loop ``a`` runs outside loop ``b``.  ``order``: a tile-loop order
    (outermost first); None (no loop outside another: the bound of every order, see
    :func:`reuse_conditions`); or already such a function (the CP-SAT model passes one
    whose answers are the model's literals, :mod:`sqnxt_compiler.schedule.cpsat`)."""
    if callable(order):
        return order
    if order is None:
        return lambda a, b: False
    pos = {l: i for i, l in enumerate(order)}
    return lambda a, b: pos[a] < pos[b]


def reuse_conditions(order, big: dict[str, Any]) -> dict[str, Any]:
    """Which tile loops force a re-fetch, for a tile-loop order (outermost first, or a
    ``before`` function: :func:`order_before`).

    A tensor's resident tile is reused across the iterations of every loop the tensor does
    not depend on *unless* some loop it does depend on, with more than one tile
    (``big[l]`` = n_l > 1), runs inside it: ``cond = OR over l in deps of (before(a, l)
    AND big[l])``.  Loops with one tile change nothing.

    * inputs (x, y, c): refetched n_k times iff k is outside some big loop of {x, y, c};
    * weights (c, k): refetched n_x times iff x is outside some big loop of {c, k}
      (likewise y), the two factors multiply;
    * outputs (x, y, k): visited n_c times (partial sums spilled and re-read) iff c is
      outside some big loop of {x, y, k}.

    ``order`` None: no condition holds (every factor 1), a bound below every order: each
    cost term is non-decreasing in the three factors and the footprint does not depend on
    them (the exhaustive search prunes with it: :func:`..schedule.oracle.exhaustive_best`).
    """
    before = order_before(order)

    def outside_some(a: str, deps: tuple[str, ...]):
        terms = []
        for l in deps:
            b = before(a, l)
            if isinstance(b, bool):
                if b:
                    terms.append(big[l])
            else:
                terms.append(b & big[l])
        return _any(terms)

    return {"in_k": outside_some("k", ("x", "y", "c")),
            "w_x": outside_some("x", ("c", "k")),
            "w_y": outside_some("y", ("c", "k")),
            "out_c": outside_some("c", ("x", "y", "k"))}


def cost_terms(k: Consts, os: bool, X, Y, Cf, Kf, order) -> dict[str, Any]:
    """Every figure of the model for one dataflow and loop order: the one statement of
    the formulas.

    X, Y: (n, B, Wn, I, Im, C, Cm, t) of the x and y loops; Cf: (n, CB, Z, ZP, t) of c;
    Kf: (n, KB, t) of k (see :mod:`.features`).  Entries may be ints (``evaluate``),
    broadcastable int64 arrays (the exhaustive oracle: a grid of tile sizes at once) or
    the CP-SAT model's symbolic values (:mod:`sqnxt_compiler.schedule.cpsat`: its
    arithmetic builds the model's products, divisions and selections; ``order`` is then a
    ``before`` function answering with the model's literals).  The code is written for
    all three: ``+ - *`` and the helpers ``_cdiv``, ``_where``, ``_max``, ``_any`` only,
    comparisons only of a table's ``n`` with 1.  ``order`` None gives a lower bound of
    every order's terms (no tile refetched: :func:`reuse_conditions`).  All results are per layer (groups included).  docs/cost-model.md has each
    formula with its reason.  ``PQ`` is the layer's output; ``PQc = C_x * C_y`` the conv
    outputs computed (= PQ without a fused pool; with one, the pooled tiles' windows,
    recomputed where neighbouring tiles overlap).
    """
    nx, XB, XW, IX, IXm, CX, CXm, tx = X
    ny, YB, YW, IY, IYm, CY, CYm, ty = Y
    nc, CB, Z, ZP, tc = Cf
    nk, KB, tk = Kf
    g, PQ, RS, Cg, Kg, pw = k.g, k.PQ, k.RS, k.Cg, k.Kg, k.pw
    PQc = CX * CY
    nxy = nx * ny
    t: dict[str, Any] = {}

    # ---- compute on the array (per group, then x g) ----
    if not os:
        comp_g = RS * CB * KB * (PQc + k.Lw * nxy)
        macs_g = Kg * Cg * RS * PQc
        buf_w_g = nxy * k.Wg                               # weight blocks loaded into the array
        # input vectors streamed: every pass streams its rows' channels for every pixel
        buf_in_g = RS * Kg * PQc if k.cw else RS * Cg * PQc * KB
        buf_ps_g = pw * (2 * RS * Kg * PQc * CB - Kg * PQc)  # psum read-modify-write per pass
        rf_pm, arr_pm = k.ws_rf, k.ws_arr
        extra = 0
    else:
        comp_g = Kg * XB * YB * ZP
        macs_g = Kg * PQc * Z
        buf_w_g = k.has_w * Kg * XB * YB * Z               # one broadcast weight per busy cycle
        buf_in_g = Kg * Cg * k.in_mult * XW * YW           # input window per block and channel
        buf_ps_g = pw * Kg * PQc * (2 * nc - 1)            # drain per pass, reload after the first
        rf_pm, arr_pm = k.os_rf, k.os_arr
        extra = k.D_final
    t["compute_cycles"] = g * comp_g + k.fill + extra
    t["macs_performed"] = g * macs_g

    # ---- reuse of resident tiles, from the loop order ----
    big = {"x": nx > 1, "y": ny > 1, "c": nc > 1, "k": nk > 1}
    cond = reuse_conditions(order, big)
    fI = 1 if k.cw else _where(cond["in_k"], nk, 1)
    fW = _where(cond["w_x"], nx, 1) * _where(cond["w_y"], ny, 1)
    v = _where(cond["out_c"], nc, 1)
    t["input_refetch"], t["weight_refetch"], t["output_visits"] = fI, fW, v

    # ---- DRAM traffic (words) and transfers ----
    in_ch = Kg if k.cw else Cg            # input channels the c loop (or k, channel-wise) covers
    t["dram_input_reads"] = g * fI * in_ch * k.in_dram * IY * IX
    t["dram_weight_reads"] = g * fW * k.Wg * k.w_dram
    t["dram_output_writes"] = g * Kg * PQ * k.out_dram
    t["dram_psum_writes"] = g * Kg * PQc * (v - 1) * pw
    t["dram_psum_reads"] = t["dram_psum_writes"]
    t["dram_residual_reads"] = g * Kg * PQ * k.res_dram     # once, as each output tile leaves
    t["dram_bias_reads"] = k.bias_words * k.w_dram          # once per layer, into the bias memory
    dram = (t["dram_input_reads"] + t["dram_weight_reads"] + t["dram_output_writes"]
            + t["dram_psum_writes"] + t["dram_psum_reads"] + t["dram_residual_reads"]
            + t["dram_bias_reads"])
    t["dram_words"] = dram
    t["transfers_input"] = g * k.in_dram * nxy * (nk if k.cw else nc) * fI
    t["transfers_weight"] = g * k.has_w * nc * nk * fW * k.w_dram
    t["transfers_output"] = g * nxy * nk * (v - 1 + k.out_dram)
    t["transfers_psum_read"] = g * nxy * nk * (v - 1)
    t["transfers_residual"] = g * nxy * nk * k.res_dram     # one per output tile, when final
    t["transfers_bias"] = k.has_b * k.w_dram                # one per layer
    transfers = (t["transfers_input"] + t["transfers_weight"] + t["transfers_output"]
                 + t["transfers_psum_read"] + t["transfers_residual"] + t["transfers_bias"])
    t["transfers"] = transfers
    t["dma_cycles"] = k.lat * transfers + _cdiv(dram * k.bw_den, k.bw_num)

    # ---- global buffer footprint (words) ----
    t["fp_input"] = IYm * IXm * (tk if k.cw else tc) * k.in_dram
    t["fp_weight"] = k.w_kc * tk * tc * k.w_dram
    # the accumulator tile of the computed outputs, and with a fused pool the pooled tile
    t["fp_output"] = CXm * CYm * tk * pw + k.pool * tx * ty * tk
    t["fp_residual"] = tx * ty * tk * k.res_dram
    t["fp_tiles"] = t["fp_input"] + t["fp_weight"] + t["fp_output"] + t["fp_residual"]   # one copy
    t["fp_total"] = k.copies * t["fp_tiles"]

    # ---- overlap of DMA and compute ----
    # the first step's loads (and the bias) before the first tile computes
    t["prologue_cycles"] = (k.lat * (k.in_dram + (k.has_w + k.has_b) * k.w_dram)
                            + _cdiv((t["fp_input"] + t["fp_weight"] + k.bias_words * k.w_dram) * k.bw_den,
                                    k.bw_num))
    t["epilogue_cycles"] = k.out_dram * (k.lat + _cdiv(tx * ty * tk * k.bw_den, k.bw_num))
    # the first step's compute (full tiles of every loop), which DMA cannot overlap when DMA
    # bounds the layer: no tile is ready to store before it ends
    if not os:
        step = RS * _cdiv(tc, k.pr) * _cdiv(tk, k.blk) * (CXm * CYm + k.Lw)
    else:
        z1 = _cdiv(tc * k.z_num, k.z_den) + k.z_elem
        pass1 = _max(z1, k.drain) if k.acc_double else z1 + k.drain
        step = tk * _cdiv(CXm, k.pc) * _cdiv(CYm, k.pr) * pass1
    t["first_step_cycles"] = step + k.fill
    if k.double:
        t["total_cycles"] = _max(t["compute_cycles"] + t["prologue_cycles"] + t["epilogue_cycles"],
                                 t["dma_cycles"] + t["first_step_cycles"])
    else:
        t["total_cycles"] = t["compute_cycles"] + t["dma_cycles"]

    # ---- accesses per level and energy ----
    macs = t["macs_performed"]
    adds = g * Kg * PQ * k.res        # the epilogue adder: one add per output element
    # a fused pool: one operation per window cell, each reading the accumulator tile; the
    # bias additions and a fused activation's operations in the output path
    t["acc_mac"] = macs + adds + k.pool_ops + k.act_ops + k.bias_adds
    t["acc_rf"] = macs * rf_pm
    t["acc_array"] = macs * arr_pm
    t["acc_buffer_array"] = g * (buf_w_g + buf_in_g + buf_ps_g + Kg * PQ * k.res) + k.pool_ops
    # every DRAM word also enters or leaves the buffer, but the bias (into the bias memory)
    t["acc_buffer"] = t["acc_buffer_array"] + dram - t["dram_bias_reads"]
    t["acc_dram"] = dram
    t["energy_mac"] = k.e_mac * t["acc_mac"]
    t["energy_rf"] = k.e_rf * t["acc_rf"]
    t["energy_array"] = k.e_array * t["acc_array"]
    t["energy_buffer"] = k.e_buffer * t["acc_buffer"]
    t["energy_dram"] = k.e_dram * dram
    t["energy_total"] = (t["energy_mac"] + t["energy_rf"] + t["energy_array"]
                         + t["energy_buffer"] + t["energy_dram"])
    return t


@dataclass(frozen=True)
class CostReport:
    """Everything the model says about one mapping of one layer (all integers, except the
    utilization ratios).  ``energy_*`` are in normalized units (one MAC = target.e_mac)."""

    dataflow: str
    tiles_n: dict            # {"x": n_x, "y": n_y, "c": n_c, "k": n_k}: tiles per loop
    macs: int                # dense MACs of the layer (element ops for pool/gap/add)
    macs_performed: int      # MACs issued on the array (OS skips zero weights)
    compute_cycles: int
    utilization: float       # macs_performed / (PEs * compute_cycles)
    utilization_dense: float # macs / (PEs * compute_cycles) (> 1 possible in OS: skipped zeros)
    footprint: dict          # words: input, weights, outputs, residual (one copy), copies, total, capacity
    dram: dict               # words: input_reads, weight_reads, output_writes, psum_writes, psum_reads,
                             # residual_reads, bias_reads, total
    transfers: dict          # DMA transfers per tensor (input, weights, outputs, psum_reads, residual,
                             # bias), total
    refetch: dict            # input_refetch, weight_refetch, output_visits
    dma_cycles: int
    prologue_cycles: int
    epilogue_cycles: int
    first_step_cycles: int   # the first step's compute, exposed when DMA bounds the layer
    overlap: str             # "double-buffered: total = max(compute + prologue + epilogue, dma + first step)"
                             # or serial
    total_cycles: int
    accesses: dict           # per level: mac, rf, array, buffer, dram
    energy: dict             # per level and total

    @property
    def energy_total(self) -> int:
        return self.energy["total"]

    @property
    def fits(self) -> bool:
        return self.footprint["total"] <= self.footprint["capacity"]

    def to_dict(self) -> dict:
        return asdict(self)


def layer_tables(layer: Layer, target: Target, m: Mapping):
    """The per-loop tables (X, Y, Cf, Kf) of one mapping's tile sizes."""
    return (x_feat(layer, target, m.tx).as_tuple(), y_feat(layer, target, m.ty).as_tuple(),
            c_feat(layer, target, m.tc).as_tuple(), k_feat(layer, target, m.tk).as_tuple())


def allowed_dataflows(layer: Layer, target: Target) -> tuple[str, ...]:
    """The dataflows the scheduler may choose for ``layer``: OS alone for a layer without
    weights (WS needs stationary weights); for a conv or fc, ``target.dataflow_allowed``
    ("both": WS and OS)."""
    if not layer.is_mac:
        return ("OS",)
    a = target.dataflow_allowed
    return DATAFLOWS if a == "both" else (a,)


def check_mapping(layer: Layer, m: Mapping) -> None:
    """Reject a mapping outside the space: unknown dataflow, order not a permutation of
    x, y, c, k, a tile size outside 1..bound, or WS for a layer without weights."""
    def bad(msg: str) -> ScheduleError:
        return ScheduleError(f"layer '{layer.name}': invalid mapping {m}: {msg}")

    if m.dataflow not in DATAFLOWS:
        raise bad(f"dataflow must be one of {DATAFLOWS}")
    if sorted(m.order) != sorted(LOOPS):
        raise bad("order must be a permutation of x, y, c, k")
    for name, t, bound in (("x", m.tx, layer.Q), ("y", m.ty, layer.P), ("c", m.tc, layer.Cg),
                           ("k", m.tk, layer.Kg)):
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= bound:
            raise bad(f"tile {name}={t!r} outside 1..{bound}")
    if m.dataflow == "WS" and not layer.is_mac:
        raise bad(f"{layer.kind} has no weights: only OS applies")


def capacity_words(layer: Layer, target: Target) -> int:
    """Buffer words for the layer's tiles: ``layer.homes.capacity``, else the whole buffer."""
    return target.buffer_words if layer.homes.capacity is None else layer.homes.capacity


def report_from_terms(layer: Layer, target: Target, m: Mapping, t: dict, ns: dict) -> CostReport:
    """Package the raw terms of :func:`cost_terms` (ints) into a CostReport."""
    t = {key: int(v) for key, v in t.items()}
    pes_cycles = target.num_pes * t["compute_cycles"]
    util = Fraction(t["macs_performed"], pes_cycles)
    util_dense = Fraction(layer.macs, pes_cycles)
    copies = 2 if target.double_buffering else 1
    return CostReport(
        dataflow=m.dataflow,
        tiles_n=ns,
        macs=layer.macs,
        macs_performed=t["macs_performed"],
        compute_cycles=t["compute_cycles"],
        utilization=round(float(util), 6),
        utilization_dense=round(float(util_dense), 6),
        footprint={"input": t["fp_input"], "weights": t["fp_weight"], "outputs": t["fp_output"],
                   "residual": t["fp_residual"], "copies": copies, "total": t["fp_total"], "capacity": capacity_words(layer, target)},
        dram={"input_reads": t["dram_input_reads"], "weight_reads": t["dram_weight_reads"],
              "output_writes": t["dram_output_writes"], "psum_writes": t["dram_psum_writes"],
              "psum_reads": t["dram_psum_reads"], "residual_reads": t["dram_residual_reads"],
              "bias_reads": t["dram_bias_reads"], "total": t["dram_words"]},
        transfers={"input": t["transfers_input"], "weights": t["transfers_weight"],
                   "outputs": t["transfers_output"], "psum_reads": t["transfers_psum_read"],
                   "residual": t["transfers_residual"], "bias": t["transfers_bias"],
                   "total": t["transfers"]},
        refetch={"input_refetch": t["input_refetch"], "weight_refetch": t["weight_refetch"],
                 "output_visits": t["output_visits"]},
        dma_cycles=t["dma_cycles"],
        prologue_cycles=t["prologue_cycles"],
        epilogue_cycles=t["epilogue_cycles"],
        first_step_cycles=t["first_step_cycles"],
        overlap=("double-buffered: total = max(compute + prologue + epilogue, dma + first step)"
                 if target.double_buffering else "serial: total = compute + dma"),
        total_cycles=t["total_cycles"],
        accesses={"mac": t["acc_mac"], "rf": t["acc_rf"], "array": t["acc_array"],
                  "buffer": t["acc_buffer"], "dram": t["acc_dram"]},
        energy={"mac": t["energy_mac"], "rf": t["energy_rf"], "array": t["energy_array"],
                "buffer": t["energy_buffer"], "dram": t["energy_dram"], "total": t["energy_total"]},
    )


def evaluate(layer: Layer, target: Target, mapping: Mapping) -> CostReport:
    """The cost of ``mapping`` for ``layer`` on ``target`` (pure, integer-exact).

    A mapping whose footprint exceeds the buffer is still costed (``report.fits`` is
    False); the scheduler only returns mappings that fit."""
    check_mapping(layer, mapping)
    X, Y, Cf, Kf = layer_tables(layer, target, mapping)
    terms = cost_terms(consts(layer, target), mapping.dataflow == "OS", X, Y, Cf, Kf, mapping.order)
    ns = {"x": X[0], "y": Y[0], "c": Cf[0], "k": Kf[0]}
    return report_from_terms(layer, target, mapping, terms, ns)


#: The objectives a schedule may minimize, each defined by :func:`objective_value`: the
#: choices of the schedule pass's ``objective`` option (and so of ``--objective``, the
#: pipeline's ``schedule{objective=...}`` and a sweep's ``objectives``).
OBJECTIVES = ("cycles", "energy", "edp")


def objective_value(report: CostReport, objective: str) -> int:
    """cycles -> total cycles; energy -> total energy; edp -> cycles * energy."""
    if objective == "cycles":
        return report.total_cycles
    if objective == "energy":
        return report.energy_total
    if objective == "edp":
        return report.total_cycles * report.energy_total
    raise ValueError(f"unknown objective {objective!r}")

