"""One scheduled layer as a loop nest another tool can read: its loops, the spatial
unrolling on the array, the loops inside one tile (the global buffer's level) and the tile
loops (DRAM's level), with every factor an integer that divides what it must.

This is what every export (ZigZag, Timeloop) writes; docs/interop.md explains each rule.

Names: the tools' loop names ``K C OY OX FY FX`` (and ``G`` for groups or, for a
channel-wise layer, its channels).  sqnxtc's tile loops map as x -> OX, y -> OY, c -> C,
k -> K (G when channel-wise).

* **Spatial unrolling.**  WS puts C on the array's rows (``D1``, ``pe_rows``) and K on its
  columns (``D2``); a depthwise conv's diagonal block puts at most min(rows, cols) channels
  on the rows; OS puts OY on the rows and OX on the columns.  The unrolling of a loop is
  ``s = min(tile, array dimension)``, as many as one tile puts on the array at once.
* **Temporal factors.**  A loop of bound N unrolled ``s`` wide runs ``T = ceil(N / s)``
  times in time (the tools take a non-dividing unrolling as the fractional ``N / T``); not
  unrolled, ``T = N``.  sqnxtc's ``n`` tiles become ``T = a * b``: ``b`` tile iterations at
  the DRAM level, ``a`` inside the tile.  ``b = n`` when ``n`` divides ``T``; otherwise
  (a ragged tile the tools cannot express) ``b`` is the divisor of ``T`` nearest ``n``
  (the larger on a tie) and the layer says so in ``notes``.
* **Which words still match.**  The DRAM words of the mapping as translated are recomputed
  with sqnxtc's own cost model (the tiles the translated counts give); ``words_kept`` says
  whether they equal the schedule's.  ``differs`` lists what the tools model differently
  whatever the mapping (a fused pool, a tile's halo clipped at a padded border, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field

ZZ_LOOP = {"x": "OX", "y": "OY", "c": "C", "k": "K"}

#: DRAM word parts both tools count (sqnxtc's ``cost.dram`` keys); the bias and a fused
#: residual are sqnxtc's only (docs/interop.md, "What each figure covers").
COMPARED_WORDS = ("input_reads", "weight_reads", "output_writes", "psum_writes", "psum_reads")
EXCLUDED_WORDS = ("residual_reads", "bias_reads")

EXPORTED_KINDS = ("conv", "fc", "gap", "maxpool", "avgpool", "add")


@dataclass
class LoopNest:
    """One layer's export (module doc)."""

    index: int                      # position in the schedule (schedule.json's layers[index])
    name: str
    kind: str
    op_type: str                    # ZigZag's operator_type
    dims: dict[str, int]            # loop name -> bound, in the workload's order
    equation: str
    relations: list[str]            # ix = s*ox + d*fx, ...
    padding: dict[str, tuple[int, int]]   # "IX" / "IY" -> (begin, end)
    has_weights: bool
    spatial: dict[str, tuple[str, int]]   # "D1" / "D2" -> (loop, unrolling)
    inner: list[tuple[str, int]]    # the tile's loops (global buffer level), innermost first
    outer: list[tuple[str, int]]    # the tile loops (DRAM level), innermost first
    counts: dict[str, tuple[int, int]]    # sqnxtc loop -> (its tiles n, the export's b)
    notes: list[str] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)
    words_kept: bool = True
    words_translated: int = 0       # sqnxtc's compared DRAM words of the translated mapping

    @property
    def ordering(self) -> list[tuple[str, int]]:
        """Every temporal loop, innermost first: the tile's, then the tile loops."""
        return self.inner + self.outer


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def split(T: int, n: int) -> int:
    """The tile iterations ``b`` that represent ``n`` tiles of a loop of ``T`` temporal
    iterations: ``n`` when it divides ``T``, else the nearest divisor (larger on a tie)."""
    if T % n == 0:
        return n
    return min(_divisors(T), key=lambda d: (abs(d - n), -d))


def compared_words(dram: dict) -> int:
    """The DRAM words both tools count (:data:`COMPARED_WORDS`)."""
    return sum(int(dram[k]) for k in COMPARED_WORDS)


def _bounds(layer) -> dict[str, int]:
    """Each sqnxtc tile loop's bound; with a fused pool the conv's own output grid."""
    pool = layer.epilogue.pool is not None
    return {"x": layer.conv_Q if pool else layer.Q, "y": layer.conv_P if pool else layer.P,
            "c": layer.Cg, "k": layer.Kg}


