"""The sweep spec (a TOML file, docs/sweep.md) and its expansion into points.

    [sweep]
    objectives = ["cycles", "energy"]     # default ["cycles"]

    [models]
    zoo = ["1.0-SqNxt-23", "AlexNet"]     # zoo names
    files = ["nets/my.onnx"]              # relative to the spec file

    [targets]
    base = ["pe16x16"]                    # bundled names or .toml paths (relative to the spec)

    [targets.grid]                        # target field -> values; every combination
    "array.pe_rows" = [8, 16]
    "buffer.global_buffer_bytes" = [32768, 131072]

A point is (model, target point, objective); the points are ordered model-major, then
base target, then grid combination (the grid's keys in file order, the last varying
fastest), then objective: the order of the table's rows, whatever order they finish in.
Every problem of the spec is a :class:`~sqnxt_compiler.diagnostics.UsageError` (exit 2)
naming the spec file and the key.  The ``[sweep]`` keys and their checks are the schedule
pass's option declarations (passes/schedule.py: ``ScheduleOptions``): the option with an
``axis`` (``objective``) is the list a sweep varies (``objectives``), every other recorded
option is a key of its own, the same for every point.
"""
from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..diagnostics import UsageError
from ..passes.schedule import ScheduleOptions
from ..pipeline.options import Option, options_of

#: The schedule pass's options by name, as declared.
OPTIONS: dict[str, Option] = {o.name: o for o in options_of(ScheduleOptions)}
#: The option a sweep varies: its ``[sweep]`` key (``objectives``) lists the values.
AXIS: Option = next(o for o in OPTIONS.values() if o.axis)


@dataclass(frozen=True)
class TargetPoint:
    """A base target (bundled name or path) with field overrides (TOML values)."""

    base: str
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """``pe16x16`` or ``pe16x16[array.pe_rows=8,buffer.global_buffer_bytes=32768]``."""
        if not self.overrides:
            return Path(self.base).stem if self.base.endswith(".toml") else self.base
        inner = ",".join(f"{k}={v}" for k, v in self.overrides)
        return f"{Path(self.base).stem if self.base.endswith('.toml') else self.base}[{inner}]"


@dataclass(frozen=True)
class Point:
    model: str          # zoo:NAME or a file path
    target: TargetPoint
    objective: str
    #: Schedule-pass options beyond the objective that change the result (time_limit,
    #: fallback, measured_sparsity), as (name, value) pairs; part of the row's key.
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class SweepSpec:
    models: tuple[str, ...]
    bases: tuple[str, ...]
    grid: tuple[tuple[str, tuple[Any, ...]], ...]
    objectives: tuple[str, ...]
    source: str = "<flags>"
    options: tuple[tuple[str, Any], ...] = ()   # Point.options of every point

    @property
    def grid_fields(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.grid)

    def target_points(self) -> list[TargetPoint]:
        """Every base target x every combination of the grid (last key fastest)."""
        combos = list(itertools.product(*(vals for _, vals in self.grid))) if self.grid else [()]
        return [TargetPoint(b, tuple(zip(self.grid_fields, combo))) for b in self.bases for combo in combos]

    def points(self) -> list[Point]:
        """Every (model, target point, objective), in table order (module doc)."""
        tps = self.target_points()
        return [Point(m, t, o, self.options) for m in self.models for t in tps for o in self.objectives]


#: The schedule-pass options a spec may set for every point, beside the objectives: the
#: recorded ones (those that change a result; ``cache_dir`` and ``jobs`` are the sweep's
#: own business), in declaration order.
SCHEDULE_OPTIONS = tuple(o.name for o in OPTIONS.values() if o.recorded and not o.axis)


