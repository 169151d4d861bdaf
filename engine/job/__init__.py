"""The folder job as a library: plan, options, the local run, per-file outcomes, summary.

    from colorize.job import JobOptions, make_plan, run_local
    summary = run_local(make_plan(["scans/"], "out/", recursive=True, skip_existing=True), JobOptions())

``colorize.colorize_folder`` (``colorize.folder``) is the whole job, here or on Ray, in one call.

Modules (each plain data or one step; none imports the command line):
  * ``plan``: ``Task``, ``Plan``, ``make_plan``, ``JobError``: what to do, from the filesystem.
  * ``options``: ``JobOptions``: model, backend, batching, threads, encoding.
  * ``outcome``: ``Outcome`` per file, ``Summary`` of the job (the summary line, the exit status, the report).
  * ``runner``: ``TaskRunner``, ``run_local``: the per-file code on one ``Colorizer`` (Ray's actors run it too).
  * ``report``: the before/after HTML gallery.

Importing this package is cheap (names load on first use) and never imports torch or Ray.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Task": "colorize.job.plan",
    "Plan": "colorize.job.plan",
    "JobError": "colorize.job.plan",
    "make_plan": "colorize.job.plan",
    "JobOptions": "colorize.job.options",
    "Outcome": "colorize.job.outcome",
    "Summary": "colorize.job.outcome",
    "TaskRunner": "colorize.job.runner",
    "run_local": "colorize.job.runner",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'colorize.job' has no attribute {name!r}")
