"""What one scheduled layer's tiled execution did: :class:`LayerStats` (tiles, MACs,
outputs, transfers, int16 accumulator ranges and saturations), comparable with the cost
model's ``CostReport.tiles_n``/``transfers`` (docs/tiled-execution.md)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LayerStats:
    """What one scheduled layer's tiled execution did."""

    name: str
    op: str
    op_id: int
    kind: str
    layer: object             # the cost model's Layer
    mapping: object           # the Mapping executed
    tiles: int = 0            # tile iterations executed (all groups, all batch elements)
    tiles_n: dict = field(default_factory=dict)   # distinct tiles per loop {"x","y","c","k"}
    groups: int = 1
    macs: int = 0             # MACs computed (element operations for pool/gap/add)
    outputs: int = 0          # output elements finalized (written)
    output_elements: int = 0  # size of the output tensor
    writes_min: int = 0       # fewest / most times any output element was finalized
    writes_max: int = 0
    transfers: dict = field(default_factory=lambda: {"input": 0, "weights": 0, "outputs": 0,
                                                     "psum_reads": 0, "residual": 0, "bias": 0})
    acc_max: float = 0.0         # max |stored partial sum| or |sum + bias| (fp32 with probe;
                                 # int16: in accumulator units, see acc_bits)
    psum_bits: int = 0           # int16: width a stored partial sum saturates to
    psum_saturations: int = 0    # int16: partial sums clipped to psum_bits
    output_saturations: int = 0  # int16: outputs clipped to int16 on requantization
    fracs: dict = field(default_factory=dict)      # int16: fractional bits in/weights/acc/out
    coverage: np.ndarray | None = None  # trace=True: times each (k, c-in-group, p, q) was computed

    @property
    def tiles_expected(self) -> int:
        return self.groups * math.prod(self.tiles_n.values())

    @property
    def acc_bits(self) -> int:
        """int16: bits (sign included) the largest stored partial sum needed."""
        return int(self.acc_max).bit_length() + 1
