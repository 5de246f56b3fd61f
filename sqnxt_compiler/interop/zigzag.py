"""``sqnxtc export --to zigzag``: ZigZag's inputs for a compiled network.

Files (docs/interop.md, "ZigZag"):

* ``workload.yaml``: ZigZag's layer list, one entry per exported layer (conv, fc, pools,
  gap, add), ``operand_source`` following the network's edges;
* ``accelerator.yaml``: the target as a ZigZag core: the PE array, a weight register and
  the accumulators per PE, the global buffer, DRAM, with the target's energies;
* ``mapping.yaml``: sqnxtc's mapping of every layer, fixed: its spatial unrolling and its
  complete temporal ordering (the tile's loops, then the tile loops in sqnxtc's order), so
  ZigZag evaluates that mapping instead of searching one;
* ``mapping_search.yaml``: no mapping but the operand links: ZigZag searches its own;
* ``manifest.yaml``: per layer, sqnxtc's mapping as schedule.json has it, its figures,
  where the tile loops begin in the ordering, and what the export changed or could not say;
* ``README.md``: how to run ZigZag on them.

Every file is a pure function of the compile's schedule (the same compile gives the same
bytes).
"""
from __future__ import annotations

from .nest import COMPARED_WORDS, EXCLUDED_WORDS, LoopNest, build, compared_words, producers
from .yamltext import Comment, dump

FILES = ("workload.yaml", "accelerator.yaml", "mapping.yaml", "mapping_search.yaml", "manifest.yaml",
         "README.md")
LINKS = {"O": "O", "W": "I2", "I": "I1"}


def _nests(result) -> tuple[list[LoopNest], list[str]]:
    target = result.target
    nests, skipped = [], []
    for i, row in enumerate(result.network.scheduled):
        n = build(i, row.schedule, target)
        if n is None:
            skipped.append(f"{row.name} ({row.schedule.layer.kind})")
        else:
            nests.append(n)
    return nests, skipped


def _header(result, what: str) -> str:
    doc = result.document
    return (f"{what}\n"
            f"Written by sqnxtc {doc['tool']['sqnxtc']} (sqnxtc export --to zigzag) from {doc['model']['source']} "
            f"on target {doc['target']['name']}\n"
            f"(fingerprint {doc['target']['fingerprint'][:16]}); activation home "
            f"{doc['target']['fields']['dram.activation_home']}. See docs/interop.md.")


def workload(result, nests: list[LoopNest]) -> list:
    t = result.target
    zid = {n.index: j for j, n in enumerate(nests)}
    src = producers(result)
    out: list = []
    for j, n in enumerate(nests):
        ins = [zid[s] for s in src.get(n.index, []) if s in zid]
        entry: dict = {"id": j, "name": n.name}
        for line in n.differs + n.notes:
            entry[Comment(line)] = None
        entry.update({"operator_type": n.op_type, "equation": n.equation})
        if n.relations:
            entry["dimension_relations"] = n.relations
        entry["loop_dims"] = list(n.dims)
        entry["loop_sizes"] = list(n.dims.values())
        prec = {"I": t.word_bits, "W": t.word_bits if n.has_weights else 0, "O": t.psum_bits,
                "O_final": t.word_bits}
        entry["operand_precision"] = prec
        if n.kind == "add":
            a = ins[0] if ins else j
            b = ins[1] if len(ins) > 1 else j
            entry["operand_source"] = {"W": b, "I": a}
        else:
            entry["operand_source"] = {"W": j, "I": ins[0] if ins else j}
        pr = [d for d in ("IX", "IY") if n.relations and d in n.padding]
        if pr and any(n.padding[d] != (0, 0) for d in pr):
            entry["pr_loop_dims"] = pr
            entry["padding"] = [list(n.padding[d]) for d in pr]
        out.append(entry)
    return out


