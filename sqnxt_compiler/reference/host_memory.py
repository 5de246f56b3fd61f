"""How much host memory running a network needs, and how much this process may have:
``sqnxtc check`` refuses a model whose activations cannot fit (exit 4, the sizes named)
before anything is allocated, instead of dying in the middle with a MemoryError.

The need (:func:`memory_need`) is a lower bound from the IR's static shapes; the limits
(:func:`memory_limits`) are upper bounds; so a refused check could not have run.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from ..diagnostics import Location, UnsupportedError
from ..ir.graph import Graph
from .executor import last_uses


@dataclass(frozen=True)
class MemoryNeed:
    """What a check needs at least, in bytes (:func:`memory_need`), and its largest tensor."""
    total: int
    largest: str
    largest_type: object
    largest_bytes: int


def value_bytes(v) -> int:
    """The bytes of IR value ``v``'s array: elements x item size of its static type."""
    return v.type.numel * v.type.np_dtype.itemsize


def live_peak(graph: Graph) -> int:
    """The most bytes of intermediate values alive at once when the executor runs
    ``graph``: in program order, an op's result is alive from that op to its last user
    (the outputs' to the end), its operands while it computes.  Inputs (held by the
    caller) and constants (already in memory) are not counted, nor ops with the ``free``
    trait (views and shape computations: a view's words are its operand's)."""
    order = graph.ops()
    last = last_uses(order)
    live: dict[int, int] = {}
    peak = 0
    for i, op in enumerate(order):
        if op.name in ("sqnxt.input", "sqnxt.output", "sqnxt.constant") or op.has_trait("free"):
            continue
        for r in op.results:
            live[id(r)] = value_bytes(r)
        peak = max(peak, sum(live.values()))
        for v in op.operands:
            if last.get(id(v)) == i:
                live.pop(id(v), None)
    return peak


def memory_need(graph: Graph) -> MemoryNeed:
    """The bytes a check of ``graph`` needs at least, from static shapes alone.

    The rule: each sample draws its inputs in float64 and casts them (the largest input:
    8 + its item size bytes per element), then holds the inputs while onnxruntime runs the
    original model and the executor runs the IR.  onnxruntime's arena keeps what its run
    used (taken as the executor's :func:`live_peak`: the same network, op by op) while the
    executor runs, and its outputs are held for the comparison, so the run needs
    ``inputs + 2 x live_peak + outputs``; the need is the larger of the two phases.  Kernel
    temporaries (a conv's unfolded windows) are left out: it is a lower bound.
    """
    ins = [op.result for op in graph.inputs]
    inputs = sum(value_bytes(v) for v in ins)
    draw = max((v.type.numel * (8 + v.type.np_dtype.itemsize) for v in ins), default=0)
    outputs = sum(value_bytes(v) for v in graph.output_op.operands)
    total = max(draw, inputs + 2 * live_peak(graph) + outputs)
    values = ins + [r for op in graph.ops() if op.name != "sqnxt.constant" for r in op.results]
    big = max(values, key=value_bytes, default=None)
    if big is None:
        return MemoryNeed(total, "", None, 0)
    return MemoryNeed(total, big.name, big.type, value_bytes(big))


#: Limits at or above this many bytes mean "no limit" (RLIM_INFINITY, cgroup's "max").
UNLIMITED = 1 << 60


def _read_ints(path: str) -> list[int] | None:
    """The integers in a small text file (``max`` counts as unlimited), or None."""
    try:
        with open(path) as fh:
            return [UNLIMITED if w == "max" else int(w) for w in fh.read().split()]
    except (OSError, ValueError):
        return None


def _meminfo(key: str) -> int | None:
    """A ``/proc/meminfo`` field in bytes, or None where there is none."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name == key:
                    return int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _vm_size() -> int:
    """This process's address space in use now (``VmSize``), 0 where unknown."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


#: Where a cgroup's memory limit is read (v2, then v1), as the process sees its own cgroup.
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_limits() -> dict[str, int]:
    """At most how many bytes this process may still allocate, by source (only the limits
    that are set): ``the address-space limit, ulimit -v`` (RLIMIT_AS minus the address
    space in use), ``its cgroup's memory limit`` (the whole limit: its page cache could be
    reclaimed), ``the memory available`` (MemAvailable plus free swap, else the free
    physical pages).  Each is an upper bound, as the need is a lower bound
    (:func:`memory_need`): a check refused on them could not have run."""
    out = {}
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and soft < UNLIMITED:
        out["the address-space limit, ulimit -v"] = max(0, soft - _vm_size())
    for path in CGROUP_LIMITS:
        lim = _read_ints(path)
        if lim:
            if lim[0] < UNLIMITED:
                out["its cgroup's memory limit"] = lim[0]
            break
    avail = _meminfo("MemAvailable")
    if avail is not None:
        out["the memory available"] = avail + (_meminfo("SwapFree") or 0)
    else:
        try:
            out["the memory available"] = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            pass
    return out


def human_bytes(n: int) -> str:
    """``n`` bytes for a message: GB (10^9) with one decimal from 1 GB on, else MB."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def memory_refusal(need: MemoryNeed, limits: dict[str, int]) -> str | None:
    """Why the check cannot run (the need beyond the tightest limit), or None if it fits."""
    if not limits:
        return None
    why, have = min(limits.items(), key=lambda kv: kv[1])
    if need.total <= have:
        return None
    shape = "x".join(map(str, need.largest_type.shape))
    return (f"check needs ~{human_bytes(need.total)} for activations (largest tensor "
            f"'{need.largest}' {shape} {need.largest_type.dtype}, {human_bytes(need.largest_bytes)}), "
            f"more than the {human_bytes(have)} this process may use ({why})")


def ensure_memory(graph: Graph, source: str) -> None:
    """Refuse (exit 4, the sizes named) a check whose :func:`memory_need` exceeds
    :func:`memory_limits`, before anything is allocated."""
    why = memory_refusal(memory_need(graph), memory_limits())
    if why is not None:
        raise UnsupportedError(why, Location(file=source))
