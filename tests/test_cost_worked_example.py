"""Recompute the worked example of docs/cost-model.md by hand and compare it with the
doc's numbers and with evaluate()."""
from __future__ import annotations

import re
from pathlib import Path

from sqnxt_compiler.cost import ElementFn, Epilogue, Homes, Layer, Mapping, Pool, evaluate
from sqnxt_compiler.targets import load_target

DOC = Path(__file__).resolve().parents[1] / "docs" / "cost-model.md"


def cdiv(a, b):
    return -(-a // b)


def doc_block() -> dict[str, str]:
    text = DOC.read_text()
    block = re.search(r"```worked-example\n(.*?)```", text, re.S).group(1)
    return {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in block.strip().splitlines())}


def span(n, s=2, k=7):
    return (n - 1) * s + k


def hand_ws():
    """WS, tx=23 ty=28 tc=3 tk=16, order c y x k: the doc's derivation."""
    nx, ny, nk = 5, 4, 4
    IX, IXm = 4 * span(23) + span(19), span(23)
    IY, IYm = 3 * span(28) + span(27), span(28)
    CB, KB = 1, 4
    compute = 49 * CB * KB * (111 * 111 + 16 * nx * ny) + 32
    fI, fW, v = 1, nx * ny, 1
    w = 64 * 3 * 49
    dram = fI * 3 * IY * IX + fW * w + 64 * 111 * 111
    transfers = nx * ny * 1 * fI + 1 * nk * fW + nx * ny * nk * v
    dma = 100 * transfers + cdiv(dram, 8)
    fp_in, fp_w, fp_out = IYm * IXm * 3, 16 * 3 * 49, 23 * 28 * 16 * 2
    pro = 200 + cdiv(fp_in + fp_w, 8)
    epi = 100 + cdiv(23 * 28 * 16, 8)
    first = 49 * cdiv(3, 16) * cdiv(16, 16) * (23 * 28 + 16) + 32      # one full tile
    total = max(compute + pro + epi, dma + first)
    macs = 64 * 111 * 111 * 3 * 49
    buf = nx * ny * w + 49 * 3 * 111 * 111 * KB + 2 * (2 * 49 * 64 * 111 * 111 * CB - 64 * 111 * 111) + dram
    energy = macs + macs + 2 * 2 * macs + 6 * buf + 200 * dram
    return dict(compute_cycles=compute, dram_total=dram, transfers=transfers, dma_cycles=dma,
                footprint_total=2 * (fp_in + fp_w + fp_out), prologue=pro, epilogue=epi,
                first_step=first, total_cycles=total, buffer_accesses=buf, energy_total=energy)


def hand_os():
    """OS, tx=16 ty=16 tc=3 tk=8, order c y x k: the doc's derivation."""
    n, nk = 7, 8
    I, Im = 6 * span(16) + span(15), span(16)
    XB = YB = 7
    z = cdiv(3 * 49 * 3, 5)
    ZP = max(z, 32)
    compute = 64 * XB * YB * ZP + 32 + 32
    macs = 64 * 111 * 111 * z
    fW = n * n
    w = 64 * 3 * 49
    dram = 3 * I * I + fW * w + 64 * 111 * 111
    transfers = n * n + nk * fW + n * n * nk
    dma = 100 * transfers + cdiv(dram, 8)
    fp_in, fp_w, fp_out = Im * Im * 3, 8 * 3 * 49, 16 * 16 * 8 * 2
    pro = 200 + cdiv(fp_in + fp_w, 8)
    epi = 100 + cdiv(16 * 16 * 8, 8)
    first = 8 * cdiv(16, 16) * cdiv(16, 16) * ZP + 32                  # one full tile
    total = max(compute + pro + epi, dma + first)
    buf = 64 * XB * YB * z + 64 * 3 * I * I + 2 * 64 * 111 * 111 * (2 * 1 - 1) + dram
    energy = macs + 2 * macs + 2 * 2 * macs + 6 * buf + 200 * dram
    return dict(compute_cycles=compute, dram_total=dram, transfers=transfers, dma_cycles=dma,
                footprint_total=2 * (fp_in + fp_w + fp_out), prologue=pro, epilogue=epi,
                first_step=first, total_cycles=total, buffer_accesses=buf, energy_total=energy)


