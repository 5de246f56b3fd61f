"""``loopnest.txt``: every scheduled layer's mapping as a loop nest, the way a hardware
engineer reads a Timeloop mapping.  One block per layer:

1. the DRAM-level tile loops (temporal), outermost first, with their trip counts and tile
   sizes, the ragged last tile shown (``for y in [0:55) step 16  (4 tiles: 16,16,16,7)``),
   and what the loop order means for reuse (refetch factors, partial-sum spills);
2. the global buffer per tile: the input tile with its halo, the weights, the outputs or
   partial sums, in words and bytes, one copy and the copies kept (x2 double-buffered),
   against the capacity;
3. the spatial unrolling on the PE array (WS: c on rows x k on columns; OS: a block of
   output pixels y x x of one output channel) and the utilization;
4. the loops streamed inside a tile;
5. the layer's cycles, DRAM traffic per tensor and energy per level.

Every figure is the schedule document's (:mod:`.schedule_json`, i.e. the cost model's
CostReport and the Mapping) or a target constant; nothing is recomputed another way.
``tests/test_loopnest.py`` recomputes printed figures from schedule.json.
"""
from __future__ import annotations

from ..cost.features import c_feat, os_ops_per_pass, ws_k_block
from ..cost.features import ceil_div
from .network import NetworkSchedule

_VAR = {"x": "x", "y": "y", "c": "c", "k": "k"}
_MEANING = {"x": "output columns", "y": "output rows", "c": "input channels", "k": "output channels"}


def tiles_desc(count: int, tile: int, last: int) -> str:
    """``4 tiles: 16,16,16,7`` (up to 5 tiles listed), else ``7 tiles: 16 x6, 15``."""
    word = "tile" if count == 1 else "tiles"
    if count <= 5:
        return f"{count} {word}: " + ",".join([str(tile)] * (count - 1) + [str(last)])
    if last == tile:
        return f"{count} tiles: {tile} x{count}"
    return f"{count} tiles: {tile} x{count - 1}, {last}"


def _b(words: int, wb: int) -> str:
    return f"{words:>7} words {words * wb:>8} B"


def _reuse(d: dict, loops: dict) -> str:
    c = d["cost"]
    r = c["refetch"]
    parts = [f"inputs fetched x{r['input_refetch']}", f"weights x{r['weight_refetch']}"
             if d["tensors"]["weights"] else "no weights"]
    v = r["output_visits"]
    if v > 1:
        parts.append(f"outputs visited x{v} (c is outside a tiled x/y/k loop: partial sums "
                     f"spilled to DRAM {v - 1}x and read back)")
    else:
        parts.append("outputs written once (no partial-sum spill)")
    return "reuse: " + ", ".join(parts)


def operands_line(h: dict) -> str:
    """Where the layer reads its inputs from and writes its output to (``homes``)."""
    where = {"dram": "DRAM", "buffer": "the buffer", "band": "its stack's band window"}
    ins = ", ".join(where[i] for i in h["inputs"]) if len(set(h["inputs"])) > 1 else where[h["inputs"][0]]
    out = (f"stays in the buffer at word {h['output_at']}" if h["output"] == "buffer"
           else "a band window of its stack" if h["output"] == "band" else "written back to DRAM")
    into = h.get("output_into")
    if into:      # a part of a concat written in place: its slice of the concat's words
        out += (f", as words {into['offset']}.. of the {into['words']}-word concat "
                f"'{into['concat']}' (written in place)")
    tiles = f", tiles at word {h['tiles_at']}" if h["tiles_at"] is not None else ""
    res = f"; residual from {where[h['residual']]}" if h.get("residual") else ""
    return (f"operands: input{'s' if len(h['inputs']) > 1 else ''} from {ins}{res}; output {out}"
            f"{tiles}; {h['capacity']} buffer words for the tiles")


