"""Reading an ONNX file without holding its weights twice (docs/ir.md, "Large models").

``onnx.load`` reads the whole file into a bytes object and parses it into a ModelProto
that holds a second copy of every weight; the checker and shape inference then serialize
it again.  For a model whose weights are most of the file (VGG-19: 575 MB) that is 3-5x
the file at the peak.  Here the file is memory-mapped and scanned in protobuf's wire
format: every initializer whose entry is at least ``min_bytes`` long and whose data is
internal ``raw_data`` is replaced, in the bytes protobuf parses, by a *stand-in*: a
TensorProto with its name, dims and element type and no data (shape inference needs no
more); its data is read later, straight from the file into a numpy array
(:meth:`LazyTensor.load`), when the frontend lowers the first node that uses it.  Any
other initializer, and anything the scan does not expect, is left to protobuf as it is.

Wire format (protobuf encoding): a message is a sequence of fields, each a varint key
``field_number << 3 | wire_type`` then a varint (type 0), 8 bytes (1), a varint length
and that many bytes (2), or 4 bytes (5).  ModelProto.graph is field 7, GraphProto.
initializer field 5; TensorProto: dims 1, data_type 2, name 8, raw_data 9, data_location 14
(1 = external).  ONNX stores raw_data little-endian.
"""
from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from ..protowire import WireError, read_varint, varint

#: Initializer entries at least this long (bytes) are read lazily.
MIN_LAZY_BYTES = 1 << 20


@dataclass(frozen=True)
class LazyTensor:
    """An initializer's raw data in the file: ``nbytes`` bytes at ``offset``."""

    path: str
    name: str
    offset: int
    nbytes: int
    data_type: int
    dims: tuple[int, ...]

    def load(self) -> np.ndarray:
        """The tensor as a numpy array, read from the file (little-endian raw data)."""
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(self.data_type)).newbyteorder("<")
        arr = np.fromfile(self.path, dtype=dt, count=self.nbytes // dt.itemsize, offset=self.offset)
        return arr.astype(dt.newbyteorder("="), copy=False).reshape(self.dims)


def _fields(buf, start: int, end: int):
    """Yield (field number, wire type, key start, payload start, payload end) of the
    message in ``buf[start:end]``."""
    i = start
    while i < end:
        key_start = i
        key, i = read_varint(buf, i, end)
        field, wt = key >> 3, key & 7
        if wt == 0:
            _, j = read_varint(buf, i, end)
        elif wt == 1:
            j = i + 8
        elif wt == 5:
            j = i + 4
        elif wt == 2:
            n, i = read_varint(buf, i, end)
            j = i + n
        else:
            raise WireError(f"wire type {wt}")
        if j > end:
            raise WireError("field runs past its message")
        yield field, wt, key_start, i, j
        i = j


def _stand_in(buf, start: int, end: int, path: str) -> tuple[bytes, LazyTensor] | None:
    """(serialized stand-in, lazy tensor) of the TensorProto in ``buf[start:end]``, or None
    when its data is not one internal raw_data field of the size its dims and type give."""
    dims: list[int] = []
    data_type = name = raw = None
    for field, wt, _, a, b in _fields(buf, start, end):
        if field == 1 and wt == 0:
            dims.append(read_varint(buf, a, b)[0])
        elif field == 1 and wt == 2:
            i = a
            while i < b:
                v, i = read_varint(buf, i, b)
                dims.append(v)
        elif field == 2 and wt == 0:
            data_type = read_varint(buf, a, b)[0]
        elif field == 8 and wt == 2:
            try:
                name = bytes(buf[a:b]).decode("utf-8")
            except UnicodeDecodeError:
                return None
        elif field == 9 and wt == 2:
            raw = (a, b)
        elif field in (3, 12, 16):       # segment, doc_string, metadata: not needed
            continue
        else:                            # typed data, external data, a location: leave it
            return None
    if raw is None or name is None or data_type is None:
        return None
    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return None
    dims = [d - (1 << 64) if d >= 1 << 63 else d for d in dims]
    if any(d < 0 for d in dims) or int(np.prod(dims, dtype=object)) * itemsize != raw[1] - raw[0]:
        return None
    stand = onnx.TensorProto(name=name, dims=dims, data_type=data_type)
    return stand.SerializeToString(), LazyTensor(path, name, raw[0], raw[1] - raw[0], data_type, tuple(dims))


def _strip_graph(buf, start: int, end: int, path: str, min_bytes: int, lazy: dict) -> bytes:
    """The GraphProto in ``buf[start:end]`` with its large initializers as stand-ins."""
    out = bytearray()
    for field, wt, key_start, a, b in _fields(buf, start, end):
        got = _stand_in(buf, a, b, path) if field == 5 and wt == 2 and b - a >= min_bytes else None
        if got is None:
            out += buf[key_start:b]
            continue
        stand, t = got
        lazy[t.name] = t
        out += varint(5 << 3 | 2) + varint(len(stand)) + stand
    return bytes(out)


def read_model(path: str, min_bytes: int = MIN_LAZY_BYTES) -> tuple[onnx.ModelProto, dict[str, LazyTensor]]:
    """The model in ``path`` with its large initializers as stand-ins, and those
    initializers' data as :class:`LazyTensor` by name.  A file the scan does not handle is
    read by ``onnx.load`` (no lazy tensors).  Raises what ``onnx.load`` raises on a file
    that is not a model."""
    lazy: dict[str, LazyTensor] = {}
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            buf = memoryview(mm)
            try:
                out = bytearray()
                for field, wt, key_start, a, b in _fields(buf, 0, len(buf)):
                    if field == 7 and wt == 2:
                        g = _strip_graph(buf, a, b, path, min_bytes, lazy)
                        out += varint(7 << 3 | 2) + varint(len(g)) + g
                    else:
                        out += buf[key_start:b]
            finally:
                buf.release()
    except (WireError, ValueError, OSError):
        lazy = {}
    if not lazy:
        return onnx.load(path), {}
    model = onnx.ModelProto()
    model.ParseFromString(bytes(out))
    return model, lazy
