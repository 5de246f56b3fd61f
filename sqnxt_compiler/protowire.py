"""Protobuf's wire format, the two pieces sqnxtc reads and writes by hand: base-128
varints (the zoo streams large models without building them in memory; the frontend scans
a model file for its large weights).  A field is a varint key ``number << 3 | wire type``
then a varint (type 0), 8 bytes (1), a varint length and that many bytes (2), or 4 bytes (5).
"""
from __future__ import annotations


class WireError(Exception):
    """Bytes that are not the wire format expected."""


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def read_varint(buf, i: int, end: int) -> tuple[int, int]:
    """Decode the varint at ``buf[i]`` (not past ``end``): (value, index after it)."""
    shift = value = 0
    while True:
        if i >= end or shift > 63:
            raise WireError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