def _spatial(layer, mapping, target, tiles: dict[str, int]) -> dict[str, tuple[str, int]]:
    pr, pc = target.pe_rows, target.pe_cols
    if mapping.dataflow == "WS":
        if layer.channelwise:       # depthwise: a diagonal block of min(rows, cols) channels
            return {"D1": ("k", min(tiles["k"], pr, pc))}
        return {"D1": ("c", min(tiles["c"], pr)), "D2": ("k", min(tiles["k"], pc))}
    return {"D1": ("y", min(tiles["y"], pr)), "D2": ("x", min(tiles["x"], pc))}


def _shape(layer, idx: int, ch: str) -> tuple[str, dict[str, int], str, list[str], dict, bool]:
    """(operator type, loop bounds, equation, relations, padding, has weights)."""
    P, Q = (layer.conv_P, layer.conv_Q) if layer.epilogue.pool is not None else (layer.P, layer.Q)
    sh, sw, dh, dw = layer.stride_h, layer.stride_w, layer.dilation_h, layer.dilation_w
    pads = {"IY": (layer.pad_top, layer.pad_bottom), "IX": (layer.pad_left, layer.pad_right)}
    rel = [f"ix={sw}*ox+{dw}*fx", f"iy={sh}*oy+{dh}*fy"]
    if layer.kind == "fc":
        return "Gemm", {"B": 1, "K": layer.K, "C": layer.C}, "O[b][k]+=W[k][c]*I[b][c]", [], {}, True
    if layer.kind == "add":
        return ("Add", {"B": 1, ch: layer.K, "OY": P, "OX": Q},
                f"O[b][{ch.lower()}][oy][ox]=W[b][{ch.lower()}][oy][ox]+I[b][{ch.lower()}][oy][ox]", [], {}, True)
    if layer.kind in ("gap", "maxpool", "avgpool"):
        return ("Pooling", {"B": 1, ch: layer.K, "OY": P, "OX": Q, "FY": layer.R, "FX": layer.S},
                f"O[b][{ch.lower()}][oy][ox]+=W[fy][fx]*I[b][{ch.lower()}][iy][ix]", rel, pads, False)
    point = layer.R == layer.S == 1 and not any(v for p in pads.values() for v in p)
    if layer.channelwise:       # depthwise conv
        if point:
            return ("Conv", {"B": 1, ch: layer.K, "OY": P, "OX": Q},
                    "O[b][g][oy][ox]+=W[g]*I[b][g][oy][ox]", [], {}, True)
        return ("Conv", {"B": 1, ch: layer.K, "OY": P, "OX": Q, "FY": layer.R, "FX": layer.S},
                "O[b][g][oy][ox]+=W[g][fy][fx]*I[b][g][iy][ix]", rel, pads, True)
    g = layer.groups
    gd = {"G": g} if g > 1 else {}
    gi = "[g]" if g > 1 else ""
    if point:       # a 1x1 conv without padding reads its output grid's pixels (every s-th)
        return ("Conv", {"B": 1, **gd, "K": layer.Kg, "C": layer.Cg, "OY": P, "OX": Q},
                f"O[b]{gi}[k][oy][ox]+=W{gi}[k][c]*I[b]{gi}[c][oy][ox]", [], {}, True)
    return ("Conv", {"B": 1, **gd, "K": layer.Kg, "C": layer.Cg, "OY": P, "OX": Q, "FY": layer.R, "FX": layer.S},
            f"O[b]{gi}[k][oy][ox]+=W{gi}[k][c][fy][fx]*I[b]{gi}[c][iy][ix]", rel, pads, True)