def model_figures(r):
    return dict(compute_cycles=r.compute_cycles, dram_total=r.dram["total"], transfers=r.transfers["total"],
                dma_cycles=r.dma_cycles, footprint_total=r.footprint["total"], prologue=r.prologue_cycles,
                epilogue=r.epilogue_cycles, first_step=r.first_step_cycles, total_cycles=r.total_cycles,
                buffer_accesses=r.accesses["buffer"], energy_total=r.energy_total)


def test_worked_example_matches_doc_hand_and_model():
    doc = doc_block()
    assert doc["target"] == "pe16x16"
    t = load_target(doc["target"])
    L = Layer("conv1", "conv", 3, 64, 227, 227, 7, 7, 111, 111, 2, 2)
    for prefix, hand in (("ws", hand_ws()), ("os", hand_os())):
        df, tx, ty, tc, tk, order = doc[f"{prefix}.mapping"].split()
        m = Mapping(df, int(tx), int(ty), int(tc), int(tk), tuple(order))
        r = evaluate(L, t, m)
        documented = {k.split(".", 1)[1]: int(v) for k, v in doc.items() if k.startswith(prefix + ".")
                      and k != f"{prefix}.mapping"}
        assert documented == hand
        assert model_figures(r) == hand
        assert r.fits


def test_worked_example_mappings_are_the_oracles_per_dataflow():
    from sqnxt_compiler.schedule.oracle import exhaustive_best

    doc = doc_block()
    t = load_target("pe16x16")
    L = Layer("conv1", "conv", 3, 64, 227, 227, 7, 7, 111, 111, 2, 2)
    for prefix, df in (("ws", "WS"), ("os", "OS")):
        m, _ = exhaustive_best(L, t, dataflows=(df,))
        assert f"{m.dataflow} {m.tx} {m.ty} {m.tc} {m.tk} {''.join(m.order)}" == doc[f"{prefix}.mapping"]


# ---- operand homes (docs/cost-model.md, "Operand homes") --------------------------------
def homes_block() -> dict[str, str]:
    text = DOC.read_text()
    block = re.search(r"```worked-example-homes\n(.*?)```", text, re.S).group(1)
    return {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in block.strip().splitlines())}


def test_operand_homes_worked_example():
    """The homes example: recomputed from the same mapping's all-DRAM figures with the
    doc's rules (resident input: no reads, transfers, tile region or prologue share;
    resident output: no writes, one output transfer per block fewer, no epilogue), and
    compared with evaluate() and with the scheduler's choice."""
    from sqnxt_compiler.schedule.solver import schedule_layer

    d = homes_block()
    t = load_target(d["target"])
    L = Layer("s3b1_sep1", "conv", C=32, K=64, H=14, W=14, R=3, S=1, P=14, Q=14, pad_top=1, pad_bottom=1)
    cap = t.buffer_words - 32 * 14 * 14 - 64 * 14 * 14
    assert cap == int(d["capacity"])
    H = L.with_homes(resident_inputs=1, resident_output=True, capacity=cap)

    def mapping(text):
        df, tx, ty, tc, tk, order = text.split()
        return Mapping(df, int(tx), int(ty), int(tc), int(tk), tuple(order))

    alone, homed = schedule_layer(L, t), schedule_layer(H, t)
    assert alone.mapping == mapping(d["alone.mapping"]) and alone.cost.total_cycles == int(d["alone.total_cycles"])
    m = mapping(d["homed.mapping"])
    assert homed.mapping == m
    b = evaluate(L, t, m)
    assert b.total_cycles == int(d["same_mapping_alone.total_cycles"])
    assert b.dram["total"] == int(d["same_mapping_alone.dram_total"])
    # the doc's rules applied by hand to the all-DRAM figures of the same mapping
    n = b.tiles_n
    dram = b.dram["total"] - b.dram["input_reads"] - b.dram["output_writes"]
    transfers = b.transfers["total"] - b.transfers["input"] - n["x"] * n["y"] * n["k"]
    dma = 100 * transfers + cdiv(dram, 8)
    pro = 100 * 1 + cdiv(b.footprint["weights"], 8)
    fp = 2 * (b.footprint["weights"] + b.footprint["outputs"])
    total = max(b.compute_cycles + pro + 0, dma + b.first_step_cycles)   # the homes leave the step's compute
    buf = b.accesses["buffer"] - (b.dram["total"] - dram)
    energy = b.energy["total"] - (200 + 6) * (b.dram["total"] - dram)
    h = evaluate(H, t, m)
    got = dict(dram_total=h.dram["total"], transfers=h.transfers["total"], dma_cycles=h.dma_cycles,
               prologue=h.prologue_cycles, epilogue=h.epilogue_cycles, footprint_total=h.footprint["total"],
               total_cycles=h.total_cycles, buffer_accesses=h.accesses["buffer"], energy_total=h.energy_total)
    hand = dict(dram_total=dram, transfers=transfers, dma_cycles=dma, prologue=pro, epilogue=0,
                footprint_total=fp, total_cycles=total, buffer_accesses=buf, energy_total=energy)
    assert got == hand
    assert got == {k: int(d[f"homed.{k}"]) for k in got}
    assert h.footprint["capacity"] == cap and h.fits
    assert homed.cost == h


