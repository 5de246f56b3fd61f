"""Graph passes, one module per pass, and the registry of names and named pipelines.

=============  =================================================================
name           what it does
=============  =================================================================
canonicalize   drop Identity/Dropout, fold constants, form fully connected ops
fold-bn        fold an inference BatchNormalization into the conv / fc before it
fuse-relu      fold a ReLU / ReLU6 into the conv / fc / add before it
fuse-add       make a residual add the epilogue of the conv / fc producing an operand
fuse-pool      run a max / avg pool inside the tile loop of the conv that feeds it
schedule       pick each layer's mapping with CP-SAT (needs a target)
=============  =================================================================

Named pipelines: ``default`` (what ``sqnxtc compile`` runs unless ``--passes`` says
otherwise; with ``--target``, the CLI appends ``schedule`` unless the pipeline has it) and
``none`` (import only).
"""
from __future__ import annotations

from .canonicalize import Canonicalize
from .fold_bn import FoldBatchNorm
from .fuse_add import FuseAdd
from .fuse_pool import FusePool
from .fuse_relu import FuseReLU
from .schedule import Schedule

PASSES = {p.name: p for p in (Canonicalize, FoldBatchNorm, FuseReLU, FuseAdd, FusePool, Schedule)}

#: Named pipelines (they expand in place in a pipeline string).
PIPELINES = {
    "default": "canonicalize,fold-bn,fuse-relu,fuse-add,fuse-pool",
    "none": "",
}

