"""Design-space sweeps (docs/sweep.md): a spec of models x target points x objectives
(:mod:`.spec`), one compile per point on dask.distributed (:mod:`.task`, :mod:`.engine`),
one tidy, resumable, deterministic table."""
from .engine import SweepResult, pareto_flags, run_sweep
from .spec import SweepSpec, load_spec, parse_spec

__all__ = ["SweepResult", "SweepSpec", "load_spec", "parse_spec", "pareto_flags", "run_sweep"]
