"""The program verifier: checks a lowered network (:class:`~.lower.Lowered`) beyond the
record fields (``isa.verify_fields``, run when each record is made) and the structure
(``isa.verify_program``).

* **Tokens**: every counter balanced at FINISH (``isa.token_balance``) and, in program
  order, never popped more often than pushed so far (the n-th pop after the n-th push:
  deadlock-free whatever the queue depths, docs/isa.md).
* **Boxes**: every LOAD / STORE box inside the DRAM region its kind names for its layer
  (the layer's input tensors, weights, bias, output, residual, partial-sum scratch) and
  inside the buffer slot of its kind (the bias box inside the bias memory: ``K`` entries);
  every COMPUTE operand address inside its slot or its resident tensor (an add's operand
  2 at ``in2_addr + d2`` inside its resident tensor).  The regions of the new kinds: a
  concat's input (its parts laid out as one tensor), an eltwise layer's parameter vectors
  (its "weight" region, or the activation holding its one vector).
* **Buffer regions**: per layer, the tile slots and the resident tensors live at the step
  inside the buffer and pairwise disjoint.
* **Counts the schedule implies**: per layer, COMPUTEs == tiles; LOADs and STOREs per kind
  == the cost model's ``CostReport.transfers`` (input, weights, outputs = output + psum
  STOREs, psum_reads, residual) and their words == ``CostReport.dram`` (input_reads,
  weight_reads, output_writes, psum_writes, psum_reads, residual_reads, bias_reads),
  exactly, for every layer kind (:func:`verify_lowered` also returns the bias LOADs).

A failed check is a bug of the lowering: a RuntimeError naming the layer and the check.
"""
from __future__ import annotations

from collections import Counter

from .isa import FINISH, NEXT_QUEUE as _NEXT, PREV_QUEUE as _PREV, TOKEN_COUNTERS, token_balance, verify_program



def _fail(info, check: str, msg: str):
    where = f"layer {info.index} '{info.name}'" if info is not None else "program"
    return RuntimeError(f"program verification failed: {where}: {check}: {msg}")


def check_tokens(prog) -> None:
    """Balanced counters, and no pop before its push in program order."""
    bal = dict.fromkeys(TOKEN_COUNTERS, 0)
    for i, insn in enumerate(prog.insns):
        q = insn.queue
        for flag, ctr in (("pop_prev", lambda: f"{_PREV[q]}->{q}"), ("pop_next", lambda: f"{_NEXT[q]}->{q}")):
            if getattr(insn, flag, 0):
                c = ctr()
                bal[c] -= 1
                if bal[c] < 0:
                    raise _fail(None, "tokens", f"instruction {i} ({insn.mnemonic}) pops {c} before any "
                                                f"unpopped push")
        if getattr(insn, "push_next", 0):
            bal[f"{q}->{_NEXT[q]}"] += 1
        if getattr(insn, "push_prev", 0):
            bal[f"{q}->{_PREV[q]}"] += 1
    total = token_balance(prog)
    if any(total.values()) or any(bal.values()):
        raise _fail(None, "tokens", f"unbalanced at FINISH: {total}")


def _dram_span(insn) -> tuple[int, int]:
    last = insn.dram + (insn.n2 - 1) * insn.ds2 + (insn.n1 - 1) * insn.ds1 + (insn.n0 - 1) * insn.ds0
    return insn.dram, last + insn.ew


def _buf_words(insn) -> int:
    pt = getattr(insn, "pt", 0) + getattr(insn, "pb", 0)
    pl = getattr(insn, "pl", 0) + getattr(insn, "pr", 0)
    return insn.n2 * (insn.n1 + pt) * (insn.n0 + pl) * insn.ew


def _inside(lo: int, hi: int, regions) -> bool:
    return any(a <= lo and hi <= a + n for a, n in regions)


