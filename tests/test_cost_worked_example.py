"""Recompute the worked example of docs/cost-model.md by hand and compare it with the
doc's numbers and with evaluate()."""
from __future__ import annotations

import re
from pathlib import Path

from sqnxt_compiler.cost import Layer, Mapping, evaluate
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
    total = max(compute + pro + epi, dma)
    macs = 64 * 111 * 111 * 3 * 49
    buf = nx * ny * w + 49 * 3 * 111 * 111 * KB + 2 * (2 * 49 * 64 * 111 * 111 * CB - 64 * 111 * 111) + dram
    energy = macs + macs + 2 * 2 * macs + 6 * buf + 200 * dram
    return dict(compute_cycles=compute, dram_total=dram, transfers=transfers, dma_cycles=dma,
                footprint_total=2 * (fp_in + fp_w + fp_out), prologue=pro, epilogue=epi,
                total_cycles=total, buffer_accesses=buf, energy_total=energy)


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
    total = max(compute + pro + epi, dma)
    buf = 64 * XB * YB * z + 64 * 3 * I * I + 2 * 64 * 111 * 111 * (2 * 1 - 1) + dram
    energy = macs + 2 * macs + 2 * 2 * macs + 6 * buf + 200 * dram
    return dict(compute_cycles=compute, dram_total=dram, transfers=transfers, dma_cycles=dma,
                footprint_total=2 * (fp_in + fp_w + fp_out), prologue=pro, epilogue=epi,
                total_cycles=total, buffer_accesses=buf, energy_total=energy)


def model_figures(r):
    return dict(compute_cycles=r.compute_cycles, dram_total=r.dram["total"], transfers=r.transfers["total"],
                dma_cycles=r.dma_cycles, footprint_total=r.footprint["total"], prologue=r.prologue_cycles,
                epilogue=r.epilogue_cycles, total_cycles=r.total_cycles, buffer_accesses=r.accesses["buffer"],
                energy_total=r.energy_total)


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
