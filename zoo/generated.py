"""Generated SqueezeNext variants: any :class:`~.squeezenext.SqueezeNextConfig` as a zoo
name, so every command (compile, check, compare, sweep, explore) takes them like a preset.

Name grammar (docs/zoo.md, "Generated variants")::

    SqNxt:d6-6-8-1:k7:w1.0:g1:base
          |        |  |    |  first-block style: base or v5
          |        |  |    groups of squeeze1 and the separable convs
          |        |  width multiplier
          |        conv1 kernel: 7 or 5
          blocks per stage (four)

Every part after ``SqNxt:`` is optional and may come in any order (a missing one takes
the baseline 1.0-SqNxt-23's value: d6-6-8-1, k7, w1.0, g1, base); ``ida`` adds the zoo's
Iterative Deep Aggregation.  :func:`canonical` spells a name in the order above, which is
the name the model carries (so ``SqNxt:k5:d2-4-14-1`` and ``SqNxt:d2-4-14-1:k5`` are one
model).  A generated variant has no published figures; its family is ``squeezenext`` and
its source ``generated``.
"""
from __future__ import annotations

import re

from ..diagnostics import InputError, UsageError
from .preset import Preset
from .squeezenext import SqueezeNextConfig, define

PREFIX = "SqNxt:"


def parse(name: str) -> SqueezeNextConfig:
    """The config a generated name describes (module doc); InputError when it is not one."""
    if not name.startswith(PREFIX):
        raise InputError(f"not a generated SqueezeNext name: '{name}'", location=f"zoo:{name}")
    kw: dict = {}
    for part in name[len(PREFIX):].split(":"):
        if not part:
            continue
        if m := re.fullmatch(r"d(\d+)-(\d+)-(\d+)-(\d+)", part):
            key, val = "depth", tuple(int(g) for g in m.groups())
        elif m := re.fullmatch(r"k(\d+)", part):
            key, val = "conv1_kernel", int(m.group(1))
        elif m := re.fullmatch(r"w(\d+(?:\.\d+)?)", part):
            key, val = "width", float(m.group(1))
        elif m := re.fullmatch(r"g(\d+)", part):
            key, val = "groups", int(m.group(1))
        elif part in ("base", "v5"):
            key, val = "first_block", "baseline" if part == "base" else "v5"
        elif part == "ida":
            key, val = "ida", True
        else:
            raise InputError(f"'{part}' in '{name}': expected dA-B-C-D, k5|k7, wWIDTH, gGROUPS, base|v5 or ida",
                             location=f"zoo:{name}")
        if key in kw:
            raise InputError(f"'{name}' gives {key} twice", location=f"zoo:{name}")
        kw[key] = val
    cfg = SqueezeNextConfig(**kw)
    try:
        cfg.validate()
    except UsageError as exc:
        raise InputError(f"'{name}': {exc.message}", location=f"zoo:{name}") from None
    return cfg


def name_of(cfg: SqueezeNextConfig) -> str:
    """The canonical generated name of ``cfg``."""
    d = "-".join(str(x) for x in cfg.depth)
    style = "base" if cfg.first_block == "baseline" else "v5"
    return (f"{PREFIX}d{d}:k{cfg.conv1_kernel}:w{cfg.width:g}:g{cfg.groups}:{style}"
            + (":ida" if cfg.ida else ""))


def canonical(name: str) -> str:
    """``name`` spelled canonically (module doc)."""
    return name_of(parse(name))


def preset(name: str) -> Preset:
    """A zoo preset for the generated name (its canonical spelling)."""
    cfg = parse(name)
    full = name_of(cfg)
    doc = (f"Generated SqueezeNext: conv1 {cfg.conv1_kernel}x{cfg.conv1_kernel}, depth {list(cfg.depth)}, "
           f"width {cfg.width:g}, groups {cfg.groups}, {cfg.first_block} first blocks"
           + (", IDA" if cfg.ida else "") + ".")
    return Preset(full, "squeezenext", "generated", cfg.input_size, define(cfg), doc)
