"""The binary form of a program: a 32-byte header, the layer descriptors (64 bytes each),
the instructions (32 bytes each), the string table; little-endian (``docs/isa.md``,
"Binary form").

:func:`encode` is deterministic (same program, same bytes).  :func:`decode` checks
everything before it returns: size, magic, version, reserved words, lengths, checksum,
every record's opcode, fields and reserved bits, the string table; any problem is an
:class:`~sqnxt_compiler.diagnostics.InputError` (exit 3), one line naming the file, the
byte offset and the record (``prog.bin: byte 160 (instruction 2, LOAD): field 'ew' = 0
out of range [1, 3]``)."""
from __future__ import annotations

import struct
import zlib

from ..diagnostics import InputError
from .isa import (BY_OPCODE, CLASSES, INSN_BITS, LAYER, LAYER_BITS, NAME_OFF_BITS,
                  OP_BITS, Program, Record, field_bits, verify_fields, verify_program)

MAGIC = b"SQNXPRG\x00"
VERSION = 1
HEADER = struct.Struct("<8sHHIIIII")   # magic, version, reserved, layers, insns, string bytes, crc32, reserved
HEADER_BYTES = HEADER.size             # 32
CRC_AT = 24
INSN_BYTES = INSN_BITS // 8            # 32
LAYER_BYTES = LAYER_BITS // 8          # 64


