"""Run a planned ``colorize images`` job on Ray and collect what the local run collects.

The driver only plans and collects: the tasks (planned by ``engine.cli.images.make_plan``) become a dataset
of paths, the actor pool colorizes and writes, and one small status row per file streams back, drawn on the
progress bar as it arrives. ``run_tasks`` returns the same outputs and per-file errors as
``engine.cli.runner.TaskRunner``, so the summary, ``--report`` and exit status are shared.

Faults: a bad file is a row with its reason. An actor or worker process that dies is restarted by Ray and
its blocks in flight run again (Ray Data's actor pool restarts actors and retries their tasks without
limit); a file whose row already came back is counted once. Temporary files that a killed process left
beside its outputs are removed at the end. A job that stops (the cluster lost, an actor that cannot load
the model) keeps the rows it got: the files without one are listed in ``not_run``, with the reason.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine.ray.cluster import Cluster, ClusterError, connect
from engine.ray.pool import PoolPlan, size_pool


@dataclass
class RayRun:
    """What a job on Ray did (see the module docstring)."""

    cluster: Cluster
    pool: PoolPlan
    done: list = field(default_factory=list)  # engine.cli.report.Entry per output written
    failed: list = field(default_factory=list)  # (task, reason) per file that could not be colorized
    not_run: list = field(default_factory=list)  # tasks without a status row: the job stopped first
    engines: Counter = field(default_factory=Counter)  # "backend/precision" -> files
    nodes: Counter = field(default_factory=Counter)  # Ray node id -> files
    actors: Counter = field(default_factory=Counter)  # actor process (node id, pid) -> files
    run_s: float = 0.0  # from the start of execution to the last row (actor start-up included)
    first_row_s: float | None = None  # from the start of execution to the first row (actor start-up, one block)
    stopped: str | None = None  # why the job stopped before every file came back

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [(t.shown, r) for t, r in self.failed]


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
    on_error: Callable[[object, str], None] | None = None,
    on_row: Callable[[dict], None] | None = None,
    worker_class=None,
    **options,
) -> RayRun:
    """Colorize ``tasks`` (``engine.cli.images.Task``) on Ray.

    Args:
        tasks: what to do, as planned by ``engine.cli.images.make_plan`` or ``collect_tasks``.
        address: None or "local" for an embedded instance, else a cluster address or "auto"
            (``engine.ray.cluster.connect``).
        actors, cpus_per_actor, gpus_per_actor: pool overrides (``engine.ray.pool.size_pool``).
        progress: an ``engine.cli.progress.Progress``, updated once per status row.
        on_start: called with the cluster and the pool before execution starts.
        on_error: called as ``on_error(task, reason)`` for each failed file.
        on_row: called with each status row (a dict of ``engine.ray.worker.STATUS_COLUMNS``) as it arrives.
        worker_class: the callable class the actors run (``engine.ray.pipeline.colorize_dataset``).
        **options: ``engine.ray.worker.ColorizeBatch`` arguments (model, backend, precision, working_size, ...).

    Raises:
        MissingDependency: Ray Data is not installed.
        ClusterError: the cluster cannot be reached or started, or cannot hold one actor of the pool.
    """
    from engine.cli.images import output_folders
    from engine.cli.report import Entry
    from engine.image.io import remove_stale_tmp
    from engine.ray.pipeline import colorize_dataset, files_per_block, tasks_dataset
    from engine.ray.worker import STATUS_COLUMNS

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
        seen: set[int] = set()
        start = time.perf_counter()
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for j in range(len(batch["index"])):
                    row = {c: batch[c][j] for c in STATUS_COLUMNS}
                    i = int(row["index"])
                    if run.first_row_s is None:
                        run.first_row_s = time.perf_counter() - start
                    if i in seen:  # a block redone after its rows had come back: count each file once
                        continue
                    seen.add(i)
                    task = tasks[i]
                    run.engines[str(row["engine"])] += 1
                    run.nodes[str(row["node"])] += 1
                    run.actors[(str(row["node"]), int(row["pid"]))] += 1
                    if row["ok"]:
                        size = (int(row["width"]), int(row["height"]))
                        run.done.append(Entry(task.shown, str(task.dst), row["before"] or None, row["after"] or None,
                                              size))
                    else:
                        run.failed.append((task, str(row["error"])))
                        if on_error is not None:
                            on_error(task, str(row["error"]))
                    if progress is not None:
                        progress.update()
                    if on_row is not None:
                        on_row(row)
        except Exception as e:  # the job stopped: keep what came back, say why
            run.stopped = _reason(e)
        run.run_s = time.perf_counter() - start
        run.not_run = [t for i, t in enumerate(tasks) if i not in seen]
    for folder, names in output_folders(list(tasks)).items():  # left by a process killed mid-write
        if folder.is_dir():
            remove_stale_tmp(folder, names)
    return run