def residual_block():
    text = (Path(__file__).parents[1] / "docs" / "cost-model.md").read_text()
    block = re.search(r"```worked-example-residual\n(.*?)```", text, re.S).group(1)
    return {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in block.strip().splitlines())}


def test_fused_residual_add_worked_example():
    """One SqueezeNext block with its add fused, input and residual resident: recomputed
    from the same mapping's all-DRAM figures with the doc's rules (resident input: no
    reads, transfer, tile region or prologue share; resident residual: no reads or tiles;
    every output element one more add and one more buffer read), and compared with
    evaluate(), with the scheduler's choices and with the unfused conv + add."""
    from dataclasses import replace

    from sqnxt_compiler.schedule.solver import schedule_layer

    d = residual_block()
    t = load_target(d["target"])

    def mapping(text):
        df, tx, ty, tc, tk, order = text.split()
        return Mapping(df, int(tx), int(ty), int(tc), int(tk), tuple(order))

    E = Layer("stage3/block2/expand", "conv", C=64, K=128, H=14, W=14, R=1, S=1, P=14, Q=14)
    A = Layer("stage3/block2/add", "add", C=128, K=128, H=14, W=14, R=1, S=1, P=14, Q=14, n_inputs=2)
    e, a = schedule_layer(E, t), schedule_layer(A, t)
    assert e.mapping == mapping(d["unfused.conv.mapping"]) and e.cost.total_cycles == int(d["unfused.conv.total_cycles"])
    assert a.mapping == mapping(d["unfused.add.mapping"]) and a.cost.total_cycles == int(d["unfused.add.total_cycles"])
    assert e.cost.dram["total"] + a.cost.dram["total"] == int(d["unfused.dram_total"])
    cap = t.buffer_words - 64 * 196 - 128 * 196
    assert cap == int(d["capacity"])
    F = replace(E, epilogue=Epilogue(residual=True),
                homes=Homes(resident_inputs=1, resident_residual=True, capacity=cap))
    f = schedule_layer(F, t)
    m = mapping(d["fused.mapping"])
    assert f.mapping == m
    b = evaluate(E, t, m)          # the same mapping, alone and unfused
    n = b.tiles_n
    words = 128 * 14 * 14
    dram = b.dram["total"] - b.dram["input_reads"]
    transfers = b.transfers["total"] - b.transfers["input"]
    dma = 100 * transfers + cdiv(dram, 8)
    pro = 100 * 1 + cdiv(b.footprint["weights"], 8)
    epi = 100 + cdiv(m.tx * m.ty * m.tk, 8)
    fp = 2 * (b.footprint["weights"] + b.footprint["outputs"])
    total = max(b.compute_cycles + pro + epi, dma + b.first_step_cycles)   # the same step's compute
    mac = b.accesses["mac"] + words
    buf = b.accesses["buffer"] - b.dram["input_reads"] + words
    energy = b.energy["total"] - (200 + 6) * b.dram["input_reads"] + (1 + 6) * words
    hand = dict(dram_total=dram, transfers=transfers, dma_cycles=dma, prologue=pro, epilogue=epi,
                footprint_total=fp, total_cycles=total, mac_accesses=mac, buffer_accesses=buf,
                energy_total=energy)
    r = f.cost
    got = dict(dram_total=r.dram["total"], transfers=r.transfers["total"], dma_cycles=r.dma_cycles,
               prologue=r.prologue_cycles, epilogue=r.epilogue_cycles, footprint_total=r.footprint["total"],
               total_cycles=r.total_cycles, mac_accesses=r.accesses["mac"], buffer_accesses=r.accesses["buffer"],
               energy_total=r.energy_total)
    doc = {k: int(d["fused." + k]) for k in hand}
    assert hand == got == doc
    # the residual from DRAM instead: its words, one transfer per output tile, a tile region
    R = evaluate(F.with_homes(resident_residual=False), t, m)
    assert R.dram["total"] - r.dram["total"] == words == int(d["from_dram.extra_dram"])
    assert R.transfers["total"] - r.transfers["total"] == n["x"] * n["y"] * n["k"] == int(d["from_dram.extra_transfers"])
    assert R.footprint["residual"] == m.tx * m.ty * m.tk == int(d["from_dram.residual_tile"])


