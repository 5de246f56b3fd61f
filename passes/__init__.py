"""Graph passes, one module per pass, and the registry of names and named pipelines.

=============  =================================================================
name           what it does
=============  =================================================================
canonicalize   drop Identity/Dropout, fold constants, form fully connected ops
fold-bn        fold an inference BatchNormalization, or a per-channel constant mul / add / sub / div
               (a BN or bias as exporters spell it), into the conv / fc before it
fuse-relu      fold a ReLU / ReLU6 into the conv / fc / add before it
fuse-add       make a residual add the epilogue of the conv / fc producing an operand
fuse-pool      run a max / avg pool inside the tile loop of the conv that feeds it
concat-in-place
               let the layers producing a concat's parts write into its result (no copy)
schedule       pick each layer's mapping with CP-SAT, each layer alone (needs a target)
plan-memory    plan which activations stay in the global buffer and each layer's
               mapping given that (needs a target; after schedule)
lower-program  lower the schedules (and plan) to the accelerator's program, verified
               (needs a target; after schedule; not in the default pipeline)
=============  =================================================================

Named pipelines: ``default`` (what ``sqnxtc compile`` runs unless ``--passes`` says
otherwise; with ``--target``, the driver appends ``schedule`` unless the pipeline has a
pass that needs the target, and ``plan-memory`` after the schedule pass when the target's
``activation_home`` is ``planned`` and the pipeline has none:
:func:`sqnxt_compiler.driver.build_pipeline`) and ``none`` (import only).
"""
from __future__ import annotations

from .canonicalize import Canonicalize
from .concat_in_place import ConcatInPlace
from .fold_bn import FoldBatchNorm
from .fuse_add import FuseAdd
from .fuse_pool import FusePool
from .fuse_relu import FuseReLU
from .lower_program import LowerProgram
from .plan_memory import PlanMemory
from .schedule import Schedule

PASSES = {p.name: p for p in (Canonicalize, FoldBatchNorm, FuseReLU, FuseAdd, FusePool, ConcatInPlace, Schedule, PlanMemory,
                                  LowerProgram)}

#: Named pipelines (they expand in place in a pipeline string).
PIPELINES = {
    "default": "canonicalize,fold-bn,fuse-relu,fuse-add,fuse-pool,concat-in-place",
    "none": "",
}