def layer_block(d: dict, s, target) -> list[str]:
    """The lines of one layer (``d``: its schedule.json object; ``s``: its LayerSchedule)."""
    L, m = s.layer, s.mapping
    pool = L.epilogue.pool
    c = d["cost"]
    wb = target.word_bytes
    Pr, Pc = target.pe_rows, target.pe_cols
    loops = {lp["loop"]: lp for lp in d["loops"]}
    act = f" + {d['act']}" if d["act"] != "none" else ""
    if d.get("residual"):
        act += " + residual add" + (f" + {d['post_act']}" if d["post_act"] != "none" else "")
    cw = L.channelwise
    g = L.eff_groups
    out = [f"== {d['layer']}  ({d['op']}{act})  {L.describe()} ==",
           f"mapping: {m.dataflow}, tiles x={m.tx} y={m.ty} c={m.tc} k={m.tk}, order "
           f"{' '.join(m.order)} (outermost first); {d['status']} ({d['solver']}, "
           f"{d['objective']['name']} {d['objective']['value']}, gap {d['objective']['gap']:g})"]
    if d["note"]:
        out.append(f"note: {d['note']}")
    out.append(operands_line(d["homes"]))

    # ---- 1. DRAM-level tile loops ----
    out += ["", "DRAM <-> global buffer: tile loops (temporal), outermost first"]
    ind = "  "
    if g > 1:
        out.append(f"{ind}for g in [0:{g})  (groups, one after another, same mapping)")
        ind += " "
    for lp in d["loops"]:
        n = lp["loop"]
        head = f"{ind}for {_VAR[n]} in [0:{lp['bound']}) step {lp['tile']}"
        note = _MEANING[n]
        if cw and n == "c":
            note = "trivial: channel-wise layer, k covers the input channels"
        elif cw and n == "k":
            note = "channels (input = output channel)"
        elif pool and n in ("x", "y"):
            conv_n = L.conv_Q if n == "x" else L.conv_P
            note = (f"pooled {_MEANING[n]}; each tile computes the <= {lp['computed_max']} conv "
                    f"{_MEANING[n].split()[1]} its windows cover: {lp['computed_sum']} of {conv_n} in all")
        out.append(f"{head:<40} ({tiles_desc(lp['count'], lp['tile'], lp['last'])}; {note})")
        ind += " "
    out.append("  " + _reuse(d, loops))

    # ---- 2. global buffer ----
    fp = c["footprint"]
    ly, lx = loops["y"], loops["x"]
    in_ch = m.tk if cw else m.tc
    mult = f" x {L.n_inputs} inputs" if L.n_inputs > 1 else ""
    copies = fp["copies"]
    out += ["", f"global buffer per tile (largest tile of each loop), {copies} "
                f"{'copies (double-buffered)' if copies == 2 else 'copy (no double buffering)'}:"]
    cy, cx = (ly["computed_max"], lx["computed_max"]) if pool else (m.ty, m.tx)
    dil = (f" dilated {L.dilation_h}x{L.dilation_w}"
           if (L.dilation_h, L.dilation_w) != (1, 1) else "")
    halo = f"(outputs {cy}x{cx} + halo, kernel {L.R}x{L.S}{dil}, stride {L.stride_h}x{L.stride_w})"
    out.append(f"  inputs  {ly['input_extent_max']} y x {lx['input_extent_max']} x x {in_ch} "
               f"{'k' if cw else 'c'}{mult} {halo}".ljust(78) + _b(fp["input"], wb))
    if d["tensors"]["weights"]:
        out.append(f"  weights {m.tk} k x {m.tc} c x {L.R}x{L.S} taps".ljust(78) + _b(fp["weights"], wb))
    else:
        out.append("  weights none".ljust(78) + _b(fp["weights"], wb))
    pw = target.psum_words
    if pool:
        acc = cy * cx * m.tk * pw
        out.append(f"  outputs {cy} y x {cx} x x {m.tk} k x {pw} words (conv partial sums, "
                   f"{target.psum_bits} bit)".ljust(78) + _b(acc, wb))
        out.append(f"          + pooled {m.ty} y x {m.tx} x x {m.tk} k ({pool.kind}pool "
                   f"{pool.R}x{pool.S} s{pool.stride_h}x{pool.stride_w})".ljust(78)
                   + _b(fp["outputs"] - acc, wb))
    else:
        out.append(f"  outputs {m.ty} y x {m.tx} x x {m.tk} k x {pw} words (partial sums, "
                   f"{target.psum_bits} bit)".ljust(78) + _b(fp["outputs"], wb))
    if fp["residual"]:
        out.append(f"  residual {m.ty} y x {m.tx} x x {m.tk} k (the fused add's operand tile)".ljust(78)
                   + _b(fp["residual"], wb))
    one = fp["input"] + fp["weights"] + fp["outputs"] + fp["residual"]
    out.append(f"  total   {copies} x {one}".ljust(78) + _b(fp["total"], wb)
               + f" of {fp['capacity'] * wb} B ({100 * fp['total'] / fp['capacity']:.1f}%)")

    # ---- 3. spatial unrolling ----
    out += ["", f"PE array {Pr}x{Pc} (spatial), {m.dataflow}:"]
    if m.dataflow == "WS":
        if cw:
            dd = ws_k_block(L, target)
            out.append(f"  diagonal weight block: channel i on row i and column i, "
                       f"{min(dd, m.tk)} of {dd} channels per pass (at most {dd} of {Pr * Pc} PEs busy)")
        else:
            out.append(f"  rows <- c: {min(m.tc, Pr)} of {Pr} rows ({ceil_div(m.tc, Pr)} row block(s) "
                       f"per c tile); cols <- k: {min(m.tk, Pc)} of {Pc} columns "
                       f"({ceil_div(m.tk, Pc)} column block(s) per k tile); one kernel tap per pass")
    else:
        what = " conv" if pool else ""     # a fused pool: the array computes the cover
        out.append(f"  rows <- y: {min(cy, Pr)} of {Pr}{what} output rows, cols <- x: {min(cx, Pc)} of "
                   f"{Pc}{what} output columns ({ceil_div(cy, Pr)} x {ceil_div(cx, Pc)} pixel block(s) "
                   "per tile); one output channel at a time, each PE owns one output pixel")
    out.append(f"  utilization {c['utilization']:.3f} (MACs issued / (PEs x compute cycles)); "
               f"dense {c['utilization_dense']:.3f}")

    # ---- 4. streamed loops inside a tile ----
    out.append("streamed inside a tile (temporal, outermost first):")
    if m.dataflow == "WS":
        blk = ws_k_block(L, target)
        loops_ws = [f"for r in [0:{L.R}), s in [0:{L.S})  (kernel taps)"]
        if cw:
            loops_ws.append(f"for k-block in tile ({ceil_div(m.tk, blk)} x <={blk} channels, "
                            "diagonal weight block)")
        else:
            loops_ws += [f"for c-block in tile ({ceil_div(m.tc, Pr)} x <={Pr} rows)",
                         f"for k-block in tile ({ceil_div(m.tk, blk)} x <={blk} columns)"]
        loops_ws += [f"load weight block: {target.weight_load_cycles} cycles (the stream stalls)",
                     f"for y in tile ({m.ty}), x in tile ({m.tx}): one input vector per cycle"]
        depth = [0] + list(range(1, len(loops_ws) - 1)) + [len(loops_ws) - 2]
        out += ["  " + " " * dd + ln for dd, ln in zip(depth, loops_ws)]
    else:
        z = os_ops_per_pass(L, target, m.tc)
        if L.is_mac:
            dense = m.tc * L.R * L.S
            what = (f"for c in tile ({m.tc}), r in [0:{L.R}), s in [0:{L.S}): {z} nonzero weights of "
                    f"{dense} per pass, one broadcast per cycle")
        elif L.kind == "add":
            what = f"sum of the {L.n_inputs} input pixels: {z} operations per pass, one per cycle"
        else:
            what = f"for r in [0:{L.R}), s in [0:{L.S}) (window): {z} operations per pass, one per cycle"
        drain = target.os_drain_cycles
        hidden = ("hidden by the next pass (double-buffered accumulators)"
                  if target.os_double_buffered_accumulators else "not hidden")
        out += [f"  for k in tile ({m.tk})",
                f"   for pixel block in tile ({ceil_div(cy, Pr)} x {ceil_div(cx, Pc)})",
                f"    {what}",
                f"    drain accumulators: {drain} cycles, {hidden}"]
        if L.is_mac and m.tc < L.Cg:
            out.append(f"  (z per full c tile; the c loop's passes total "
                       f"{c_feat(L, target, m.tc).Z} weights per output)")

    # ---- 5. figures ----
    dr, tr = c["dram"], c["transfers"]
    rf = c["refetch"]
    if not target.double_buffering:
        bound = "serial: no overlap"
    elif c["total_cycles"] == c["compute_cycles"] + c["prologue_cycles"] + c["epilogue_cycles"]:
        bound = "compute bound: DMA hidden but for prologue and epilogue"
    else:
        bound = "DMA bound: compute hidden but for the first step"
    e = c["energy"]
    res_t = f", residual {tr['residual']}" if d.get("residual") else ""
    res_d = f", residual {dr['residual_reads']}" if d.get("residual") else ""
    if tr.get("bias"):          # the bias vector, once per layer (docs/cost-model.md, "Bias")
        res_t += f", bias {tr['bias']}"
        res_d += f", bias {dr['bias_reads']}"
    out += ["",
            f"cycles:  compute {c['compute_cycles']}, DMA {c['dma_cycles']} ({tr['total']} transfers: "
            f"in {tr['input']}, w {tr['weights']}, out {tr['outputs']}, psum {tr['psum_reads']}{res_t}), "
            f"prologue {c['prologue_cycles']}, epilogue {c['epilogue_cycles']}, "
            f"first step {c['first_step_cycles']}",
            f"         total {c['total_cycles']} ({c['overlap']}): {bound}",
            f"DRAM:    reads inputs {dr['input_reads']} (x{rf['input_refetch']}), weights "
            f"{dr['weight_reads']} (x{rf['weight_refetch']}), psums {dr['psum_reads']}{res_d}; writes outputs "
            f"{dr['output_writes']}, psums {dr['psum_writes']}; total {dr['total']} words",
            f"energy:  {e['total']} = MAC {e['mac']} + RF {e['rf']} + array {e['array']} + "
            f"buffer {e['buffer']} + DRAM {e['dram']}",
            ""]
    return out


