"""``sqnxtc check``: compiled IR in the numpy executor vs the original model in onnxruntime.

For each of ``samples`` seeded inputs (standard normal, seed ``seed + i``) both run, and
each output is compared elementwise with the rule

    |ours - ref| <= atol_eff + rtol * |ref|,   atol_eff = atol * max(1, max|ref|)

(``np.allclose`` with the absolute tolerance scaled to the output's magnitude, so logits of
size 10 are held to the same relative standard as probabilities of size 1; defaults as in
onnxoptimizer's tests: rtol 1e-4, atol 1e-5).  The report gives, per output, the maximum
absolute error and the maximum relative error ``max|ours - ref| / max|ref|``.

A model cut before a host tail (:mod:`sqnxt_compiler.frontend.cut`) is checked at the cut
and at its end: ``model`` is then the head, whose outputs (the cut among them) are compared
as above; the tail runs in onnxruntime on sqnxtc's values at the cut, and each of its
outputs is compared with onnxruntime's run of the whole model (``tail``), shown as
``NAME (host tail)``.  A tail's outputs are indices and boxes selected by thresholds: an
fp32 difference at the cut may select differently, and that is reported as it is (no
arbiter judges a tail output).

An output beyond the tolerance on a sample goes to the fp64 arbiter when one is given
(``arbiter``: the CLI gives it for fp32 executions unless ``--strict``): the model's
imported IR in float64 decides whether the difference is fp32 rounding, which onnxruntime
shares, or sqnxtc's error (:mod:`.arbiter`, the rule and its two constants).  The report
then gives, per such output, sqnxtc's and onnxruntime's errors against float64.

Before anything runs, the memory the check needs is estimated from the IR's static shapes
(:func:`.host_memory.memory_need`) and compared with what the process may use (:func:`.host_memory.memory_limits`):
a model whose activations do not fit is refused (exit 4, the size named) rather than
failing in the middle with a MemoryError; one that still runs out is exit 4 too.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..diagnostics import Location, UnsupportedError
from ..ir.graph import Graph
from .arbiter import arbitrate, run_fp64
from .executor import run
from .host_memory import ensure_memory
from .ort import ort_session, run_ort

DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-5


@dataclass
class OutputComparison:
    """One graph output against onnxruntime's over all samples: the largest absolute and
    relative differences and whether every sample is within tolerance."""
    name: str
    shape: tuple[int, ...]
    max_abs: float = 0.0
    max_rel: float = 0.0
    ok: bool = True
    worst_sample: int = 0
    #: the fp64 arbiter's verdicts on the samples beyond the tolerance, (sample, Verdict)
    arbitrated: list = field(default_factory=list)
    #: a host tail's output: the samples on which it differs only by the selection's
    #: sensitivity to differences at the cut within the tolerance (module doc)
    reselected: list = field(default_factory=list)

    @property
    def within_tolerance(self) -> bool:
        """Every sample within the tolerance, without the arbiter or a reselection."""
        return self.ok and not self.arbitrated and not self.reselected


@dataclass
class CheckReport:
    samples: int
    rtol: float
    atol: float
    outputs: list[OutputComparison] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    def format(self) -> str:
        lines = [f"{'output':<24} {'shape':<16} {'max abs err':>12} {'max rel err':>12}  result",
                 "-" * 76]
        for o in self.outputs:
            shape = "x".join(map(str, o.shape))
            lines.append(f"{o.name[:24]:<24} {shape:<16} {o.max_abs:12.3e} {o.max_rel:12.3e}  "
                         + (("ok (fp64 arbiter)" if o.arbitrated else
                             f"ok (reselected: the cut within tolerance; sample{'s' if len(o.reselected) > 1 else ''} "
                             f"{', '.join(map(str, o.reselected))})" if o.reselected else "ok") if o.ok
                            else f"MISMATCH (sample {o.worst_sample})"))
        judged = [(o, i, v) for o in self.outputs for i, v in o.arbitrated]
        if judged:
            lines.append(f"beyond the tolerance, judged by the fp64 arbiter (imported IR in float64; "
                         f"max abs / rms error against it):")
            for o, i, v in judged:
                lines.append(f"  {o.name[:24]} sample {i}: sqnxtc {v.ours.max_abs:.3e} / {v.ours.rms:.3e}, "
                             f"onnxruntime {v.ort.max_abs:.3e} / {v.ort.rms:.3e}: "
                             + ("ok, " if v.ok else "FAIL, ") + v.why)
        reselected = any(o.reselected for o in self.outputs)
        verdict = ("FAIL" if not self.ok else
                   "PASS (fp32 rounding, by the fp64 arbiter)" if judged else
                   "PASS (a host tail selected differently from values at the cut within the tolerance)"
                   if reselected else "PASS")
        lines.append(f"{self.samples} seeded inputs; tolerance |d| <= {self.atol:g}*max(1,max|ref|)"
                     f" + {self.rtol:g}*|ref|: " + verdict)
        return "\n".join(lines)


def random_inputs(graph: Graph, seed: int) -> dict[str, np.ndarray]:
    """One standard-normal input per graph input, from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for op in graph.inputs:
        t = op.result.type
        arr = rng.standard_normal(t.shape)
        feeds[op.attrs["name"]] = arr.astype(t.np_dtype) if t.dtype.startswith("f") else \
            np.abs(arr * 10).astype(t.np_dtype)
    return feeds


