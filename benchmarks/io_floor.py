"""The I/O floor of a folder job: what ``colorize images`` would cost with a free model.

Each file is decoded with Pillow, made RGB at its own size (a colour output has three channels), encoded as JPEG at
the job's quality and written under a temporary name, then renamed: the file work every colorizer must do, on
``jobs`` threads as ``colorize images`` runs its I/O. ``floor`` returns images per second in this process;
``command_floor`` runs it as a command (``python -m colorize.benchmarks.io_floor IN OUT``), start-up included, to
compare with ``colorize images`` timed the same way. A pipeline's figure divided by the floor's is the fraction of
the floor it reaches.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _one(src: Path, dst: Path, quality: int) -> None:
    from PIL import Image

    tmp = dst.with_name(dst.name + ".tmp")
    with Image.open(src) as im:
        im.convert("RGB").save(tmp, "JPEG", quality=quality)
    os.replace(tmp, dst)


def floor(files: list[Path], out: Path, jobs: int = 2, quality: int = 95, repeat: int = 3) -> float:
    """Best images/s of ``repeat`` passes decoding ``files`` and writing them to ``out`` as RGB JPEGs."""
    out.mkdir(parents=True, exist_ok=True)
    best = 0.0
    for _ in range(repeat):
        t = time.perf_counter()
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            list(pool.map(lambda p: _one(p, out / (p.stem + ".jpg"), quality), files))
        best = max(best, len(files) / (time.perf_counter() - t))
    return best


def command_rate(cmd: list[str], folder: Path, repeat: int, before=None, cwd=None) -> tuple[float, float]:
    """(best images/s over the files of ``folder``, its seconds) of ``repeat`` runs of the command ``cmd``, each
    in a new process after ``before()`` (e.g. clearing its output folder)."""
    n = sum(1 for p in folder.iterdir() if p.is_file())
    best = float("inf")
    for _ in range(repeat):
        if before is not None:
            before()
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=cwd)
        best = min(best, time.perf_counter() - t)
    return n / best, best


def command_floor(folder: Path, out: Path, jobs: int = 2, quality: int = 95, repeat: int = 3) -> tuple[float, float]:
    """(best images/s, its seconds) of the floor run as a new Python process on every image of ``folder``."""
    cmd = [sys.executable, "-m", "colorize.benchmarks.io_floor", str(folder), str(out), "--jobs", str(jobs),
           "--quality", str(quality)]
    return command_rate(cmd, folder, repeat)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="decode, RGB, JPEG-encode and write every image of a folder, once")
    ap.add_argument("folder", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quality", type=int, default=95)
    args = ap.parse_args(argv)
    files = sorted(p for p in args.folder.iterdir() if p.is_file())
    print(f"{floor(files, args.out, args.jobs, args.quality, repeat=1):.1f} img/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