def build(index: int, sched, target) -> LoopNest | None:
    """The loop nest of one :class:`~sqnxt_compiler.schedule.LayerSchedule`, or None when
    the layer's kind has no counterpart (element-wise and data-movement layers)."""
    from ..cost import Mapping, evaluate

    layer, m, cost = sched.layer, sched.mapping, sched.cost
    if layer.kind not in EXPORTED_KINDS or (layer.kind == "add" and layer.n_inputs != 2):
        return None
    ch = "G" if layer.channelwise else "K"
    op_type, dims, eq, rel, pads, has_w = _shape(layer, index, ch)
    zz = dict(ZZ_LOOP, k=ch)
    bounds = _bounds(layer)
    pool = layer.epilogue.pool is not None
    tiles = {"x": m.tx, "y": m.ty, "c": m.tc, "k": m.tk}
    if pool:    # the tile's computed conv outputs (its windows' cover)
        loops = {q: cost.tiles_n[q] for q in "xy"}
        tiles.update({q: -(-bounds[q] // loops[q]) for q in "xy"})
    spatial = _spatial(layer, m, target, tiles)
    unroll = {loop: s for loop, s in spatial.values()}
    notes: list[str] = []
    counts: dict[str, tuple[int, int]] = {}
    inner_f: dict[str, int] = {}
    outer_f: dict[str, int] = {}
    for q in "xyck":
        N, n = bounds[q], cost.tiles_n[q]
        if zz[q] not in dims or N == 1:
            counts[q] = (n, 1)
            continue
        T = -(-N // unroll.get(q, 1))
        b = split(T, n)
        counts[q] = (n, b)
        inner_f[q], outer_f[q] = T // b, b
        if b != n:
            notes.append(f"loop {zz[q]}: {n} tiles of {tiles[q]} (bound {N}) cannot be written with integer "
                         f"factors: exported as {b} tiles of {T // b} x {unroll.get(q, 1)}")
    # the tile's loops, innermost first, as the dataflow runs them (docs/cost-model.md)
    taps = [(d, dims[d]) for d in ("FX", "FY") if dims.get(d, 1) > 1]
    if m.dataflow == "WS":
        inner = [("x", inner_f.get("x", 1)), ("y", inner_f.get("y", 1)), ("k", inner_f.get("k", 1)),
                 ("c", inner_f.get("c", 1))]
        inner = [(zz[q], f) for q, f in inner] + taps
    else:
        inner = [(zz["c"], inner_f.get("c", 1))] + taps + [
            (zz[q], inner_f.get(q, 1)) for q in ("x", "y", "k")]
    inner = [(d, f) for d, f in inner if f > 1 and d in dims]
    outer = [(zz[q], outer_f[q]) for q in reversed(m.order) if outer_f.get(q, 1) > 1]
    if "G" in dims and not layer.channelwise and dims["G"] > 1:
        outer.append(("G", dims["G"]))      # groups run one after another
    sp = {dim: (zz[q], s) for dim, (q, s) in spatial.items() if zz[q] in dims and s > 1}

    differs: list[str] = []
    if pool:
        differs.append("fused pool: exported as the conv alone (its conv_P x conv_Q outputs); sqnxtc "
                       "computes each tile's window cover and writes the pooled outputs")
    for q, (a, b2) in (("y", pads.get("IY", (0, 0))), ("x", pads.get("IX", (0, 0)))):
        if (a or b2) and counts[q][1] > 1:
            differs.append(f"halo at a padded border: loop {zz[q]} is tiled and padded; sqnxtc clips each "
                           "tile's input window to the image, ZigZag counts it whole")
    h = layer.homes
    if h.resident_inputs or h.resident_output or h.resident_residual:
        differs.append("resident operands (the memory planner's): sqnxtc moves them through no DRAM, "
                       "ZigZag reads and writes every operand through DRAM")
    # sqnxtc's words for the mapping as translated
    t2 = dict(tiles)
    for q in "xyck":
        n, b = counts[q]
        if b != n:
            t2[q] = -(-bounds[q] // b)
    base = compared_words(cost.dram)
    kept = True
    trans = base
    if not pool and t2 != tiles:
        m2 = Mapping(m.dataflow, t2["x"], t2["y"], t2["c"], t2["k"], m.order)
        trans = compared_words(evaluate(layer, target, m2).dram)
        kept = trans == base
        if not kept:
            notes.append(f"the tiles as exported move {trans} DRAM words in sqnxtc's model, the "
                         f"schedule's {base}")
    return LoopNest(index=index, name=layer.name, kind=layer.kind, op_type=op_type, dims=dims, equation=eq,
                    relations=rel, padding=pads, has_weights=has_w, spatial=sp, inner=inner, outer=outer,
                    counts=counts, notes=notes, differs=differs, words_kept=kept, words_translated=trans)


def producers(result) -> dict[int, list[int]]:
    """Scheduled row index -> the row indices of the layers producing its activation
    inputs (through view ops), in operand order; an input from outside (the network's
    input, or an op that is no layer) is left out."""
    from ..ir.core import view_origin
    from ..ir.ops import layer_operands

    rows = result.network.scheduled
    index = {id(r.op): i for i, r in enumerate(rows)}
    out: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        op = r.op
        if op.has_trait("has_weights"):
            x, _w, _b, res = layer_operands(op)
            acts = [x] + ([res] if res is not None else [])
        else:
            acts = list(op.operands)
        srcs = []
        for v in acts:
            o = view_origin(v).owner
            if o is not None and id(o) in index:
                srcs.append(index[id(o)])
        out[i] = srcs
    return out


__all__ = ["LoopNest", "build", "split", "compared_words", "producers", "COMPARED_WORDS",
           "EXCLUDED_WORDS", "EXPORTED_KINDS"]