def block(name: str) -> dict:
    text = (Path(__file__).parents[1] / "docs" / "cost-model.md").read_text()
    body = re.search(rf"```{name}\n(.*?)```", text, re.S).group(1)
    return {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in body.strip().splitlines())}


def test_fused_pool_worked_example():
    """conv1 + pool1 fused: the tables, every figure recomputed by hand from the doc's
    formulas, evaluate() and the scheduler's choice, against the two layers alone."""
    from sqnxt_compiler.cost.features import x_feat, y_feat
    from sqnxt_compiler.schedule.solver import schedule_layer

    d = block("worked-example-pool")
    t = load_target(d["target"])
    conv = Layer("conv1", "conv", C=3, K=64, H=227, W=227, R=7, S=7, P=111, Q=111, stride_h=2, stride_w=2)
    pool = Layer("pool1", "maxpool", C=64, K=64, H=111, W=111, R=3, S=3, P=55, Q=55, stride_h=2, stride_w=2)
    F = Layer("conv1", "conv", C=3, K=64, H=227, W=227, R=7, S=7, P=55, Q=55, stride_h=2, stride_w=2,
              epilogue=Epilogue(pool=Pool("max", 3, 3, 2, 2)))
    c, p, f = (schedule_layer(x, t) for x in (conv, pool, F))
    assert c.cost.total_cycles + p.cost.total_cycles == int(d["unfused.cycles"])
    assert c.cost.dram["total"] + p.cost.dram["total"] == int(d["unfused.dram_total"])
    assert c.cost.energy_total + p.cost.energy_total == int(d["unfused.energy_total"])
    df, tx, ty, tc, tk, order = d["fused.mapping"].split()
    m = Mapping(df, int(tx), int(ty), int(tc), int(tk), tuple(order))
    assert f.mapping == m
    fx, fy = x_feat(F, t, m.tx), y_feat(F, t, m.ty)
    assert (fx.C, fy.C, fy.Cm) == (int(d["fused.C_x"]), int(d["fused.C_y"]), int(d["fused.C_ym"]))
    # by hand, from the doc's formulas
    z = cdiv(3 * 49 * 3, 5)
    passes = max(z, 32)
    nk = 64
    pqc = fx.C * fy.C
    compute = 64 * fx.B * fy.B * passes + 32 + 32
    macs = 64 * pqc * z
    fW = fy.n                     # order c y k x: y outside the tiled k loop
    dram = 3 * fy.I * fx.I + fW * 64 * 147 + 64 * 55 * 55
    transfers = fx.n * fy.n * 1 + 1 * nk * fW + fx.n * fy.n * nk
    dma = 100 * transfers + cdiv(dram, 8)
    fp_in, fp_w = fy.Im * fx.Im * 3, 147
    fp_out = fx.Cm * fy.Cm * 1 * 2 + m.tx * m.ty * 1
    pro = 200 + cdiv(fp_in + fp_w, 8)
    epi = 100 + cdiv(m.tx * m.ty, 8)
    first = 1 * cdiv(fx.Cm, 16) * cdiv(fy.Cm, 16) * passes + 32     # one full tile: tk = 1
    assert first == 655
    total = max(compute + pro + epi, dma + first)
    hand = dict(compute=compute, macs_performed=macs, dram_total=dram, transfers=transfers,
                dma_cycles=dma, footprint_total=2 * (fp_in + fp_w + fp_out), prologue=pro, epilogue=epi,
                total_cycles=total, mac_accesses=macs + F.pool_ops)
    r = f.cost
    got = dict(compute=r.compute_cycles, macs_performed=r.macs_performed, dram_total=r.dram["total"],
               transfers=r.transfers["total"], dma_cycles=r.dma_cycles, footprint_total=r.footprint["total"],
               prologue=r.prologue_cycles, epilogue=r.epilogue_cycles, total_cycles=r.total_cycles,
               mac_accesses=r.accesses["mac"])
    assert hand == got == {k: int(d["fused." + k]) for k in hand}
    assert r.energy_total == int(d["fused.energy_total"]) and r == evaluate(F, t, m)


