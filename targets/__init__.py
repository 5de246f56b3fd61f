"""Target descriptions (accelerator configurations): bundled TOML files and their loader.

Always import as ``from sqnxt_compiler.targets import load_target`` (never ``import
targets``: the directory is mapped into the ``sqnxt_compiler`` namespace).
"""
from .target import (FORMAT, FORMATS, REQUIRED, SCHEMA, SECTIONS, Field, Target, list_targets, load_target,
                     parse_target)

__all__ = ["FORMAT", "FORMATS", "REQUIRED", "SCHEMA", "SECTIONS", "Field", "Target", "list_targets",
           "load_target", "parse_target"]
