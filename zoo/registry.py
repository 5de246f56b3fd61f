"""The zoo's registry: presets, their :class:`ModelInfo`, lookup and :func:`build`.

A :class:`Preset` pairs a network definition with what the literature publishes about it
(parameter and MAC figures, as printed) and the rule by which the zoo's counts are
compared to those figures (:class:`Check`).  :func:`get_info` counts parameters and MACs
from a dry run of the definition (layer records only, no weights), so listing the zoo is
fast; :func:`build` runs the definition for real and returns an ``onnx.ModelProto``.
"""
from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass

import onnx
from onnx import helper

from ..diagnostics import InputError, UsageError
from .builder import run_definition
from .preset import _PRESETS, FAMILIES, SOURCES, Check, Preset, register, rounding_tolerance

__all__ = ["FAMILIES", "SOURCES", "Check", "ModelInfo", "Preset", "build", "get_info",
           "list_models", "lookup", "register", "rounding_tolerance"]

@dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about one model, computed without building its weights.

    ``params`` counts conv/fc weights and biases and BatchNorm scale+shift; ``macs`` counts
    conv and fc multiply-accumulates without bias; ``macs_with_bias`` adds one MAC per
    output value, the convention of the paper's MAC figures.  ``published_*`` are in
    millions (None when the paper gives none); ``*_tolerance`` is the relative bound the
    zoo's tests hold the count to, ``*_rule`` the rule it comes from (see :class:`Check`).
    """

    name: str
    family: str
    source: str
    input_size: int
    params: int
    macs: int
    macs_with_bias: int
    published_params: float | None
    published_macs: float | None
    description: str
    layers: int = 0
    params_rule: str = ""
    params_tolerance: float | None = None
    macs_rule: str = ""
    macs_tolerance: float | None = None
    note: str = ""


def _presets() -> dict[str, Preset]:
    from . import presets  # noqa: F401  (registers on import)
    return _PRESETS


def lookup(name: str) -> Preset:
    """The preset called ``name`` (exact, else a unique case-insensitive match).

    Raises :class:`InputError` naming the closest names (difflib) when there is none.
    """
    presets = _presets()
    if name in presets:
        return presets[name]
    if str(name).startswith("SqNxt:"):
        return _generated(str(name))
    folded = [p for p in presets if p.lower() == str(name).lower()]
    if len(folded) == 1:
        return presets[folded[0]]
    by_lower = {p.lower(): p for p in presets}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + " or ".join(f"'{by_lower[c]}'" for c in close) + "?"
    else:
        hint = "see 'sqnxtc zoo list'"
    raise InputError(f"unknown zoo model '{name}' ({hint})", location=f"zoo:{name}")


@functools.lru_cache(maxsize=256)
def _generated(name: str) -> Preset:
    """A generated SqueezeNext variant (:mod:`.generated`) by any spelling of its name."""
    from .generated import preset
    return preset(name)


def _rule_text(check: Check, published: str | None) -> str:
    if published is None:
        return "no published figure"
    tol = check.relative_tolerance(published)
    if check.rule == "1%":
        return "published definition: within 1% or the figure's rounding" + (
            f" (+-{rounding_tolerance(published):g}M)" if tol > 0.01 else "")
    if check.rule == "rounding":
        return f"paper's rounding: +-{rounding_tolerance(published):g}M"
    return f"documented deviation: within {tol * 100:.2f}%"


@functools.lru_cache(maxsize=None)
def _info(name: str) -> ModelInfo:
    p = lookup(name)
    b, _ = run_definition(p.definition, p.name, p.input_size, materialize=False)
    notes = [c.note for c in (p.params_check, p.macs_check) if c.rule == "deviation"]
    return ModelInfo(
        name=p.name, family=p.family, source=p.source, input_size=p.input_size,
        params=sum(l.params for l in b.layers),
        macs=sum(l.macs for l in b.layers),
        macs_with_bias=sum(l.macs + l.bias_macs for l in b.layers),
        published_params=None if p.published_params is None else float(p.published_params),
        published_macs=None if p.published_macs is None else float(p.published_macs),
        description=p.description, layers=len(b.layers),
        params_rule=_rule_text(p.params_check, p.published_params),
        params_tolerance=(None if p.published_params is None
                          else p.params_check.relative_tolerance(p.published_params)),
        macs_rule=_rule_text(p.macs_check, p.published_macs),
        macs_tolerance=(None if p.published_macs is None
                        else p.macs_check.relative_tolerance(p.published_macs)),
        note=" ".join(notes),
    )


def get_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of zoo model ``name`` (raises InputError if unknown)."""
    return _info(lookup(name).name)


def list_models() -> list[ModelInfo]:
    """Every zoo model's :class:`ModelInfo`, sorted by name."""
    return [_info(n) for n in sorted(_presets())]


def _check_build_args(seed: object, weight_sparsity: object) -> tuple[int, float]:
    """Validate ``seed`` (an int >= 0) and ``weight_sparsity`` (a real in [0, 1))."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(weight_sparsity, bool) or not isinstance(weight_sparsity, (int, float)):
        raise UsageError(f"weight_sparsity must be a number in [0, 1), got {weight_sparsity!r}")
    f = float(weight_sparsity)
    if not math.isfinite(f) or not 0.0 <= f < 1.0:
        raise UsageError(f"weight_sparsity must be in [0, 1), got {weight_sparsity!r}")
    return seed, f


def build(name: str, *, seed: int = 0, weight_sparsity: float = 0.0) -> onnx.ModelProto:
    """Build zoo model ``name`` as an ONNX model with seeded, calibrated weights.

    Opset 13; one input ``input`` [1, 3, S, S] and one output ``output`` [1, 1000] (logits),
    float32.  The same (name, seed, weight_sparsity) always gives the same bytes.
    """
    seed, fraction = _check_build_args(seed, weight_sparsity)
    p = lookup(name)
    doc = f"{p.name} (sqnxtc zoo): {p.description}"
    _, model = run_definition(p.definition, p.name, p.input_size, materialize=True,
                              seed=seed, weight_sparsity=fraction, doc=doc,
                              calibration_images=p.calibration_images)
    helper.set_model_props(model, {
        "sqnxtc.zoo.name": p.name,
        "sqnxtc.zoo.source": p.source,
        "sqnxtc.zoo.seed": str(seed),
        "sqnxtc.zoo.weight_sparsity": repr(fraction),
    })
    return model
