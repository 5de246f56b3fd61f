"""The terminal summary printed at the end of ``sqnxtc compile --target``: the layers that
take the most cycles, and the network totals.  When the pipeline lowered the schedule to a
program, each layer's simulated cycles stand beside its analytical ones and a line gives
the simulated total, the figures ``sqnxtc sim`` prints (rounded the same way)."""
from __future__ import annotations

from .network import NetworkSchedule, host_name


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _stages(net: NetworkSchedule) -> list[tuple[int, int]]:
    """(output rows P, cycles) per stage, highest resolution first (the report's rule)."""
    by: dict[int, int] = {}
    for r in net.scheduled:
        by[r.schedule.layer.P] = by.get(r.schedule.layer.P, 0) + r.schedule.cost.total_cycles
    return sorted(by.items(), reverse=True)


def summary_text(net: NetworkSchedule, top: int = 10, simulated=None) -> str:
    """The summary; ``simulated``: the timing simulation's figures
    (:class:`~.simulated.Simulated`) when the pipeline lowered, else None."""
    t = net.totals()
    tgt = net.target
    rows = sorted(net.scheduled, key=lambda r: (-r.schedule.cost.total_cycles, r.name))[:top]
    sims = ({id(r): s for r, s in zip(net.scheduled, simulated.per_row(net.scheduled))}
            if simulated is not None else {})
    w = max([len(r.name) for r in rows] + [5])
    n_un = t["unmodelled_ops"]
    un = f"{n_un} op{'' if n_un == 1 else 's'} not modelled"
    if n_un:
        names = [r.name for r in net.unmodelled]
        un += f" ({', '.join(names[:5])}{', ...' if n_un > 5 else ''})"
    n_host = t["host_ops"]
    if n_host:
        un += f", {n_host} host op{'' if n_host == 1 else 's'}"
    if net.graph.attrs.get("host_tail") is not None:
        un += ", a host tail"
    n_cv = sum(1 for op in net.graph.ops() if op.has_trait("in_place_parts"))
    n_free = sum(1 for op in net.graph.ops() if op.has_trait("free") and not op.has_trait("structural")) - n_cv
    if n_cv:        # concat-in-place: the parts' producers write into the concat's slices
        un += f", {n_cv} concat{'' if n_cv == 1 else 's'} written in place (no copy)"
    if n_free:      # bookkeeping: views and shape computations move no data (layers.py)
        un += f", {n_free} view/shape op{'' if n_free == 1 else 's'} (no data moved)"
    out = [f"{net.graph.source} on {tgt.name} ({tgt.pe_rows}x{tgt.pe_cols} PEs, "
           f"{tgt.global_buffer_bytes // 1024} KB buffer): {t['layers']} layers "
           f"({t['distinct_layers']} distinct shapes), {un}",
           "",
           f"top {len(rows)} layers by cycles:",
           f"  {'layer':<{w}}  {'kind':<7} {'df':<2} {'tiles x,y,c,k':<16} {'order':<5} "
           f"{'cycles':>10} " + (f"{'simulated':>10} " if simulated is not None else "")
           + f"{'%':>5} {'util':>5} {'DRAM words':>10} {'energy':>9}"]
    total = t["total_cycles"] or 1
    for r in rows:
        s = r.schedule
        m = s.mapping
        tiles = f"{m.tx},{m.ty},{m.tc},{m.tk}"
        sim = f"{round(sims[id(r)].cycles):>10} " if simulated is not None else ""
        out.append(f"  {r.name:<{w}}  {s.layer.kind:<7} {m.dataflow:<2} {tiles:<16} "
                   f"{''.join(m.order):<5} {s.cost.total_cycles:>10} {sim}"
                   f"{100 * s.cost.total_cycles / total:5.1f} {s.cost.utilization:5.2f} "
                   f"{s.cost.dram['total']:>10} {_si(s.cost.energy['total']):>9}")
    e = t["energy"]
    out += ["",
            f"total: {t['total_cycles']} cycles ({t['time_us']} us at {float(tgt.clock_mhz):g} MHz), "
            f"{_si(t['macs'])} MACs, utilization {t['utilization']:.3f}",
            *([simulated_line(t, simulated)] if simulated is not None else []),
            f"       DRAM {_si(t['dram_words']['total'])} words, energy {_si(e['total'])} "
            f"(MAC {_si(e['mac'])}, RF {_si(e['rf'])}, array {_si(e['array'])}, "
            f"buffer {_si(e['buffer'])}, DRAM {_si(e['dram'])})",
            "       by stage (output rows, docs/reports.md): " + ", ".join(
                f"{p}: {100 * c / total:.1f}%" for p, c in _stages(net)),
            "       solver: " + ", ".join(f"{n} {k}" for k, n in t["status"].items())
            + (f", largest gap {max(r.schedule.gap for r in net.scheduled):.4f}"
               if any(r.schedule.gap for r in net.scheduled) else ""),
            plan_line(net, t)]
    if n_host:
        out.append(host_line(net, t))
    tail = net.host_tail()
    if tail is not None:
        out.append(tail_line(tail))
    sparsity = sparsity_line(net)
    if sparsity:
        out.append(sparsity)
    return "\n".join(out) + "\n"


