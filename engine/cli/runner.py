"""``TaskRunner``: colorize a list of file tasks on one ``Colorizer``, with file I/O overlapping the model.

``jobs`` worker threads decode and prepare inputs and merge, encode and write outputs while the calling
thread runs batched inference (``batch_size`` images of the same working shape per ``engine.run``).
Used by ``colorize images`` on this machine and by each Ray actor of ``colorize images --ray``
(``engine/ray/worker.py``): both paths run the same code per file.

Every output is written to a temporary file and renamed into place (``engine.image.io.save_image``). A
file that cannot be colorized is handed to ``on_error`` with a reason; the run goes on.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from typing import Protocol


class _Options(Protocol):
    batch_size: int  # images per engine.run
    jobs: int  # decode/encode threads
    quality: int  # JPEG/WebP quality


def failure_reason(e: BaseException) -> str:
    """How a per-file exception is shown: an ``ImageReadError``'s own reason, else its type and message."""
    from engine.image.io import ImageReadError

    return e.reason if isinstance(e, ImageReadError) else f"{type(e).__name__}: {e}"


def print_error(progress, shown: str, reason: str) -> None:
    """``error: FILE: REASON`` on stderr, on its own line even while the progress bar is drawn."""
    if progress.enabled:
        sys.stderr.write("\r\033[K")
    print(f"error: {shown}: {reason}", file=sys.stderr)


class TaskRunner:
    """Decode/prepare and finish/encode on a thread pool; batched ``engine.run`` on the calling thread.

    Args:
        colorizer: the loaded ``engine.Colorizer``.
        args: ``batch_size``, ``jobs`` and ``quality`` (the ``colorize images`` options).
        progress: an ``engine.cli.progress.Progress``, updated once per file done or failed.
        report: make before/after thumbnails for tasks whose ``thumbnail`` is set.
        on_error: called as ``on_error(task, reason)`` for each failed file (default: print it).

    After ``run``: ``done`` holds one ``engine.cli.report.Entry`` per output written, ``failed``
    one ``(task, reason)`` per file that could not be colorized.
    """

    def __init__(self, colorizer, args: _Options, progress, report: bool,
                 on_error: Callable[[object, str], None] | None = None):
        self.col = colorizer
        self.args = args
        self.progress = progress
        self.report = report
        self.on_error = on_error or (lambda task, reason: print_error(self.progress, task.shown, reason))
        self.done: list = []
        self.failed: list[tuple[object, str]] = []

    @property
    def errors(self) -> list[tuple[str, str]]:
        """``(file as shown, reason)`` for each failed file."""
        return [(t.shown, r) for t, r in self.failed]

    def error(self, task, reason: str) -> None:
        self.failed.append((task, reason))
        self.on_error(task, reason)
        self.progress.update()

    def _finish_one(self, task, prepared, ab):
        from engine.cli.report import Entry, thumbnail_uri
        from engine.image.io import format_for, save_image

        fmt = format_for(task.dst)  # ValueError names the file: Pillow cannot write this format
        out = self.col.finish(prepared, ab)
        task.dst.parent.mkdir(parents=True, exist_ok=True)
        save_image(out, task.dst, fmt, quality=self.args.quality, exif=prepared.decoded.exif)
        h, w = prepared.size
        if self.report and task.thumbnail:
            return Entry(task.shown, str(task.dst), thumbnail_uri(prepared.decoded), thumbnail_uri(out), (w, h))
        return Entry(task.shown, str(task.dst), size=(w, h))

    def run(self, tasks: list) -> None:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        import numpy as np

        bs = self.args.batch_size
        jobs = self.args.jobs
        lookahead = max(2 * bs, 2 * jobs)
        pending: dict[tuple, list] = {}
        n_pending = 0
        finishing: dict = {}
        prep: deque = deque()
        todo = iter(tasks)

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
                        self.done.append(f.result())
                        self.progress.update()
                    except Exception as e:
                        self.error(task, failure_reason(e))

        def run_batch(group: list) -> None:
            try:
                ab = self.col.run([p for _, p in group])
            except Exception as e:
                for task, _ in group:
                    self.error(task, f"inference failed: {failure_reason(e)}")
                return
            for j, (task, p) in enumerate(group):
                finishing[pool.submit(self._finish_one, task, p, ab[j])] = task
            collect(lookahead)

        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="colorize-io") as pool:
            try:
                def fill() -> None:
                    while len(prep) < lookahead:
                        task = next(todo, None)
                        if task is None:
                            return
                        prep.append((task, pool.submit(self.col.prepare, task.src)))

                fill()
                while prep:
                    task, fut = prep.popleft()
                    fill()
                    try:
                        p = fut.result()
                    except Exception as e:
                        self.error(task, failure_reason(e))
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
                    run_batch(pending.pop(key))
                collect(0)
            except BaseException:
                for f in list(finishing) + [f for _, f in prep]:
                    f.cancel()
                raise
