"""Scheduling: the mapping space of a layer, the exhaustive oracle and the CP-SAT solver.

    from sqnxt_compiler.schedule import schedule_layers
    scheds = schedule_layers(layers, target, objective="cycles", time_limit=None,
                             fallback=None, cache_dir=None)

See docs/scheduler.md.
"""
from .oracle import OBJECTIVES, exhaustive_best
from .solver import FALLBACKS, LayerSchedule, clear_cache, heuristic_mapping, schedule_layer, schedule_layers

__all__ = ["OBJECTIVES", "FALLBACKS", "LayerSchedule", "clear_cache", "exhaustive_best", "heuristic_mapping",
           "schedule_layer", "schedule_layers"]
