"""Pass machinery: the pass base class, pipeline strings, the pass manager."""
from .manager import PassManager, parse_pipeline
from .pass_base import Pass, PassContext

__all__ = ["Pass", "PassContext", "PassManager", "parse_pipeline"]