def loopnest_text(doc: dict, net: NetworkSchedule) -> str:
    """The whole dump: a header, one block per scheduled layer, the unmodelled ops, the
    host ops (one block each), totals."""
    t = net.target
    out = [f"# sqnxtc loop nest: {doc['model']['source']} on {t.name} ({t.pe_rows}x{t.pe_cols} PEs, "
           f"{t.global_buffer_bytes} B global buffer, "
           f"{'double-buffered' if t.double_buffering else 'single-buffered'})",
           f"# sqnxtc {doc['tool']['sqnxtc']}, pipeline {doc['pipeline']}, objective "
           f"{doc['options'].get('objective', 'cycles')}",
           "# loops outermost first, [a:b) step t; sizes in "
           f"{t.word_bits}-bit words; figures are the cost model's (docs/cost-model.md)",
           ""]
    stacks = (doc["plan"] or {}).get("stacks", [])
    for d in doc["layers"]:
        st = d.get("stack")
        if st is not None and st["member"] == 0:
            out += stack_block(stacks[st["index"]], st["index"])
        out += layer_block(d, net.rows[d["index"]].schedule, t)
    for u in doc["unmodelled"]:
        out += [f"== {u['layer']}  ({u['op']})  not modelled: no cycles ==", ""]
    for h in doc["host"]:
        out += [f"== {h['layer']}  ({h['op']})  host: no accelerator cycles ==",
                f"host:    reads {h['words_in']} words from DRAM, writes {h['words_out']} words to DRAM, "
                f"{h['elements']} elements (host time not modelled)"
                + ("; an accelerator layer reads its result: the program splits" if h["feeds_array"] else ""),
                ""]
    if doc["host_tail"] is not None:
        out += tail_block(doc["host_tail"])
    tot = doc["totals"]
    e = tot["energy"]
    out += [f"== network: {tot['layers']} layers ({tot['distinct_layers']} distinct shapes) ==",
            f"cycles {tot['total_cycles']} (compute {tot['compute_cycles']}, DMA {tot['dma_cycles']}), "
            f"MACs {tot['macs']}, utilization {tot['utilization']:.3f}",
            f"DRAM {tot['dram_words']['total']} words; energy {e['total']} = MAC {e['mac']} + RF {e['rf']} "
            f"+ array {e['array']} + buffer {e['buffer']} + DRAM {e['dram']}"]
    if tot["host_ops"]:
        out.append(f"host: {tot['host_ops']} ops, DRAM {tot['host_words_in']} words read, "
                   f"{tot['host_words_out']} written, {tot['host_elements']} elements; "
                   f"{tot['host_splits']} program splits")
    return "\n".join(out) + "\n"


