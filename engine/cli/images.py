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
  (``engine/cli/runner.py``).
* Each output is written to a temporary file and renamed into place: a killed
  run leaves complete files only, and ``--skip-existing`` resumes it.
* A file that cannot be colorized (empty, truncated, not an image, too large,
  unsupported) is reported with its name and reason; the run goes on.
* ``--ray [ADDRESS]`` runs the same job on a Ray cluster (``engine/ray/``,
  ``docs/ray.md``): the plan (inputs, tree, skip-existing), the summary, the
  report and the exit status are the ones of the local run; each Ray actor
  runs the same per-file code on its share of the files.

Exit status: 0 all done, 1 some files failed, 2 usage error (bad option,
missing input, no images found, an output that would overwrite an input).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: ``--report``: the first this many files of the plan get before/after thumbnails; the rest are listed by name.
REPORT_THUMBNAILS = 500


class UsageError(Exception):
    """Bad command-line input: exit status 2."""


@dataclass
class Task:
    src: Path
    dst: Path
    shown: str  # how the source is named in messages
    thumbnail: bool = False  # make before/after thumbnails for --report


@dataclass
class Plan:
    """What a run does: the files to colorize, and how many were found and skipped."""

    tasks: list[Task]
    found: int  # images found, skipped ones included
    skipped: int  # outputs that already existed (--skip-existing)
    out_dir: Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engine.artifacts.model_ref import DEFAULT_PHOTO_MODEL as DEFAULT_MODEL
    from engine.artifacts.model_ref import SMALL_IMAGE_MAX_SIDE, SMALL_IMAGE_MODEL
    from engine.backends import BACKENDS
    from engine.colorizer import DEFAULT_WORKING_SIZE
    from engine.engine import PRECISIONS
    from engine.image.io import DEFAULT_MAX_PIXELS

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
    p.add_argument("--batch-size", type=int, default=8, help="images per inference batch (default: 8)")
    p.add_argument("-j", "--jobs", type=int, default=None,
                   help="decode/encode worker threads (default: min(4, CPU count); with --ray: per actor, "
                        "its thread count)")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output already exists (resume)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default: 95)")
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


