"""``sqnxtc export --to timeloop``: Timeloop v4 (spec version 0.4) inputs, files only.

Files (docs/interop.md, "Timeloop"):

* ``arch.yaml``: the target as a Timeloop architecture: DRAM, the global buffer, a
  ``PE`` container of ``pe_rows x pe_cols`` (meshY x meshX) with a weight register and an
  accumulator register each, and the MAC;
* ``ert.yaml``: an energy reference table with the target's normalized energies (one
  access = one word), for ``timeloop-model`` in place of Accelergy's estimates;
* ``NNN.problem.yaml`` and ``NNN.mapping.yaml`` per distinct layer (``NNN`` its index in
  schedule.json; the layers of the same shape share them): the problem instance and
  sqnxtc's mapping as Timeloop directives (the DRAM level's temporal factors and
  permutation are the tile loops, the global buffer's the tile's own loops, the ``PE``
  spatial directive the unrolling);
* ``layers.yaml``: every layer, the files it uses, and what the export changed.

Timeloop's factors must multiply exactly to each bound: a spatial unrolling becomes the
largest divisor of the bound not above it, a tile count the divisor of what is left
nearest sqnxtc's; each change is listed.  Run: ``timeloop-model arch.yaml ert.yaml
NNN.problem.yaml NNN.mapping.yaml``.  Checked against the structure of the example
designs Timeloop's exercises ship (docs/interop.md); sqnxtc does not run Timeloop.
"""
from __future__ import annotations

from .nest import LoopNest, build, split
from .yamltext import Comment, Tagged, dump

FILES = ("arch.yaml", "ert.yaml", "layers.yaml")
TL = {"B": "N", "K": "M", "C": "C", "OY": "P", "OX": "Q", "FY": "R", "FX": "S", "G": "G"}


def _largest_divisor_at_most(n: int, s: int) -> int:
    return max(d for d in range(1, min(n, s) + 1) if n % d == 0)


def factors(n: LoopNest, counts: dict[str, int]) -> tuple[dict, dict, dict, list[str]]:
    """(spatial, tile-level, DRAM-level) factors by Timeloop dimension, and the changes."""
    dims = {TL[d]: v for d, v in n.dims.items()}
    sp_of = {d: s for d, s in n.spatial.values()}
    zz_loop = {"OX": "x", "OY": "y", "C": "c", "K": "k", "G": "k"}
    spatial, inner, outer, changes = {}, {}, {}, []
    for d, N in n.dims.items():
        t = TL[d]
        if d in ("B", "FX", "FY") or (d == "G" and n.kind == "conv" and "K" in n.dims):
            inner[t] = N if d in ("FX", "FY") else 1
            if d == "G" and "K" in n.dims:      # a grouped conv: groups one after another
                inner[t], outer[t] = 1, N
            continue
        s = sp_of.get(d, 1)
        s2 = _largest_divisor_at_most(N, s)
        T = N // s2
        cnt = counts[zz_loop[d]]
        b = split(T, cnt)
        spatial[t], inner[t], outer[t] = s2, T // b, b
        if s2 != s:
            changes.append(f"{t}: unrolled {s2} wide, not {s} (Timeloop's factors divide {N})")
        if b != cnt:
            changes.append(f"{t}: {b} tiles, not sqnxtc's {cnt}")
    for t in dims:
        for f in (spatial, inner, outer):
            f.setdefault(t, 1)
    return spatial, inner, outer, changes


def _fl(f: dict, order: list[str]) -> list[str]:
    return [f"{t}={f[t]}" for t in order]


