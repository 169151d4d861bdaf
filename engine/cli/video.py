"""Colorize video files and folders with steady colour: ``colorize video INPUT... -o OUTDIR``.

* Inputs are video files and folders (``--recursive`` descends into subfolders); a folder's videos are
  written under OUTDIR with the same relative paths, in the input's container (``--format`` changes it).
* The picture is re-encoded (``--codec``, H.264 by default, ``--crf``, ``--preset``); the luma is the input's
  as decoded, only the chroma is new. Audio and subtitle streams are copied unchanged; frame count,
  timestamps, size, rotation and metadata are kept.
* The colour is carried along the motion between frames and reset at cuts (``--per-frame``: each frame on
  its own, as ``colorize images`` would colour it). How: docs/video.md.
* Each output is written under a temporary name and renamed when complete: a killed run leaves complete
  videos only, and ``--skip-existing`` resumes it. A file that cannot be colorized (not a video, corrupt,
  truncated) is reported with its reason and the run goes on.
* ``--ray [ADDRESS]`` runs one Ray task per video (an embedded instance, or a cluster; paths must be the same
  on every node).

The job itself is ``colorize.video`` (``colorize_video`` from Python): this module parses the flags, draws the
progress bar (frames, with the ETA) and prints the errors and the summary.

Exit status: 0 all done, 1 some videos failed, 2 usage error (bad option, missing input, no videos found, an
output that would overwrite an input, a missing extra).
"""

from __future__ import annotations

import argparse
import sys

from colorize.artifacts.model_ref import MAX_COLOUR_STRENGTH
from colorize.job.plan import JobError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from colorize.artifacts.model_ref import DEFAULT_PHOTO_MODEL as DEFAULT_MODEL
    from colorize.backends import BACKENDS
    from colorize.engine import PRECISIONS
    from colorize.video.options import PRESETS
    from colorize.video.options import VideoOptions as D

    p.usage = "%(prog)s INPUT [INPUT ...] -o OUTDIR [options]"
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="video files and/or folders (at least one)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if needed)")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into subfolders of folder inputs")
    p.add_argument("--format", help="output container by extension (mp4, mkv, mov, ...); default: the input's")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or path (default: {DEFAULT_MODEL})")
    p.add_argument("--backend", default="auto", metavar="NAME",
                   help=f"inference backend: {', '.join(BACKENDS)} or auto (default: auto)")
    p.add_argument("--precision", default="auto", help=f"{', '.join(PRECISIONS)} or auto (default: auto)")
    p.add_argument("--working-size", type=int, default=D.working_size, metavar="PX",
                   help=f"long side the model and the motion run at (default: {D.working_size})")
    p.add_argument("--batch-size", type=int, default=D.batch_size, help=f"frames per inference batch "
                                                                        f"(default: {D.batch_size})")
    p.add_argument("--colour-strength", type=float, default=D.colour_strength, metavar="S",
                   help="the predicted colour's chroma times S, 0..4 (default: 1)")
    p.add_argument("--codec", default=D.codec, help=f"video encoder (default: {D.codec}, H.264; also libx265, "
                                                    "libvpx-vp9, libaom-av1, ...)")
    p.add_argument("--crf", type=int, default=D.crf, help=f"encoder quality, lower is better (default: {D.crf})")
    p.add_argument("--preset", default=D.preset, choices=PRESETS, metavar="NAME",
                   help=f"x264/x265 speed preset: {', '.join(PRESETS)} (default: {D.preset})")
    p.add_argument("--per-frame", action="store_true",
                   help="colour each frame on its own (no temporal step; flickers, for comparison)")
    p.add_argument("--steadiness", type=float, default=D.weight, metavar="W",
                   help=f"weight of the colour carried along the motion, 0..0.99 (default: {D.weight}; "
                        "0 = --per-frame)")
    p.add_argument("--skip-existing", action="store_true", help="skip videos whose output already exists (resume)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run one Ray task per video: alone, an embedded Ray instance on this machine; ADDRESS "
                        '(host:port, ray://host:port, auto) joins a running cluster (needs pip install ".[ray]")')


def _options(args: argparse.Namespace):
    from colorize.video.options import VideoOptions

    return VideoOptions(model=args.model, backend=args.backend, precision=args.precision,
                        working_size=args.working_size, batch_size=args.batch_size,
                        colour_strength=args.colour_strength, codec=args.codec, crf=args.crf, preset=args.preset,
                        steady=not args.per_frame and args.steadiness > 0, weight=args.steadiness)