def compare(ours: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> tuple[float, float, bool]:
    """(max abs error, max rel error, within tolerance) by the rule in the module docstring,
    over the elements both runs give finite values for.  A NaN where onnxruntime gives NaN
    too, or the same infinity, agrees; any other non-finite value on either side is a
    mismatch with an infinite error."""
    ours = ours.astype(np.float64)
    ref = ref.astype(np.float64)
    if ours.shape != ref.shape:
        return float("inf"), float("inf"), False
    fo, fr = np.isfinite(ours), np.isfinite(ref)
    same_special = (np.isnan(ours) & np.isnan(ref)) | (~fo & ~fr & (ours == ref))
    if not np.all((fo & fr) | same_special):
        return float("inf"), float("inf"), False
    both = fo & fr
    o, r = ours[both], ref[both]
    d = np.abs(o - r)
    scale = float(np.max(np.abs(r))) if r.size else 0.0
    max_abs = float(d.max()) if d.size else 0.0
    max_rel = max_abs / scale if scale > 0 else max_abs
    ok = bool(np.all(d <= atol * max(1.0, scale) + rtol * np.abs(r)))
    return max_abs, max_rel, ok


def check(graph: Graph, model, source: str, *, samples: int = 3, seed: int = 0,
          rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL, executor=run,
          arbiter: Callable[[dict], dict] | None = None, tail=None) -> CheckReport:
    """Compare ``executor(graph)`` with onnxruntime on ``model`` over seeded inputs; refused
    first if its activations cannot fit (:func:`ensure_memory`), and a MemoryError on the
    way is exit 4 too.  ``arbiter(feeds)``, if given, returns the float64 outputs that judge
    an output beyond the tolerance (:mod:`.arbiter`; :func:`fp64_arbiter` makes one).
    ``tail``: the host tail of a cut model (``frontend.cut.Split``; module doc)."""
    ensure_memory(graph, source)
    try:
        return _check(graph, model, source, samples, seed, rtol, atol, executor, arbiter, tail)
    except MemoryError as exc:
        raise UnsupportedError(f"check ran out of memory ({exc or 'MemoryError'}): the model's "
                               "activations are too large for this process", Location(file=source)) from None


def fp64_arbiter(imported: Callable[[], Graph]) -> Callable[[dict], dict]:
    """An arbiter for :func:`check`: ``imported()`` (called once, on first need) gives the
    model's imported IR, run in float64 (:func:`.arbiter.run_fp64`)."""
    cache: list[Graph] = []

    def arbiter(feeds: dict) -> dict:
        if not cache:
            cache.append(imported())
        return run_fp64(cache[0], feeds)
    return arbiter


def _check(graph: Graph, model, source: str, samples: int, seed: int, rtol: float, atol: float,
           executor, arbiter, tail) -> CheckReport:
    """:func:`check`'s samples, once the memory is known to suffice."""
    sess = ort_session(model, source)
    if tail is not None:
        tail_sess = ort_session(tail.tail_model, source)
        full_sess = ort_session(tail.full, source)
    report = CheckReport(samples, rtol, atol)
    errs: dict[str, OutputComparison] = {}
    for i in range(samples):
        feeds = random_inputs(graph, seed + i)
        ref = run_ort(sess, feeds, source)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # overflow to inf or NaN is compared below, not reported as numpy's warnings
            warnings.simplefilter("ignore", RuntimeWarning)
            ours = executor(graph, feeds)
        exact = None
        for name, r in ref.items():
            e = errs.setdefault(name, OutputComparison(name, tuple(r.shape)))
            a, rel, ok = compare(ours[name], r, rtol, atol)
            if not ok and arbiter is not None and ours[name].shape == r.shape:
                if exact is None:
                    with warnings.catch_warnings(), np.errstate(all="ignore"):
                        warnings.simplefilter("ignore", RuntimeWarning)
                        exact = arbiter(feeds)
                v = arbitrate(ours[name], r, exact[name])
                e.arbitrated.append((i, v))
                ok = v.ok
            if a > e.max_abs or (not ok and e.ok):
                e.worst_sample = i
            e.max_abs, e.max_rel = max(e.max_abs, a), max(e.max_rel, rel)
            e.ok = e.ok and ok
        if tail is not None:
            _check_tail(tail, tail_sess, full_sess, feeds, ours, ref, source, rtol, atol, i, errs)
    report.outputs = list(errs.values())
    return report


def _check_tail(tail, tail_sess, full_sess, feeds: dict, ours: dict, head_ref: dict, source: str,
                rtol: float, atol: float, sample: int, errs: dict) -> None:
    """One sample of the host tail (module doc): onnxruntime runs the tail on sqnxtc's
    values at the cut (and the graph inputs it reads), its outputs against onnxruntime's
    run of the whole model; a difference is a reselection when the cut is within the
    tolerance and faithful (the tail on onnxruntime's own cut gives its outputs)."""
    def at(values: dict) -> dict:
        d = {t.name: values[t.name] for t in tail.tail.reads}
        d.update({n: feeds[n] for n in tail.tail.inputs})
        return d

    got = run_ort(tail_sess, at(ours), source)
    ref = run_ort(full_sess, feeds, source)
    faithful = None
    for name in tail.tail.outputs:
        r = ref[name]
        e = errs.setdefault(name + " (host tail)", OutputComparison(name + " (host tail)", tuple(r.shape)))
        a, rel, ok = compare(got[name], r, rtol, atol)
        if not ok:
            if faithful is None:
                cut_ok = all(compare(ours[t.name], head_ref[t.name], rtol, atol)[2] for t in tail.tail.reads)
                own = run_ort(tail_sess, at(head_ref), source) if cut_ok else {}
                faithful = cut_ok and all(compare(own[n], ref[n], 0.0, 0.0)[2] for n in tail.tail.outputs)
            if faithful:
                e.reselected.append(sample)
                ok = True
        if a > e.max_abs or (not ok and e.ok):
            e.worst_sample = sample
            e.shape = tuple(r.shape)
        e.max_abs, e.max_rel = max(e.max_abs, a), max(e.max_rel, rel)
        e.ok = e.ok and ok
