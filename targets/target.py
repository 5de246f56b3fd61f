"""Target descriptions: the accelerator a layer is scheduled on, loaded from TOML.

A target file has an optional top-level ``format`` (absent means 1; this sqnxtc reads
:data:`FORMATS`), a top-level ``name`` and ``description`` and the sections of
:data:`SCHEMA` (``[array]``, ``[buffer]``, ``[dram]``, ``[clock]``, ``[dataflow]``,
``[program]``, ``[energy]``).  Every field has one type and a range; a field without a documented default
is required, a missing field with one takes it; unknown keys are rejected: a bad file
raises :class:`~sqnxt_compiler.diagnostics.TargetError` naming the file and the field
(``pe16x16.toml: field 'buffer.global_buffer_bytes': ...``).

The fields are declared once, as the attributes of :class:`Target`: each carries its
schema entry (:class:`Field`: TOML section and key, kind, unit, meaning, range, default)
in its dataclass metadata, and :data:`SCHEMA` is read from them.

The bundled targets are package data (``pe16x16.toml``, ``pe8x8.toml``) read through
:mod:`importlib.resources`; :func:`load_target` also accepts a path to any file.
The field reference (units, meaning, defaults and where each value comes from) is
``docs/target-format.md``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

from sqnxt_compiler.diagnostics import TargetError

FORMAT = 1
"""The target format this sqnxtc writes (the bundled files say ``format = 1``)."""
FORMATS: tuple[int, ...] = (1,)
"""The target formats this sqnxtc reads; a file without ``format`` is format 1."""


class _Required:
    """Type of :data:`REQUIRED`, the ``Field.default`` of a field without a default."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Field:
    """One schema entry: TOML ``section.key`` -> dataclass attribute ``attr``."""

    section: str | None
    key: str
    attr: str
    kind: str          # "int" | "number" | "bool" | "str"
    unit: str
    doc: str
    minimum: Any = None        # inclusive lower bound for numbers
    exclusive_min: bool = False
    maximum: Any = None        # inclusive upper bound (exclusive when exclusive_max)
    exclusive_max: bool = False
    choices: tuple[str, ...] | None = None
    default: Any = REQUIRED    # the TOML value a missing key takes; REQUIRED: no default

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}" if self.section else self.key

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def _check_value(f: Field, value: Any, where: str) -> Any:
    def bad(msg: str) -> TargetError:
        return TargetError(f"field '{f.path}': {msg}", where)

    if f.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(f"expected an integer, got {type(value).__name__} {value!r}")
        v: Any = value
    elif f.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad(f"expected a number, got {type(value).__name__} {value!r}")
        try:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError
            v = Fraction(str(value)) if not isinstance(value, int) else Fraction(value)
        except (ValueError, ZeroDivisionError):
            raise bad(f"expected a number, got {value!r}") from None
    elif f.kind == "bool":
        if not isinstance(value, bool):
            raise bad(f"expected true or false, got {type(value).__name__} {value!r}")
        v = value
    else:
        if not isinstance(value, str):
            raise bad(f"expected a string, got {type(value).__name__} {value!r}")
        if f.choices is not None and value not in f.choices:
            raise bad(f"{value!r} is not supported (allowed: {', '.join(f.choices)})")
        if f.path == "name" and not value:
            raise bad("must not be empty")
        v = value
    if f.minimum is not None:
        if v < f.minimum or (f.exclusive_min and v == f.minimum):
            op = ">" if f.exclusive_min else ">="
            raise bad(f"must be {op} {f.minimum} {f.unit}".rstrip() + f", got {value!r}")
    if f.maximum is not None:
        if v > f.maximum or (f.exclusive_max and v == f.maximum):
            op = "<" if f.exclusive_max else "<="
            raise bad(f"must be {op} {f.maximum}, got {value!r}")
    return v


_SCHEMA_KEY = "sqnxtc.target.field"


def _field(section: str | None, key: str, kind: str, unit: str, doc: str, *,
           default: Any = REQUIRED, **limits: Any) -> Any:
    """Declare one :class:`Target` attribute with its schema entry (``attr`` is filled in
    from the attribute name).  ``default`` is the TOML value of a missing key; the
    dataclass default is that value as loaded (so ``Target(...)`` may omit it too)."""
    spec = Field(section, key, "", kind, unit, doc, default=default, **limits)
    if spec.required:
        return dataclasses.field(metadata={_SCHEMA_KEY: spec})
    return dataclasses.field(default=_check_value(spec, default, "<schema>"), metadata={_SCHEMA_KEY: spec})


