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
  shape per ``engine.run``), so file I/O overlaps the model.
* Each output is written to a temporary file and renamed into place: a killed
  run leaves complete files only, and ``--skip-existing`` resumes it.
* A file that cannot be colorized (empty, truncated, not an image, too large,
  unsupported) is reported with its name and reason; the run goes on.

Exit status: 0 all done, 1 some files failed, 2 usage error (bad option,
missing input, no images found, an output that would overwrite an input).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path


class UsageError(Exception):
    """Bad command-line input: exit status 2."""


@dataclass
class Task:
    src: Path
    dst: Path
    shown: str  # how the source is named in messages


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engine.artifacts.model_ref import DEFAULT_PHOTO_MODEL as DEFAULT_MODEL
    from engine.backends import BACKENDS
    from engine.colorizer import DEFAULT_WORKING_SIZE
    from engine.engine import PRECISIONS
    from engine.image.io import DEFAULT_MAX_PIXELS

    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
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
    p.add_argument("--batch-size", type=int, default=8, help="images per inference batch (default: 8)")
    p.add_argument("-j", "--jobs", type=int, default=min(4, os.cpu_count() or 1),
                   help="decode/encode worker threads (default: min(4, CPU count))")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output already exists (resume)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default: 95)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse images with more pixels (decompression-bomb limit; default: {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--report", metavar="HTML", help="write a before/after gallery page here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


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


# -- the pipeline --------------------------------------------------------------------------------------------------


class _Run:
    """Decode/prepare and finish/encode on a thread pool; batched ``engine.run`` on the calling thread."""

    def __init__(self, colorizer, args, progress, report: bool):
        self.col = colorizer
        self.args = args
        self.progress = progress
        self.report = report
        self.done: list = []  # one engine.cli.report.Entry per output written
        self.errors: list[tuple[str, str]] = []

    def error(self, task: Task, reason: str) -> None:
        self.errors.append((task.shown, reason))
        if self.progress.enabled:
            sys.stderr.write("\r\033[K")
        print(f"error: {task.shown}: {reason}", file=sys.stderr)
        self.progress.update()

    def _finish_one(self, task: Task, prepared, ab):
        from engine.cli.report import Entry, thumbnail_uri
        from engine.image.io import format_for, save_image

        fmt = format_for(task.dst)  # ValueError names the file: Pillow cannot write this format
        out = self.col.finish(prepared, ab)
        task.dst.parent.mkdir(parents=True, exist_ok=True)
        save_image(out, task.dst, fmt, quality=self.args.quality, exif=prepared.decoded.exif)
        h, w = prepared.size
        if self.report and len(self.done) < 500:
            return Entry(task.shown, str(task.dst), thumbnail_uri(prepared.decoded), thumbnail_uri(out), (w, h))
        return Entry(task.shown, str(task.dst), size=(w, h))

    def run(self, tasks: list[Task]) -> None:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        import numpy as np

        from engine.image.io import ImageReadError

        bs = self.args.batch_size
        jobs = self.args.jobs
        lookahead = max(2 * bs, 2 * jobs)
        pending: dict[tuple, list] = {}
        n_pending = 0
        finishing: dict = {}
        prep: deque = deque()
        todo = iter(tasks)

        def reason(e: BaseException) -> str:
            return e.reason if isinstance(e, ImageReadError) else f"{type(e).__name__}: {e}"

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
                        self.error(task, reason(e))

        def run_batch(group: list) -> None:
            try:
                ab = self.col.engine.run(np.stack([p.l for _, p in group]))
            except Exception as e:
                for task, _ in group:
                    self.error(task, f"inference failed: {reason(e)}")
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
                        self.error(task, reason(e))
                        continue
                    pending.setdefault(p.key, []).append((task, p))
                    n_pending += 1
                    if len(pending[p.key]) >= bs:
                        n_pending -= len(pending[p.key])
                        run_batch(pending.pop(p.key))
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


def main(args: argparse.Namespace) -> int:
    from engine.cli.progress import Progress
    from engine.image.io import DEFAULT_MAX_PIXELS, remove_stale_tmp

    out_dir = Path(args.output)
    try:
        for name in ("batch_size", "jobs", "working_size", "max_pixels"):
            if getattr(args, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
        if not 1 <= args.quality <= 100:
            raise UsageError(f"--quality must be in 1..100, got {args.quality}")
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"output {out_dir} exists and is not a folder")
        tasks = collect_tasks(args.inputs, out_dir, args.recursive, args.format)
        if not tasks:
            raise UsageError(f"no images found in {', '.join(args.inputs)}"
                             + ("" if args.recursive else " (use --recursive for subfolders)"))
    except UsageError as e:
        print(f"colorize images: error: {e}", file=sys.stderr)
        return 2

    skipped = 0
    if args.skip_existing:
        todo = [t for t in tasks if not t.dst.exists()]
        skipped = len(tasks) - len(todo)
        tasks = todo
    by_folder: dict[Path, set[str]] = {}
    for t in tasks:
        by_folder.setdefault(t.dst.parent, set()).add(t.dst.name)
    for folder, names in by_folder.items():
        if folder.is_dir():
            remove_stale_tmp(folder, names)  # left by a killed run

    if args.max_pixels > DEFAULT_MAX_PIXELS:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = args.max_pixels  # our own limit is checked in load_image

    from engine.backends.base import BackendError
    from engine.colorizer import Colorizer

    try:
        col = Colorizer.load(args.model, args.backend, args.precision, working_size=args.working_size,
                             max_pixels=args.max_pixels)
    except (ValueError, FileNotFoundError, ImportError, BackendError) as e:  # e.g. --backend torch without torch
        print(f"colorize images: error: {e}", file=sys.stderr)
        return 2

    progress = Progress(len(tasks), enabled=None if not args.quiet else False)
    run = _Run(col, args, progress, report=bool(args.report))
    start = time.perf_counter()
    try:
        if tasks:
            run.run(tasks)
    finally:
        progress.close()
        col.close()
    dt = time.perf_counter() - start
    n_ok = len(run.done)
    summary = (f"colorized {n_ok} of {len(tasks) + skipped} images in {dt:.1f} s ({n_ok / dt if dt > 0 else 0:.1f} img/s)"
               f" with {col.engine.backend}/{col.engine.precision}, working size {args.working_size}"
               + (f"; {skipped} skipped (output exists)" if skipped else "")
               + (f"; {len(run.errors)} failed" if run.errors else "")
               + (f"; output in {out_dir}" if n_ok else "; nothing written"))
    print(summary, file=sys.stderr)
    if args.report:
        from engine.cli.report import write_report

        write_report(args.report, run.done, run.errors, summary)
        print(f"report: {args.report}", file=sys.stderr)
    return 1 if run.errors else 0
