"""What a zoo model is: a :class:`Preset` (a network definition and what the literature
publishes about it) and the :class:`Check` its counts are held to; :func:`register` adds
one to the zoo.  The presets themselves are declared in :mod:`.presets`; lookup, counting
and building are :mod:`.registry`'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

from .builder import CALIBRATION_IMAGES, GraphBuilder, Value

FAMILIES = ("squeezenext", "comparison")
SOURCES = ("paper", "authors", "reconstructed", "generated")


def rounding_tolerance(published: str) -> float:
    """Half a unit in the last printed digit of a published figure: "0.72" -> 0.005."""
    exponent = Decimal(published).as_tuple().exponent
    return 0.5 * 10.0 ** exponent


@dataclass(frozen=True)
class Check:
    """How a count is compared with its published figure (both in millions).

    * ``"1%"``: the network's definition is published; the count must be within 1%
      of the figure, or within the figure's rounding when that is looser (a figure printed
      as "2.4" only promises 2.35..2.45).
    * ``"rounding"``: within half a unit of the figure's last printed digit.
    * ``"deviation"``: a documented mismatch; ``tolerance`` is the relative bound the zoo
      guarantees and ``note`` says why the figure cannot be met.
    """

    rule: str = "1%"
    tolerance: float | None = None
    note: str = ""

    def relative_tolerance(self, published: str) -> float:
        """The relative bound this check allows against ``published``."""
        value = float(published)
        rounding = rounding_tolerance(published) / value
        if self.rule == "1%":
            return max(0.01, rounding)
        if self.rule == "rounding":
            return rounding
        if self.rule == "deviation":
            assert self.tolerance is not None and self.note, "a deviation needs a bound and a reason"
            return self.tolerance
        raise ValueError(f"unknown check rule '{self.rule}'")


@dataclass(frozen=True)
class Preset:
    """A named zoo model: its definition and its published figures."""

    name: str
    family: str
    source: str
    input_size: int
    definition: Callable[[GraphBuilder], Value]
    doc: str
    published_params: str | None = None  # millions, as printed in the spec
    published_macs: str | None = None    # millions, paper convention (one bias MAC per output)
    params_check: Check = Check()
    macs_check: Check = Check()
    calibration_images: int = CALIBRATION_IMAGES  # 1 suffices without BatchNorm (LSUV only)

    @property
    def description(self) -> str:
        """The first paragraph of the preset's docstring, on one line."""
        first = self.doc.strip().split("\n\n")[0]
        return " ".join(first.split())


_PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    """Add a preset to the zoo (names are unique; family and source are checked)."""
    if preset.name in _PRESETS:
        raise ValueError(f"duplicate zoo model '{preset.name}'")
    if preset.family not in FAMILIES or preset.source not in SOURCES:
        raise ValueError(f"{preset.name}: bad family/source {preset.family}/{preset.source}")
    _PRESETS[preset.name] = preset
    return preset
