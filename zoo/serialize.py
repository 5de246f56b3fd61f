"""Write a large ONNX model without materializing its whole serialization in memory.

``ModelProto.SerializeToString()`` on VGG-19 (575 MB of weights) peaks near 2.9 GB: the
encoder grows one buffer for the whole model, then copies it into a Python ``bytes``.
:func:`iter_model_bytes` yields the same encoding in pieces instead: every field except
the graph's initializers is serialized from small "shell" messages, and each initializer
is emitted as its header plus its ``raw_data``, one tensor at a time.  Protobuf encodes
fields in field-number order, so the pieces concatenate to exactly the bytes of
``SerializeToString()`` (the tests check this).
"""
from __future__ import annotations

from typing import BinaryIO, Callable, Iterator

import onnx
from google.protobuf.message import Message

from sqnxt_compiler.protowire import varint

_LEN = 2  # wire type of length-delimited fields
_MODEL_GRAPH = onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number
_GRAPH_INIT = onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number
_TENSOR_RAW = onnx.TensorProto.DESCRIPTOR.fields_by_name["raw_data"].number
_ITEM_SIZE = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.INT64: 8, onnx.TensorProto.INT32: 4,
              onnx.TensorProto.DOUBLE: 8, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.INT8: 1,
              onnx.TensorProto.UINT8: 1}


def _key(number: int) -> bytes:
    return varint((number << 3) | _LEN)


def _is_repeated(fd) -> bool:
    """Whether a field is repeated (``label`` is deprecated in protobuf >= 6)."""
    flag = getattr(fd, "is_repeated", None)
    return bool(flag) if flag is not None else fd.label == fd.LABEL_REPEATED


def _shell(msg: Message, keep: Callable[[int], bool]) -> bytes:
    """Serialize only the fields of ``msg`` whose field number passes ``keep``."""
    shell = type(msg)()
    for fd, value in msg.ListFields():
        if not keep(fd.number):
            continue
        if _is_repeated(fd):
            getattr(shell, fd.name).extend(value)
        elif fd.type == fd.TYPE_MESSAGE:
            getattr(shell, fd.name).CopyFrom(value)
        else:
            setattr(shell, fd.name, value)
    return shell.SerializeToString()


def _raw_size(t: onnx.TensorProto) -> int | None:
    """Length of ``t.raw_data`` from its dims and type, without copying the data."""
    item = _ITEM_SIZE.get(t.data_type)
    if item is None:
        return None
    n = item
    for d in t.dims:
        n *= d
    return n


def _tensor_pieces(t: onnx.TensorProto) -> tuple[int, Callable[[], Iterator[bytes]]]:
    """(encoded size, generator of the encoding) of one initializer, raw data last."""
    raw_len = _raw_size(t) if t.HasField("raw_data") else None
    if raw_len is None or any(fd.number > _TENSOR_RAW for fd, _ in t.ListFields()):
        data = t.SerializeToString()
        return len(data), lambda: iter((data,))
    head = _shell(t, lambda n: n < _TENSOR_RAW) + _key(_TENSOR_RAW) + varint(raw_len)
    return len(head) + raw_len, lambda: iter((head, t.raw_data))


def iter_model_bytes(model: onnx.ModelProto) -> Iterator[bytes]:
    """Yield the encoding of ``model`` in pieces; ``b"".join`` equals ``SerializeToString()``."""
    graph = model.graph
    tensors = [_tensor_pieces(t) for t in graph.initializer]
    g_before = _shell(graph, lambda n: n < _GRAPH_INIT)
    g_after = _shell(graph, lambda n: n > _GRAPH_INIT)
    g_size = len(g_before) + len(g_after) + sum(len(_key(_GRAPH_INIT)) + len(varint(size)) + size
                                                for size, _ in tensors)
    yield _shell(model, lambda n: n < _MODEL_GRAPH)
    if model.HasField("graph"):
        yield _key(_MODEL_GRAPH) + varint(g_size)
        yield g_before
        for size, pieces in tensors:
            yield _key(_GRAPH_INIT) + varint(size)
            yield from pieces()
        yield g_after
    yield _shell(model, lambda n: n > _MODEL_GRAPH)


def write_model(model: onnx.ModelProto, fh: BinaryIO) -> int:
    """Write ``model``'s encoding to the binary file ``fh`` piece by piece; return its size."""
    n = 0
    for piece in iter_model_bytes(model):
        fh.write(piece)
        n += len(piece)
    return n