def _check(args: argparse.Namespace) -> None:
    import os

    if args.ray is not None and args.ray not in ("local", "auto") and ":" not in args.ray:
        if not os.path.exists(args.ray):
            raise JobError(f"--ray {args.ray!r}: neither a Ray address (host:port, ray://host:port, auto) nor an "
                           "input that exists")
        args.inputs.insert(0, args.ray)  # `--ray IN -o OUT`: IN was taken as the address
        args.ray = "local"
    if not args.inputs:
        raise JobError("no INPUT given (video files and/or folders)")
    if not 0 <= args.colour_strength <= MAX_COLOUR_STRENGTH:  # NaN fails too
        raise JobError(f"--colour-strength must be in 0..{MAX_COLOUR_STRENGTH:g}, got {args.colour_strength}")
    if not 0 <= args.steadiness < 1:
        raise JobError(f"--steadiness must be in 0..0.99, got {args.steadiness}")
    for name in ("batch_size", "working_size"):
        if getattr(args, name) < 1:
            raise JobError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 0 <= args.crf <= 63:
        raise JobError(f"--crf must be in 0..63, got {args.crf}")
    for path in [*args.inputs, args.output]:
        if "://" in path:
            raise JobError(f"{path}: colorize video reads and writes through the filesystem; URIs are not supported")


def _fail(message: str) -> int:
    print(f"colorize video: error: {message}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    from colorize.deps import BackendError, MissingDependency
    from colorize.video.run import make_video_plan

    try:
        _check(args)
        options = _options(args)
        options.check()
        plan = make_video_plan(args.inputs, args.output, recursive=args.recursive, format=args.format,
                               skip_existing=args.skip_existing)
    except JobError as e:
        return _fail(str(e))
    try:
        from colorize.video.run import check_codec

        check_codec(options.codec)
    except (MissingDependency, JobError) as e:
        return _fail(str(e))
    if args.ray is not None:
        return _run_on_ray(args, plan, options)
    from colorize.cli.progress import Progress, print_error
    from colorize.video.job import run_plan
    from colorize.video.run import expected_frames

    expected = {id(t): expected_frames(t) for t in plan.tasks} if not args.quiet else {}
    progress = Progress(sum(expected.values()), enabled=None if not args.quiet else False, unit="frames")
    shown_frames = {}

    def frames(task, n: int, _total: int) -> None:
        before = shown_frames.get(id(task), 0)
        shown_frames[id(task)] = n
        progress.update(n - before)

    def outcome(o) -> None:
        if not o.ok:
            print_error(progress, o.task.shown, o.error)
        else:  # the header's count was an estimate: the bar counts what was written
            progress.total += o.frames - expected.get(id(o.task), o.frames)

    try:
        summary = run_plan(plan, options, on_outcome=outcome, frame_progress=frames)
    except (ValueError, FileNotFoundError, ImportError, BackendError) as e:  # the model did not load
        progress.close()
        return _fail(str(e))
    except BaseException:
        progress.close()
        raise
    progress.close()
    print(summary.describe(), file=sys.stderr)
    for o in summary.done:
        for note in getattr(o, "notes", []):
            print(f"note: {o.task.shown}: {note}", file=sys.stderr)
    return summary.exit_status


def _run_on_ray(args: argparse.Namespace, plan, options) -> int:
    from colorize.cli.progress import Progress, print_error
    from colorize.deps import MissingDependency
    from colorize.ray.cluster import ClusterError
    from colorize.video.job import run_plan

    progress = Progress(len(plan.tasks), enabled=None if not args.quiet else False, unit="videos")

    def started(cluster) -> None:
        print(f"ray: {cluster.describe()}; one task per video", file=sys.stderr)

    def outcome(o) -> None:
        if not o.ok:
            print_error(progress, o.task.shown, o.error)
        progress.update()

    try:
        summary = run_plan(plan, options, ray=args.ray, on_outcome=outcome, on_start=started)
    except (ValueError, FileNotFoundError, MissingDependency, ClusterError) as e:
        return _fail(str(e))
    progress.close()
    if summary.stopped and not summary.cancelled:
        print(f"colorize video: error: the Ray job stopped: {summary.stopped}; {len(summary.not_run)} videos not "
              "run (rerun with --skip-existing to finish them)", file=sys.stderr)
    print(summary.describe(), file=sys.stderr)
    return summary.exit_status
