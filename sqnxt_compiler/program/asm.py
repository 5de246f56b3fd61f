"""The text form of a program (``docs/isa.md``, "Text form"): one record a line,
``MNEMONIC key=value ...``, comments from ``#`` or ``;`` to the end of the line.

:func:`format_program` prints the canonical text: every field of every record in
declaration order (the token flags only when set), each layer descriptor (``LAYER``) just before the first instruction of
its layer with a comment line naming it.  :func:`parse_program` reads any text of that
syntax (fields in any order, a missing field takes its default) and raises a one-line
:class:`~sqnxt_compiler.diagnostics.InputError` naming the line for anything else.
Canonical text -> program -> canonical text is the identity, and so is program -> text ->
program."""
from __future__ import annotations

import json
import re
import struct

from ..diagnostics import InputError
from .encoding import read_bytes
from .isa import BY_MNEMONIC, CLASSES, LAYER, TOKENS, Field, Program, verify_fields, verify_program

FORMAT_LINE = "# sqnxtc program, format 1 (docs/isa.md)"


# ----------------------------------------------------------------------------- printing
def quote(text: str) -> str:
    """``text`` as a JSON string on one line: printable characters as they are, others
    (line and paragraph separators included) as ``\\uXXXX`` escapes."""
    out = []
    for ch in json.dumps(text, ensure_ascii=False):
        if ch.isprintable():
            out.append(ch)
        else:
            units = ch.encode("utf-16-be", "surrogatepass")
            out.extend(f"\\u{int.from_bytes(units[i:i + 2], 'big'):04x}" for i in range(0, len(units), 2))
    return "".join(out)


def format_value(f: Field, v) -> str:
    if f.kind == "name":
        return quote(v)
    if f.kind == "f32":
        return repr(float(v))
    return str(v)


def format_record(rec) -> str:
    """One record as a line: every field in declaration order, except the token flags,
    written only when set (``push_next=1``)."""
    parts = [rec.RECORD.mnemonic]
    parts += [f"{f.name}={format_value(f, getattr(rec, f.name))}" for f in rec.RECORD.fields
              if f not in TOKENS or getattr(rec, f.name)]
    return " ".join(parts)


def _layer_comment(i: int, lay) -> str:
    shape = f"C={lay.C} K={lay.K} {lay.H}x{lay.W} -> {lay.P}x{lay.Q}"
    return f"# ---- layer {i}: {quote(lay.name)} ({lay.kind} {lay.df}, {shape})"


def format_program(prog: Program) -> str:
    """The canonical text of ``prog`` (module doc), ending in a newline."""
    lines = [FORMAT_LINE, f"# {len(prog.layers)} layers, {len(prog.insns)} instructions"]
    shown = 0

    def show_until(last: int) -> None:
        nonlocal shown
        while shown <= last and shown < len(prog.layers):
            lines.append("")
            lines.append(_layer_comment(shown, prog.layers[shown]))
            lines.append(format_record(prog.layers[shown]))
            shown += 1

    for insn in prog.insns:
        layer = getattr(insn, "layer", None)
        show_until(len(prog.layers) - 1 if layer is None else layer)
        if insn.RECORD.mnemonic == "FINISH":
            lines.append("")
        lines.append(format_record(insn))
    show_until(len(prog.layers) - 1)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- parsing
_TOKEN = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"]+)')
_INT = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|[0-9]+)")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _strip_comment(line: str) -> str:
    """``line`` without its comment (``#`` or ``;`` outside a quoted string)."""
    quoted = esc = False
    for i, ch in enumerate(line):
        if quoted:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "#;":
            return line[:i]
    return line


