"""Tensor types of IR values: a static shape and an element type.

Textual form (MLIR style): ``tensor<1x3x227x227xf32>``; a rank-0 tensor is ``tensor<f32>``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: IR element types and the numpy dtype each one maps to.
DTYPES: dict[str, np.dtype] = {
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
    "f16": np.dtype(np.float16),
    "i64": np.dtype(np.int64),
    "i32": np.dtype(np.int32),
    "i8": np.dtype(np.int8),
    "u8": np.dtype(np.uint8),
    "bool": np.dtype(np.bool_),
}
_BY_NUMPY = {v: k for k, v in DTYPES.items()}


def dtype_name(np_dtype) -> str:
    """The IR element type name of a numpy dtype (``float32`` -> ``f32``)."""
    dt = np.dtype(np_dtype)
    if dt not in _BY_NUMPY:
        raise ValueError(f"element type {dt} has no IR equivalent")
    return _BY_NUMPY[dt]


@dataclass(frozen=True)
class TensorType:
    """A ranked tensor type with a fully static shape (batch 1 is a real dimension)."""

    shape: tuple[int, ...]
    dtype: str = "f32"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown element type '{self.dtype}'")
        if any(d < 0 for d in self.shape):
            raise ValueError(f"negative dimension in {self.shape}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        """Number of elements: the product of the dimensions (1 for a scalar)."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def np_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    def __str__(self) -> str:
        if not self.shape:
            return f"tensor<{self.dtype}>"
        return "tensor<" + "x".join(str(d) for d in self.shape) + f"x{self.dtype}>"

    @staticmethod
    def of(array: np.ndarray) -> "TensorType":
        """The type of a numpy array."""
        return TensorType(tuple(array.shape), dtype_name(array.dtype))