def test_dilated_conv_worked_example():
    """The dilated conv of docs/cost-model.md: its input tables by hand (the merged tap
    intervals), and evaluate()'s input words and footprint."""
    from sqnxt_compiler.cost.features import x_feat, y_feat

    d = block("worked-example-dilation")
    t = load_target(d["target"])
    L = Layer("d2", "conv", C=64, K=64, H=28, W=28, R=3, S=3, P=28, Q=28, pad_top=2, pad_left=2,
              pad_bottom=2, pad_right=2, dilation_h=2, dilation_w=2)
    df, tx, ty, tc, tk, order = d["mapping"].split()
    m = Mapping(df, int(tx), int(ty), int(tc), int(tk), tuple(order))

    def rows(a, b):                       # tiles at least d long: one span [a-2, b-1-2+4]
        return min(b - 1 - 2 + 4, 27) - max(a - 2, 0) + 1

    ys = [rows(a, min(a + 7, 28)) for a in range(0, 28, 7)]
    xs = [rows(a, min(a + 14, 28)) for a in range(0, 28, 14)]
    assert (sum(ys), max(ys), sum(xs), max(xs)) == tuple(int(d[k]) for k in ("IY", "IYm", "IX", "IXm"))
    fy, fx = y_feat(L, t, m.ty), x_feat(L, t, m.tx)
    assert (fy.I, fy.Im, fx.I, fx.Im) == (sum(ys), max(ys), sum(xs), max(xs))
    r = evaluate(L, t, m)
    assert r.dram["input_reads"] == 64 * sum(ys) * sum(xs) == int(d["input_reads"])
    assert r.footprint["input"] == max(ys) * max(xs) * 64 == int(d["fp_input"])
    plain = Layer("d1", "conv", C=64, K=64, H=28, W=28, R=3, S=3, P=28, Q=28, pad_top=1, pad_left=1,
                  pad_bottom=1, pad_right=1)
    assert evaluate(plain, t, m).dram["input_reads"] == int(d["undilated.input_reads"])
    # tx = 1: each column tile reads the 3 taps 2 apart, 2 of them at the borders
    taps = [len({q - 2 + 2 * j for j in range(3)} & set(range(28))) for q in range(28)]
    assert sum(taps) == x_feat(L, t, 1).I == int(d["tx1.IX"])


