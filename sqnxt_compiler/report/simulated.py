"""The timing simulator's figures beside the cost model's, for the reports.

When the pipeline lowered the schedule to a program (``lower-program``), the compile
simulates it once (:attr:`sqnxt_compiler.driver.CompileResult.timing`, the run
``sqnxtc sim`` makes); :func:`simulated` pairs each simulated layer with its scheduled op
so that ``schedule.json`` (``layers[].simulated``, ``totals.simulated``), the summary and
the goldens give the same exact figures as ``sqnxtc sim`` (docs/isa.md, "sqnxtc sim").
"""
from __future__ import annotations

from dataclasses import dataclass

from ..program.timing import exact


def simulated_dict(lay) -> dict:
    """``layers[].simulated`` of schedule.json: a simulated layer's (a
    :class:`~sqnxt_compiler.program.timing.LayerTiming`) ``cycles``, ``start``, ``end``,
    exact."""
    return {"cycles": exact(lay.cycles), "start": exact(lay.start), "end": exact(lay.end)}


@dataclass(frozen=True)
class Simulated:
    """The simulated figures of a compile: its layers in program order (the scheduled ops
    of the graph, one each), and the program's ``total_cycles`` (FINISH, rounded up to a
    whole cycle) and instruction count."""

    layers: tuple
    total_cycles: int
    instructions: int

    def per_row(self, rows) -> list:
        """The simulated layer of each scheduled row (``NetworkSchedule.scheduled``, program
        order), checked to be the same layer."""
        if len(rows) != len(self.layers) or any(r.name != s.name for r, s in zip(rows, self.layers)):
            raise AssertionError("the simulated program's layers are not the scheduled layers: "
                                 f"{[s.name for s in self.layers][:5]} vs {[r.name for r in rows][:5]}")
        return list(self.layers)

    def totals_dict(self) -> dict:
        return {"total_cycles": self.total_cycles, "instructions": self.instructions}


def simulated(lowered, timing) -> Simulated:
    """The timing's layers (:class:`~sqnxt_compiler.program.timing.LayerTiming`, program
    order: the lowered layers'), named as the lowered layers are."""
    if len(lowered.layers) != len(timing.layers):
        raise AssertionError(f"{len(lowered.layers)} lowered layers but {len(timing.layers)} simulated")
    if any(info.name != lay.name for info, lay in zip(lowered.layers, timing.layers)):
        raise AssertionError("the simulated layers are not the lowered layers")
    return Simulated(tuple(timing.layers), timing.total_cycles, len(lowered.program.insns))
