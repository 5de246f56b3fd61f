"""loopnest.txt: every printed figure is recomputed from schedule.json (and the target
fields it carries); the layout shows ragged tiles, halos, groups, channel-wise layers and
partial-sum spills."""
import math
from pathlib import Path
import re
from fractions import Fraction

import pytest

from report_support import outputs, small_target, tiny_path
from sqnxt_compiler.report.loopnest import tiles_desc

CASES = [("zoo:1.0-SqNxt-23", "pe16x16", "cycles"), ("zoo:1.0-G-SqNxt-23", "pe16x16", "energy"),
         ("tiny", "pe8x8", "cycles"), ("tiny", "pe8x8-1k", "energy")]


def get(spec, target, objective):
    spec = tiny_path() if spec == "tiny" else spec
    if target == "pe8x8-1k":
        target = small_target(1024, "pe8x8-1k")
    texts, doc, _ = outputs(spec, target, objective)
    return texts["loops"], doc


def blocks(text):
    """{layer name: its lines}."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"== (\S+)  \(", line)
        if m:
            cur = out.setdefault(m.group(1), [])
        elif line.startswith("== network: "):
            cur = out.setdefault("<network>", [])
        if cur is not None:
            cur.append(line)
    return out


def test_tiles_desc_shows_the_ragged_last_tile():
    assert tiles_desc(4, 16, 7) == "4 tiles: 16,16,16,7"
    assert tiles_desc(1, 3, 3) == "1 tile: 3"
    assert tiles_desc(7, 16, 15) == "7 tiles: 16 x6, 15"
    assert tiles_desc(8, 8, 8) == "8 tiles: 8 x8"
    assert tiles_desc(5, 2, 1) == "5 tiles: 2,2,2,2,1"


@pytest.mark.parametrize("c", CASES, ids=["-".join(c) for c in CASES])
def test_every_printed_figure_is_recomputed_from_the_json(c):
    text, doc = get(*c)
    bl = blocks(text)
    f = doc["target"]["fields"]
    wb = doc["units"]["word_bytes"]
    pr, pc = f["array.pe_rows"], f["array.pe_cols"]
    assert len(doc["layers"]) + len(doc["unmodelled"]) + 1 == len(bl)  # + the network block
    for L in doc["layers"]:
        lines = bl[L["layer"]]
        block = "\n".join(lines)
        m, cost, sh = L["mapping"], L["cost"], L["shape"]
        t = m["tiles"]
        assert f"mapping: {m['dataflow']}, tiles x={t['x']} y={t['y']} c={t['c']} k={t['k']}" in block
        # the tile loops, in order, outermost first, with their ragged last tiles
        loop_lines = [ln for ln in lines if re.match(r"\s+for [xyck] in \[0:", ln)]
        assert len(loop_lines) == 4
        for ln, lp in zip(loop_lines, L["loops"]):
            n, tile, bound = lp["count"], lp["tile"], lp["bound"]
            last = bound - (math.ceil(bound / tile) - 1) * tile
            assert n == math.ceil(bound / tile) and lp["last"] == last
            assert f"for {lp['loop']} in [0:{bound}) step {tile}" in ln
            assert f"({tiles_desc(n, tile, last)};" in ln
        # the global buffer: input tile with halo, weights, psums; words and bytes
        fp = cost["footprint"]
        ext = {lp["loop"]: lp for lp in L["loops"]}
        cw = L["kind"] != "conv" and L["kind"] != "fc" or (sh["groups"] > 1 and sh["groups"] == sh["C"] == sh["K"])
        ch = t["k"] if cw else t["c"]
        iy, ix = ext["y"]["input_extent_max"], ext["x"]["input_extent_max"]
        inl = next(ln for ln in lines if ln.startswith("  inputs "))
        assert inl.split()[1:7] == [str(iy), "y", "x", str(ix), "x", "x"]
        assert iy * ix * ch * L["homes"]["inputs"].count("dram") == fp["input"]   # resident: read in place
        assert f" {fp['input']} words {fp['input'] * wb:>8} B" in inl
        wl = next(ln for ln in lines if ln.startswith("  weights "))
        assert fp["weights"] == (t["k"] * t["c"] * sh["R"] * sh["S"] if L["tensors"]["weights"] else 0)
        assert f" {fp['weights']} words" in wl
        ol = next(ln for ln in lines if ln.startswith("  outputs "))
        pw = math.ceil(f["buffer.psum_bits"] / f["buffer.word_bits"])
        if sh["pool"] is None:
            assert ext["x"]["computed_max"] == min(t["x"], sh["Q"]) and ext["y"]["computed_sum"] == sh["P"]
            assert fp["outputs"] == t["x"] * t["y"] * t["k"] * pw and f" {fp['outputs']} words" in ol
        else:   # the conv's accumulator tile over the windows' cover, and the pooled tile
            acc = ext["x"]["computed_max"] * ext["y"]["computed_max"] * t["k"] * pw
            assert fp["outputs"] == acc + t["x"] * t["y"] * t["k"] and f" {acc} words" in ol
            assert ext["y"]["computed_sum"] >= sh["pool"]["conv_P"] - sh["pool"]["R"]
            pl = lines[lines.index(ol) + 1]
            assert "+ pooled" in pl and f" {fp['outputs'] - acc} words" in pl
        residual_from_dram = L["residual"] and L["homes"]["residual"] == "dram"
        assert fp["residual"] == (t["x"] * t["y"] * t["k"] if residual_from_dram else 0)
        if fp["residual"]:
            rl = next(ln for ln in lines if ln.startswith("  residual "))
            assert f" {fp['residual']} words" in rl
        tl = next(ln for ln in lines if ln.startswith("  total "))
        one = fp["input"] + fp["weights"] + fp["outputs"] + fp["residual"]
        assert fp["total"] == fp["copies"] * one
        assert f"total   {fp['copies']} x {one}" in tl
        # of the capacity the mapping had: the buffer, less the resident tensors when planned
        assert fp["capacity"] <= f["buffer.global_buffer_bytes"] // wb
        assert f"{fp['total'] * wb:>8} B of {fp['capacity'] * wb} B" in tl
        # the array
        if m["dataflow"] == "OS":   # the array computes each tile's cover (= the tile without a pool)
            cy, cx = ext["y"]["computed_max"], ext["x"]["computed_max"]
            assert f"rows <- y: {min(cy, pr)} of {pr}" in block
            assert f"cols <- x: {min(cx, pc)} of {pc}" in block
        elif not cw:
            assert f"rows <- c: {min(t['c'], pr)} of {pr}" in block
            assert f"cols <- k: {min(t['k'], pc)} of {pc}" in block
        assert f"utilization {cost['utilization']:.3f}" in block
        if m["dataflow"] == "OS" and L["kind"] in ("conv", "fc"):
            nz = 1 - Fraction(sh["weight_zero_fraction"] or f["dataflow.os_weight_zero_fraction"])
            dense = t["c"] * sh["R"] * sh["S"]
            assert f"{math.ceil(dense * nz)} nonzero weights of {dense} per pass" in block
        # cycles, DRAM, energy
        tr = cost["transfers"]
        assert (f"cycles:  compute {cost['compute_cycles']}, DMA {cost['dma_cycles']} "
                f"({tr['total']} transfers:") in block
        assert f"total {cost['total_cycles']} (" in block
        bound = cost["total_cycles"] == (cost["compute_cycles"] + cost["prologue_cycles"]
                                         + cost["epilogue_cycles"])
        assert ("compute bound: DMA hidden" if bound else "DMA bound: compute hidden") in block
        dr = cost["dram"]
        assert f"reads inputs {dr['input_reads']} (x{cost['refetch']['input_refetch']})" in block
        assert f"total {dr['total']} words" in block
        e = cost["energy"]
        assert f"energy:  {e['total']} = MAC {e['mac']} + RF {e['rf']} + array {e['array']}" in block
        assert e["total"] == e["mac"] + e["rf"] + e["array"] + e["buffer"] + e["dram"]


def test_dram_input_reads_follow_from_the_printed_loops():
    """The cost model's input traffic, recomputed from the loop lines' input extents."""
    _, doc = get("zoo:1.0-SqNxt-23", "pe16x16", "cycles")
    conv1 = doc["layers"][0]
    ext = {lp["loop"]: lp for lp in conv1["loops"]}
    c = conv1["cost"]
    assert c["dram"]["input_reads"] == (c["refetch"]["input_refetch"] * conv1["shape"]["C"]
                                        * ext["y"]["input_extent_sum"] * ext["x"]["input_extent_sum"])
    assert conv1["shape"]["pool"]["kind"] == "max"       # conv1 carries pool1 (fuse-pool)
    # without fuse-pool and every activation through DRAM: the worked example of docs/cost-model.md
    from dataclasses import replace

    from sqnxt_compiler import driver
    from sqnxt_compiler.targets import load_target

    res = driver.compile("zoo:1.0-SqNxt-23", pipeline="canonicalize,fold-bn,fuse-relu,fuse-add",
                         target=replace(load_target("pe16x16"), activation_home="dram"))
    c1 = res.document["layers"][0]
    # the worked example's conv1 has no bias (280,385 cycles, compute bound); the model's has
    # one: its 64 x 2 words join the prologue, lat + 128 / 8 (docs/cost-model.md, "Bias")
    assert (c1["layer"], c1["mapping"]["dataflow"], c1["cost"]["total_cycles"]) == \
        ("conv1", "OS", 280385 + 100 + 64 * 2 // 8)
    assert c1["cost"]["dram"]["bias_reads"] == 128 and c1["cost"]["transfers"]["bias"] == 1


def test_groups_channelwise_and_spills_are_shown():
    text, doc = get("zoo:1.0-G-SqNxt-23", "pe16x16", "energy")
    grouped = next(L for L in doc["layers"] if L["shape"]["groups"] > 1
                   and L["shape"]["groups"] != L["shape"]["C"])
    assert f"for g in [0:{grouped['shape']['groups']})" in "\n".join(blocks(text)[grouped["layer"]])
    text, doc = get("tiny", "pe8x8", "cycles")
    b = blocks(text)
    assert "trivial: channel-wise layer" in "\n".join(b["dw"])
    assert "trivial: channel-wise layer" in "\n".join(b["pool"])
    assert "eltwise softmax 10x1x1: 2 ops + 1 functions per element" in b["softmax"][0]
    text, doc = get("tiny", "pe8x8-1k", "energy")
    spill = next(L for L in doc["layers"] if L["cost"]["refetch"]["output_visits"] > 1)
    v = spill["cost"]["refetch"]["output_visits"]
    assert f"outputs visited x{v}" in "\n".join(blocks(text)[spill["layer"]])
    assert f"partial sums spilled to DRAM {v - 1}x" in "\n".join(blocks(text)[spill["layer"]])


def test_the_documented_example_block_is_the_real_output():
    text, _ = get("zoo:1.0-SqNxt-23", "pe16x16", "cycles")
    block = "\n".join(blocks(text)["conv1"]).rstrip("\n")
    doc = (Path(__file__).resolve().parent.parent / "docs" / "schedule-format.md").read_text()
    assert block in doc