def parse_value(f: Field, text: str):
    """The value of field ``f`` written ``text``; ValueError naming the problem."""
    if f.kind == "name":
        if not (text.startswith('"') and text.endswith('"')):
            raise ValueError(f"field '{f.name}': expected a quoted string, got {text}")
        try:
            v = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"field '{f.name}': bad string {text} ({exc.msg})") from None
        return v
    if f.kind == "enum":
        if text not in f.values:
            raise ValueError(f"field '{f.name}' = {text!r} is not one of {'|'.join(f.values)}")
        return text
    if f.kind == "f32":
        if not _FLOAT.fullmatch(text):
            raise ValueError(f"field '{f.name}' = {text!r} is not a number")
        try:
            return struct.unpack("<f", struct.pack("<f", float(text)))[0]
        except OverflowError:
            raise ValueError(f"field '{f.name}' = {text} is out of the binary32 range") from None
    if not _INT.fullmatch(text):
        raise ValueError(f"field '{f.name}' = {text!r} is not an integer")
    return int(text, 0) if not text.startswith("-") else -int(text[1:], 0)


def parse_line(text: str):
    """The record written on one line (comment stripped, not blank); ValueError."""
    body = _strip_comment(text).strip()
    m = re.match(r"(\S+)(.*)", body)
    mnemonic, rest = m.group(1), m.group(2)
    rec = BY_MNEMONIC.get(mnemonic)
    if rec is None:
        known = "|".join(BY_MNEMONIC)
        raise ValueError(f"unknown instruction {mnemonic!r} (expected one of {known})")
    fields = {f.name: f for f in rec.fields}
    values: dict = {}
    pos = 0
    while pos < len(rest):
        if rest[pos:].strip() == "":
            break
        m = _TOKEN.match(rest, pos)
        if m is None:
            bad = rest[pos:].split()[0]
            raise ValueError(f"{mnemonic}: cannot read {bad!r} (expected key=value)")
        key, val = m.group(1), m.group(2)
        if m.end() < len(rest) and not rest[m.end()].isspace():
            raise ValueError(f"{mnemonic}: cannot read {rest[pos:].split()[0]!r} (expected key=value)")
        f = fields.get(key)
        if f is None:
            raise ValueError(f"{mnemonic} has no field '{key}' (fields: {', '.join(fields)})")
        if key in values:
            raise ValueError(f"{mnemonic}: field '{key}' given twice")
        values[key] = parse_value(f, val)
        pos = m.end()
    cls = CLASSES[mnemonic]
    probe = {f.name: values.get(f.name, f.default) for f in rec.fields}
    problems = verify_fields(_Probe(rec, probe))
    if problems:
        raise ValueError(f"{mnemonic}: {problems[0]}")
    return cls(**probe)


class _Probe:
    """A record's values before its class checks them (so the message has no prefix twice)."""

    def __init__(self, rec, values):
        self.RECORD = rec
        self.__dict__.update(values)

    @property
    def queue(self):
        return self.q if self.RECORD.mnemonic == "SYNC" else self.RECORD.queue


def parse_program(text: str, source: str = "<program.s>") -> Program:
    """The program written in ``text`` (file ``source``); InputError naming the line."""
    layers, insns, lines_of = [], [], []
    for n, line in enumerate(text.split("\n"), 1):
        line = line[:-1] if line.endswith("\r") else line
        if not _strip_comment(line).strip():
            continue
        try:
            rec = parse_line(line)
        except ValueError as exc:
            raise InputError(f"line {n}: {exc}", source) from None
        if rec.RECORD is LAYER:
            layers.append(rec)
            continue
        layer = getattr(rec, "layer", None)
        if layer is not None and layer >= len(layers):
            raise InputError(f"line {n}: {rec.mnemonic} refers to layer {layer}, but only {len(layers)} "
                             "LAYER lines come before it", source)
        insns.append(rec)
        lines_of.append(n)
    prog = Program(tuple(layers), tuple(insns))
    for i, msg in verify_program(prog):
        where = f"line {lines_of[i]}: " if i < len(lines_of) else "end of file: "
        raise InputError(f"{where}{msg}", source)
    return prog


def read_text(path: str) -> Program:
    """Read and parse assembly file ``path`` (InputError for a missing or unreadable file,
    text that is not UTF-8, or any problem :func:`parse_program` finds)."""
    data = read_bytes(path, "a program text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"line {line}: not UTF-8 text (byte {exc.start})", path) from None
    return parse_program(text, path)
