"""Reading an ONNX model: a file (its large weights lazily, :mod:`.weights`) or a
``zoo:NAME`` model, with a located error for anything that is not a readable ONNX model
(missing file, directory, unreadable or empty file, not a protobuf, truncated protobuf, a
protobuf that is not a model, strings that are not UTF-8); and the model's default-domain
opset."""
from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from ..diagnostics import InputError
from .weights import LazyTensor, read_model


def load_onnx(spec: str) -> tuple[onnx.ModelProto, str]:
    """Load ``spec`` (a path, or ``zoo:NAME``) as an ONNX model; return (model, source name)."""
    model, source, _ = _read(spec, lazy=False)
    return model, source


def _read(spec: str, *, lazy: bool) -> tuple[onnx.ModelProto, str, dict[str, LazyTensor]]:
    """(model, source name, lazily read initializers): with ``lazy`` a file's large
    initializers are stand-ins whose data :mod:`.weights` reads on use."""
    if spec.startswith("zoo:"):
        from .. import zoo  # lazy: the zoo is only needed for zoo: models
        from ..zoo.registry import lookup
        from ..zoo.store import load

        # built once per version of the zoo's code, then read from the user's cache
        # (zoo/store.py); zoo.build is looked up here, when the model is asked for
        return load(lookup(spec[4:]).name, zoo.build), spec, {}
    path = Path(spec)
    if not path.exists():
        raise InputError("no such file", spec)
    if path.is_dir():
        raise InputError("is a directory, not an ONNX file", spec)
    if not os.access(path, os.R_OK):
        raise InputError("file is not readable", spec)
    if path.stat().st_size == 0:
        raise InputError("empty file, not an ONNX model", spec)
    try:
        model, weights = read_model(str(path)) if lazy else (onnx.load(str(path)), {})
    except DecodeError as exc:
        raise InputError(f"not an ONNX model (protobuf parse failed: {exc}); truncated or "
                         "not ONNX", spec) from None
    except (OSError, ValueError, RuntimeError, onnx.checker.ValidationError) as exc:
        # ValidationError: external data missing, not a file, or outside the model's folder
        raise InputError(f"cannot load ONNX model: {' '.join(str(exc).split())}", spec) from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise InputError("not an ONNX model (no IR version or no graph: wrong file type?)", spec)
    bad = _bad_string(model)
    if bad:
        raise InputError(f"invalid UTF-8 in {bad} (ONNX strings are UTF-8)", spec)
    return model, spec, weights


def _bad_string(msg, path: str = "model") -> str | None:
    """The path (``model.graph.node[3].name``) of the first string field of ``msg`` or its
    sub-messages that is not valid UTF-8, or None.  Protobuf hands such a field back as
    bytes, or raises when it is read; every later use of it would fail."""
    from google.protobuf.descriptor import FieldDescriptor as F

    for fd in msg.DESCRIPTOR.fields:
        if fd.type not in (F.TYPE_STRING, F.TYPE_MESSAGE):
            continue
        repeated = fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == F.LABEL_REPEATED
        if not repeated and not msg.HasField(fd.name):
            continue
        try:
            value = getattr(msg, fd.name)
            items = list(value) if repeated else [value]
        except UnicodeDecodeError:
            return f"{path}.{fd.name}"
        for i, v in enumerate(items):
            where = f"{path}.{fd.name}" + (f"[{i}]" if repeated else "")
            if fd.type == F.TYPE_STRING:
                if not isinstance(v, str):
                    return where
            else:
                bad = _bad_string(v, where)
                if bad:
                    return bad
    return None


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 0
