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

from colorize.job.outcome import Outcome, Outcomes, Summary
from colorize.job.plan import Plan, Task


class _Options(Protocol):
    batch_size: int  # images per engine.run
    jobs: int  # decode/encode threads
    quality: int  # JPEG/WebP quality


class _Cancel(Protocol):
    def is_set(self) -> bool: ...


#: A local job of at least this many files merges every image with the compiled merge
#: (``colorize.image.merge.use_compiled``, loaded on a background thread while the model loads): loading it costs about
#: 0.7 s of CPU, and it saves about 4.5 ms of CPU per 481x321 photo (22.6 against 27.4 ms per photo, whole
#: pipeline, 2-core Xeon); smaller jobs merge images under 1 MP on numpy.
COMPILED_MERGE_MIN_FILES = 64


def choose_merge(n_files: int) -> None:
    """Use the compiled merge for every image of a job of ``n_files`` when it is large enough to repay its load."""
    if n_files >= COMPILED_MERGE_MIN_FILES:
        from colorize.image import merge

        merge.use_compiled()

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
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        bs = self.options.batch_size
        jobs = self.options.jobs
        lookahead = max(2 * bs, 2 * jobs)
        pending: dict[tuple, list] = {}
        n_pending = 0
        finishing: dict = {}
        prep: deque = deque()
        todo = iter(tasks)
        n_before = len(self.outcomes)

        def collect(limit: int | None) -> None:
            """Gather finished outputs; with a limit, block until at most that many are outstanding."""
            while finishing:
                block = limit is not None and len(finishing) > limit
                done, _ = wait(list(finishing), timeout=None if block else 0, return_when=FIRST_COMPLETED)
                if not done:
                    return
                for f in done:
                    task = finishing.pop(f)
                    try:
                        outcome = f.result()
                    except Exception as e:
                        self._error(task, failure_reason(e))
                    else:
                        self._add(outcome)

        def run_batch(group: list) -> None:
            try:
                ab = self.col.run([p for _, p in group])
            except Exception as e:
                for task, _ in group:
                    self._error(task, f"inference failed: {failure_reason(e)}")
                return
            for j, (task, p) in enumerate(group):
                finishing[pool.submit(self._finish_one, task, p, ab[j])] = task
            collect(lookahead)

        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="colorize-io") as pool:
            try:
                def fill() -> None:
                    while len(prep) < lookahead and not self._stopping():
                        task = next(todo, None)
                        if task is None:
                            return
                        prep.append((task, pool.submit(self.col.prepare, task.src)))

                fill()
                while prep and not self._stopping():
                    task, fut = prep.popleft()
                    fill()
                    try:
                        p = fut.result()
                    except Exception as e:
                        self._error(task, failure_reason(e))
                        continue
                    pending.setdefault(p.batch_key, []).append((task, p))
                    n_pending += 1
                    if len(pending[p.batch_key]) >= bs:
                        n_pending -= len(pending[p.batch_key])
                        run_batch(pending.pop(p.batch_key))
                    elif n_pending > lookahead:  # many different shapes: run the largest group now
                        key = max(pending, key=lambda k: len(pending[k]))
                        n_pending -= len(pending[key])
                        run_batch(pending.pop(key))
                    collect(None)
                for key in list(pending):
                    if self._stopping():
                        break
                    run_batch(pending.pop(key))
                collect(0)
            except BaseException:
                for f in list(finishing) + [f for _, f in prep]:
                    f.cancel()
                raise
            for _, f in prep:  # cancelled: files queued or being decoded are not run
                f.cancel()
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
                   small_max_side=col.small_max_side, small_model=col.describe_small(), stopped="cancelled" if cancelled else None, cancelled=cancelled)


class _Threads:
    """``options`` with ``jobs`` resolved to a thread count."""

    def __init__(self, options):
        self.batch_size = options.batch_size
        self.jobs = options.threads()
        self.quality = options.quality
