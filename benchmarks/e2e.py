"""End-to-end mode: the folder pipeline's images/s next to model-only numbers.

Runs ``python -m colorize images IN -o OUT --batch-size B --working-size S``
(the ``colorize images`` command; the working size is the images' long side,
so the model runs at the same size as the model-only rows) in a subprocess on
a generated folder of PNGs, twice: with
``images`` files and with 1 file. ``images_per_s`` = images / wall time of the
big run (includes process start and model load); ``startup_s`` = wall time of
the 1-image run; ``steady_images_per_s`` = (images - 1) / (difference of the
two), the pipeline's rate once loaded (decode, Lab, model, merge, encode),
reported only when that difference is at least ``MIN_STEADY_S``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: the steady rate is reported only when the big run took at least this much longer than the 1-image run
MIN_STEADY_S = 1.0


def images_command_help() -> str | None:
    """``colorize images --help`` text (run as a command, in a child process), or None when it does not run."""
    cmd = [sys.executable, "-m", "colorize", "images", "--help"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return r.stdout if r.returncode == 0 else None


def make_folder(directory: Path, count: int, height: int, width: int, seed: int = 0) -> list[Path]:
    """``count`` smooth random RGB PNGs of ``height`` x ``width`` in ``directory``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    for i in range(count):
        a, b, c = rng.uniform(0, 6, 3)
        img = np.stack([np.sin(a * xx + b * yy + k + c) for k in range(3)], -1) * 0.5 + 0.5
        img = (img * 255 + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)
        p = directory / f"img{i:04d}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def _row(backend, precision, batch, h, w, images, status="ok", reason=None) -> dict:
    return {
        "backend": backend, "precision": precision, "batch": batch, "height": h, "width": w, "images": images,
        "status": status, "reason": reason, "wall_s": None, "images_per_s": None, "startup_s": None,
        "steady_images_per_s": None, "model_only_images_per_s": None,
    }


def run_end_to_end(
    sizes: list[tuple[int, int]],
    batch: int,
    images: int,
    model: str | None = None,
    backend: str = "auto",
    precision: str = "auto",
    timeout: float = 600,
    log=lambda msg: None,
) -> list[dict]:
    """Time ``colorize images`` on generated folders, one row per size (see module docstring)."""
    help_text = images_command_help()
    if help_text is None:
        return [_row(backend, precision, batch, h, w, images, "skipped", "colorize images not available")
                for h, w in sizes]
    extra = []
    if model and "--model" in help_text:
        extra += ["--model", model]
    if "--backend" in help_text:
        extra += ["--backend", backend]
    if "--precision" in help_text:
        extra += ["--precision", precision]
    if "--quiet" in help_text:
        extra += ["--quiet"]
    rows = []
    for h, w in sizes:
        row = _row(backend, precision, batch, h, w, images)
        size_arg = ["--working-size", str(max(h, w))] if "--working-size" in help_text else []
        with tempfile.TemporaryDirectory(prefix="colorize-e2e-") as tmp:
            src, one = Path(tmp, "in"), Path(tmp, "one")
            make_folder(src, images, h, w)
            make_folder(one, 1, h, w, seed=1)
            try:
                t1 = _run(one, Path(tmp, "out1"), batch, extra + size_arg, timeout)
                tn = _run(src, Path(tmp, "outn"), batch, extra + size_arg, timeout)
                written = [p for p in Path(tmp, "outn").rglob("*") if p.is_file()]
                if len(written) < images:
                    raise RuntimeError(f"wrote {len(written)} of {images} images")
            except (RuntimeError, subprocess.SubprocessError, OSError) as e:
                row.update(status="error", reason=str(e).strip().splitlines()[-1][:300] if str(e).strip() else repr(e))
                rows.append(row)
                log(f"end-to-end {h}x{w}: error: {row['reason']}")
                continue
        row.update(wall_s=tn, images_per_s=images / tn, startup_s=t1)
        if tn - t1 >= MIN_STEADY_S and images > 1:  # a smaller difference is mostly startup noise
            row["steady_images_per_s"] = (images - 1) / (tn - t1)
        log(f"end-to-end {h}x{w}: {row['images_per_s']:.1f} img/s wall, startup {t1:.2f} s")
        rows.append(row)
    return rows


def _run(src: Path, out: Path, batch: int, extra: list[str], timeout: float) -> float:
    cmd = [sys.executable, "-m", "colorize", "images", str(src), "-o", str(out), "--batch-size", str(batch), *extra]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"exit {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}")
    return wall


def attach_model_only(e2e_rows: list[dict], results: list[dict]) -> None:
    """Fill ``model_only_images_per_s`` from the matching model-only result (same backend, precision, batch, size)."""
    for e in e2e_rows:
        for r in results:
            if r["status"] == "ok" and (r["backend"], r["precision"], r["batch"], r["height"], r["width"]) == (
                e["backend"], e["precision"], e["batch"], e["height"], e["width"]
            ):
                e["model_only_images_per_s"] = r["images_per_s"]