def _out_suffix(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    from PIL import Image

    ext = "." + fmt.lower().lstrip(".")
    name = Image.registered_extensions().get(ext)
    if name is None or name not in Image.SAVE:
        writable = sorted({e.lstrip(".") for e, f in Image.registered_extensions().items() if f in Image.SAVE})
        raise UsageError(f"--format {fmt!r}: not a format Pillow can write; try one of: {', '.join(writable)}")
    return ext


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _scan(folder: Path, recursive: bool, exts: frozenset[str], skip_dir: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        root_p = Path(root)
        dirs[:] = sorted(d for d in dirs if not _inside((root_p / d).resolve(), skip_dir)) if recursive else []
        found += [root_p / f for f in sorted(files) if Path(f).suffix.lower() in exts and not f.startswith(".")]
    return found


def collect_tasks(inputs: list[str], out_dir: Path, recursive: bool, fmt: str | None) -> list[Task]:
    """What to colorize and where each output goes.

    Raises:
        UsageError: missing input, an output that would overwrite an input, or two inputs with one output.
    """
    from engine.image.io import image_extensions

    suffix = _out_suffix(fmt)
    exts = image_extensions()
    out_res = out_dir.resolve()
    tasks: list[Task] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            for f in _scan(p, recursive, exts, out_res):
                tasks.append(Task(f, out_dir / f.relative_to(p), str(f)))
        elif p.is_file():
            tasks.append(Task(p, out_dir / p.name, str(p)))
        else:
            raise UsageError(f"input not found: {arg}")
    if suffix:
        for t in tasks:
            t.dst = t.dst.with_suffix(suffix)
    sources = {t.src.resolve(): t for t in tasks}
    seen: dict[Path, Task] = {}
    for t in tasks:
        d = t.dst.resolve()
        if d in sources:
            raise UsageError(f"output {t.dst} would overwrite the input {sources[d].shown}; choose another -o")
        if d in seen:
            raise UsageError(f"{seen[d].shown} and {t.shown} would both be written to {t.dst}")
        seen[d] = t
    return tasks


def check_options(args: argparse.Namespace) -> None:
    """Option values a run can start with.

    Raises:
        UsageError: a bad value, or a Ray option without ``--ray``.
    """
    if args.small_max_side < 0:
        raise UsageError(f"--small-max-side must be >= 0, got {args.small_max_side}")
    if args.ray is not None and not _looks_like_address(args.ray):
        if not os.path.exists(args.ray):
            raise UsageError(f"--ray {args.ray!r}: neither a Ray address (host:port, ray://host:port, auto) nor an "
                             "input that exists")
        args.inputs.insert(0, args.ray)  # `--ray IN -o OUT`: IN was taken as the address
        args.ray = "local"
    if not args.inputs:
        raise UsageError("no INPUT given (image files and/or folders)")
    for name in ("batch_size", "jobs", "working_size", "max_pixels", "ray_actors"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("ray_cpus_per_actor", "ray_gpus_per_actor"):
        value = getattr(args, name)
        if value is not None and (value < 0 or (name == "ray_cpus_per_actor" and value == 0)):
            raise UsageError(f"--{name.replace('_', '-')} must be {'> 0' if 'cpus' in name else '>= 0'}, got {value}")
    if args.ray is None:
        given = [f"--{n.replace('_', '-')}" for n in ("ray_actors", "ray_cpus_per_actor", "ray_gpus_per_actor")
                 if getattr(args, n) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --ray")
    if not 1 <= args.quality <= 100:
        raise UsageError(f"--quality must be in 1..100, got {args.quality}")
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
    """List the inputs, mirror the tree, drop existing outputs (``--skip-existing``), mark the files that get
    thumbnails (``--report``) and remove temporary files that a killed run left beside the outputs.

    Raises:
        UsageError: as ``collect_tasks``, or no images found.
    """
    from engine.image.io import remove_stale_tmp

    out_dir = Path(args.output)
    tasks = collect_tasks(args.inputs, out_dir, args.recursive, args.format)
    if not tasks:
        raise UsageError(f"no images found in {', '.join(args.inputs)}"
                         + ("" if args.recursive else " (use --recursive for subfolders)"))
    found = len(tasks)
    if args.skip_existing:
        tasks = [t for t in tasks if not t.dst.exists()]
    if args.report:
        for t in tasks[:REPORT_THUMBNAILS]:
            t.thumbnail = True
    for folder, names in output_folders(tasks).items():
        if folder.is_dir():
            remove_stale_tmp(folder, names)
    return Plan(tasks, found, found - len(tasks), out_dir)


def output_folders(tasks: list[Task]) -> dict[Path, set[str]]:
    """Output folder -> the output names written there."""
    by_folder: dict[Path, set[str]] = {}
    for t in tasks:
        by_folder.setdefault(t.dst.parent, set()).add(t.dst.name)
    return by_folder


def finish(args: argparse.Namespace, plan: Plan, done: list, errors: list[tuple[str, str]], seconds: float,
           engines: str, where: str = "", min_working_size: int = 0, small_max_side: int = 0,
           small_model: str = "") -> int:
    """Print the summary, write ``--report``, and return the exit status (0 all done, 1 some failed).

    ``min_working_size``: the model's (``engine.Colorizer``); the summary says how many outputs were of images
    smaller than it, which the model ran enlarged to it. ``small_max_side``, ``small_model``: the Colorizer's
    small-image model (its name and engine); the summary says how many images it ran."""
    from engine.colorizer import runs_small

    n_ok = len(done)
    enlarge_to = min(min_working_size, args.working_size)  # the Colorizer never runs above the working size
    sizes = [e.size for e in done if getattr(e, "size", None)]
    tiny = sum(1 for size in sizes if runs_small(size, small_max_side))
    small = sum(1 for size in sizes if not runs_small(size, small_max_side) and max(size) < enlarge_to)
    summary = (f"colorized {n_ok} of {plan.found} images in {seconds:.1f} s "
               f"({n_ok / seconds if seconds > 0 else 0:.1f} img/s) with {engines}{where}, "
               f"working size {args.working_size}"
               + (f"; {tiny} image{'s' if tiny != 1 else ''} of long side <= {small_max_side} px ran on "
                  f"{small_model} at {'their' if tiny != 1 else 'its'} size" if tiny else "")
               + (f"; {small} small image{'s' if small != 1 else ''} (long side < {enlarge_to} px) enlarged to "
                  f"{enlarge_to} px for the model" if small else "")
               + (f"; {plan.skipped} skipped (output exists)" if plan.skipped else "")
               + (f"; {len(errors)} failed" if errors else "")
               + (f"; output in {plan.out_dir}" if done else "; nothing written"))
    print(summary, file=sys.stderr)
    if args.report:
        from engine.cli.report import write_report

        write_report(args.report, done, errors, summary)
        print(f"report: {args.report}", file=sys.stderr)
    return 1 if errors else 0


def main(args: argparse.Namespace) -> int:
    try:
        check_options(args)
        plan = make_plan(args)
    except UsageError as e:
        print(f"colorize images: error: {e}", file=sys.stderr)
        return 2
    if args.ray is not None:
        from engine.cli.images_ray import run_on_ray

        return run_on_ray(args, plan)
    return _run_here(args, plan)


def _run_here(args: argparse.Namespace, plan: Plan) -> int:
    from engine.cli.progress import Progress
    from engine.cli.runner import TaskRunner
    from engine.colorizer import Colorizer
    from engine.image.io import DEFAULT_MAX_PIXELS

    if args.max_pixels > DEFAULT_MAX_PIXELS:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = args.max_pixels  # our own limit is checked in load_image
    if args.jobs is None:
        args.jobs = min(4, os.cpu_count() or 1)
    from engine.backends.base import BackendError

    try:
        col = Colorizer.load(args.model, args.backend, args.precision, working_size=args.working_size,
                             max_pixels=args.max_pixels, small_model=args.small_model,
                             small_max_side=args.small_max_side)
    except (ValueError, FileNotFoundError, ImportError, BackendError) as e:  # e.g. --backend torch without torch
        print(f"colorize images: error: {e}", file=sys.stderr)
        return 2

    progress = Progress(len(plan.tasks), enabled=None if not args.quiet else False)
    run = TaskRunner(col, args, progress, report=bool(args.report))
    start = time.perf_counter()
    try:
        if plan.tasks:
            run.run(plan.tasks)
    finally:
        progress.close()
        col.close()
    engines = f"{col.engine.backend}/{col.engine.precision}"
    return finish(args, plan, run.done, run.errors, time.perf_counter() - start, engines,
                  min_working_size=col.min_working_size, small_max_side=col.small_max_side,
                  small_model=col.describe_small())