def problem(n: LoopNest) -> dict:
    d = {TL[k]: v for k, v in n.dims.items()}
    inst: dict = dict(d)
    w = []
    if n.kind in ("conv", "fc") and "K" in n.dims:
        g = [["G"]] if "G" in n.dims else []
        if "R" in d:
            inp = [[["N"]]] + [[x] for x in g] + [[["C"]], [["R", "Hdilation"], ["P", "Hstride"]],
                                                  [["S", "Wdilation"], ["Q", "Wstride"]]]
            w = [[x] for x in g] + [[["M"]], [["C"]], [["R"]], [["S"]]]
        else:
            inp = [[["N"]]] + [[x] for x in g] + [[["C"]]] + ([[["P"]], [["Q"]]] if "P" in d else [])
            w = [[x] for x in g] + [[["M"]], [["C"]]]
        out = [[["N"]]] + [[x] for x in g] + [[["M"]]] + ([[["P"]], [["Q"]]] if "P" in d else [])
    else:   # channel-wise: depthwise conv, pools, gap, add
        if "R" in d:
            inp = [[["N"]], [["G"]], [["R", "Hdilation"], ["P", "Hstride"]], [["S", "Wdilation"], ["Q", "Wstride"]]]
        else:
            inp = [[["N"]], [["G"]], [["P"]], [["Q"]]]
        out = [[["N"]], [["G"]], [["P"]], [["Q"]]]
        if n.has_weights and n.kind == "conv":
            w = [[["G"]]] + ([[["R"]], [["S"]]] if "R" in d else [])
        elif n.kind == "add":
            w = inp     # the second input tensor, as "Weights" (ZigZag's convention too)
    spaces = []
    if w:
        spaces.append({"name": "Weights", "projection": w})
    spaces.append({"name": "Inputs", "projection": inp})
    spaces.append({"name": "Outputs", "projection": out, "read_write": True})
    coeffs = []
    if "R" in d:
        sh, sw = (int(x.split("=")[1].split("*")[0]) for x in n.relations[::-1])
        dh, dw = (int(x.split("+")[1].split("*")[0]) for x in n.relations[::-1])
        coeffs = [{"name": "Hstride", "default": 1}, {"name": "Wstride", "default": 1},
                  {"name": "Hdilation", "default": 1}, {"name": "Wdilation", "default": 1}]
        inst.update({"Hstride": sh, "Wstride": sw, "Hdilation": dh, "Wdilation": dw})
    shape: dict = {"name": n.name, "dimensions": list(d)}
    if coeffs:
        shape["coefficients"] = coeffs
    shape["data_spaces"] = spaces
    return {"problem": {"version": 0.4, "shape": shape, "instance": inst}}


def mapping(n: LoopNest, rec: dict, counts: dict[str, int]) -> tuple[dict, list[str]]:
    spatial, inner, outer, changes = factors(n, counts)
    dims = [TL[d] for d in n.dims]
    in_order = [TL[d] for d, _ in n.inner]
    in_order += [t for t in dims if t not in in_order]
    out_order = [TL[d] for d, _ in n.outer]
    out_order += [t for t in dims if t not in out_order]
    xd = [TL[d] for dim, (d, _s) in n.spatial.items() if dim == "D2"]
    yd = [TL[d] for dim, (d, _s) in n.spatial.items() if dim == "D1"]
    sp_order = xd + yd + [t for t in dims if t not in xd + yd]
    m = rec["mapping"]
    t = m["tiles"]
    weights = ["Weights"] if n.has_weights else []
    directives = [
        Comment(f"sqnxtc: {m['dataflow']} tx={t['x']} ty={t['y']} tc={t['c']} tk={t['k']} order {m['order']} "
                f"(outermost first); permutations here are inner to outer"),
        {"target": "DRAM", "type": "temporal", Comment("the tile loops"): None,
         "factors": _fl(outer, out_order), "permutation": out_order},
        {"target": "global_buffer", "type": "temporal", Comment("the loops inside one tile"): None,
         "factors": _fl(inner, in_order), "permutation": in_order},
        {"target": "PE", "type": "spatial",
         Comment("meshX = the array's columns (D2), meshY = its rows (D1): split = the dimensions on X"): None,
         "factors": _fl(spatial, sp_order), "permutation": sp_order, "split": len(xd)},
        {"target": "global_buffer", "type": "datatype", "keep": weights + ["Inputs", "Outputs"], "bypass": []},
        {"target": "weight_reg", "type": "datatype", "keep": weights,
         "bypass": ["Inputs", "Outputs"]},
        {"target": "accumulator", "type": "datatype", "keep": ["Outputs"], "bypass": weights + ["Inputs"]},
    ]
    return {"mapping": directives}, changes