def simulated_line(t: dict, simulated) -> str:
    """The program's simulated total against the analytical sum (``sqnxtc sim``'s totals)."""
    ana = t["total_cycles"]
    ratio = f"{simulated.total_cycles / ana:.3f}" if ana else "-"
    return (f"       simulated: {simulated.total_cycles} cycles (the program's {simulated.instructions} "
            f"instructions in the timing simulator, docs/isa.md), ratio {ratio} to the analytical sum")


def host_line(net: NetworkSchedule, t: dict) -> str:
    """The host work (docs/ir.md, "The host partition"): the ops the host CPU runs, the DRAM
    words they read and write, their elements, and the program splits they cause."""
    names = [host_name(r) for r in net.host]
    n, sp = t["host_ops"], t["host_splits"]
    return (f"       host work: {n} host op{'' if n == 1 else 's'} ({', '.join(names[:5])}"
            f"{', ...' if n > 5 else ''}) read {t['host_words_in']} DRAM words, write "
            f"{t['host_words_out']}, {t['host_elements']} elements (host time not modelled); "
            f"{sp} program split{'' if sp == 1 else 's'} (where the accelerator waits for the host)")


def tail_line(tail: dict) -> str:
    """The host tail of a cut model (docs/ir.md, "The host tail"; ``tail``:
    :meth:`NetworkSchedule.host_tail`)."""
    n = len(tail["ops"])
    return (f"       host tail: {n} node{'' if n == 1 else 's'} from "
            + ", ".join(f"{c['node']} ({c['op']})" for c in tail["cut_at"])
            + f" run on the host after the program (a data-dependent output shape); they read "
            f"{tail['words_in']} DRAM words ({', '.join(r['tensor'] for r in tail['reads'])}); "
            "host time not modelled")


def _pct(new: int, old: int) -> str:
    return f"{100 * (new - old) / old:+.1f}%" if old else "n/a"


def plan_line(net: NetworkSchedule, t: dict) -> str:
    """Where the activations live: the memory plan against every activation through DRAM,
    or the all-DRAM statement (docs/memory-planning.md)."""
    p = net.graph.attrs.get("plan")
    if p is None:
        return ("       activations: all through DRAM (target activation_home = dram; "
                "--activation-home planned keeps some in the buffer)")
    stay = sum(1 for x in p.tensors if x["home"] == "buffer")
    a = p.all_dram
    line = (f"       memory plan ({p.status}): {stay} of {len(p.tensors)} activations stay in the "
            f"buffer; vs all through DRAM: cycles {_pct(t['total_cycles'], a['total_cycles'])}, "
            f"DRAM words {_pct(t['dram_words']['total'], a['dram_words'])}, "
            f"energy {_pct(t['energy']['total'], a['energy'])}")
    w = getattr(p, "without_stacks", None)
    if w is None:
        return line
    band = sum(1 for x in p.tensors if x["home"] == "band")
    layers = sum(len(st["layers"]) for st in p.stacks)
    return (line + f"\n       depth-first: {len(p.stacks)} fused stacks run {layers} layers band by band "
            f"({band} activations only as band windows); vs planned without stacks: cycles "
            f"{_pct(t['total_cycles'], w['total_cycles'])}, DRAM words {_pct(t['dram_words']['total'], w['dram_words'])}, "
            f"energy {_pct(t['energy']['total'], w['energy'])}")


def sparsity_line(net: NetworkSchedule) -> str:
    """A warning when output-stationary layers assume the target's fraction of zero weights
    instead of the model's measured one (it changes their cycles a lot); empty otherwise."""
    frac = net.target.os_weight_zero_fraction
    assumed = [r for r in net.scheduled if r.schedule.layer.is_mac and r.schedule.mapping.dataflow == "OS"
               and r.schedule.layer.weight_zero_fraction is None]
    if not assumed or frac == 0:
        return ""
    return (f"       note: {len(assumed)} OS layers assume {float(frac) * 100:g}% zero weights (the "
            f"target's os_weight_zero_fraction), not this model's: --measured-sparsity counts its zeros")
