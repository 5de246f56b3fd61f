"""Target descriptions: the accelerator a layer is scheduled on, loaded from TOML.

A target file has a top-level ``name`` and ``description`` and the sections of
:data:`SCHEMA` (``[array]``, ``[buffer]``, ``[dram]``, ``[clock]``, ``[dataflow]``,
``[energy]``).  Every field is required, has one type and a range, and unknown keys are
rejected: a bad file raises :class:`~sqnxt_compiler.diagnostics.TargetError` naming the
file and the field (``pe16x16.toml: field 'buffer.global_buffer_bytes': ...``).

The bundled targets are package data (``pe16x16.toml``, ``pe8x8.toml``) read through
:mod:`importlib.resources`; :func:`load_target` also accepts a path to any file.
The field reference (units, meaning, where each default comes from) is
``docs/target-format.md``.
"""
from __future__ import annotations

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

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}" if self.section else self.key


SCHEMA: tuple[Field, ...] = (
    Field(None, "name", "name", "str", "", "target name (what `--target` takes)"),
    Field(None, "description", "description", "str", "", "one line for `targets list`"),
    Field("array", "pe_rows", "pe_rows", "int", "PEs", "array rows: WS input channels, OS output rows", 1),
    Field("array", "pe_cols", "pe_cols", "int", "PEs", "array columns: WS output channels, OS output columns", 1),
    Field("array", "rf_words_per_pe", "rf_words_per_pe", "int", "words",
          "register file per PE; >= 2 partial sums double-buffers the OS accumulator", 1),
    Field("array", "pipeline_fill_cycles", "pipeline_fill_cycles", "int", "cycles",
          "array pipeline fill and drain, charged once per layer", 0),
    Field("buffer", "word_bits", "word_bits", "int", "bits", "width of an activation or weight word", 1),
    Field("buffer", "global_buffer_bytes", "global_buffer_bytes", "int", "bytes", "global buffer capacity", 1),
    Field("buffer", "port_words_per_cycle", "port_words_per_cycle", "int", "words/cycle",
          "global buffer <-> array port width (weight-block load, accumulator drain)", 1),
    Field("buffer", "split", "buffer_split", "str", "",
          "how the buffer is split between inputs, weights and outputs", choices=("shared",)),
    Field("buffer", "double_buffering", "double_buffering", "bool", "",
          "two copies of every tile so that DMA overlaps compute"),
    Field("buffer", "psum_bits", "psum_bits", "int", "bits", "width of a stored partial sum", 1),
    Field("dram", "latency_cycles", "dram_latency_cycles", "int", "cycles", "latency of one DMA transfer", 0),
    Field("dram", "bandwidth_gb_per_s", "dram_bandwidth_gb_per_s", "number", "GB/s",
          "effective DRAM bandwidth (10^9 bytes/s)", 0, exclusive_min=True),
    Field("dram", "activation_home", "activation_home", "str", "",
          "where activations live between layers", choices=("dram",)),
    Field("clock", "frequency_mhz", "clock_mhz", "number", "MHz", "clock frequency", 0, exclusive_min=True),
    Field("dataflow", "os_weight_zero_fraction", "os_weight_zero_fraction", "number", "fraction",
          "weights assumed zero (skipped in OS) when the layer gives no measurement", 0,
          maximum=1, exclusive_max=True),
    Field("dataflow", "ws_rf_accesses_per_mac", "ws_rf_per_mac", "int", "accesses/MAC", "WS register-file accesses per MAC", 0),
    Field("dataflow", "ws_array_accesses_per_mac", "ws_array_per_mac", "int", "accesses/MAC", "WS array-network accesses per MAC", 0),
    Field("dataflow", "os_rf_accesses_per_mac", "os_rf_per_mac", "int", "accesses/MAC", "OS register-file accesses per MAC", 0),
    Field("dataflow", "os_array_accesses_per_mac", "os_array_per_mac", "int", "accesses/MAC", "OS array-network accesses per MAC", 0),
    Field("energy", "mac", "e_mac", "int", "units/access", "normalized energy of one MAC", 0),
    Field("energy", "rf", "e_rf", "int", "units/access", "normalized energy of one register-file access", 0),
    Field("energy", "array", "e_array", "int", "units/access", "normalized energy of one array-network access", 0),
    Field("energy", "buffer", "e_buffer", "int", "units/access", "normalized energy of one global-buffer word access", 0),
    Field("energy", "dram", "e_dram", "int", "units/access", "normalized energy of one DRAM word access", 0),
)

SECTIONS: tuple[str, ...] = ("array", "buffer", "dram", "clock", "dataflow", "energy")


@dataclass(frozen=True)
class Target:
    """An accelerator configuration.  All fields come from the TOML file (see SCHEMA);
    numbers that can be fractional (bandwidth, clock, zero fraction) are exact Fractions.
    Derived quantities used by the cost model are properties with their formula."""

    name: str
    description: str
    pe_rows: int
    pe_cols: int
    rf_words_per_pe: int
    pipeline_fill_cycles: int
    word_bits: int
    global_buffer_bytes: int
    port_words_per_cycle: int
    buffer_split: str
    double_buffering: bool
    psum_bits: int
    dram_latency_cycles: int
    dram_bandwidth_gb_per_s: Fraction
    activation_home: str
    clock_mhz: Fraction
    os_weight_zero_fraction: Fraction
    ws_rf_per_mac: int
    ws_array_per_mac: int
    os_rf_per_mac: int
    os_array_per_mac: int
    e_mac: int
    e_rf: int
    e_array: int
    e_buffer: int
    e_dram: int
    source: str = ""   # the file it was loaded from (not part of the fingerprint)

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
        if f.attr == "name" and not value:
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


def parse_target(data: dict, where: str) -> Target:
    """Validate a parsed TOML document against SCHEMA and build the Target."""
    allowed_top = {f.key for f in SCHEMA if f.section is None} | set(SECTIONS)
    for key in data:
        if key not in allowed_top:
            raise TargetError(f"field '{key}': unknown key (allowed: {', '.join(sorted(allowed_top))})", where)
    for sec in SECTIONS:
        if sec not in data:
            raise TargetError(f"field '{sec}': missing section [{sec}]", where)
        if not isinstance(data[sec], dict):
            raise TargetError(f"field '{sec}': expected a table [{sec}], got {type(data[sec]).__name__}", where)
        known = {f.key for f in SCHEMA if f.section == sec}
        for key in data[sec]:
            if key not in known:
                raise TargetError(f"field '{sec}.{key}': unknown key (allowed in [{sec}]: "
                                  f"{', '.join(sorted(known))})", where)
    values: dict[str, Any] = {}
    for f in SCHEMA:
        table = data if f.section is None else data[f.section]
        if f.key not in table:
            raise TargetError(f"field '{f.path}': missing", where)
        values[f.attr] = _check_value(f, table[f.key], where)
    t = Target(**values, source=where)
    if t.rf_words_per_pe < t.psum_words:
        raise TargetError(f"field 'array.rf_words_per_pe': must hold one partial sum "
                          f"({t.psum_words} words), got {t.rf_words_per_pe}", where)
    if t.psum_bits < t.word_bits:
        raise TargetError(f"field 'buffer.psum_bits': must be >= buffer.word_bits ({t.word_bits}), "
                          f"got {t.psum_bits}", where)
    return t


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


def target_field_names() -> list[str]:
    """Dataclass attribute names in schema order (for docs and tests)."""
    return [f.attr for f in SCHEMA]

