"""The staged (lexicographic) CP-SAT solve shared by the layer solver (:mod:`.layer_solve`)
and the network memory planner (:mod:`.planner`): minimize stage 1, fix its value,
minimize stage 2, and so on, every stage on the same model with a fresh solver.

Rules (docs/scheduler.md, "Lexicographic solve"):

* **One configuration, as data.**  Each caller passes its :class:`SolverParams` (seed and
  further CP-SAT parameters); every solver has one worker, that seed, leaves SIGINT to
  sqnxtc and gets the time left of the caller's limit (shared by all the stages).
* **Complete hints.**  Every stage is started from a complete hint (:func:`.cpsat.set_hint`):
  the caller's for stage 1, then the previous stage's solution, passed through the caller's
  ``complete`` (which gives the variables added between the stages their values).
* **Statuses.**  A stage ending OPTIMAL is fixed (``expr == value`` or ``expr <= value``,
  the caller's ``fix``) and the next one runs; FEASIBLE (the limit came after a solution)
  keeps that solution and stops; any other status (UNKNOWN: the limit came first;
  INFEASIBLE; MODEL_INVALID) stops with the previous stage's solution, if any.  What a
  status means to the caller (stage 1 without a solution, an infeasible model) is the
  caller's to decide from :class:`Staged`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ortools.sat.python import cp_model

from .cpsat import run, set_hint, solution

#: How a stage's optimum is fixed before the next stage: ``expr == value`` or ``expr <= value``.
FIXES = ("==", "<=")


@dataclass(frozen=True)
class SolverParams:
    """One CP-SAT configuration: its random seed and further parameters by name (set on
    ``CpSolver.parameters``); always one worker, SIGINT left to sqnxtc."""

    seed: int
    options: tuple[tuple[str, object], ...] = ()

    def solver(self, time_left: float | None) -> cp_model.CpSolver:
        """A solver with this configuration and ``time_left`` seconds (None: no limit;
        at least 1 ms)."""
        s = cp_model.CpSolver()
        s.parameters.num_workers = 1
        s.parameters.random_seed = self.seed
        for name, v in self.options:
            setattr(s.parameters, name, v)
        # Ctrl-C is sqnxtc's (exit 130, outputs cleaned up): CP-SAT would install its own
        # SIGINT handler for the solve and leave the default one behind
        s.parameters.catch_sigint_signal = False
        if time_left is not None:
            s.parameters.max_time_in_seconds = max(0.001, time_left)
        return s


@dataclass
class Staged:
    """What a staged solve did.  ``first``: stage 1's solver (its status and bound, with or
    without a solution); ``solver``: the last stage's solver that found a solution (None
    when stage 1 found none); ``values``: the value of each stage that found a solution;
    ``stopped``: the CP-SAT status of the stage that ended without a solution (None when
    every stage that ran found one); ``done``: every stage ran and was proven optimal."""

    first: cp_model.CpSolver | None = None
    first_status: int | None = None
    solver: cp_model.CpSolver | None = None
    values: list = field(default_factory=list)
    stopped: int | None = None
    done: bool = False

    @property
    def stage1_optimal(self) -> bool:
        return self.first_status == cp_model.OPTIMAL


def solve_stages(model: cp_model.CpModel, stages: list, *, params, time_left: Callable[[], float | None],
                 hint: list[int] | None = None, fix: str = "==",
                 complete: Callable[[list[int]], list[int] | None] | None = None,
                 after: Callable | None = None) -> Staged:
    """Minimize each expression of ``stages`` in turn (module doc) on ``model``.

    ``params``: the caller's configuration (an object with ``solver(time_left)``: a
    :class:`SolverParams`); ``time_left()``: seconds left for the next stage (None: no
    limit); ``hint``: stage 1's complete hint, or None; ``fix``: one of :data:`FIXES`;
    ``complete(solution)``: the next stage's hint from a stage's solution (default: the
    solution itself).  ``after(i, solver, solution)``, called once stage ``i`` is proven
    optimal and fixed, returns ``(more, solution)``: expressions to append to the stages
    and the solution the next stage starts from (None: no hint)."""
    if fix not in FIXES:
        raise ValueError(f"fix must be one of {FIXES}, got {fix!r}")
    out = Staged()
    stages = list(stages)
    i = 0
    while i < len(stages):
        expr = stages[i]
        model.minimize(expr)
        set_hint(model, hint)
        solver = params.solver(time_left())
        st = run(solver, model)
        if i == 0:
            out.first, out.first_status = solver, st
        if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            out.stopped = st
            return out
        out.solver = solver
        v = solver.value(expr)
        out.values.append(v)
        if st != cp_model.OPTIMAL:
            return out
        model.add(expr == v if fix == "==" else expr <= v)
        found = solution(solver)
        if after is not None:
            more, found = after(i, solver, found)
            stages += more
        hint = None if found is None else (found if complete is None else complete(found))
        i += 1
    out.done = True
    return out