def verify_lowered(low) -> dict:
    """Every check of the module doc; returns what was checked: ``layers`` (the layers
    whose counts were compared with the cost model), ``bias_loads``, ``bias_words``."""
    prog, infos, target = low.program, low.layers, low.target
    problems = verify_program(prog)
    if problems:
        i, msg = problems[0]
        raise _fail(None, "structure", f"instruction {i}: {msg}")
    check_tokens(prog)
    if len(prog.layers) != len(infos):
        raise _fail(None, "descriptors", f"{len(prog.layers)} descriptors for {len(infos)} layers")
    B = target.buffer_words
    # ---- buffer regions per layer ----
    for info in infos:
        regions = [(f"slot {r}/{c}", a, n) for (r, c), (a, n) in info.slots.items()]
        regions += [(f"resident '{name}'", a, n) for name, a, n in info.live]
        for name, a, n in regions:
            if a < 0 or a + n > B:
                raise _fail(info, "buffer", f"{name} [{a}, {a + n}) outside the buffer of {B} words")
        spans = sorted((a, a + n, name) for name, a, n in regions if n)
        for (a0, b0, n0), (a1, b1, n1) in zip(spans, spans[1:]):
            if a1 < b0:
                raise _fail(info, "overlap", f"{n0} [{a0}, {b0}) overlaps {n1} [{a1}, {b1})")
    # ---- instructions ----
    counts = [Counter() for _ in infos]
    bias_loads = bias_words = 0
    for i, insn in enumerate(prog.insns):
        if insn.RECORD is FINISH:
            continue
        info = infos[insn.layer]
        c = counts[insn.layer]
        mn = insn.mnemonic
        if mn == "SYNC":
            continue
        slots = lambda role: [v for (r, _c), v in info.slots.items() if r == role]  # noqa: E731
        if mn == "COMPUTE":
            c["compute"] += 1
            res = info.resident
            checks = [("in_addr", insn.in_addr, slots("input") + [res[k] for k in ("in0",) if k in res])]
            if info.schedule.layer.has_weights:
                checks.append(("w_addr", insn.w_addr, slots("weight")))
            checks.append(("acc_addr", insn.acc_addr, slots("acc")))
            checks.append(("out_addr", insn.out_addr, slots("acc") + [res[k] for k in ("out",) if k in res]))
            # the residual is read by the finishing COMPUTE only
            if (info.schedule.layer.epilogue.residual and insn.fin) or info.schedule.layer.n_inputs > 1:
                checks.append(("in2_addr", insn.in2_addr, slots("residual") + slots("input")
                               + [res[k] for k in ("residual", "in1") if k in res]))
            if insn.d2:
                checks.append(("in2_addr + d2", insn.in2_addr + insn.d2, [res[k] for k in ("in2",) if k in res]))
            for fname, addr, regs in checks:
                if not _inside(addr, addr + 1, regs):
                    raise _fail(info, "compute operand", f"instruction {i}: {fname}={addr} in no region of it")
            continue
        kind = insn.kind
        lo, hi = _dram_span(insn)
        words = insn.n0 * insn.n1 * insn.n2 * insn.ew
        if mn == "LOAD" and kind == "bias":
            r = info.dram["bias"]
            if r is None or not (r.base <= lo and hi <= r.end):
                raise _fail(info, "dram box", f"instruction {i}: bias box [{lo}, {hi}) outside its region")
            if insn.buf + insn.n0 > info.schedule.layer.K:
                raise _fail(info, "buffer box", f"instruction {i}: bias entries past the layer's K")
            bias_loads += 1
            bias_words += words
            c["LOAD:bias"] += 1
            c["LOAD:bias:words"] += words
            continue
        if kind == "input":
            dram = info.dram["input"]
        elif kind == "output":
            dram = [info.dram["output"]] if info.dram["output"] is not None else []
        else:
            key = "weight" if kind == "weight" else kind
            dram = [info.dram[key]] if info.dram[key] is not None else []
        if not any(r.base <= lo and hi <= r.end for r in dram):
            raise _fail(info, "dram box", f"instruction {i}: {mn} {kind} box [{lo}, {hi}) outside its "
                                          f"DRAM tensor")
        role = {"input": "input", "weight": "weight", "psum": "acc", "residual": "residual",
                "output": "acc"}[kind]
        bw = _buf_words(insn)
        if not _inside(insn.buf, insn.buf + bw, slots(role)):
            raise _fail(info, "buffer box", f"instruction {i}: {mn} {kind} box [{insn.buf}, {insn.buf + bw}) "
                                            f"outside its {role} slots")
        c[f"{mn}:{kind}"] += 1
        c[f"{mn}:{kind}:words"] += words
    # ---- counts the schedule implies ----
    for info, c in zip(infos, counts):
        cost, L = info.schedule.cost, info.schedule.layer
        n = cost.tiles_n
        want = {
            "compute": L.eff_groups * n["x"] * n["y"] * n["c"] * n["k"],
            "LOAD:input": cost.transfers["input"], "LOAD:input:words": cost.dram["input_reads"],
            "LOAD:weight": cost.transfers["weights"], "LOAD:weight:words": cost.dram["weight_reads"],
            "STORE:*": cost.transfers["outputs"],
            "STORE:output:words": cost.dram["output_writes"], "STORE:psum:words": cost.dram["psum_writes"],
            "LOAD:psum": cost.transfers["psum_reads"], "LOAD:psum:words": cost.dram["psum_reads"],
            "LOAD:residual": cost.transfers["residual"], "LOAD:residual:words": cost.dram["residual_reads"],
            "LOAD:bias": cost.transfers["bias"], "LOAD:bias:words": cost.dram["bias_reads"],
        }
        got = dict(c)
        got["STORE:*"] = c["STORE:output"] + c["STORE:psum"]
        for key, w in want.items():
            if got.get(key, 0) != w:
                raise _fail(info, "cost model", f"{key} = {got.get(key, 0)}, the cost model says {w}")
        if c["compute"] != info.tiles:
            raise _fail(info, "tiles", f"{c['compute']} COMPUTEs for {info.tiles} tiles")
    return {"layers": len(infos), "bias_loads": bias_loads, "bias_words": bias_words}
