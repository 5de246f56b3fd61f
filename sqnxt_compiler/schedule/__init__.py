"""Scheduling: the mapping space of a layer, the exhaustive oracle and the CP-SAT solver.

See docs/scheduler.md.
"""
from .oracle import OBJECTIVES, exhaustive_best

__all__ = ["OBJECTIVES", "exhaustive_best"]
