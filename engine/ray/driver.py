"""Run a planned folder job on Ray and collect what the local run collects.

The driver only plans and collects: the tasks (planned by ``colorize.job.make_plan``) become a dataset
of paths, the actor pool colorizes and writes, and one small status row per file streams back, handed to
``on_outcome`` as it arrives. ``run_tasks`` returns the same ``colorize.job.Outcome`` s as the local
``colorize.job.runner.TaskRunner``, and ``run_plan`` the same ``colorize.job.Summary`` as ``run_local``, so the
summary, the report and the exit status are shared.

Faults: a bad file is a row with its reason. An actor or worker process that dies is restarted by Ray and
its blocks in flight run again (Ray Data's actor pool restarts actors and retries their tasks without
limit); a file whose row already came back is counted once. Temporary files that a killed process left
beside its outputs are removed at the end. A job that stops (the cluster lost, an actor that cannot load
the model, the caller's ``cancel``) keeps the rows it got: the files without one are listed in ``not_run``,
with the reason.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import os

from colorize.job.outcome import Outcome, Outcomes, Summary
from colorize.job.plan import Plan, Task, output_folders
from colorize.ray.cluster import Cluster, ClusterError, connect
from colorize.ray.pool import PoolPlan, size_pool


@dataclass
class RayRun(Outcomes):
    """What a job on Ray did (see the module docstring)."""

    cluster: Cluster
    pool: PoolPlan
    outcomes: list[Outcome] = field(default_factory=list)  # one per status row, in the order they came
    not_run: list[Task] = field(default_factory=list)  # tasks without a status row: the job stopped first
    engines: Counter = field(default_factory=Counter)  # "backend/precision" -> files
    nodes: Counter = field(default_factory=Counter)  # Ray node id -> files
    actors: Counter = field(default_factory=Counter)  # actor process (node id, pid) -> files
    run_s: float = 0.0  # from the start of execution to the last row (actor start-up included)
    first_row_s: float | None = None  # from the start of execution to the first row (actor start-up, one block)
    stopped: str | None = None  # why the job stopped before every file came back

    def add_row(self, row: dict, task: Task) -> Outcome:
        """Count one status row (of ``colorize.ray.worker.STATUS_COLUMNS``) and keep its file's outcome."""
        self.engines[str(row["engine"])] += 1
        self.nodes[str(row["node"])] += 1
        self.actors[(str(row["node"]), int(row["pid"]))] += 1
        size = (int(row["width"]), int(row["height"]))
        ok = bool(row["ok"])
        outcome = Outcome(task, ok, "" if ok else str(row["error"]), size if ok else None,
                          str(row["engine"]) if ok else "", row["before"] or None, row["after"] or None)
        self.outcomes.append(outcome)
        return outcome


def _reason(e: BaseException) -> str:
    """The useful line of a Ray error (its text holds tracebacks of the remote process)."""
    text = str(e).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    causes = [ln for ln in lines if ln.split(":")[0].endswith(("Error", "Exception", "Dependency"))]
    return f"{type(e).__name__}: {causes[-1] if causes else (lines[-1] if lines else text)}"


def run_tasks(
    tasks: Sequence,
    *,
    address: str | None = None,
    actors: int | None = None,
    cpus_per_actor: float | None = None,
    gpus_per_actor: float | None = None,
    progress=None,
    on_start: Callable[[Cluster, PoolPlan], None] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_row: Callable[[dict], None] | None = None,
    cancel=None,
    worker_class=None,
    **options,
) -> RayRun:
    """Colorize ``tasks`` (``colorize.job.Task``) on Ray.

    Args:
        tasks: what to do, as planned by ``colorize.job.make_plan`` or ``colorize.job.plan.collect_tasks``.
        address: None or "local" for an embedded instance, else a cluster address or "auto"
            (``colorize.ray.cluster.connect``).
        actors, cpus_per_actor, gpus_per_actor: pool overrides (``colorize.ray.pool.size_pool``).
        progress: anything with ``update()`` (``colorize.cli.progress.Progress``), updated once per status row.
        on_start: called with the cluster and the pool before execution starts.
        on_outcome: called with each file's ``colorize.job.Outcome`` as its row arrives.
        on_row: called with each status row (a dict of ``colorize.ray.worker.STATUS_COLUMNS``) as it arrives.
        cancel: stop once ``cancel.is_set()`` (checked as each row arrives): the rows already back are kept,
            the other tasks are ``not_run``, and the actors go with the job.
        worker_class: the callable class the actors run (``colorize.ray.pipeline.colorize_dataset``).
        **options: ``colorize.ray.worker.ColorizeBatch`` arguments (model, backend, precision, working_size, ...).

    Raises:
        MissingDependency: Ray Data is not installed.
        ClusterError: the cluster cannot be reached or started, or cannot hold one actor of the pool.
    """
    from colorize.image.io import remove_stale_tmp
    from colorize.ray.pipeline import colorize_dataset, files_per_block, tasks_dataset

    with connect(address) as cluster:
        try:
            pool = size_pool(cluster.nodes, backend=options.get("backend", "auto"), actors=actors,
                             cpus=cpus_per_actor, gpus=gpus_per_actor)
        except ValueError as e:
            raise ClusterError(str(e)) from None
        run = RayRun(cluster, pool)
        if on_start is not None:
            on_start(cluster, pool)
        if not tasks:
            return run
        per_block = files_per_block(len(tasks), pool.actors, options.get("batch_size", 8))
        ds = colorize_dataset(tasks_dataset(tasks, per_block), pool, files_per_call=per_block,
                              worker_class=worker_class, **options)
        start = time.perf_counter()
        seen = _collect_rows(ds, run, tasks, start, cancel, (on_outcome, progress, on_row))
        run.run_s = time.perf_counter() - start
        run.not_run = [t for i, t in enumerate(tasks) if i not in seen]
    for folder, names in output_folders(list(tasks)).items():  # left by a process killed mid-write
        if folder.is_dir():
            remove_stale_tmp(folder, names)
    return run


