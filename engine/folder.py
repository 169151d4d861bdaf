"""``colorize_folder``: a whole folder job from Python, here or on Ray.

This module sits above both ``colorize.job`` (the job as a library: plan, options, outcomes, the local runner)
and ``colorize.ray`` (the same job on Ray, which builds on ``colorize.job``), and picks one of them.

    from colorize import colorize_folder
    summary = colorize_folder(["scans/"], "colorized/", recursive=True, skip_existing=True,
                              report="colorized/report.html", progress=lambda o, done, total: print(done, total))
    summary.done, summary.failed, summary.describe(), summary.exit_status

``make_plan`` (``colorize.job.plan``) decides what to do; ``run_plan`` runs it on this machine
(``colorize.job.runner.run_local``) or on Ray (``colorize.ray.driver.run_plan``); both return a ``Summary`` of
``Outcome`` s. ``colorize images`` (and ``colorize video --ray``) is this same path with a command line in front.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from colorize.job.options import DEFAULT_MAX_PIXELS, DEFAULT_PHOTO_MODEL, DEFAULT_WORKING_SIZE, SMALL_IMAGE_MAX_SIDE
from colorize.job.options import BATCH_SIZE, COLOUR_STRENGTH, QUALITY, JobOptions
from colorize.job.outcome import Outcome, Summary, counting
from colorize.job.plan import Plan, make_plan
from colorize.job.runner import OnOutcome, _Cancel


def run_plan(
    plan: Plan,
    options: JobOptions | None = None,
    *,
    ray: str | None = None,
    ray_actors: int | None = None,
    ray_cpus_per_actor: float | None = None,
    ray_gpus_per_actor: float | None = None,
    on_outcome: OnOutcome | None = None,
    on_start: Callable | None = None,
    report: bool = False,
    cancel: _Cancel | None = None,
) -> Summary:
    """Run a planned job here (``ray`` None) or on Ray (``"local"``: an embedded instance; else a cluster
    address or ``"auto"``). ``on_start(cluster, pool)`` is called once the Ray pool is sized (Ray only).
    See ``colorize_folder`` for the rest and for what it raises."""
    options = options or JobOptions()
    options.check()
    if ray is None:
        from colorize.job.runner import run_local

        return run_local(plan, options, on_outcome=on_outcome, report=report, cancel=cancel)
    from colorize.ray.driver import run_plan as run_plan_on_ray

    return run_plan_on_ray(plan, options, address=None if ray == "local" else ray, actors=ray_actors,
                           cpus_per_actor=ray_cpus_per_actor, gpus_per_actor=ray_gpus_per_actor,
                           on_outcome=on_outcome, on_start=on_start, cancel=cancel)


def colorize_folder(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    recursive: bool = False,
    format: str | None = None,
    skip_existing: bool = False,
    report: str | os.PathLike | None = None,
    model: str | os.PathLike = DEFAULT_PHOTO_MODEL,
    backend: str = "auto",
    precision: str = "auto",
    working_size: int = DEFAULT_WORKING_SIZE,
    small_model: str | os.PathLike | None = "auto",
    small_max_side: int = SMALL_IMAGE_MAX_SIDE,
    batch_size: int = BATCH_SIZE,
    jobs: int | None = None,
    quality: int = QUALITY,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    colour_strength: float = COLOUR_STRENGTH,
    ray: str | None = None,
    progress: Callable[[Outcome, int, int], object] | None = None,
    cancel: _Cancel | None = None,
) -> Summary:
    """Colorize image files and folders into ``output``, as ``colorize images`` does (``docs/cli.md``).

    Args:
        inputs: image files and/or folders (one path or several).
        output: the output folder (created if needed); a folder's images keep their relative paths under it.
        recursive: descend into subfolders of folder inputs.
        format: output format by extension ("png", "jpg", ...); None: each input's own.
        skip_existing: skip inputs whose output exists (resume a stopped job).
        report: write a before/after HTML gallery here (atomically) when the job ends.
        model, backend, precision, working_size, small_model, small_max_side: as ``colorize.Colorizer.load``.
        batch_size: images of one working shape per inference call.
        jobs: decode/encode threads (None: min(4, CPUs); on Ray: per actor, its thread count).
        quality: JPEG/WebP quality, 1..100.
        max_pixels: images with more pixels are refused (decompression-bomb limit).
        colour_strength: the predicted chroma times this, 0..4 (1: the model's own; ``colorize.Colorizer.load``).
        ray: None runs here; "local" on an embedded Ray instance; an address ("host:port", "ray://host:port",
            "auto") on that cluster (``docs/ray.md``; needs ``pip install ".[ray]"``).
        progress: called as ``progress(outcome, done, total)`` after each file is written or fails, on the
            calling thread; ``done`` counts the outcomes so far, ``total`` the files planned. An exception it
            raises stops the job and propagates (outputs already written stay, complete).
        cancel: a ``threading.Event`` (anything with ``is_set()``); once set, no new file is started, the files
            being written finish, and the others are returned in ``Summary.not_run`` (``cancelled`` True).
            Every output is written under a temporary name and renamed: none is left half-written.

    Returns:
        The ``Summary``: one ``Outcome`` per file tried (written, or failed with its reason), the files not run,
        ``describe()`` (the line ``colorize images`` prints) and ``exit_status``.

    Raises:
        colorize.job.JobError: a bad option value, a missing input, no images found, an output that would
            overwrite an input (nothing is written).
        ValueError, FileNotFoundError, ImportError, colorize.backends.base.BackendError: the model or backend
            cannot be loaded. On Ray also ``MissingDependency`` (no Ray) and ``colorize.ray.ClusterError``.
        A file that cannot be colorized never raises: it is an ``Outcome`` with ``ok`` False.
    """
    options = JobOptions(model, backend, precision, working_size, small_model, small_max_side, batch_size, jobs,
                         quality, max_pixels, colour_strength)
    options.check()
    plan = make_plan(inputs, output, recursive=recursive, format=format, skip_existing=skip_existing,
                     thumbnails=report is not None)
    on_outcome = counting(progress, len(plan.tasks))
    summary = run_plan(plan, options, ray=ray, on_outcome=on_outcome, report=report is not None, cancel=cancel)
    if report is not None:
        summary.write_report(report)
    return summary
