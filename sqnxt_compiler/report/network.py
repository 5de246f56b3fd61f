"""The network schedule: every op the machine runs, in program order, with its schedule,
and the network totals.

The network runs one layer at a time (the paper's machine), so network figures are sums
over layers: cycles, MACs, DRAM words, energy per level.  Network utilization is
``sum(MACs performed) / (PEs * sum(total cycles))``: how busy the array is over the whole
run, DMA stalls included.  Ops that are not modelled (see :mod:`sqnxt_compiler.layers`)
are listed with no cost, so nothing is silently dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ir.core import Op
from ..ir.graph import Graph
from ..layers import layer_name

ENERGY_LEVELS = ("mac", "rf", "array", "buffer", "dram")


@dataclass
class Row:
    op: Op
    name: str
    schedule: Any = None  # LayerSchedule, or None when the op is not modelled


@dataclass
class NetworkSchedule:
    graph: Graph
    target: Any
    rows: list[Row] = field(default_factory=list)

    @property
    def scheduled(self) -> list[Row]:
        return [r for r in self.rows if r.schedule is not None]

    @property
    def unmodelled(self) -> list[Row]:
        return [r for r in self.rows if r.schedule is None]

    def totals(self) -> dict:
        """Network sums (module docstring)."""
        s = [r.schedule for r in self.scheduled]
        cyc = sum(x.cost.total_cycles for x in s)
        macs = sum(x.cost.macs for x in s if x.layer.is_mac)
        performed = sum(x.cost.macs_performed for x in s if x.layer.is_mac)
        pes = self.target.num_pes
        return {
            "layers": len(s),
            "distinct_layers": len({x.layer.key() for x in s}),
            "unmodelled_ops": len(self.unmodelled),
            "macs": macs,
            "macs_performed": performed,
            "compute_cycles": sum(x.cost.compute_cycles for x in s),
            "dma_cycles": sum(x.cost.dma_cycles for x in s),
            "total_cycles": cyc,
            "time_us": round(float(cyc / self.target.clock_mhz), 3),
            "utilization": round(performed / (pes * cyc), 6) if cyc else 0.0,
            "dram_words": {k: sum(x.cost.dram[k] for x in s) for k in
                           ("input_reads", "weight_reads", "output_writes", "psum_writes",
                            "psum_reads", "residual_reads", "bias_reads", "total")},
            "energy": {k: sum(x.cost.energy[k] for x in s) for k in ENERGY_LEVELS + ("total",)},
            "status": {st: sum(1 for x in s if x.status == st)
                       for st in sorted({x.status for x in s})},
        }

    def report_totals(self) -> dict:
        """:meth:`totals` and three more figures, as schedule.json's ``totals``:
        ``mac_layers`` (conv and fc layers), ``element_ops`` (the operations of pool, gap
        and add layers, which ``macs`` leaves out: ``macs + element_ops`` is the sum of the
        layers' ``cost.macs``) and ``max_gap`` (the largest per-layer solver gap)."""
        s = [r.schedule for r in self.scheduled]
        t = self.totals()
        out = {"layers": t.pop("layers"), "mac_layers": sum(1 for x in s if x.layer.is_mac)}
        for k, v in t.items():
            out[k] = v
            if k == "macs_performed":
                out["element_ops"] = sum(x.cost.macs for x in s if not x.layer.is_mac)
        out["max_gap"] = max((x.gap for x in s), default=0.0)
        return out


def weight_ops(graph: Graph) -> list[Op]:
    """The ops whose operands 1.. are the network's parameters: those with the
    ``has_weights`` trait (``sqnxt.conv`` and ``sqnxt.fc``)."""
    return [op for op in graph.ops() if op.has_trait("has_weights")]


def count_params(graph: Graph) -> int:
    """Parameters of the compiled network: the elements of the weight and (optional) bias
    operands of every conv and fc op (docs/reports.md, "Params and MACs").  After the
    default pipeline a BatchNormalization is folded into its conv's weights and bias, so it
    adds K (the bias), not its 4K statistics."""
    import math

    from ..ir.ops import layer_operands

    return sum(math.prod(v.type.shape) for op in weight_ops(graph)
               for v in layer_operands(op)[1:3] if v is not None)


def collect(graph: Graph, target) -> NetworkSchedule:
    """The network schedule of a graph the schedule pass has run on."""
    net = NetworkSchedule(graph, target)
    for op in graph.ops():
        if op.has_trait("free"):
            continue
        attr = op.attrs.get("schedule")
        net.rows.append(Row(op, layer_name(op), attr.schedule if attr is not None else None))
    return net
