"""INT8 calibration data that ships with the package: crops of the gray photos in ``calibration/``.

    from colorize.data.calibration import calibration_crops
    gray = calibration_crops(n=64, crop=128, working_size=256)    # uint8 [64, 128, 128]

Each photo is first reduced as the pipeline reduces an image for a model (long side ``working_size``), then cut
into ``crop``-pixel windows at seeded random places; photos take turns, so every photo contributes. The same
arguments give the same crops on every machine, which keeps the INT8 artifacts' cache keys machine-independent.
Sources and licences: ``calibration/README.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"


def calibration_photos() -> list[Path]:
    """The bundled gray photos, sorted by name."""
    paths = sorted(CALIBRATION_DIR.glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no calibration photos in {CALIBRATION_DIR} (the package is incomplete)")
    return paths


def _reduced(path: Path, working_size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L")
        scale = working_size / max(im.size)
        if scale < 1:
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def calibration_crops(n: int, crop: int, working_size: int = 256, seed: int = 0) -> np.ndarray:
    """``n`` gray ``crop``x``crop`` windows, uint8 [n, crop, crop]; photos smaller than ``crop`` are edge-padded."""
    if crop < 1 or n < 1:
        raise ValueError(f"calibration_crops: n and crop must be positive, got n={n}, crop={crop}")
    images = [_reduced(p, max(working_size, crop)) for p in calibration_photos()]
    rng = np.random.default_rng(seed)
    out = np.empty((n, crop, crop), np.uint8)
    for i in range(n):
        im = images[i % len(images)]
        ph, pw = max(0, crop - im.shape[0]), max(0, crop - im.shape[1])
        if ph or pw:
            im = np.pad(im, ((0, ph), (0, pw)), mode="edge")
        y = int(rng.integers(0, im.shape[0] - crop + 1))
        x = int(rng.integers(0, im.shape[1] - crop + 1))
        out[i] = im[y:y + crop, x:x + crop]
    return out