def architecture(t) -> dict:
    wb = t.word_bits
    wide = t.pe_rows * t.pe_cols * t.psum_words
    acc = 2 if t.os_double_buffered_accumulators else 1
    return {"architecture": {"version": 0.4, "nodes": [
        Tagged("Container", {"name": "system"}),
        Tagged("Component", {
            "name": "DRAM", "class": "DRAM",
            Comment(f"{t.dram_words_per_cycle} words a cycle; dram.latency_cycles = {t.dram_latency_cycles} per "
                    "DMA transfer has no Timeloop equivalent (not modelled)"): None,
            "attributes": {"type": "LPDDR4", "width": wb, "datawidth": wb,
                           "read_bandwidth": int(t.dram_words_per_cycle),
                           "write_bandwidth": int(t.dram_words_per_cycle)}}),
        Tagged("Container", {"name": f"sqnxtc_{t.name}"}),
        Tagged("Component", {
            "name": "global_buffer", "class": "SRAM",
            Comment(f"{t.global_buffer_bytes} bytes shared by the three tensors; the array side is not "
                    f"bandwidth-limited in sqnxtc's model but for the weight-block load and the drain "
                    f"({t.port_words_per_cycle} words a cycle)"): None,
            "attributes": {"depth": t.global_buffer_bytes * 8 // wb, "width": wb, "datawidth": wb,
                           "read_bandwidth": wide, "write_bandwidth": wide}}),
        Tagged("Container", {"name": "PE", "spatial": {"meshX": t.pe_cols, "meshY": t.pe_rows}}),
        Tagged("Parallel", {"nodes": [
            Tagged("Component", {"name": "weight_reg", "class": "storage", "subclass": "aladdin_register",
                                 "attributes": {"depth": 1, "width": wb, "datawidth": wb},
                                 "constraints": {"dataspace": {"keep": ["Weights"]}}}),
            Tagged("Component", {"name": "accumulator", "class": "storage", "subclass": "aladdin_register",
                                 "attributes": {"depth": acc, "width": t.psum_bits, "datawidth": t.psum_bits},
                                 "constraints": {"dataspace": {"keep": ["Outputs"]}}}),
        ]}),
        Tagged("Component", {"name": "mac", "class": "intmac",
                             "attributes": {"multiplier_width": wb, "adder_width": t.psum_bits}}),
    ]}}


def ert(t) -> dict:
    def table(name, n, e):
        return {"name": f"system_top_level.{name}[1..{n}]",
                "actions": [{"name": a, "arguments": {}, "energy": float(e)} for a in ("read", "write", "update")]
                + [{"name": "leak", "arguments": {}, "energy": 0.0}]}
    pes = t.pe_rows * t.pe_cols
    return {"ERT": {"version": "0.4", "tables": [
        table("DRAM", 1, t.e_dram), table("global_buffer", 1, t.e_buffer),
        table("weight_reg", pes, t.e_rf), table("accumulator", pes, t.e_rf),
        {"name": f"system_top_level.mac[1..{pes}]",
         "actions": [{"name": "compute", "arguments": {}, "energy": float(t.e_mac)},
                     {"name": "leak", "arguments": {}, "energy": 0.0}]}]}}


def _header(result, what: str) -> str:
    doc = result.document
    return (f"{what}\nWritten by sqnxtc {doc['tool']['sqnxtc']} (sqnxtc export --to timeloop) from "
            f"{doc['model']['source']} on target {doc['target']['name']}; activation home "
            f"{doc['target']['fields']['dram.activation_home']}. See docs/interop.md.")


def export(result) -> dict[str, str]:
    """The files (name -> text) for ``result`` (a compile with a target)."""
    t = result.target
    doc = result.document
    files = {"arch.yaml": dump(architecture(t), _header(result, "Timeloop v4 architecture.")),
             "ert.yaml": dump(ert(t), _header(result, "Energy reference table: the target's normalized "
                                                      "energies, one access = one word."))}
    first: dict = {}
    index = []
    for i, row in enumerate(result.network.scheduled):
        s = row.schedule
        n = build(i, s, t)
        if n is None:
            index.append({"name": row.name, "exported": False, "why": f"{s.layer.kind}: no Timeloop problem written"})
            continue
        key = s.layer.key()
        if key not in first:
            first[key] = i
            rec = doc["layers"][i]
            counts = {q: nb for q, (nb, _b) in n.counts.items()}
            mp, changes = mapping(n, rec, counts)
            stem = f"{i:03d}"
            prob = problem(n)
            head = _header(result, f"Timeloop v4 problem of layer {n.name}.")
            files[f"{stem}.problem.yaml"] = dump(prob, head)
            note = "\n".join(n.differs + changes)
            files[f"{stem}.mapping.yaml"] = dump(mp, _header(result, f"sqnxtc's mapping of layer {n.name}.")
                                                 + ("\n" + note if note else ""))
            first[(key, "changes")] = changes
        stem = f"{first[key]:03d}"
        index.append({"name": row.name, "exported": True, "problem": f"{stem}.problem.yaml",
                      "mapping": f"{stem}.mapping.yaml", "changes": list(first[(key, "changes")]),
                      "differs": list(n.differs)})
    files["layers.yaml"] = dump({"format": "sqnxtc-interop-timeloop", "version": 1, "layers": index},
                                _header(result, "Every layer and its Timeloop files."))
    return files