def schedule_options(given: dict[str, Any], where: str = "<flags>") -> tuple[tuple[str, Any], ...]:
    """The points' options (:attr:`Point.options`) from ``given`` (None: not given):
    checked against their declarations (:meth:`~sqnxt_compiler.pipeline.options.Option.from_toml`:
    a time limit is a finite number >= 0, a fallback one of its choices, measured_sparsity
    true or false), normalized (a time limit is a float), sorted, and without the values
    equal to the defaults, so that spelling a default out gives the same row keys as
    leaving it out."""
    out = {}
    for k, v in given.items():
        if v is None:
            continue
        if k not in SCHEDULE_OPTIONS:
            raise UsageError(f"unknown schedule option '{k}'", where)
        o = OPTIONS[k]
        v = o.from_toml(v, f"sweep.{k}", where)
        if v != o.default:
            out[k] = v
    return tuple(sorted(out.items()))


def _strings(value, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"'{key}' must be a list of non-empty strings", where)
    return tuple(value)


def parse_spec(data: dict, where: str, base_dir: Path) -> SweepSpec:
    """Validate a parsed spec (module doc); paths are resolved against ``base_dir``."""
    from ..targets.target import SCHEMA

    allowed = {"sweep": {AXIS.axis, *SCHEDULE_OPTIONS}, "models": {"zoo", "files"}, "targets": {"base", "grid"}}
    for sec, val in data.items():
        if sec not in allowed:
            raise UsageError(f"unknown section [{sec}] (allowed: {', '.join(allowed)})", where)
        if not isinstance(val, dict):
            raise UsageError(f"'{sec}' must be a table", where)
        for key in val:
            if key not in allowed[sec]:
                raise UsageError(f"unknown key '{sec}.{key}' (allowed: {', '.join(sorted(allowed[sec]))})", where)
    key = f"sweep.{AXIS.axis}"
    objectives = _strings(data.get("sweep", {}).get(AXIS.axis, [AXIS.default]), where, key)
    for o in objectives:
        if o not in AXIS.choices:
            raise UsageError(f"'{key}': unknown {AXIS.name} '{o}' (allowed: {', '.join(AXIS.choices)})", where)
    models_t = data.get("models", {})
    models = [f"zoo:{n}" for n in _strings(models_t.get("zoo", []), where, "models.zoo")]
    for f in _strings(models_t.get("files", []), where, "models.files"):
        p = (base_dir / f).resolve()
        if not p.is_file():
            raise UsageError(f"'models.files': no such file '{f}' (relative to the spec)", where)
        models.append(str(p))
    if not models:
        raise UsageError("no models ([models] zoo = [...] or files = [...])", where)
    tt = data.get("targets", {})
    bases = []
    for b in _strings(tt.get("base", ["pe16x16"]), where, "targets.base"):
        bases.append(str((base_dir / b).resolve()) if b.endswith(".toml") else b)
    known = {f.path for f in SCHEMA} - {"name", "description"}
    grid = []
    g = tt.get("grid", {})
    if not isinstance(g, dict):
        raise UsageError("'targets.grid' must be a table of field = [values]", where)
    for key, vals in g.items():
        if key not in known:
            raise UsageError(f"'targets.grid': unknown target field '{key}' (e.g. array.pe_rows, "
                             "buffer.global_buffer_bytes; `sqnxtc targets show pe16x16` lists them)", where)
        if not isinstance(vals, list) or not vals:
            raise UsageError(f"'targets.grid.\"{key}\"' must be a non-empty list of values", where)
        grid.append((key, tuple(vals)))
    sw = data.get("sweep", {})
    options = schedule_options({k: sw.get(k) for k in SCHEDULE_OPTIONS}, where)
    return SweepSpec(tuple(dict.fromkeys(models)), tuple(dict.fromkeys(bases)), tuple(grid),
                     tuple(dict.fromkeys(objectives)), where, options)


def load_spec(path: str) -> SweepSpec:
    """Read and validate the spec file ``path``."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError("no such sweep spec", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the sweep spec: {exc}", path) from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"not valid TOML: {exc}", path) from None
    return parse_spec(data, path, p.resolve().parent)