#: Upper bounds of the fields: far beyond any accelerator this models, and small enough
#: that every cost figure of a layer stays a 64-bit integer (what CP-SAT computes with).
MAX_PES = 4096                    # PEs per array side
MAX_COUNT = 2 ** 20               # words, cycles, energy units per access
MAX_BUFFER_BYTES = 2 ** 40        # 1 TiB
MAX_RATE = 10 ** 6                # GB/s, MHz
#: DRAM words per cycle (bandwidth / clock / word bytes) must lie in this range.
WORDS_PER_CYCLE_RANGE = (Fraction(1, 2 ** 20), Fraction(2 ** 20))


# The field declarations below are one table, alike line by line by design (the
# `duplicates` tool pairs them by shape).
@dataclass(frozen=True, kw_only=True)
class Target:
    """An accelerator configuration.  Every attribute but ``source`` is a field of the
    TOML file, declared here once with its section, key, kind, unit, meaning, range and
    default (:data:`SCHEMA` is read from these declarations); numbers that can be
    fractional (bandwidth, clock, zero fraction) are exact Fractions.  Derived quantities
    used by the cost model are properties with their formula."""

    name: str = _field(None, "name", "str", "", "target name (what `--target` takes)")
    description: str = _field(None, "description", "str", "", "one line for `targets list`")
    # [array]
    pe_rows: int = _field("array", "pe_rows", "int", "PEs", "array rows: WS input channels, OS output rows",
                          minimum=1, maximum=MAX_PES)
    pe_cols: int = _field("array", "pe_cols", "int", "PEs", "array columns: WS output channels, OS output columns",
                          minimum=1, maximum=MAX_PES)
    rf_words_per_pe: int = _field("array", "rf_words_per_pe", "int", "words",
                                  "register file per PE; >= 2 partial sums double-buffers the OS accumulator",
                                  minimum=1, maximum=MAX_COUNT)
    pipeline_fill_cycles: int = _field("array", "pipeline_fill_cycles", "int", "cycles",
                                       "array pipeline fill and drain, charged once per layer",
                                       minimum=0, maximum=MAX_COUNT)
    nonlinear_cycles: int = _field("array", "nonlinear_cycles", "int", "cycles",
                                   "cycles (and MAC-level operations) of one nonlinear function "
                                   "evaluation per element (sigmoid, tanh, exp, reciprocal) on a PE",
                                   minimum=1, maximum=1024, default=4)
    # [buffer]
    word_bits: int = _field("buffer", "word_bits", "int", "bits", "width of an activation or weight word",
                            minimum=1, maximum=64)
    global_buffer_bytes: int = _field("buffer", "global_buffer_bytes", "int", "bytes", "global buffer capacity",
                                      minimum=1, maximum=MAX_BUFFER_BYTES)
    port_words_per_cycle: int = _field("buffer", "port_words_per_cycle", "int", "words/cycle",
                                       "global buffer <-> array port width (weight-block load, accumulator drain)",
                                       minimum=1, maximum=MAX_COUNT)
    buffer_split: str = _field("buffer", "split", "str", "",
                               "how the buffer is split between inputs, weights and outputs",
                               choices=("shared",), default="shared")
    double_buffering: bool = _field("buffer", "double_buffering", "bool", "",
                                    "two copies of every tile so that DMA overlaps compute")
    psum_bits: int = _field("buffer", "psum_bits", "int", "bits", "width of a stored partial sum",
                            minimum=1, maximum=128)
    # [dram]
    dram_latency_cycles: int = _field("dram", "latency_cycles", "int", "cycles", "latency of one DMA transfer",
                                      minimum=0, maximum=MAX_COUNT)
    dram_bandwidth_gb_per_s: Fraction = _field("dram", "bandwidth_gb_per_s", "number", "GB/s",
                                               "effective DRAM bandwidth (10^9 bytes/s)",
                                               minimum=0, exclusive_min=True, maximum=MAX_RATE)
    activation_home: str = _field("dram", "activation_home", "str", "",
                                  "where activations live between layers: dram (every one through "
                                  "DRAM) or planned (the memory planner keeps some in the buffer)",
                                  choices=("dram", "planned"), default="dram")
    depth_first: bool = _field("dram", "depth_first", "bool", "",
                               "with activation_home planned: the memory planner may also run consecutive "
                               "convs as fused stacks, band by band (docs/memory-planning.md)",
                               default=False)
    dram_channels: int = _field("dram", "channels", "int", "channels",
                                "DRAM channels the load and store engines share (one transfer each at a time)",
                                minimum=1, maximum=1024, default=1)
    # [clock]
    clock_mhz: Fraction = _field("clock", "frequency_mhz", "number", "MHz", "clock frequency",
                                 minimum=0, exclusive_min=True, maximum=MAX_RATE)
    # [dataflow]
    os_weight_zero_fraction: Fraction = _field(
        "dataflow", "os_weight_zero_fraction", "number", "fraction",
        "weights assumed zero (skipped in OS) when the layer gives no measurement",
        minimum=0, maximum=1, exclusive_max=True)
    dataflow_allowed: str = _field("dataflow", "allowed", "str", "",
                                   "dataflows the scheduler may choose for conv and fc layers: both, "
                                   "WS or OS only (pool, add and element-wise layers are OS always)",
                                   choices=("both", "WS", "OS"), default="both")
    ws_rf_per_mac: int = _field("dataflow", "ws_rf_accesses_per_mac", "int", "accesses/MAC",
                                "WS register-file accesses per MAC", minimum=0, maximum=64)
    ws_array_per_mac: int = _field("dataflow", "ws_array_accesses_per_mac", "int", "accesses/MAC",
                                   "WS array-network accesses per MAC", minimum=0, maximum=64)
    os_rf_per_mac: int = _field("dataflow", "os_rf_accesses_per_mac", "int", "accesses/MAC",
                                "OS register-file accesses per MAC", minimum=0, maximum=64)
    os_array_per_mac: int = _field("dataflow", "os_array_accesses_per_mac", "int", "accesses/MAC",
                                   "OS array-network accesses per MAC", minimum=0, maximum=64)
    # [program]
    queue_depth: int = _field("program", "queue_depth", "int", "instructions",
                              "instruction queue depth of each engine (load, compute, store): "
                              "fetched and not yet issued",
                              minimum=1, maximum=MAX_COUNT, default=256)
    # [energy]
    e_mac: int = _field("energy", "mac", "int", "units/access", "normalized energy of one MAC",
                        minimum=0, maximum=MAX_COUNT)
    e_rf: int = _field("energy", "rf", "int", "units/access", "normalized energy of one register-file access",
                       minimum=0, maximum=MAX_COUNT)
    e_array: int = _field("energy", "array", "int", "units/access",
                          "normalized energy of one array-network access", minimum=0, maximum=MAX_COUNT)
    e_buffer: int = _field("energy", "buffer", "int", "units/access",
                           "normalized energy of one global-buffer word access", minimum=0, maximum=MAX_COUNT)
    e_dram: int = _field("energy", "dram", "int", "units/access", "normalized energy of one DRAM word access",
                         minimum=0, maximum=MAX_COUNT)

    source: str = ""   # the file it was loaded from (not a field: not in to_dict or the fingerprint)

    # ---- derived quantities (docs/cost-model.md, section "Target-derived constants") ----
    @property
    def num_pes(self) -> int:
        """PEs = pe_rows * pe_cols."""
        return self.pe_rows * self.pe_cols

    @property
    def word_bytes(self) -> int:
        """Bytes per word = ceil(word_bits / 8)."""
        return -(-self.word_bits // 8)

    @property
    def buffer_words(self) -> int:
        """Buffer capacity in words = floor(global_buffer_bytes / word_bytes)."""
        return self.global_buffer_bytes // self.word_bytes

    @property
    def psum_words(self) -> int:
        """Words per stored partial sum = ceil(psum_bits / word_bits)."""
        return -(-self.psum_bits // self.word_bits)

    @property
    def dram_words_per_cycle(self) -> Fraction:
        """DRAM words per clock cycle = bandwidth [B/s] / clock [Hz] / word_bytes, exact.

        16 GB/s at 1000 MHz with 2-byte words: 16e9 / 1e9 / 2 = 8 words per cycle."""
        return (self.dram_bandwidth_gb_per_s * 1000) / (self.clock_mhz * self.word_bytes)

    @property
    def weight_load_cycles(self) -> int:
        """WS: cycles to load one pe_rows x pe_cols weight block into the array
        = ceil(pe_rows * pe_cols / port_words_per_cycle)."""
        return -(-(self.pe_rows * self.pe_cols) // self.port_words_per_cycle)

    @property
    def os_drain_cycles(self) -> int:
        """OS: cycles to drain (or reload) the array's pe_rows x pe_cols accumulators
        = ceil(pe_rows * pe_cols * psum_words / port_words_per_cycle)."""
        return -(-(self.pe_rows * self.pe_cols * self.psum_words) // self.port_words_per_cycle)

    @property
    def os_double_buffered_accumulators(self) -> bool:
        """True when a PE's register file holds two accumulators (rf >= 2 * psum_words):
        the drain of one OS pass then overlaps the next pass."""
        return self.rf_words_per_pe >= 2 * self.psum_words

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of every field except ``source``: the cache key part."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict:
        """JSON-able description (Fractions as strings like "16" or "2/5")."""
        out = {}
        for f in SCHEMA:
            v = getattr(self, f.attr)
            out[f.path] = str(v) if isinstance(v, Fraction) else v
        return out


SCHEMA: tuple[Field, ...] = tuple(dataclasses.replace(f.metadata[_SCHEMA_KEY], attr=f.name)
                                  for f in dataclasses.fields(Target) if _SCHEMA_KEY in f.metadata)
"""Every target field in file order, read from the :class:`Target` declarations."""

SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(f.section for f in SCHEMA if f.section is not None))


def _check_format(data: dict, where: str) -> None:
    """Reject a ``format`` this sqnxtc does not read (absent means 1)."""
    if "format" not in data:
        return
    v = data["format"]
    if isinstance(v, bool) or not isinstance(v, int) or v not in FORMATS:
        readable = ", ".join(str(n) for n in FORMATS)
        raise TargetError(f"field 'format': target format {v!r} is not supported (this sqnxtc reads "
                          f"format {readable}; a file without 'format' is format 1)", where)


def parse_target(data: dict, where: str) -> Target:
    """Validate a parsed TOML document against SCHEMA and build the Target.

    A missing field with a default takes it (the dataclass default, i.e. the documented
    value as loaded), so a file that omits it equals one that spells it out."""
    _check_format(data, where)
    allowed_top = {"format"} | {f.key for f in SCHEMA if f.section is None} | set(SECTIONS)
    for key in data:
        if key not in allowed_top:
            raise TargetError(f"field '{key}': unknown key (allowed: {', '.join(sorted(allowed_top))})", where)
    for sec in SECTIONS:
        if sec not in data:
            if any(f.required for f in SCHEMA if f.section == sec):
                raise TargetError(f"field '{sec}': missing section [{sec}]", where)
            continue
        if not isinstance(data[sec], dict):
            raise TargetError(f"field '{sec}': expected a table [{sec}], got {type(data[sec]).__name__}", where)
        known = {f.key for f in SCHEMA if f.section == sec}
        for key in data[sec]:
            if key not in known:
                raise TargetError(f"field '{sec}.{key}': unknown key (allowed in [{sec}]: "
                                  f"{', '.join(sorted(known))})", where)
    values: dict[str, Any] = {}
    for f in SCHEMA:
        table = data if f.section is None else data.get(f.section, {})
        if f.key in table:
            values[f.attr] = _check_value(f, table[f.key], where)
        elif f.required:
            raise TargetError(f"field '{f.path}': missing (required, no default)", where)
    t = Target(**values, source=where)
    if t.rf_words_per_pe < t.psum_words:
        raise TargetError(f"field 'array.rf_words_per_pe': must hold one partial sum "
                          f"({t.psum_words} words), got {t.rf_words_per_pe}", where)
    if t.psum_bits < t.word_bits:
        raise TargetError(f"field 'buffer.psum_bits': must be >= buffer.word_bits ({t.word_bits}), "
                          f"got {t.psum_bits}", where)
    lo, hi = WORDS_PER_CYCLE_RANGE
    if not lo <= t.dram_words_per_cycle <= hi:
        raise TargetError(f"field 'dram.bandwidth_gb_per_s': {_number(t.dram_bandwidth_gb_per_s)} GB/s at "
                          f"{_number(t.clock_mhz)} MHz is {float(t.dram_words_per_cycle):.3g} words per "
                          f"cycle; must be in [2^-20, 2^20]", where)
    return t


def _number(v: Fraction) -> str:
    """A Fraction as the user would write it: an integer, else a short decimal."""
    return str(v.numerator) if v.denominator == 1 else f"{float(v):.6g}"


def list_targets() -> list[str]:
    """Names of the bundled targets, sorted."""
    pkg = resources.files("sqnxt_compiler.targets")
    return sorted(p.name[:-5] for p in pkg.iterdir() if p.name.endswith(".toml"))


def load_target(name_or_path: str | Path) -> Target:
    """Load a bundled target by name (``"pe16x16"``) or any target file by path.

    A string without a path separator and without a ``.toml`` suffix is a bundled name;
    anything else is a path.  Errors are :class:`TargetError` naming file and field."""
    s = str(name_or_path)
    is_name = isinstance(name_or_path, str) and "/" not in s and "\\" not in s and not s.endswith(".toml")
    if is_name:
        if s not in list_targets():
            raise TargetError(f"unknown target '{s}' (bundled: {', '.join(list_targets())}; "
                              "or give a path to a .toml file)")
        res = resources.files("sqnxt_compiler.targets").joinpath(f"{s}.toml")
        where = f"{s}.toml"
        raw = res.read_bytes()
    else:
        where = s
        try:
            raw = Path(s).read_bytes()
        except OSError as exc:
            raise TargetError(f"cannot read target file: {exc.strerror or exc}", where) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise TargetError("not a TOML file (not UTF-8 text)", where) from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"not a valid TOML file: {exc}", where) from None
    return parse_target(data, where)