# ----------------------------------------------------------------------------- records
def pack_record(rec, name_at: tuple[int, int] | None = None) -> bytes:
    """The bytes of one record (a :class:`~.isa.Insn` instance): its fields LSB first."""
    r: Record = rec.RECORD
    word, at = (r.opcode, OP_BITS) if r.opcode else (0, 0)
    for f in r.fields:
        if f.kind == "name":
            off, length = name_at if name_at is not None else (0, 0)
            word |= off << at
            word |= length << (at + NAME_OFF_BITS)
        else:
            word |= f.to_raw(getattr(rec, f.name)) << at
        at += field_bits(f)
    return word.to_bytes(r.bits // 8, "little")


def unpack_record(r: Record, data: bytes):
    """The record of kind ``r`` in ``data``; raises ValueError naming the bad field."""
    word = int.from_bytes(data, "little")
    at = OP_BITS if r.opcode else 0
    values = {}
    for f in r.fields:
        w = field_bits(f)
        raw = (word >> at) & ((1 << w) - 1)
        if f.kind == "name":
            off, length = raw & ((1 << NAME_OFF_BITS) - 1), raw >> NAME_OFF_BITS
            values[f.name] = (off, length)
        else:
            values[f.name] = f.from_raw(raw)
        at += w
    if word >> at:
        raise ValueError(f"reserved bits {at}..{r.bits - 1} are not zero")
    return values


# ----------------------------------------------------------------------------- programs
def encode(prog: Program) -> bytes:
    """The binary form of ``prog`` (checked first: a program that breaks a field's range or
    the program's structure is a bug of whoever built it, ValueError)."""
    for rec in (*prog.layers, *prog.insns):
        problems = verify_fields(rec)
        if problems:
            raise ValueError(f"{rec.mnemonic}: {problems[0]}")
    for i, msg in verify_program(prog):
        raise ValueError(f"instruction {i}: {msg}")
    names = [lay.name.encode("utf-8") for lay in prog.layers]
    body, off = [], 0
    for lay, nb in zip(prog.layers, names):
        body.append(pack_record(lay, (off, len(nb))))
        off += len(nb)
    body.extend(pack_record(insn) for insn in prog.insns)
    body.extend(names)
    blob = b"".join(body)
    head = HEADER.pack(MAGIC, VERSION, 0, len(prog.layers), len(prog.insns), off, 0, 0)
    crc = zlib.crc32(blob, zlib.crc32(head))
    return HEADER.pack(MAGIC, VERSION, 0, len(prog.layers), len(prog.insns), off, crc, 0) + blob


def checksum(data: bytes) -> int:
    """The CRC-32 of a program file: of all its bytes with the checksum word as zero."""
    return zlib.crc32(data[:CRC_AT] + b"\0\0\0\0" + data[CRC_AT + 4:])


def decode(data: bytes, source: str = "<program>") -> Program:
    """The program in ``data`` (the bytes of file ``source``); InputError on any problem."""
    def fail(msg: str, at: int | None = None):
        where = f"byte {at}: " if at is not None else ""
        raise InputError(f"{where}{msg}", source)

    if not data:
        fail("empty file, not a sqnxtc program")
    if len(data) < HEADER_BYTES:
        fail(f"truncated program: the file ends inside the {HEADER_BYTES}-byte header"
             if data[:len(MAGIC)] == MAGIC[:len(data)] else
             f"not a sqnxtc program (too short for a header: {len(data)} bytes)", len(data))
    magic, version, res0, n_layers, n_insns, n_str, crc, res1 = HEADER.unpack_from(data)
    if magic != MAGIC:
        fail(f"not a sqnxtc program (bad magic {magic!r}, expected {MAGIC!r})", 0)
    if version != VERSION:
        fail(f"program format version {version} is not supported (this sqnxtc reads version {VERSION})", 8)
    if res0 or res1:
        fail("reserved header words are not zero", 10 if res0 else 28)
    size = HEADER_BYTES + n_layers * LAYER_BYTES + n_insns * INSN_BYTES + n_str
    if len(data) < size:
        fail(f"truncated program: the file ends here, but the header (bytes 12..23) announces {n_layers} "
             f"layers, {n_insns} instructions and {n_str} string bytes ({size} bytes)", len(data))
    if len(data) > size:
        fail(f"{len(data) - size} trailing bytes after the program's {size} bytes", size)
    got = checksum(data)
    if got != crc:
        fail(f"checksum mismatch (header 0x{crc:08x}, contents 0x{got:08x}): the file is corrupt", CRC_AT)
    at = HEADER_BYTES
    str_at = HEADER_BYTES + n_layers * LAYER_BYTES + n_insns * INSN_BYTES
    strings = data[str_at:]
    layers, expect_off = [], 0
    for i in range(n_layers):
        where = f"layer descriptor {i}"
        try:
            values = unpack_record(LAYER, data[at:at + LAYER_BYTES])
            off, length = values["name"]
            if off != expect_off or off + length > n_str:
                raise ValueError(f"name at string bytes {off}..{off + length} is not where the "
                                 f"string table puts it ({expect_off}..; {n_str} bytes)")
            expect_off += length
            try:
                values["name"] = strings[off:off + length].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"name is not UTF-8 ({exc.reason})") from None
            layers.append(CLASSES["LAYER"](**values))
        except ValueError as exc:
            fail(f"{where}: {_strip(str(exc), 'LAYER: ')}", at)
        at += LAYER_BYTES
    if expect_off != n_str:
        fail(f"string table has {n_str - expect_off} bytes no layer name uses", str_at + expect_off)
    insns = []
    for i in range(n_insns):
        chunk = data[at:at + INSN_BYTES]
        op = chunk[0] & ((1 << OP_BITS) - 1)
        r = BY_OPCODE.get(op)
        if r is None:
            fail(f"instruction {i}: unknown opcode {op}", at)
        try:
            insns.append(CLASSES[r.mnemonic](**unpack_record(r, chunk)))
        except ValueError as exc:
            fail(f"instruction {i} ({r.mnemonic}): {_strip(str(exc), r.mnemonic + ': ')}", at)
        at += INSN_BYTES
    prog = Program(tuple(layers), tuple(insns))
    for i, msg in verify_program(prog):
        fail(f"instruction {i}: {msg}",
             HEADER_BYTES + n_layers * LAYER_BYTES + min(i, max(n_insns - 1, 0)) * INSN_BYTES)
    return prog


def _strip(msg: str, prefix: str) -> str:
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def read_bytes(path: str, what: str) -> bytes:
    """The bytes of input file ``path`` (InputError naming it: missing, a directory, or
    unreadable; ``what`` says what it should have been, e.g. "a program file")."""
    import os

    if not os.path.exists(path):
        raise InputError("no such file", path)
    if os.path.isdir(path):
        raise InputError(f"is a directory, not {what}", path)
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from None


def read_program(path: str) -> Program:
    """Read and decode program file ``path`` (InputError: missing, a directory, unreadable,
    or any problem :func:`decode` finds)."""
    return decode(read_bytes(path, "a program file"), path)
