"""Colorize image files and folders: ``colorize images INPUT... -o OUTDIR``.

* Inputs are files and folders (``--recursive`` descends into subfolders). A
  folder's images are written under OUTDIR with the same relative paths; a
  file goes to OUTDIR/its name. Files in folders are picked by extension (any
  format Pillow reads); a file named on the command line is always tried.
  Outputs never replace an input (that is a usage error), and OUTDIR is never
  read as input.
* The output format follows the input's extension, or ``--format``. Alpha is
  kept where the format holds it; multi-frame files (GIF, APNG, TIFF) give
  their first frame; EXIF orientation is applied (and removed from the
  written EXIF). See ``engine/image/io.py`` for every Pillow mode.
* ``--jobs`` worker threads decode, prepare, merge and encode while the main
  thread runs batched inference (``--batch-size`` images of the same working
  shape per ``engine.run``), so file I/O overlaps the model
  (``engine/job/runner.py``).
* Each output is written to a temporary file and renamed into place: a killed
  run leaves complete files only, and ``--skip-existing`` resumes it.
* A file that cannot be colorized (empty, truncated, not an image, too large,
  unsupported) is reported with its name and reason; the run goes on.
* ``--ray [ADDRESS]`` runs the same job on a Ray cluster (``engine/ray/``,
  ``docs/ray.md``): the plan (inputs, tree, skip-existing), the summary, the
  report and the exit status are the ones of the local run; each Ray actor
  runs the same per-file code on its share of the files.

The job itself is ``colorize.job`` (``colorize.colorize_folder`` from Python): this
module parses and checks the flags, draws the progress bar and prints the
errors and the summary.

Exit status: 0 all done, 1 some files failed, 2 usage error (bad option,
missing input, no images found, an output that would overwrite an input).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from colorize.cli.folder_job import job_options
from colorize.job.plan import REPORT_THUMBNAILS, JobError, Plan, Task, collect_tasks, output_folders  # noqa: F401


class UsageError(JobError):
    """Bad command-line input: exit status 2."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from colorize.artifacts.model_ref import DEFAULT_PHOTO_MODEL as DEFAULT_MODEL
    from colorize.artifacts.model_ref import SMALL_IMAGE_MAX_SIDE, SMALL_IMAGE_MODEL
    from colorize.backends import BACKENDS
    from colorize.colorizer import DEFAULT_WORKING_SIZE
    from colorize.engine import PRECISIONS
    from colorize.image.io import DEFAULT_MAX_PIXELS
    from colorize.job.options import BATCH_SIZE, COLOUR_STRENGTH, QUALITY

    # nargs="*" so that `--ray IN -o OUT` (IN taken as --ray's value) still parses; at least one INPUT is required
    p.usage = "%(prog)s INPUT [INPUT ...] -o OUTDIR [options]"
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files and/or folders (at least one)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if needed)")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into subfolders of folder inputs")
    p.add_argument("--format", help="output format by extension (png, jpg, webp, tiff, ...); default: the input's")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or path (default: {DEFAULT_MODEL})")
    p.add_argument("--backend", default="auto", metavar="NAME",
                   help=f"inference backend: {', '.join(BACKENDS)} or auto (default: auto, the fastest available "
                        "here that passes the quality guard)")
    p.add_argument("--precision", default="auto", help=f"{', '.join(PRECISIONS)} or auto (default: auto)")
    p.add_argument("--working-size", type=int, default=DEFAULT_WORKING_SIZE, metavar="PX",
                   help=f"long side the model runs at; ab is upsampled to full size (default: {DEFAULT_WORKING_SIZE})")
    p.add_argument("--small-model", default="auto", metavar="NAME",
                   help="model for images whose long side is at most --small-max-side, run at their size; "
                        f"auto (default): {SMALL_IMAGE_MODEL} with the default model, none with any other; "
                        "none: every image on --model")
    p.add_argument("--small-max-side", type=int, default=SMALL_IMAGE_MAX_SIDE, metavar="PX",
                   help=f"long side, in px, up to which --small-model takes an image (default: {SMALL_IMAGE_MAX_SIDE})")
    p.add_argument("--colour-strength", type=float, default=COLOUR_STRENGTH, metavar="S",
                   help="the predicted colour's chroma times S, 0..4 (default: 1, the model's own; 0: gray; "
                        "above 1: more saturated)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                   help=f"images per inference batch (default: {BATCH_SIZE})")
    p.add_argument("-j", "--jobs", type=int, default=None,
                   help="decode/encode worker threads (default: min(4, CPU count); with --ray: per actor, "
                        "its thread count)")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output already exists (resume)")
    p.add_argument("--quality", type=int, default=QUALITY, help=f"JPEG/WebP quality (default: {QUALITY})")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse images with more pixels (decompression-bomb limit; default: {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--report", metavar="HTML", help="write a before/after gallery page here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group('Ray (the same job on a cluster; needs pip install ".[ray]"; see docs/ray.md)')
    g.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run on Ray: alone, an embedded Ray instance on this machine (loopback only); "
                        "ADDRESS (host:port, ray://host:port, or auto for $RAY_ADDRESS) joins a running cluster")
    g.add_argument("--ray-actors", type=int, metavar="N",
                   help="actors in the pool, each holding one model (default: from the cluster's CPUs and GPUs)")
    g.add_argument("--ray-cpus-per-actor", type=float, metavar="X",
                   help="CPUs each actor asks for; its thread count is X rounded up (default: a node's CPUs less "
                        "0.5 for Ray's own tasks, split between about one actor per 4 CPUs)")
    g.add_argument("--ray-gpus-per-actor", type=float, metavar="X",
                   help="GPUs each actor asks for (default: 1 when the cluster has GPUs and the backend can use "
                        "one, else 0)")


# -- what to do ----------------------------------------------------------------------------------------------------


def check_options(args: argparse.Namespace) -> None:
    """Option values a run can start with.

    Raises:
        UsageError: a bad value, or a Ray option without ``--ray``.
    """
    if args.ray is not None and not _looks_like_address(args.ray):
        if not os.path.exists(args.ray):
            raise UsageError(f"--ray {args.ray!r}: neither a Ray address (host:port, ray://host:port, auto) nor an "
                             "input that exists")
        args.inputs.insert(0, args.ray)  # `--ray IN -o OUT`: IN was taken as the address
        args.ray = "local"
    if not args.inputs:
        raise UsageError("no INPUT given (image files and/or folders)")
    try:
        job_options(args).check(flags=True)  # the job's own values, named by their flags
    except JobError as e:
        raise UsageError(str(e)) from None
    if args.ray_actors is not None and args.ray_actors < 1:
        raise UsageError(f"--ray-actors must be >= 1, got {args.ray_actors}")
    for name in ("ray_cpus_per_actor", "ray_gpus_per_actor"):
        value = getattr(args, name)
        if value is not None and (value < 0 or (name == "ray_cpus_per_actor" and value == 0)):
            raise UsageError(f"--{name.replace('_', '-')} must be {'> 0' if 'cpus' in name else '>= 0'}, got {value}")
    if args.ray is None:
        given = [f"--{n.replace('_', '-')}" for n in ("ray_actors", "ray_cpus_per_actor", "ray_gpus_per_actor")
                 if getattr(args, n) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --ray")
    for path in [*args.inputs, args.output]:
        if "://" in path:
            raise UsageError(f"{path}: colorize images reads and writes through the filesystem; URIs are not "
                             "supported (mount the bucket or share, then pass its path)")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output {out_dir} exists and is not a folder")


def _looks_like_address(value: str) -> bool:
    return value in ("local", "auto") or ":" in value


def make_plan(args: argparse.Namespace) -> Plan:
    """The job's plan (``colorize.job.make_plan``) from the command line's options.

    Raises:
        JobError: missing input, no images found, an output that would overwrite an input.
    """
    from colorize.job.plan import make_plan as plan_job

    return plan_job(args.inputs, args.output, recursive=args.recursive, format=args.format,
                    skip_existing=args.skip_existing, thumbnails=bool(args.report))


def main(args: argparse.Namespace) -> int:
    try:
        check_options(args)
        plan = make_plan(args)
    except JobError as e:
        print(f"colorize images: error: {e}", file=sys.stderr)
        return 2
    if args.ray is not None:
        from colorize.cli.images_ray import run_on_ray

        return run_on_ray(args, plan)
    return _run_here(args, plan)


def _run_here(args: argparse.Namespace, plan: Plan) -> int:
    from colorize.backends.base import BackendError
    from colorize.cli.folder_job import finish, job_options, outcome_printer
    from colorize.cli.progress import Progress
    from colorize.folder import run_plan

    progress = Progress(len(plan.tasks), enabled=None if not args.quiet else False)
    try:
        summary = run_plan(plan, job_options(args), on_outcome=outcome_printer(progress), report=bool(args.report))
    except (ValueError, OSError, ImportError, BackendError) as e:  # e.g. --backend torch without torch
        # the model did not load, build or calibrate (the message names it, the backend and the cause): no file
        # was tried
        print(f"colorize images: error: {e}", file=sys.stderr)
        return 2
    except BaseException:
        progress.close()
        raise
    progress.close()
    return finish(args, summary)