def _collect_rows(ds, run: RayRun, tasks: Sequence, start: float, cancel, listeners) -> set[int]:
    """Read the status rows as the dataset yields them into ``run``; returns the indices of the tasks that came
    back. A block that Ray redoes after its rows came back counts each file once; an error stops the reading
    (``run.stopped`` says why), as does ``cancel``."""
    from colorize.ray.worker import STATUS_COLUMNS

    on_outcome, progress, on_row = listeners
    seen: set[int] = set()
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for j in range(len(batch["index"])):
                row = {c: batch[c][j] for c in STATUS_COLUMNS}
                i = int(row["index"])
                if run.first_row_s is None:
                    run.first_row_s = time.perf_counter() - start
                if i in seen:
                    continue
                seen.add(i)
                outcome = run.add_row(row, tasks[i])
                if on_outcome is not None:
                    on_outcome(outcome)
                if progress is not None:
                    progress.update()
                if on_row is not None:
                    on_row(row)
            if cancel is not None and cancel.is_set():
                run.stopped = "cancelled"
                break
    except Exception as e:  # the job stopped: keep what came back, say why
        run.stopped = _reason(e)
    return seen


def check_model_options(options) -> str | os.PathLike | None:
    """What ``Colorizer.load`` would refuse at once, checked on the driver without loading a backend; returns
    the small-image model (``colorize.colorizer.resolve_small_model``), None when there is none.

    Raises:
        ValueError: an unknown backend or precision, or a bad model.
        FileNotFoundError: a model path that does not exist here.
    """
    from colorize.artifacts.model_ref import resolve_model
    from colorize.backends import check_names
    from colorize.colorizer import resolve_small_model

    check_names(options.backend, options.precision)
    resolve_model(options.model)
    small = resolve_small_model(options.model, options.small_model)
    if small is not None:
        resolve_model(small)
    return small


def run_plan(
    plan: Plan,
    options,
    *,
    address: str | None = None,
    actors: int | None = None,
    cpus_per_actor: float | None = None,
    gpus_per_actor: float | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_start: Callable[[Cluster, PoolPlan], None] | None = None,
    cancel=None,
) -> Summary:
    """Run ``plan`` (``colorize.job.make_plan``) on Ray with ``options`` (``colorize.job.JobOptions``) and return
    the ``colorize.job.Summary`` the local run returns (``seconds``: from the start of execution to the last
    row, Ray's start-up not counted; ``where`` says the nodes and actors).

    Raises:
        ValueError, FileNotFoundError: as ``check_model_options`` (before Ray starts).
        MissingDependency: Ray Data is not installed.
        ClusterError: the cluster cannot be reached or started, or cannot hold one actor of the pool.
    """
    from colorize.artifacts.model_ref import resolve_model
    from colorize.colorizer import model_min_working_size
    from colorize.model_io import model_io

    small = check_model_options(options)
    if not plan.tasks:  # every output exists (skip_existing): nothing to start Ray for
        return Summary(plan, engines="nothing to run", working_size=options.working_size)
    run = run_tasks(plan.tasks, address=address, actors=actors, cpus_per_actor=cpus_per_actor,
                    gpus_per_actor=gpus_per_actor, on_start=on_start, on_outcome=on_outcome, cancel=cancel,
                    **options.colorizer_kwargs())
    engines = ", ".join(f"{name}" + (f" ({n} files)" if len(run.engines) > 1 else "")
                        for name, n in run.engines.most_common()) or "no engine"
    where = (f" on {len(run.nodes)} Ray node{'s' if len(run.nodes) != 1 else ''}, {len(run.actors)} actor "
             f"process{'es' if len(run.actors) != 1 else ''} (Ray start-up {run.cluster.startup_s:.1f} s not counted; "
             f"first result after {run.first_row_s or 0:.1f} s)")
    cancelled = run.stopped == "cancelled" and bool(run.not_run)
    ref = resolve_model(options.model)
    return Summary(plan, run.outcomes, run.not_run, run.run_s, engines, options.working_size,
                   min_working_size=model_min_working_size(ref.metadata), model_size=model_io(ref).size,
                   small_max_side=options.small_max_side if small is not None else 0,
                   small_model=os.fspath(small or ""), where=where, stopped=run.stopped, cancelled=cancelled)
