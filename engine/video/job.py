"""``colorize_video``: a whole video job from Python, here or on Ray.

    from colorize.video import colorize_video
    summary = colorize_video(["film.mp4", "reels/"], "colour/", recursive=True, skip_existing=True)

This module sits above ``colorize.video.run`` (the plan, one video's colorization, the local run) and
``colorize.video.on_ray`` (one Ray task per video, which builds on ``run``), and picks one of them, as
``colorize.folder`` does for images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from colorize.job.outcome import Outcome, counting
from colorize.job.plan import Plan
from colorize.video.options import VideoOptions
from colorize.video.run import (FrameProgress, VideoSummary, check_codec, make_video_plan, new_summary,
                                run_local)


def run_plan(plan: Plan, options: VideoOptions, *, ray: str | None = None,
             on_outcome: Callable[[Outcome], object] | None = None, frame_progress: FrameProgress | None = None,
             on_start: Callable | None = None, cancel=None) -> VideoSummary:
    """Run a planned video job here (``ray`` None) or on Ray (``"local"``: an embedded instance; else a cluster
    address or ``"auto"``), one Ray task per video. ``on_start(cluster)`` is called once Ray is up."""
    options.check()
    if ray is None:
        return run_local(plan, options, on_outcome=on_outcome, frame_progress=frame_progress, cancel=cancel)
    from colorize.video.on_ray import run_on_ray

    return run_on_ray(plan, options, new_summary(plan, options), address=None if ray == "local" else ray,
                      on_outcome=on_outcome, on_start=on_start, cancel=cancel)


def colorize_video(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    recursive: bool = False,
    format: str | None = None,
    skip_existing: bool = False,
    model: str | os.PathLike = VideoOptions.model,
    backend: str = VideoOptions.backend,
    precision: str = VideoOptions.precision,
    working_size: int = VideoOptions.working_size,
    batch_size: int = VideoOptions.batch_size,
    colour_strength: float = VideoOptions.colour_strength,
    codec: str = VideoOptions.codec,
    crf: int = VideoOptions.crf,
    preset: str = VideoOptions.preset,
    steady: bool = VideoOptions.steady,
    weight: float = VideoOptions.weight,
    ray: str | None = None,
    progress: Callable[[Outcome, int, int], object] | None = None,
    frame_progress: FrameProgress | None = None,
    cancel=None,
) -> VideoSummary:
    """Colorize video files and folders into ``output``, as ``colorize video`` does (``docs/video.md``).

    Args:
        inputs: video files and/or folders (one path or several).
        output: the output folder (created if needed); a folder's videos keep their relative paths under it.
        recursive: descend into subfolders of folder inputs.
        format: output container by extension ("mp4", "mkv", ...); None: each input's own.
        skip_existing: skip videos whose output exists (resume a stopped job).
        model, backend, precision, working_size, colour_strength: as ``colorize.Colorizer.load``.
        batch_size: frames per inference call.
        codec, crf, preset: the video encoder (default H.264 by libx264), its quality and its speed preset.
        steady: carry the colour along the motion between frames (False: each frame on its own).
        weight: the carried colour's weight where the motion is trusted (``colorize.video.temporal``).
        ray: None runs here; "local" on an embedded Ray instance; an address on that cluster (one Ray task
            per video; needs ``pip install ".[ray]"``).
        progress: called as ``progress(outcome, done, total)`` after each video is written or fails, on the
            calling thread. An exception it raises stops the job and propagates.
        frame_progress: called as ``frame_progress(task, frames_written, 0)`` on the calling thread as a
            video's frames are written (here, not on Ray).
        cancel: a ``threading.Event`` (anything with ``is_set()``); once set, the video being written stops,
            its temporary file is removed, and it and the videos after it are returned in ``Summary.not_run``
            (``cancelled`` True).

    Returns:
        The ``VideoSummary``: one ``VideoOutcome`` per video tried, the videos not run, ``describe()`` and
        ``exit_status`` (0 all written, 1 some failed or not run).

    Raises:
        colorize.job.JobError: a bad option value, a missing input, no videos found, an output over an input.
        ValueError, FileNotFoundError, ImportError, colorize.backends.base.BackendError: the model or backend
            cannot be loaded; ``MissingDependency`` without the ``video`` extra (or ``ray`` with ``ray=``).
    """
    options = VideoOptions(model, backend, precision, working_size, batch_size, colour_strength, codec, crf, preset,
                           steady, weight)
    options.check()
    check_codec(options.codec)
    plan = make_video_plan(inputs, output, recursive=recursive, format=format, skip_existing=skip_existing)
    on_outcome = counting(progress, len(plan.tasks))
    return run_plan(plan, options, ray=ray, on_outcome=on_outcome, frame_progress=frame_progress, cancel=cancel)
