"""The network schedule: every op the machine runs, in program order, with its schedule,
and the network totals.

The network runs one layer at a time (the paper's machine), so network figures are sums
over layers: cycles, MACs, DRAM words, energy per level.  Network utilization is
``sum(MACs performed) / (PEs * sum(total cycles))``: how busy the array is over the whole
run, DMA stalls included.  Ops that are not modelled (see :mod:`sqnxt_compiler.layers`)
are listed with no cost, so nothing is silently dropped.

Ops with the ``host`` trait run on the host CPU (docs/ir.md, "The host partition"): they
are neither layers nor unmodelled ops but *host work*, each with the DRAM words it reads
(its operands that are not constants, through views) and writes (its result) and the
elements it processes (its largest operand or result); the host's time is not modelled.
A host op whose result an accelerator layer reads (through views, shape ops and other
host ops) *splits* the program: the accelerator drains, the host runs, the accelerator
resumes.  Each layer is costed alone, so the cycles do not change; :meth:`host_splits`
counts the places where the accelerator waits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ir.core import Op, view_origin
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
        """The ops the machine runs that the cost model does not model (host ops excepted)."""
        return [r for r in self.rows if r.schedule is None and not r.op.has_trait("host")]

    @property
    def host(self) -> list[Row]:
        """The ops the host CPU runs (the ``host`` trait), in program order."""
        return [r for r in self.rows if r.op.has_trait("host")]

    def host_work(self) -> list[dict]:
        """Per host op (module doc): ``index`` (its position among the non-free ops, as
        schedule.json numbers layers), ``layer``, ``op``, ``words_in`` (DRAM words read:
        its non-constant operands, each once, through views), ``words_out`` (DRAM words
        written: its result), ``elements`` (the largest of its operands and its result)
        and ``feeds_array`` (an accelerator layer reads its result: the program splits)."""
        out = []
        for i, r in enumerate(self.rows):
            if not r.op.has_trait("host"):
                continue
            read = {id(o): o for o in (view_origin(v) for v in r.op.operands)
                    if o.owner is None or o.owner.const_value() is None}
            out.append({"index": i, "layer": host_name(r), "op": r.op.name,
                        "words_in": sum(o.type.numel for o in read.values()),
                        "words_out": r.op.result.type.numel,
                        "elements": max([v.type.numel for v in r.op.operands] + [r.op.result.type.numel]),
                        "feeds_array": _feeds_array(self.graph, r.op)})
        return out

    def host_tail(self) -> dict | None:
        """The host tail of a cut model (docs/ir.md, "The host tail") as schedule.json
        gives it, or None: :meth:`frontend.cut.HostTail.to_json` with ``words_in`` counted
        once per tensor in DRAM (cut values that are views of one tensor, as a squeeze of
        the boxes, share its words) and each read's ``storage`` (that tensor, or
        ``(constant)`` for a value known at compile time, a shape or a constant, which the
        host has without reading DRAM)."""
        tail = self.graph.attrs.get("host_tail")
        if tail is None:
            return None
        d = tail.to_json()
        outs = self.graph.output_op
        by_name = dict(zip(outs.attrs["names"], outs.operands))
        seen: dict[int, int] = {}
        for r in d["reads"]:
            o = view_origin(by_name[r["tensor"]])
            if o.owner is not None and o.owner.const_value() is not None:
                r["storage"] = "(constant)"
                continue
            r["storage"] = o.name
            seen[id(o)] = o.type.numel
        d["words_in"] = sum(seen.values())
        return d

    def host_splits(self, work: list[dict] | None = None) -> int:
        """How many times the accelerator stops for the host: in program order, the array
        layers that come after a host op feeding the array (``feeds_array``) which itself
        follows an array layer, counted once per wait (a host op before the first layer
        runs before the program starts: no split)."""
        feeds = {w["index"] for w in (self.host_work() if work is None else work) if w["feeds_array"]}
        splits, seen, waiting = 0, False, False
        for i, r in enumerate(self.rows):
            if i in feeds and seen:
                waiting = True
            elif r.schedule is not None:
                splits += waiting
                seen, waiting = True, False
        return splits

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
            **self.host_totals(),
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

    def host_totals(self) -> dict:
        """The host work's sums: ``host_ops``, ``host_words_in``, ``host_words_out``,
        ``host_elements``, ``host_splits``."""
        w = self.host_work()
        return {"host_ops": len(w), "host_words_in": sum(x["words_in"] for x in w),
                "host_words_out": sum(x["words_out"] for x in w),
                "host_elements": sum(x["elements"] for x in w), "host_splits": self.host_splits(w)}

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


def host_name(row: Row) -> str:
    """A host op's name in the reports: its layer name, with its ``part`` when an ONNX node
    became one op per output (TopK: ``topk/values``, ``topk/indices``)."""
    part = row.op.attrs.get("part")
    return f"{row.name}/{part}" if part else row.name


def _feeds_array(graph: Graph, op: Op) -> bool:
    """An op the accelerator runs (a ``schedule``) reads ``op``'s result, directly or through
    views, shape ops and other host ops."""
    todo, seen = [op], set()
    while todo:
        o = todo.pop()
        for r in o.results:
            for u in graph.users(r):
                if u.id in seen or u.name == "sqnxt.output":
                    continue
                seen.add(u.id)
                if u.attrs.get("schedule") is not None:
                    return True
                if u.has_trait("free") or u.has_trait("host"):
                    todo.append(u)
    return False


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
