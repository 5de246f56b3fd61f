"""The cost model: layers, mappings and their cycles, traffic and energy on a target.

See docs/cost-model.md for every formula.
"""
from .layer import KINDS, ElementFn, Epilogue, Homes, Layer, Pool
from .mapping import DATAFLOWS, LOOPS, ORDERS, Mapping
from .model import CostReport, evaluate, objective_value

__all__ = ["KINDS", "Layer", "Epilogue", "Pool", "Homes", "ElementFn", "DATAFLOWS", "LOOPS", "ORDERS", "Mapping", "CostReport", "evaluate",
           "objective_value"]