def test_elementwise_worked_example():
    """The squeeze-excitation scale of docs/cost-model.md ("Element-wise and data-movement
    layers"): every figure by hand from the doc's formulas, then evaluate()."""
    from sqnxt_compiler.cost.features import element_cycles, os_pass_cycles

    d = block("worked-example-elementwise")
    t = load_target(d["target"])
    L = Layer("se", "eltwise", C=32, K=32, H=16, W=16, R=1, S=1, P=16, Q=16, element=ElementFn("mul", ops=1, params=1))
    df, tx, ty, tc, tk, order = d["mapping"].split()
    m = Mapping(df, int(tx), int(ty), int(tc), int(tk), tuple(order))
    nk, D, fill, lat, bw = 4, 32, 32, 100, 8
    z = 1 + 0 * 4
    compute = 32 * 1 * 1 * max(z, D) + fill + D
    dram = 32 * 16 * 16 + 32 * 1 + 32 * 16 * 16          # input, parameters, output
    transfers = nk + nk + nk
    dma = lat * transfers + cdiv(dram, bw)
    fp_in, fp_w, fp_out = 16 * 16 * 8, 8 * 1, 16 * 16 * 8 * 2
    pro = lat * 2 + cdiv(fp_in + fp_w, bw)
    epi = lat + cdiv(16 * 16 * 8, bw)
    first = 8 * cdiv(16, 16) * cdiv(16, 16) * max(z, D) + fill     # one full tile, tk = 8
    total = max(compute + pro + epi, dma + first)
    ops = 32 * 256 * z
    buf = 32 * 1 * 1 * z + 32 * 16 * 16 + 2 * 32 * 256 * 1 + dram
    energy = ops * 1 + ops * 2 * 1 + ops * 2 * 2 + buf * 6 + dram * 200
    hand = dict(compute_cycles=compute, dram_words=dram, transfers=transfers, dma_cycles=dma,
                fp_total=2 * (fp_in + fp_w + fp_out), prologue_cycles=pro, epilogue_cycles=epi,
                first_step_cycles=first, total_cycles=total, energy_total=energy)
    assert hand == {k: int(d[k]) for k in hand}
    r = evaluate(L, t, m)
    got = dict(compute_cycles=r.compute_cycles, dram_words=r.dram["total"], transfers=r.transfers["total"],
               dma_cycles=r.dma_cycles, fp_total=r.footprint["total"], prologue_cycles=r.prologue_cycles,
               epilogue_cycles=r.epilogue_cycles, first_step_cycles=r.first_step_cycles,
               total_cycles=r.total_cycles, energy_total=r.energy["total"])
    assert got == hand
    assert L.describe() == "eltwise mul 32x16x16 +1 per-channel: 1 ops + 0 functions per element"
    sig = Layer("s", "eltwise", C=32, K=32, H=1, W=1, R=1, S=1, P=1, Q=1, element=ElementFn("sigmoid", funcs=1))
    lrn = Layer("l", "eltwise", C=32, K=32, H=8, W=8, R=1, S=1, P=8, Q=8, element=ElementFn("lrn", ops=7, funcs=1))
    assert element_cycles(sig, t) == int(d["sigmoid.z"]) and os_pass_cycles(4, t) == int(d["sigmoid.pass"])
    assert element_cycles(lrn, t) == int(d["lrn5.z"])


def test_bias_worked_example():
    """docs/cost-model.md, "Bias": a 1x1 conv 64 -> 32 on 55x55, pe16x16, one mapping,
    with and without its bias: the differences by hand."""
    t = load_target("pe16x16")
    m = Mapping("WS", 11, 11, 64, 32, ("k", "c", "y", "x"))
    plain = Layer("sq", "conv", 64, 32, 55, 55, 1, 1, 55, 55)
    biased = Layer("sq", "conv", 64, 32, 55, 55, 1, 1, 55, 55, epilogue=Epilogue(bias=True))
    a, b = evaluate(plain, t, m), evaluate(biased, t, m)
    pw, lat, bw = 2, 100, 8
    assert (t.psum_words, t.dram_latency_cycles, t.dram_words_per_cycle) == (pw, lat, bw)
    bias_words = 32 * pw
    assert bias_words == 64
    assert b.dram["bias_reads"] == 64 and a.dram["bias_reads"] == 0
    assert b.dram["total"] - a.dram["total"] == 64
    assert b.transfers["bias"] == 1 and b.transfers["total"] - a.transfers["total"] == 1
    # the layer's words are a multiple of 8 here: the one rounding adds nothing
    assert a.dram["total"] % 8 == 0
    assert b.dma_cycles - a.dma_cycles == lat + 64 // bw == 108
    fp = a.footprint["input"] + a.footprint["weights"]
    assert b.prologue_cycles - a.prologue_cycles == lat + cdiv(fp + 64, bw) - cdiv(fp, bw) == 108
    assert b.footprint == a.footprint                       # the bias memory is not the buffer
    assert b.accesses["buffer"] == a.accesses["buffer"]
    adds = 32 * 55 * 55
    assert adds == 96_800
    assert b.accesses["mac"] - a.accesses["mac"] == adds
    assert b.energy["mac"] - a.energy["mac"] == adds
    assert b.energy_total - a.energy_total == adds + 200 * 64 == 109_600
    assert b.compute_cycles == a.compute_cycles
    assert b.first_step_cycles == a.first_step_cycles           # the bias does not change a step's compute
    assert b.total_cycles == max(b.compute_cycles + b.prologue_cycles + b.epilogue_cycles,
                                 b.dma_cycles + b.first_step_cycles)
    text = DOC.read_text()
    for figure in ("bias_reads = 32 * 2 = 64", "100 + ceil(64/8) = 108", "96,800", "109,600"):
        assert figure in text, figure
