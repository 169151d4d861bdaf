"""A video job on this machine: the plan, one video's colorization, the local run, the outcomes and the summary.

    plan = make_video_plan(["films/"], "colour/", recursive=True, skip_existing=True)
    summary = run_local(plan, VideoOptions())
    summary.done, summary.failed, summary.describe(), summary.exit_status

``colorize.video.job.colorize_video`` (``from colorize import colorize_video``) is the whole job in one call, here
or on Ray. The plan is a folder job's (``colorize.job.plan``: ``Task``, ``Plan``, ``JobError``), picking video files by
extension; the outcomes and the summary are the folder job's types with the frame counts added, so
``colorize video`` prints, reports and exits as ``colorize images`` does. Each video is written under a
temporary name in its output folder and renamed when complete: a killed run leaves complete videos only, and
``skip_existing`` resumes it. A file that cannot be colorized (not a video, no video stream, corrupt,
truncated) is an outcome with its reason; the job goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from colorize.job.outcome import Outcome, Summary
from colorize.job.plan import JobError, Plan, Task, plan_files
from colorize.video.options import VideoOptions

#: ``frame_progress(task, frames_written, frames_expected)``: frames_expected is the header's estimate (0: unknown).
FrameProgress = Callable[[Task, int, int], object]


@dataclass
class VideoOutcome(Outcome):
    """One video tried: ``Outcome`` plus what the video run did."""

    frames: int = 0  # frames written
    colour_frames: int = 0  # frames of a colour input (colorized from their luma)
    cuts: int = 0  # shot changes where the colour was reset
    seconds: float = 0.0  # this video's run, model load not counted
    notes: list[str] = field(default_factory=list)  # e.g. streams not carried over


@dataclass
class VideoSummary(Summary):
    """A finished (or stopped) video job; ``describe`` counts videos and frames."""

    steady: bool = True
    encoder: str = ""  # "libx264 crf 18 veryfast"

    @property
    def frames(self) -> int:
        return sum(getattr(o, "frames", 0) for o in self.done)

    def describe(self) -> str:
        """The one-line summary ``colorize video`` prints."""
        n_ok = len(self.done)
        n_bad = len(self.failed) + (0 if self.cancelled else len(self.not_run))
        colour = sum(1 for o in self.done if getattr(o, "colour_frames", 0))
        s = self.seconds
        return (f"colorized {n_ok} of {self.plan.found} video{'s' if self.plan.found != 1 else ''} "
                f"({self.frames} frames) in {s:.1f} s ({self.frames / s if s > 0 else 0:.1f} frames/s) with "
                f"{self.engines}{self.where}, working size {self.working_size}, "
                + ("steady colour" if self.steady else "per-frame colour")
                + (f", {self.encoder}" if self.encoder else "")
                + (f"; {colour} colour input{'s' if colour != 1 else ''} colorized from {'their' if colour != 1 else 'its'} "
                   "luma (its colour replaced)" if colour else "")
                + (f"; {self.plan.skipped} skipped (output exists)" if self.plan.skipped else "")
                + (f"; {n_bad} failed" if n_bad else "")
                + (f"; cancelled, {len(self.not_run)} not run" if self.cancelled else "")
                + (f"; output in {self.plan.out_dir}" if n_ok else "; nothing written"))


# -- the plan ------------------------------------------------------------------------------------------------------


def _format_suffix(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    from colorize.video.io import MUXERS

    ext = "." + fmt.lower().lstrip(".")
    if ext not in MUXERS:
        raise JobError(f"format {fmt!r}: not a video container; use one of: "
                       f"{', '.join(sorted(e.lstrip('.') for e in MUXERS))}")
    return ext


def make_video_plan(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    recursive: bool = False,
    format: str | None = None,
    skip_existing: bool = False,
) -> Plan:
    """The videos to colorize and where each goes: files as given, folders scanned for ``VIDEO_EXTENSIONS``
    (``recursive``: subfolders too, the tree mirrored under ``output``); ``format`` changes the container
    (by extension); ``skip_existing`` drops videos whose output exists. Removes temporary files a killed run
    left beside the outputs.

    Raises:
        JobError: no input, a missing input, an output that is not a folder, an output over an input, two
            inputs with one output, no videos found, an unknown format.
    """
    from colorize.video.io import VIDEO_EXTENSIONS

    return plan_files(inputs, output, exts=VIDEO_EXTENSIONS, format_suffix=_format_suffix, kind="videos",
                      recursive=recursive, format=format, skip_existing=skip_existing)


def check_codec(codec: str) -> None:
    """Raises ``JobError`` for a codec FFmpeg cannot encode video with (``MissingDependency`` without PyAV)."""
    from colorize.video.io import check_encoder

    try:
        check_encoder(codec)
    except ValueError as e:
        raise JobError(str(e)) from None


def expected_frames(task: Task) -> int:
    """The frame count a video's header gives (or its duration times its rate); 0 when unknown or unreadable."""
    from colorize.video.io import MediaError, Reader

    try:
        with Reader(task.src) as r:
            return r.info.estimated_frames()
    except (MediaError, OSError):
        return 0