def accelerator(result) -> dict:
    t = result.target
    wb = t.word_bits
    dram_bw = int(t.dram_words_per_cycle * wb)
    wide = t.pe_rows * t.pe_cols * t.psum_bits
    acc = 2 * t.psum_bits if t.os_double_buffered_accumulators else t.psum_bits

    def ports(op_sets, rbw, wbw, rw=False):
        reads = [f"{o}, {d}" for o, ds in op_sets for d in ds if d in ("tl", "th")]
        writes = [f"{o}, {d}" for o, ds in op_sets for d in ds if d in ("fh", "fl")]
        if rw:
            return [{"name": "rw_port_1", "type": "read_write", "bandwidth_min": wb, "bandwidth_max": rbw,
                     "allocation": reads + writes}]
        return [{"name": "r_port_1", "type": "read", "bandwidth_min": wb, "bandwidth_max": rbw,
                 "allocation": reads},
                {"name": "w_port_1", "type": "write", "bandwidth_min": wb, "bandwidth_max": wbw,
                 "allocation": writes}]

    mems = {
        Comment("per PE: the stationary weight (WS holds one weight in the PE's register file)"): None,
        "rf_weight": {"size": wb, "r_cost": float(t.e_rf), "w_cost": float(t.e_rf), "area": 0.0, "latency": 1,
                      "operands": ["I2"], "ports": ports([("I2", ("tl", "fh"))], wb, wb),
                      "served_dimensions": []},
        Comment(f"per PE: the accumulators ({acc // t.psum_bits} x {t.psum_bits}-bit partial sums of the "
                f"{t.rf_words_per_pe}-word register file)"): None,
        "rf_acc": {"size": acc, "r_cost": float(t.e_rf), "w_cost": float(t.e_rf), "area": 0.0, "latency": 1,
                   "operands": ["O"], "ports": ports([("O", ("tl", "th", "fh", "fl"))], t.psum_bits, t.psum_bits),
                   "served_dimensions": []},
        Comment(f"the global buffer: {t.global_buffer_bytes} bytes shared by the three tensors. Its ports are as wide "
                f"as the array's inputs and partial sums ({t.pe_rows} x {t.pe_cols} partial sums a cycle): sqnxtc's "
                f"model limits only the weight-block load and the accumulator drain by its "
                f"{t.port_words_per_cycle}-word port, and ZigZag prices a port by its full width, so one width "
                f"keeps energy.buffer = {t.e_buffer} per word on every port"): None,
        "global_buffer": {"size": t.global_buffer_bytes * 8, "r_cost": float(t.e_buffer * wide // wb),
                          "w_cost": float(t.e_buffer * wide // wb), "area": 0.0, "latency": 1,
                          "operands": ["I1", "I2", "O"],
                          "ports": [
                              Comment("the DRAM side and the weights"),
                              {"name": "r_port_1", "type": "read", "bandwidth_min": wb, "bandwidth_max": wide,
                               "allocation": ["I2, tl", "O, th"]},
                              {"name": "w_port_1", "type": "write", "bandwidth_min": wb, "bandwidth_max": wide,
                               "allocation": ["I1, fh", "I2, fh", "O, fh"]},
                              Comment("the array side: every PE's input and partial sum"),
                              {"name": "r_port_2", "type": "read", "bandwidth_min": wb, "bandwidth_max": wide,
                               "allocation": ["I1, tl", "O, tl"]},
                              {"name": "w_port_2", "type": "write", "bandwidth_min": wb, "bandwidth_max": wide,
                               "allocation": ["O, fl"]}],
                          "served_dimensions": ["D1", "D2"],
                          "force_double_buffering": bool(t.double_buffering)},
        Comment(f"DRAM: {t.dram_words_per_cycle} words a cycle ({t.dram_bandwidth_gb_per_s} GB/s at "
                f"{t.clock_mhz} MHz); energy.dram {t.e_dram} per word.\n"
                f"dram.latency_cycles = {t.dram_latency_cycles} per DMA transfer has no ZigZag equivalent "
                f"(ZigZag's memory latency is not a per-transfer cost): written as latency, not modelled."): None,
        "dram": {"size": 2 ** 40, "r_cost": float(t.e_dram * dram_bw // wb), "w_cost": float(t.e_dram * dram_bw // wb),
                 "area": 0.0, "latency": t.dram_latency_cycles, "operands": ["I1", "I2", "O"],
                 "ports": ports([("I1", ("tl", "fh")), ("I2", ("tl", "fh")), ("O", ("tl", "th", "fh", "fl"))],
                                dram_bw, dram_bw, rw=True),
                 "served_dimensions": ["D1", "D2"]},
    }
    return {
        "name": f"sqnxtc-{t.name}",
        "memories": mems,
        "operational_array": {
            Comment(f"{t.pe_rows} x {t.pe_cols} PEs of {wb}-bit MACs: D1 the rows, D2 the columns "
                    f"(energy.mac {t.e_mac}); the array network's energy (energy.array) has no ZigZag term"): None,
            "unit_energy": float(t.e_mac), "unit_area": 1.0, "dimensions": ["D1", "D2"],
            "sizes": [t.pe_rows, t.pe_cols]},
    }


def _ordering_items(n: LoopNest, order: str) -> list:
    items: list = [Comment("the tile's loops (global buffer level), innermost first")]
    items += [[d, f] for d, f in n.inner]
    items.append(Comment(f"the tile loops (DRAM level), order {order} outermost first: here innermost first"))
    items += [[d, f] for d, f in n.outer]
    return items


def _full_spatial(n: LoopNest) -> dict[str, tuple[str, int]]:
    """The spatial unrolling on both array dimensions: one the layer does not unroll gets
    a loop of it unrolled once (ZigZag would otherwise search an unrolling for it)."""
    unit = next(d for d in n.dims if d != "B")
    return {dim: n.spatial.get(dim, (unit, 1)) for dim in ("D1", "D2")}


def mapping(result, nests: list[LoopNest]) -> list:
    t = result.target
    doc = result.document["layers"]
    out: list = [{"name": "default",
                  Comment("unused by the exported layers (each has its own entry below); ZigZag needs one"): None,
                  "spatial_mapping": {"D1": [f"C, {t.pe_rows}"], "D2": [f"K, {t.pe_cols}"]},
                  "memory_operand_links": dict(LINKS)}]
    for n in nests:
        m = doc[n.index]["mapping"]
        tl = m["tiles"]
        e: dict = {"name": n.name,
                   Comment(f"sqnxtc: {m['dataflow']} tx={tl['x']} ty={tl['y']} tc={tl['c']} tk={tl['k']} "
                           f"order {m['order']}"): None}
        e["spatial_mapping"] = {dim: [f"{d}, {s}"] for dim, (d, s) in _full_spatial(n).items()}
        if n.ordering:
            e["temporal_ordering"] = _ordering_items(n, m["order"])
        e["memory_operand_links"] = dict(LINKS)
        out.append(e)
    return out


def mapping_search() -> list:
    return [{"name": "default", Comment("no spatial mapping, no ordering: ZigZag searches both"): None,
             "memory_operand_links": dict(LINKS)}]


def manifest(result, nests: list[LoopNest], skipped: list[str]) -> dict:
    doc = result.document
    layers = []
    for n in nests:
        rec = doc["layers"][n.index]
        c = rec["cost"]
        layers.append({
            "name": n.name, "index": n.index, "kind": n.kind,
            "mapping": {"dataflow": rec["mapping"]["dataflow"], "tiles": dict(rec["mapping"]["tiles"]),
                        "order": rec["mapping"]["order"]},
            "tiles_n": dict(c["tiles_n"]),
            "exported_tiles_n": {q: b for q, (_n, b) in n.counts.items()},
            "tile_loops_from": len(n.inner),
            "spatial": {dim: [d, s] for dim, (d, s) in n.spatial.items()},
            "sqnxtc": {"total_cycles": c["total_cycles"], "compute_cycles": c["compute_cycles"],
                       "dram_words": c["dram"]["total"], "compared_words": compared_words(c["dram"]),
                       **{k: c["dram"][k] for k in COMPARED_WORDS + EXCLUDED_WORDS},
                       "energy": c["energy"]["total"]},
            "words_kept": n.words_kept,
            "notes": list(n.notes),
            "differs": list(n.differs),
        })
    return {"format": "sqnxtc-interop-manifest", "version": 1, "tool": "zigzag",
            "model": doc["model"]["source"], "target": doc["target"]["name"],
            "activation_home": doc["target"]["fields"]["dram.activation_home"],
            "compared_words": list(COMPARED_WORDS), "excluded_words": list(EXCLUDED_WORDS),
            "not_exported": skipped, "layers": layers}


README = """# ZigZag inputs written by sqnxtc

Model {model}, target {target}, activation home {home}.

    pip install 'sqnxtc[interop]'      # zigzag-dse, Python >= 3.11

ZigZag evaluating sqnxtc's mapping (every layer's spatial unrolling and complete temporal
ordering are fixed in mapping.yaml, so ZigZag does not search):

    from zigzag.api import get_hardware_performance_zigzag
    energy, latency, cmes = get_hardware_performance_zigzag(
        "workload.yaml", "accelerator.yaml", "mapping.yaml", opt="latency", dump_folder="zz-out")

ZigZag's memory allocator still decides at which memory level each loop of the ordering
sits; sqnxtc's tile boundary (the global buffer holds one tile of each tensor, the tile
loops run from DRAM) is `tile_loops_from` in manifest.yaml, and
`python -m sqnxt_compiler.interop.zigzag_eval DIR` evaluates the mapping with exactly that
boundary (ZigZag's own cost model, sqnxtc's allocation), beside ZigZag's allocation and
ZigZag's own search (mapping_search.yaml).

What the export does with what ZigZag has no word for (DRAM latency, ragged tiles, the OS
zero-weight skip, resident activations, fused epilogues, the bias): docs/interop.md of
sqnxtc; each layer's entry in manifest.yaml and its comments in workload.yaml say which
applied. Not exported (no ZigZag operator): {skipped}.
"""


def export(result) -> dict[str, str]:
    """The files (name -> text) for ``result`` (a compile with a target)."""
    nests, skipped = _nests(result)
    doc = result.document
    home = doc["target"]["fields"]["dram.activation_home"]
    return {
        "workload.yaml": dump(workload(result, nests), _header(result, "ZigZag workload: one entry per layer.")),
        "accelerator.yaml": dump(accelerator(result), _header(result, "ZigZag accelerator: one core.")),
        "mapping.yaml": dump(mapping(result, nests), _header(
            result, "ZigZag mapping: sqnxtc's mapping of every layer, fixed (spatial unrolling and the complete "
                    "temporal ordering, innermost loop first).")),
        "mapping_search.yaml": dump(mapping_search(), _header(result, "ZigZag mapping for its own search.")),
        "manifest.yaml": dump(manifest(result, nests, skipped), _header(
            result, "What sqnxtc scheduled, per exported layer, and what the export changed.")),
        "README.md": README.format(model=doc["model"]["source"], target=doc["target"]["name"], home=home,
                                   skipped=", ".join(skipped) or "none"),
    }
