"""Running a sweep on dask.distributed, resumably, into one tidy table (docs/sweep.md).

Layout of the output directory::

    OUT/rows/<key>.json     one finished row per point (written atomically as it finishes)
    OUT/cache/              the schedule cache every task shares (solved layers)
    OUT/sweep.csv           the table (written atomically, once every row is in)
    OUT/sweep.parquet       the same table, when pyarrow is installed
    OUT/layers.csv          with per_layer: a row per scheduled layer of every ok point

A rerun into the same directory skips every point whose row file is there (same content
hash: model, target fields, overrides, objective, version); a killed sweep loses only the
tasks in flight.  Rows that ended in an internal error (exit 70) are not kept, so a rerun
tries them again.  The table's rows are in the spec's point order, so the same spec gives
the same bytes whatever the worker count or the order tasks finish in.

Where the tasks run (:class:`Runner`): ``scheduler="local"`` starts a dask.distributed
``LocalCluster`` of worker processes (one per core unless ``workers`` says otherwise, one
thread each); ``"inprocess"`` runs them in threads of this process
(``LocalCluster(processes=False)``); ``"tcp://HOST:PORT"`` uses a cluster the user runs
(``dask scheduler`` / ``dask worker``), whose workers must see the same paths (models,
OUT) as this machine; ``"serial"`` runs them one after another in this process without
Dask (``sqnxtc compare``'s default: the core install has no Dask).  Every scheduler runs
the same task function (:func:`.task.run_point`) on the same points, so the rows are the
same.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..diagnostics import ExitCode, UsageError
from ..outputs import atomic_write
from ..report.pareto import pareto_flags
from .spec import Point, SweepSpec
from .task import COLUMNS, LAYER_COLUMNS, base_fields, model_digest, point_key, row_path, run_point


@dataclass
class SweepResult:
    rows: list[dict]
    columns: list[str]
    reused_rows: int = 0
    computed_rows: int = 0
    solved: int = 0
    reused_solves: int = 0
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    where: str = ""
    notes: list[str] = field(default_factory=list)   # the compiles' notes (run_points)


def need_dask():
    """Import dask.distributed, or a UsageError naming the extra to install."""
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise UsageError("sqnxtc sweep runs on Dask, which is not installed: pip install 'sqnxtc[sweep]'") from None


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def to_csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    return buf.getvalue()


def _read_row(p: Path, key: str) -> dict | None:
    try:
        row = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and row.get("key") == key and "status" in row else None


SCHEDULERS = "serial, inprocess, local or tcp://HOST:PORT"


def check_scheduler(scheduler: str) -> str:
    """``scheduler`` if it names a way to run tasks (module doc), else a UsageError."""
    if scheduler in ("serial", "local", "inprocess") or (scheduler.startswith("tcp://") and len(scheduler) > 6):
        return scheduler
    raise UsageError(f"--scheduler {scheduler!r}: expected {SCHEDULERS}")


class Runner:
    """Runs a sweep's tasks where ``scheduler`` says (module doc) and yields their results
    as they finish; ``where`` describes it once :meth:`results` has started."""

    def __init__(self, scheduler: str = "local", workers: int | None = None):
        self.scheduler = check_scheduler(scheduler)
        if workers is not None and self.scheduler not in ("local", "inprocess"):
            raise UsageError(f"--workers {workers}: only --scheduler local or inprocess starts workers "
                             f"(not {self.scheduler})")
        self.workers = workers
        self.where = ""

    def results(self, todo: list[tuple[Point, str]], cache_dir: str | None, *, per_layer: bool = False,
                jobs: int | None = 1, progress_for: Callable[[Point], Callable | None] | None = None,
                raise_errors: bool = False) -> Iterator[dict]:
        """:func:`.task.run_point`'s result for each (point, key) of ``todo``, in the order
        they finish (serial: in ``todo``'s order).  ``jobs``, ``progress_for`` (a callback
        per point) and ``raise_errors`` (stop at the first error, raising it) apply to the
        serial scheduler; Dask workers solve one layer at a time, silently, into rows."""
        if self.scheduler == "serial":
            self.where = "serially in this process"
            for p, k in todo:
                shown = progress_for(p) if progress_for else None
                try:
                    r = run_point(p, k, cache_dir, per_layer, jobs=jobs, raise_errors=raise_errors, progress=shown)
                finally:
                    if shown is not None and hasattr(shown, "close"):
                        shown.close()
                yield r
            return
        need_dask()
        from dask.distributed import as_completed

        client, cluster, self.where = _client(self.scheduler, self.workers)
        try:
            futures = [client.submit(run_point, p, k, cache_dir, per_layer, key=f"sqnxtc-sweep-{k}", pure=False)
                       for p, k in todo]
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _client(scheduler: str, workers: int | None):
    """(client, cluster or None, description) for ``scheduler`` (module doc)."""
    import logging

    from dask.distributed import Client, LocalCluster

    if scheduler.startswith("tcp://"):
        try:
            c = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise UsageError(f"cannot reach the Dask scheduler: {exc}", scheduler) from None
        return c, None, f"on the cluster at {scheduler}"
    n = workers or os.cpu_count() or 1
    procs = scheduler == "local"
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=procs, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    kind = ("process", "processes") if procs else ("thread", "threads")
    what = f"on a LocalCluster of {n} worker {kind[n != 1]}"
    return Client(cluster), cluster, what


def run_sweep(spec: SweepSpec, out_dir: str, *, scheduler: str = "local", workers: int | None = None,
              pareto: tuple[str, ...] = (), progress: Callable[[str], None] | None = None,
              per_layer: bool = False) -> SweepResult:
    """Run every point of ``spec`` not already in ``out_dir`` and write the table
    (``per_layer``: also ``layers.csv``, a row per scheduled layer of every ok point; a
    kept row without its layers is computed again)."""
    t0 = time.perf_counter()
    runner = Runner(scheduler, workers)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError("exists and is not a directory", out_dir)
    for m in pareto:
        if m not in COLUMNS:
            raise UsageError(f"--pareto: unknown column '{m}' (e.g. cycles, energy, dram_words, pes)")
    points = spec.points()
    keys = point_keys(spec, points)
    rows_dir = out / "rows"
    have = {k: r for k in set(keys) if (r := _read_row(row_path(rows_dir, k), k)) is not None
            and not (per_layer and r["status"] == "ok" and "layers_detail" not in r)}
    todo = [(p, k) for p, k in zip(points, keys) if k not in have]
    todo = list({k: (p, k) for p, k in todo}.values())
    res = SweepResult([], [], reused_rows=len(set(keys)) - len(todo))
    if todo:
        if runner.scheduler != "serial":
            need_dask()
        (out / "cache").mkdir(parents=True, exist_ok=True)
        rows_dir.mkdir(parents=True, exist_ok=True)
        res.solved, res.reused_solves = _run(runner, todo, out, rows_dir, have, progress, t0, per_layer)
        res.where = runner.where
        res.computed_rows = len(todo)
    grid = list(spec.grid_fields)
    cols = list(COLUMNS[:3]) + grid + list(COLUMNS[3:]) + (["pareto"] if pareto else [])
    # labels from this spec (a kept row may come from a spec that spelled the model or a
    # base target file's path differently: the key is the content)
    rows = [dict({c: v for c, v in have[k].items() if c != "layers_detail"}, model=p.model, target=p.target.label)
            for p, k in zip(points, keys)]
    if pareto:
        for r, flag in zip(rows, pareto_flags(rows, pareto)):
            r["pareto"] = flag
    res.rows, res.columns = rows, cols
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "sweep.csv") as fh:
        fh.write(to_csv(rows, cols))
    res.files.append(str(out / "sweep.csv"))
    if per_layer:
        lcols = list(COLUMNS[:3]) + grid + list(LAYER_COLUMNS)
        lrows = [dict({c: r.get(c) for c in lcols[:3 + len(grid)]}, **L)
                 for r, k in zip(rows, keys) for L in have[k].get("layers_detail", [])]
        with atomic_write(out / "layers.csv") as fh:
            fh.write(to_csv(lrows, lcols))
        res.files.append(str(out / "layers.csv"))
    if _write_parquet(rows, cols, out / "sweep.parquet"):
        res.files.append(str(out / "sweep.parquet"))
    res.seconds = time.perf_counter() - t0
    return res


def run_points(spec: SweepSpec, runner: Runner, cache_dir: str | None, *, jobs: int | None = None,
               progress_for: Callable[[Point], Callable | None] | None = None,
               progress: Callable[[str], None] | None = None, what: str = "sweep") -> SweepResult:
    """Compute every point of ``spec`` now, keeping nothing on disk but the schedule cache
    (``sqnxtc compare``): the same tasks as :func:`run_sweep`, in ``runner``.  The first
    error in point order is raised as the compile raised it (serial: the run stops there;
    on Dask the other tasks finish first), so the result is the same on every scheduler.
    ``progress_for`` gives the serial scheduler's per-layer callback of a point;
    ``progress`` receives a :func:`progress_line` per finished point on Dask."""
    from ..diagnostics import SqnxtError

    points = spec.points()
    keys = point_keys(spec, points)
    todo = list({k: (p, k) for p, k in zip(points, keys)}.values())
    t0 = time.perf_counter()
    got: dict[str, dict] = {}
    for n, r in enumerate(runner.results(todo, cache_dir, jobs=jobs, progress_for=progress_for,
                                         raise_errors=runner.scheduler == "serial"), 1):
        got[r["row"]["key"]] = r
        if progress is not None and runner.scheduler != "serial":
            progress(progress_line(what, n, len(todo), time.perf_counter() - t0, r["row"]))
    for k in keys:
        row = got[k]["row"]
        if row["status"] != "ok":
            raise SqnxtError(row["error"], code=ExitCode(row["exit_code"]))
    rows = [dict(got[k]["row"], model=p.model, target=p.target.label) for p, k in zip(points, keys)]
    notes = list(dict.fromkeys(n for k in dict.fromkeys(keys) for n in got[k]["notes"]))
    return SweepResult(rows, list(COLUMNS), computed_rows=len(todo), solved=sum(r["solved"] for r in got.values()),
                       reused_solves=sum(r["reused"] for r in got.values()), seconds=time.perf_counter() - t0,
                       where=runner.where, notes=notes)


def point_keys(spec: SweepSpec, points: list[Point]) -> list[str]:
    """The content key of each point (:func:`.task.point_key`), reading each model and
    base target once."""
    digests = {m: model_digest(m) for m in spec.models}
    bases = {b: base_fields(b) for b in spec.bases}
    return [point_key(p, digests[p.model], bases[p.target.base]) for p in points]


def _run(runner: Runner, todo: list[tuple[Point, str]], out: Path, rows_dir: Path, have: dict,
         progress, t0: float, per_layer: bool) -> tuple[int, int]:
    """Run every task, store each row as it finishes; (layers solved, layers reused)."""
    cache = str((out / "cache").resolve())
    solved = reused = done = 0
    for r in runner.results(todo, cache, per_layer=per_layer):
        row = r["row"]
        have[row["key"]] = row
        if row["exit_code"] != int(ExitCode.INTERNAL):
            with atomic_write(row_path(rows_dir, row["key"])) as fh:
                json.dump(row, fh, sort_keys=True, default=str)
        solved += r["solved"]
        reused += r["reused"]
        done += 1
        if progress is not None:
            el = time.perf_counter() - t0
            progress(progress_line("sweep", done, len(todo), el, row))
    return solved, reused


def progress_line(what: str, done: int, total: int, elapsed: float, row: dict) -> str:
    """``sweep: 3/8 points, 12 s, ~20 s left (MODEL on TARGET, OBJECTIVE: STATUS)``: the
    time left is the mean time per finished point times the points left."""
    left = elapsed / done * (total - done)
    return (f"{what}: {done}/{total} points, {elapsed:.0f} s, ~{left:.0f} s left "
            f"({row['model']} on {row['target']}, {row['objective']}: {row['status']})")


def _write_parquet(rows: list[dict], cols: list[str], path: Path) -> bool:
    """The table as Parquet (every column as text, so a column's type never depends on
    which rows failed), if pyarrow is installed; False otherwise."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return False
    table = pa.table({c: pa.array([None if r.get(c) is None else _cell(r.get(c)) for r in rows], pa.string())
                      for c in cols})
    with atomic_write(path, "wb") as fh:
        pq.write_table(table, fh)
    return True


def summary(res: SweepResult) -> str:
    errors = sum(1 for r in res.rows if r["status"] != "ok")
    head = (f"sweep: {len(res.rows)} rows ({res.computed_rows} computed"
            + (f" {res.where}" if res.where else "") + f", {res.reused_rows} reused from earlier runs), "
            f"{errors} error rows")
    if res.computed_rows:
        head += f"; {res.solved} layer solves, {res.reused_solves} reused from the shared schedule cache"
    return head + f"; {res.seconds:.1f} s"


def stderr_progress(msg: str) -> None:
    sys.stderr.write(msg + "\n")