# -- one video -----------------------------------------------------------------------------------------------------


def failure_reason(e: BaseException) -> str:
    """How a per-video exception is shown: a ``MediaError``'s own reason, else its type and message."""
    from colorize.video.io import MediaError

    return e.reason if isinstance(e, MediaError) else f"{type(e).__name__}: {e}"


def colorize_file(col, task: Task, options: VideoOptions, *, on_frames: Callable[[int], object] | None = None,
                  cancel=None) -> VideoOutcome:
    """Colorize one video of a plan with ``col`` (a loaded ``Colorizer``) and write it atomically.

    Raises:
        colorize.video.io.MediaError: the file cannot be read or written (nothing is left at ``task.dst``).
        colorize.video.pipeline.Cancelled: ``cancel`` was set (the temporary file is removed).
    """
    from colorize.fsutil import atomic_path
    from colorize.image.io import TMP_SUFFIX
    from colorize.video.io import MediaError, Reader, Writer, muxer_for
    from colorize.video.pipeline import colorize_stream

    with Reader(task.src) as reader:
        try:
            muxer = muxer_for(task.dst)
        except ValueError as e:
            raise MediaError(task.src, str(e).split(": ", 1)[-1]) from None
        with atomic_path(task.dst, suffix=TMP_SUFFIX, mode=0o644) as tmp:
            writer = Writer(tmp, muxer, reader, codec=options.codec, crf=options.crf, preset=options.preset,
                            threads=options.threads)
            try:
                result = colorize_stream(col, reader, writer, batch_size=options.batch_size,
                                         temporal=options.temporal(), colour_strength=options.colour_strength,
                                         on_frames=on_frames, cancel=cancel)
            except BaseException:
                writer.close(complete=False)
                raise
            writer.close()
    info = reader.info
    notes = [f"{d} not carried over" for d in info.dropped] + writer.notes
    if reader.corrupt_frames:
        notes.append(f"{reader.corrupt_frames} frames were damaged in the input (decoded with concealment)")
    return VideoOutcome(task, True, size=(info.width, info.height), engine=f"{col.engine.backend}/{col.engine.precision}",
                        frames=result.frames, colour_frames=result.colour_frames, cuts=result.cuts,
                        seconds=result.seconds, notes=notes)


def load_colorizer(options: VideoOptions):
    """The ``Colorizer`` a video job runs (no small-image model: a film's frames are never thumbnails)."""
    from colorize.colorizer import Colorizer

    return Colorizer.load(options.model, options.backend, options.precision, working_size=options.working_size,
                          small_model=None, colour_strength=options.colour_strength)


def run_local(plan: Plan, options: VideoOptions, *, on_outcome: Callable[[Outcome], object] | None = None,
              frame_progress: FrameProgress | None = None, cancel=None) -> VideoSummary:
    """Run ``plan`` on this machine: load the model once, colorize the videos one after another.

    Raises:
        ValueError, FileNotFoundError, ImportError, colorize.backends.base.BackendError: the model or backend
            cannot be loaded; ``MissingDependency`` without PyAV or OpenCV. Per-video problems are outcomes.
    """
    from colorize.colorizer import model_min_working_size
    from colorize.image import merge
    from colorize.video.io import require_av
    from colorize.video.pipeline import Cancelled

    require_av()
    summary = new_summary(plan, options)
    if not plan.tasks:
        summary.engines = "nothing to run"
        return summary
    merge.choose_for(None)  # every frame is merged: the compiled merge repays its load on any film
    col = load_colorizer(options)
    summary.engines = f"{col.engine.backend}/{col.engine.precision}"
    summary.min_working_size = model_min_working_size(getattr(col.engine.model, "metadata", None) or {})
    start = time.perf_counter()
    try:
        for i, task in enumerate(plan.tasks):
            if cancel is not None and cancel.is_set():
                summary.not_run += plan.tasks[i:]
                summary.cancelled = True
                summary.stopped = "cancelled"
                break
            on_frames = None
            if frame_progress is not None:
                def on_frames(n: int, task=task) -> None:
                    frame_progress(task, n, 0)
            try:
                outcome = colorize_file(col, task, options, on_frames=on_frames, cancel=cancel)
            except Cancelled:
                summary.not_run += plan.tasks[i:]
                summary.cancelled = True
                summary.stopped = "cancelled"
                break
            except Exception as e:
                outcome = VideoOutcome(task, False, failure_reason(e))
            summary.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    finally:
        col.close()
        summary.seconds = time.perf_counter() - start
    return summary


def new_summary(plan: Plan, options: VideoOptions) -> VideoSummary:
    encoder = f"{options.codec} crf {options.crf}" + (f" {options.preset}" if options.codec in ("libx264", "libx265")
                                                      else "")
    return VideoSummary(plan, working_size=options.working_size, steady=options.steady, encoder=encoder)
