"""A mapping of one layer onto the array: dataflow, tile sizes, order of the tile loops.

Tile loops (docs/cost-model.md): ``x`` output columns (Q), ``y`` output rows (P), ``c``
input channels per group (C / groups), ``k`` output channels per group (K / groups).
``order`` lists them outermost first.  Tile sizes need not divide the loop bounds: the
last tile of a loop is the remainder (a loop of 55 with tile 16 runs tiles 16, 16, 16, 7).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

DATAFLOWS = ("WS", "OS")
LOOPS = ("x", "y", "c", "k")
#: Every tile-loop order, outermost first, in a fixed order: the tie-break index
#: (itertools.permutations of "kcyx": index 0 is k, c, y, x).
ORDERS: tuple[tuple[str, ...], ...] = tuple(permutations(("k", "c", "y", "x")))


@dataclass(frozen=True)
class Mapping:
    dataflow: str
    tx: int
    ty: int
    tc: int
    tk: int
    order: tuple[str, ...] = ("k", "c", "y", "x")

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", tuple(self.order))   # "kcyx" or a sequence

    def to_dict(self) -> dict:
        return {"dataflow": self.dataflow, "tiles": {"x": self.tx, "y": self.ty, "c": self.tc, "k": self.tk},
                "order": "".join(self.order)}

    @staticmethod
    def from_dict(d: dict) -> "Mapping":
        t = d["tiles"]
        return Mapping(d["dataflow"], t["x"], t["y"], t["c"], t["k"], tuple(d["order"]))

    def __str__(self) -> str:
        return (f"{self.dataflow} x{self.tx} y{self.ty} c{self.tc} k{self.tk} "
                f"order {''.join(self.order)}")
