"""``sqnxtc check``: the compiled IR (or its tiled execution, or its lowered program run by
the functional simulator) against onnxruntime."""
from __future__ import annotations

import time

import click

from .. import driver
from ..diagnostics import CheckFailed, UsageError
from ..outputs import echo
from ..report.progress import reporting
from .options import (FiniteFloatRange, activation_home_option, instrumentation, load_target_with, notes,
                      pipeline_options)


@click.command("check")
@click.argument("model", metavar="MODEL")
@pipeline_options
@click.option("-t", "--target", "target_name", default=None, metavar="NAME|PATH",
              help="Schedule for this target first (needed by --tiled and --program).")
@activation_home_option
@click.option("--tiled", is_flag=True,
              help="Execute every scheduled layer tile by tile in its chosen loop order.")
@click.option("--program", "program", is_flag=True,
              help="Lower the schedule to the accelerator's program (lower-program) and run the program "
                   "in the functional simulator (docs/isa.md, 'Functional simulation'), in --precision. "
                   "Not with --tiled.")
@click.option("--precision", type=click.Choice(["fp32", "int16"]), default="fp32", show_default=True,
              help="Arithmetic of the tiled execution or of the program: float32, or 16-bit fixed point "
                   "with wide accumulators as the accelerator computes (needs --tiled or --program).")
@click.option("--samples", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Number of seeded random inputs.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the first input.")
@click.option("--rtol", type=FiniteFloatRange(0, 1), default=None,
              help="Relative tolerance [default: 1e-4; int16: see docs].")
@click.option("--atol", type=FiniteFloatRange(0, 1), default=None,
              help="Absolute tolerance, scaled by max(1, max|reference|) [default: 1e-5; int16: see docs].")
@click.option("--strict", is_flag=True,
              help="Fail on any difference beyond the tolerance: no fp64 arbiter (by default an fp32 "
                   "output beyond it is judged against the model evaluated in float64: README, 'check').")
def check_cmd(model, passes, progress, target_name, tiled, program, precision, samples, seed, rtol, atol,
              strict, **kw):
    """Check the compiled MODEL against onnxruntime on the original (exit 1 on mismatch)."""
    from ..reference.check import DEFAULT_ATOL, DEFAULT_RTOL, check, fp64_arbiter

    t0 = time.perf_counter()
    if tiled and target_name is None:
        raise UsageError("--tiled needs --target (the tiles are the schedule's)")
    if program:
        if tiled:
            raise UsageError("--program and --tiled check different executions: give one of them")
        if target_name is None:
            raise UsageError("--program needs --target (the program is lowered from the schedule)")
    if precision != "fp32" and not (tiled or program):
        raise UsageError("--precision int16 needs --tiled or --program")
    target = None
    if target_name is not None:
        target = load_target_with(target_name, kw["activation_home"])
    elif kw["activation_home"] is not None:
        raise UsageError("--activation-home needs --target")
    if program:
        from ..driver import lowered_pipeline
        pipeline = lowered_pipeline(passes, target, None, kw["activation_home"])
    else:
        pipeline = driver.build_pipeline(passes, target=target, activation_home=kw["activation_home"])
    executor = None
    d_rtol, d_atol = DEFAULT_RTOL, DEFAULT_ATOL
    if tiled or program:
        from ..reference.tiled import TOLERANCES, run_tiled
        d_rtol, d_atol = TOLERANCES[precision]
    if tiled:
        executor = lambda g, feeds: run_tiled(g, feeds, precision=precision)  # noqa: E731
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    if program:
        from ..program.funcsim import run_program
        from .sim import compile_lowered
        res, low = compile_lowered(model, pipeline, target, progress, instrumentation(kw))
        executor = lambda g, feeds: run_program(low, g, feeds, precision=precision).outputs  # noqa: E731
    else:
        with reporting(progress) as prog:
            res = driver.compile(model, pipeline=pipeline, target=target, progress=prog,
                                 instrument=instrumentation(kw))
        notes(res.notes)
    kwargs = {"executor": executor} if executor is not None else {}
    if precision == "fp32" and not strict:
        # the model's own semantics: imported again, no passes (only when an output needs it)
        kwargs["arbiter"] = fp64_arbiter(lambda: driver.compile(model, pipeline="none").graph)
    report = check(res.graph, res.model, res.source, samples=samples, seed=seed, rtol=rtol,
                   atol=atol, tail=res.tail, **kwargs)
    how = (f"tiled {precision} execution on {target.name}" if tiled
           else f"the program on {target.name} in the functional simulator ({precision})" if program
           else "numpy executor")
    echo(f"check {res.source}: pipeline '{res.pipeline}', {how} vs onnxruntime "
               "(CPU, optimizations off)")
    echo(report.format())
    echo(f"wall time {time.perf_counter() - t0:.2f} s")
    if not report.ok:
        bad = ", ".join(o.name for o in report.outputs if not o.ok)
        raise CheckFailed(f"outputs differ from onnxruntime beyond tolerance: {bad}", res.source)
