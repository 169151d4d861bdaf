"""The local runner: colorize a plan's tasks on one ``Colorizer``, with file I/O overlapping the model.

``jobs`` worker threads decode and prepare inputs and merge, encode and write outputs while the calling
thread runs batched inference (``batch_size`` images of the same working shape per ``engine.run``).
``run_local`` runs a whole plan on this machine; each Ray actor (``engine/ray/worker.py``) runs its share
of the files through the same ``TaskRunner``: both paths run the same code per file.

Every output is written to a temporary file and renamed into place (``colorize.image.io.save_image``). A
file that cannot be colorized becomes an ``Outcome`` with its reason; the run goes on.

Cancel: when ``cancel.is_set()`` (a ``threading.Event``, or anything with ``is_set``), no new file is
started; files already being written finish (their outputs are complete), files decoded but not yet run
are dropped, and every task without an outcome is listed in ``not_run``. No half-written output is left.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from colorize.image.merge import COMPILED_MERGE_MIN_IMAGES
from colorize.job.outcome import Outcome, Outcomes, Summary
from colorize.job.plan import Plan, Task


class _Options(Protocol):
    batch_size: int  # images per engine.run
    jobs: int  # decode/encode threads
    quality: int  # JPEG/WebP quality


class _Cancel(Protocol):
    def is_set(self) -> bool: ...


#: the job size from which every image merges with the compiled merge (``colorize.image.merge.choose_for``)
COMPILED_MERGE_MIN_FILES = COMPILED_MERGE_MIN_IMAGES


def choose_merge(n_files: int) -> None:
    """The merge for a job of ``n_files`` (``colorize.image.merge.choose_for``)."""
    from colorize.image import merge

    merge.choose_for(n_files, COMPILED_MERGE_MIN_FILES)


#: ``on_outcome(outcome)``: called on the calling thread once per file written or failed.
OnOutcome = Callable[[Outcome], None]


def failure_reason(e: BaseException) -> str:
    """How a per-file exception is shown: an ``ImageReadError``'s own reason, else its type and message."""
    from colorize.image.io import ImageReadError

    return e.reason if isinstance(e, ImageReadError) else f"{type(e).__name__}: {e}"