def stack_block(st: dict, index: int) -> list[str]:
    """The nest around a fused stack's members (docs/memory-planning.md, "Fused stacks"):
    the band loop over the last member's output and, inside it, the members in order; each
    member's block below shows the loops of its largest band layer and the member's whole
    figures (all its bands)."""
    cols = "the full width" if st["band_cols"] is None else f"{st['band_cols']} columns"
    n = len(st["layers"])
    return [f"== fused stack {index}: {st['layers'][0]} .. {st['layers'][-1]} ({n} layers) ==",
            f"for band in bands of {st['band_rows']} rows x {cols} of '{st['layers'][-1]}' (rows outer):",
            f"  for member in {', '.join(st['layers'])}:",
            f"    run its band layer (the rows and columns this band needs of it; halo: {st['overlap']})",
            f"region: {st['footprint']} words at word {st['tiles_at']} = band windows {st['windows']} + kept "
            f"weights {st['kept_weights']} + tiles; weights {'kept across the bands' if st['weights_kept'] else 'read in every band'}",
            f"stack:   {st['total_cycles']} cycles, DRAM {st['dram_words']} words, energy {st['energy']}; "
            f"its members' blocks follow (each: its largest band's loops, all its bands' figures)",
            ""]


def tail_block(tail: dict) -> list[str]:
    """The host tail of a cut model (docs/ir.md, "The host tail"): where it starts, what it
    reads from DRAM, its nodes, its outputs."""
    starts = ", ".join(f"{c['node']} ({c['op']})" for c in tail["cut_at"])
    return [f"== host tail from {starts}: {len(tail['ops'])} nodes on the host after the program, "
            "no accelerator cycles ==",
            f"host:    reads {tail['words_in']} words from DRAM: "
            + ", ".join(f"{r['tensor']} {'x'.join(map(str, r['shape']))}" for r in tail["reads"])
            + (f"; graph inputs {', '.join(tail['inputs'])}" if tail["inputs"] else ""),
            "nodes:   " + ", ".join(f"{o['node']} ({o['op']})" for o in tail["ops"]),
            f"outputs: {', '.join(tail['outputs']) or '-'} (shapes depend on the data; host time not modelled)",
            ""]
