"""``layers.csv``: one row per scheduled layer, flattened from the schedule document.

The header is stable (:data:`COLUMNS`, documented in docs/schedule-format.md, "layers.csv"):
columns are only ever added at the end, with a schedule-format version bump.  Every value
is the schedule.json value of the same layer (``COLUMNS`` names the JSON path of each), so
the CSV and the JSON cannot disagree.
"""
from __future__ import annotations

import csv
import io

#: (column, path in a schedule.json layer object); "a.b" descends, "a[i]" indexes.  A
#: table of data: its rows resemble each other by design (the `duplicates` tool pairs them).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("index", "index"), ("layer", "layer"), ("op", "op"), ("kind", "kind"), ("act", "act"),
    ("C", "shape.C"), ("K", "shape.K"), ("H", "shape.H"), ("W", "shape.W"),
    ("R", "shape.R"), ("S", "shape.S"), ("P", "shape.P"), ("Q", "shape.Q"),
    ("stride_h", "shape.stride[0]"), ("stride_w", "shape.stride[1]"),
    ("pad_top", "shape.pad[0]"), ("pad_left", "shape.pad[1]"),
    ("pad_bottom", "shape.pad[2]"), ("pad_right", "shape.pad[3]"),
    ("groups", "shape.groups"), ("n_inputs", "shape.n_inputs"),
    ("weight_zero_fraction", "shape.weight_zero_fraction"),
    ("input_words", "tensors.input.words"), ("weight_words", "tensors.weights.words"),
    ("output_words", "tensors.output.words"),
    ("dataflow", "mapping.dataflow"), ("order", "mapping.order"),
    ("tile_x", "mapping.tiles.x"), ("tile_y", "mapping.tiles.y"),
    ("tile_c", "mapping.tiles.c"), ("tile_k", "mapping.tiles.k"),
    ("n_x", "cost.tiles_n.x"), ("n_y", "cost.tiles_n.y"),
    ("n_c", "cost.tiles_n.c"), ("n_k", "cost.tiles_n.k"),
    ("macs", "cost.macs"), ("macs_performed", "cost.macs_performed"),
    ("compute_cycles", "cost.compute_cycles"), ("dma_cycles", "cost.dma_cycles"),
    ("prologue_cycles", "cost.prologue_cycles"), ("epilogue_cycles", "cost.epilogue_cycles"),
    ("total_cycles", "cost.total_cycles"),
    ("utilization", "cost.utilization"), ("utilization_dense", "cost.utilization_dense"),
    ("buf_input_words", "cost.footprint.input"), ("buf_weight_words", "cost.footprint.weights"),
    ("buf_output_words", "cost.footprint.outputs"), ("buf_copies", "cost.footprint.copies"),
    ("buf_total_words", "cost.footprint.total"), ("buf_capacity_words", "cost.footprint.capacity"),
    ("dram_input_reads", "cost.dram.input_reads"), ("dram_weight_reads", "cost.dram.weight_reads"),
    ("dram_output_writes", "cost.dram.output_writes"), ("dram_psum_writes", "cost.dram.psum_writes"),
    ("dram_psum_reads", "cost.dram.psum_reads"), ("dram_total", "cost.dram.total"),
    ("transfers_input", "cost.transfers.input"), ("transfers_weights", "cost.transfers.weights"),
    ("transfers_outputs", "cost.transfers.outputs"), ("transfers_psum_reads", "cost.transfers.psum_reads"),
    ("transfers_total", "cost.transfers.total"),
    ("input_refetch", "cost.refetch.input_refetch"), ("weight_refetch", "cost.refetch.weight_refetch"),
    ("output_visits", "cost.refetch.output_visits"),
    ("acc_mac", "cost.accesses.mac"), ("acc_rf", "cost.accesses.rf"),
    ("acc_array", "cost.accesses.array"), ("acc_buffer", "cost.accesses.buffer"),
    ("acc_dram", "cost.accesses.dram"),
    ("energy_mac", "cost.energy.mac"), ("energy_rf", "cost.energy.rf"),
    ("energy_array", "cost.energy.array"), ("energy_buffer", "cost.energy.buffer"),
    ("energy_dram", "cost.energy.dram"), ("energy_total", "cost.energy.total"),
    ("status", "status"), ("solver", "solver"), ("objective", "objective.name"),
    ("objective_value", "objective.value"), ("objective_bound", "objective.bound"),
    ("gap", "objective.gap"), ("tie_break", "tie_break"), ("note", "note"),
    # version 4: the fused residual add
    ("residual", "residual"), ("post_act", "post_act"), ("buf_residual_words", "cost.footprint.residual"),
    ("dram_residual_reads", "cost.dram.residual_reads"), ("transfers_residual", "cost.transfers.residual"),
    # version 8: the bias
    ("dram_bias_reads", "cost.dram.bias_reads"), ("transfers_bias", "cost.transfers.bias"),
)
HEADER = tuple(c for c, _ in COLUMNS)


def lookup(obj, path: str):
    """The value at ``path`` ("a.b[1].c") in a JSON object; None where a step is null."""
    for part in path.split("."):
        idx = None
        if part.endswith("]"):
            part, _, i = part[:-1].partition("[")
            idx = int(i)
        if obj is None:
            return None
        obj = obj[part]
        if idx is not None and obj is not None:
            obj = obj[idx]
    return obj


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


def layer_row(layer: dict) -> list:
    return [_cell(lookup(layer, path)) for _, path in COLUMNS]


def layers_csv(doc: dict) -> str:
    """The CSV text of a schedule document (header + one row per layer, "\\n" line ends)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for layer in doc["layers"]:
        w.writerow(layer_row(layer))
    return buf.getvalue()