class TaskRunner(Outcomes):
    """Decode/prepare and finish/encode on a thread pool; batched ``engine.run`` on the calling thread.

    Args:
        colorizer: the loaded ``colorize.Colorizer``.
        options: ``batch_size``, ``jobs`` and ``quality`` (``colorize.job.JobOptions`` or any object with them).
        on_outcome: called with each ``Outcome`` as it comes (on the calling thread).
        report: make before/after thumbnails for tasks whose ``thumbnail`` is set.
        cancel: stop early when ``cancel.is_set()`` (module docstring).

    After ``run``: ``outcomes`` holds one ``Outcome`` per file tried, ``not_run`` the tasks never tried.
    """

    def __init__(self, colorizer, options: _Options, on_outcome: OnOutcome | None = None, report: bool = False,
                 cancel: _Cancel | None = None):
        self.col = colorizer
        self.options = options
        self.on_outcome = on_outcome
        self.report = report
        self.cancel = cancel
        self.outcomes: list[Outcome] = []
        self.not_run: list[Task] = []
        self._engine = f"{colorizer.engine.backend}/{colorizer.engine.precision}"

    def engine_of(self, size: tuple[int, int]) -> str:
        """What runs an image of this size: the small-image model ("resnet18-unet (openvino/int8)") or the main
        engine ("openvino/int8")."""
        from colorize.colorizer import runs_small

        return self.col.describe_small() if runs_small(size, self.col.small_max_side) else self._engine

    def _add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def _error(self, task: Task, reason: str) -> None:
        self._add(Outcome(task, False, reason))

    def _stopping(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _finish_one(self, task: Task, prepared, ab) -> Outcome:
        from colorize.image.io import format_for, save_image
        from colorize.job.report import thumbnail_uri

        fmt = format_for(task.dst)  # ValueError names the file: Pillow cannot write this format
        out = self.col.finish(prepared, ab)
        task.dst.parent.mkdir(parents=True, exist_ok=True)
        save_image(out, task.dst, fmt, quality=self.options.quality, exif=prepared.decoded.exif)
        h, w = prepared.size
        before = after = None
        if self.report and task.thumbnail:
            before, after = thumbnail_uri(prepared.decoded), thumbnail_uri(out)
        return Outcome(task, True, size=(w, h), engine=self.engine_of((w, h)), before=before, after=after)

    def run(self, tasks: Sequence[Task]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        n_before = len(self.outcomes)
        with ThreadPoolExecutor(max_workers=max(1, self.options.jobs), thread_name_prefix="colorize-io") as pool:
            one = _Pass(self, pool, tasks)
            try:
                one.run()
            except BaseException:
                one.cancel_all()
                raise
            one.cancel_queued()  # cancelled: files queued or being decoded are not run
        tried = {id(o.task) for o in self.outcomes[n_before:]}
        self.not_run += [t for t in tasks if id(t) not in tried]


def run_local(plan: Plan, options, *, on_outcome: OnOutcome | None = None, report: bool = False,
              cancel: _Cancel | None = None) -> Summary:
    """Run ``plan`` on this machine: load the model once, colorize every task, return the ``Summary``.

    Args:
        plan: from ``colorize.job.make_plan``.
        options: an ``colorize.job.JobOptions``.
        on_outcome, report, cancel: as ``TaskRunner``.

    Raises:
        ValueError, FileNotFoundError, ImportError, colorize.backends.base.BackendError: the model or backend
            cannot be loaded (as ``colorize.Colorizer.load``); per-file problems are outcomes, never raised.
    """
    choose_merge(len(plan.tasks))
    col = options.load_colorizer()
    run = TaskRunner(col, _Threads(options), on_outcome, report, cancel)
    start = time.perf_counter()
    try:
        if plan.tasks:
            run.run(plan.tasks)
    finally:
        col.close()
    cancelled = bool(run.not_run) and cancel is not None and cancel.is_set()
    return Summary(plan, run.outcomes, run.not_run, time.perf_counter() - start,
                   f"{col.engine.backend}/{col.engine.precision}", options.working_size,
                   min_working_size=col.min_working_size, model_size=col.engine.static_size,
                   small_max_side=col.small_max_side, small_model=col.describe_small(),
                   stopped="cancelled" if cancelled else None, cancelled=cancelled, passed_over=passed_over(col.engine))


def passed_over(engine) -> list[str]:
    """The candidates ``auto`` tried and could not keep, as "openvino/int8 (failed to load: ...)"; left out are
    those unavailable here (no GPU, no extra: never in reach) and those that ran but were slower than the one kept
    (``auto`` chose among them; ``engine.selection`` has their timings)."""
    return [f"{b}/{p} ({why})" for b, p, why in getattr(engine, "selection", [])
            if not why.startswith(("selected", "unavailable", "slower"))]


class _Threads:
    """``options`` with ``jobs`` resolved to a thread count."""

    def __init__(self, options):
        self.batch_size = options.batch_size
        self.jobs = options.threads()
        self.quality = options.quality


class _Pass:
    """One ``TaskRunner.run`` over ``tasks``: decodes queued ahead on the pool (``prep``), prepared images grouped
    by working shape until a batch is full (``pending``), and outputs being finished and encoded (``finishing``).
    """

    def __init__(self, runner: TaskRunner, pool, tasks: Sequence[Task]):
        self.runner, self.pool = runner, pool
        self.bs = runner.options.batch_size
        self.lookahead = max(2 * self.bs, 2 * runner.options.jobs)
        self.todo = iter(tasks)
        self.prep: deque = deque()  # (task, future of prepare)
        self.pending: dict[tuple, list] = {}  # batch_key -> [(task, prepared)]
        self.n_pending = 0
        self.finishing: dict = {}  # future of _finish_one -> task

    def run(self) -> None:
        runner = self.runner
        self.fill()
        while self.prep and not runner._stopping():
            task, fut = self.prep.popleft()
            self.fill()
            try:
                prepared = fut.result()
            except Exception as e:
                runner._error(task, failure_reason(e))
                continue
            self.add(task, prepared)
            self.collect(None)
        for key in list(self.pending):
            if runner._stopping():
                break
            self.run_batch(self.pending.pop(key))
        self.collect(0)

    def fill(self) -> None:
        """Queue decodes until ``lookahead`` are ahead (none once cancelled)."""
        while len(self.prep) < self.lookahead and not self.runner._stopping():
            task = next(self.todo, None)
            if task is None:
                return
            self.prep.append((task, self.pool.submit(self.runner.col.prepare, task.src)))

    def add(self, task: Task, prepared) -> None:
        """Group a prepared image by working shape; run a group once it is a full batch, or the largest group
        when many different shapes are waiting."""
        group = self.pending.setdefault(prepared.batch_key, [])
        group.append((task, prepared))
        self.n_pending += 1
        if len(group) >= self.bs:
            self.run_batch(self.pending.pop(prepared.batch_key))
        elif self.n_pending > self.lookahead:
            key = max(self.pending, key=lambda k: len(self.pending[k]))
            self.run_batch(self.pending.pop(key))

    def run_batch(self, group: list) -> None:
        """One inference call for ``group``, then its images finish and encode on the pool."""
        self.n_pending -= len(group)
        try:
            ab = self.runner.col.run([p for _, p in group])
        except Exception as e:
            for task, _ in group:
                self.runner._error(task, f"inference failed: {failure_reason(e)}")
            return
        for j, (task, p) in enumerate(group):
            self.finishing[self.pool.submit(self.runner._finish_one, task, p, ab[j])] = task
        self.collect(self.lookahead)

    def collect(self, limit: int | None) -> None:
        """Gather finished outputs; with a limit, block until at most that many are outstanding."""
        from concurrent.futures import FIRST_COMPLETED, wait

        while self.finishing:
            block = limit is not None and len(self.finishing) > limit
            done, _ = wait(list(self.finishing), timeout=None if block else 0, return_when=FIRST_COMPLETED)
            if not done:
                return
            for f in done:
                task = self.finishing.pop(f)
                try:
                    outcome = f.result()
                except Exception as e:
                    self.runner._error(task, failure_reason(e))
                else:
                    self.runner._add(outcome)

    def cancel_queued(self) -> None:
        for _, f in self.prep:
            f.cancel()

    def cancel_all(self) -> None:
        for f in list(self.finishing):
            f.cancel()
        self.cancel_queued()

