"""What a folder job does: the files to colorize, where each output goes, what was found and skipped.

    plan = make_plan(["scans/"], "out/", recursive=True, skip_existing=True)
    plan.tasks[0].src, plan.tasks[0].dst, plan.found, plan.skipped

* Inputs are files and folders (``recursive`` descends into subfolders). A folder's images are written under
  the output folder with the same relative paths; a file goes to output/its name. Files in folders are
  picked by extension (any format Pillow reads); a file named as an input is always tried.
* The output format follows the input's extension, or ``format``. Outputs never replace an input, two inputs
  never share one output, and the output folder is never read as input: each is a ``JobError``.
* ``skip_existing`` drops the files whose output exists (resuming a stopped job); temporary files a killed
  run left beside the outputs are removed.

Plain data and the filesystem only: no model, no Ray, no command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: With a report, the first this many files of the plan get before/after thumbnails; the rest are listed by name.
REPORT_THUMBNAILS = 500


class JobError(ValueError):
    """A job that cannot start: a bad option value, a missing input, an output that would overwrite an input,
    no images found. The message names the value and what was wrong."""


@dataclass
class Task:
    """One file to colorize."""

    src: Path
    dst: Path
    shown: str  # how the source is named in messages
    thumbnail: bool = False  # make before/after thumbnails for the report


@dataclass
class Plan:
    """What a run does: the files to colorize, and how many were found and skipped."""

    tasks: list[Task]
    found: int  # images found, skipped ones included
    skipped: int  # outputs that already existed (skip_existing)
    out_dir: Path


def out_suffix(fmt: str | None) -> str | None:
    """The output extension for ``format`` (".png"), None for the input's own.

    Raises:
        JobError: Pillow cannot write that format (the message lists the ones it can).
    """
    if fmt is None:
        return None
    from PIL import Image

    ext = "." + fmt.lower().lstrip(".")
    name = Image.registered_extensions().get(ext)
    if name is None or name not in Image.SAVE:
        writable = sorted({e.lstrip(".") for e, f in Image.registered_extensions().items() if f in Image.SAVE})
        raise JobError(f"--format {fmt!r}: not a format Pillow can write; try one of: {', '.join(writable)}")
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


def collect_tasks(inputs: Sequence[str | os.PathLike], out_dir: Path, recursive: bool, fmt: str | None) -> list[Task]:
    """What to colorize and where each output goes.

    Raises:
        JobError: missing input, an output that would overwrite an input, or two inputs with one output.
    """
    from colorize.image.io import image_extensions

    return _tasks(inputs, out_dir, recursive, image_extensions(), out_suffix(fmt))


def _tasks(inputs: Sequence[str | os.PathLike], out_dir: Path, recursive: bool, exts: frozenset[str],
           suffix: str | None) -> list[Task]:
    """Files of ``exts`` (as given, or found in folders) and their outputs under ``out_dir`` (a folder's tree
    mirrored; ``suffix``: another extension), checked: no output over an input, no two inputs on one output."""
    out_res = Path(out_dir).resolve()
    tasks: list[Task] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            for f in _scan(p, recursive, exts, out_res):
                tasks.append(Task(f, out_dir / f.relative_to(p), str(f)))
        elif p.is_file():
            tasks.append(Task(p, out_dir / p.name, str(p)))
        else:
            raise JobError(f"input not found: {os.fspath(arg)}")
    if suffix:
        for t in tasks:
            t.dst = t.dst.with_suffix(suffix)
    sources = {t.src.resolve(): t for t in tasks}
    seen: dict[Path, Task] = {}
    for t in tasks:
        d = t.dst.resolve()
        if d in sources:
            raise JobError(f"output {t.dst} would overwrite the input {sources[d].shown}; choose another -o")
        if d in seen:
            raise JobError(f"{seen[d].shown} and {t.shown} would both be written to {t.dst}")
        seen[d] = t
    return tasks


def plan_files(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    exts: frozenset[str],
    format_suffix: Callable[[str | None], str | None],
    kind: str,
    recursive: bool = False,
    format: str | None = None,
    skip_existing: bool = False,
) -> Plan:
    """The plan of a folder job over files of ``exts`` (``kind``: "images", "videos", as messages name them):
    list the inputs, mirror the tree, change the extension (``format_suffix(format)``, which raises ``JobError``
    for a bad one), drop existing outputs (``skip_existing``) and remove temporary files that a killed run left
    beside the outputs.

    Raises:
        JobError: as ``collect_tasks``, no input, an output that is not a folder, a bad format, or no file found.
    """
    from colorize.image.io import remove_stale_tmp

    inputs = [os.fspath(i) for i in inputs] if not isinstance(inputs, (str, os.PathLike)) else [os.fspath(inputs)]
    if not inputs:
        raise JobError(f"no input given ({kind[:-1]} files and/or folders)")
    out_dir = Path(output)
    if out_dir.exists() and not out_dir.is_dir():
        raise JobError(f"output {out_dir} exists and is not a folder")
    tasks = _tasks(inputs, out_dir, recursive, exts, format_suffix(format))
    if not tasks:
        raise JobError(f"no {kind} found in {', '.join(inputs)}"
                       + ("" if recursive else " (use --recursive for subfolders)"))
    found = len(tasks)
    if skip_existing:
        tasks = [t for t in tasks if not t.dst.exists()]
    for folder, names in output_folders(tasks).items():
        if folder.is_dir():
            remove_stale_tmp(folder, names)
    return Plan(tasks, found, found - len(tasks), out_dir)


def make_plan(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    recursive: bool = False,
    format: str | None = None,
    skip_existing: bool = False,
    thumbnails: bool = False,
) -> Plan:
    """List the inputs, mirror the tree, drop existing outputs (``skip_existing``), mark the files that get
    report thumbnails (``thumbnails``: the first ``REPORT_THUMBNAILS``) and remove temporary files that a
    killed run left beside the outputs (``plan_files``).

    Raises:
        JobError: as ``collect_tasks``, no input, an output that is not a folder, or no images found.
    """
    from colorize.image.io import image_extensions

    plan = plan_files(inputs, output, exts=image_extensions(), format_suffix=out_suffix, kind="images",
                      recursive=recursive, format=format, skip_existing=skip_existing)
    if thumbnails:
        for t in plan.tasks[:REPORT_THUMBNAILS]:
            t.thumbnail = True
    return plan


def output_folders(tasks: Sequence[Task]) -> dict[Path, set[str]]:
    """Output folder -> the output names written there."""
    by_folder: dict[Path, set[str]] = {}
    for t in tasks:
        by_folder.setdefault(t.dst.parent, set()).add(t.dst.name)
    return by_folder
