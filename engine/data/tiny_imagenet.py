"""Tiny ImageNet subset (``../shared/data/tiny-imagenet/train-100-per-class.zip``): 64x64 colour JPEGs stored as
``<wnid>/<file>.JPEG``, read straight from the zip.

Where the data is looked for, first hit wins:
  1. the ``root`` argument,
  2. the ``COLORIZE_TINY_IMAGENET`` environment variable,
  3. ``../shared/data/tiny-imagenet`` next to this repository.

Licence: ImageNet images belong to their owners; ImageNet's (and Tiny ImageNet's) terms allow non-commercial
research and education only. Train and evaluate on them; never commit or redistribute them.

No decoded cache: all 20,200 images decode in about 3 s on 2 busy cores, where a ``.npy`` of them would take
237 MiB of disk.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from colorize.paths import repo_root

ENV_VAR = "COLORIZE_TINY_IMAGENET"
ZIP_NAME = "train-100-per-class.zip"
SIZE = 64
LICENCE = ("ImageNet images belong to their owners; ImageNet's terms (and Tiny ImageNet's) allow non-commercial "
           "research and education only; not to be redistributed")


def default_tiny_imagenet_dir() -> Path:
    """``$COLORIZE_TINY_IMAGENET``, else ``../shared/data/tiny-imagenet`` next to this repository."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else repo_root().parent / "shared" / "data" / "tiny-imagenet"


def _members(zf: zipfile.ZipFile) -> list[str]:
    """The ``<wnid>/<file>.JPEG`` entries, sorted by name."""
    return sorted(n for n in zf.namelist()
                  if not n.endswith("/") and len(n.split("/")) == 2 and n.lower().endswith((".jpeg", ".jpg")))


def _decode(zf: zipfile.ZipFile, zip_path: Path, name: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(zf.read(name))) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, zipfile.BadZipFile) as e:  # Pillow's and zipfile's read errors
        raise ValueError(f"{zip_path}: cannot read image {name!r}: {e}") from e
    if rgb.shape != (SIZE, SIZE, 3):
        raise ValueError(f"{zip_path}: image {name!r} is {rgb.shape[1]}x{rgb.shape[0]}, expected {SIZE}x{SIZE}")
    return rgb


def load_tiny_imagenet(root: str | os.PathLike | None = None, limit: int = 0) -> np.ndarray:
    """The images of ``ROOT/train-100-per-class.zip`` as uint8 [N, 64, 64, 3] RGB, in the order of their names.

    Args:
        root: the folder holding the zip (default ``default_tiny_imagenet_dir()``).
        limit: only the first ``limit`` images by name (0: all).

    Raises:
        FileNotFoundError: the zip is missing (the message names the path looked at).
        ValueError: a negative limit, a zip that cannot be read or holds no ``<wnid>/<file>.JPEG``, or an image
            that cannot be decoded or is not 64x64 (the message names the member).
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    folder = Path(root) if root is not None else default_tiny_imagenet_dir()
    zip_path = folder / ZIP_NAME
    if not zip_path.is_file():
        raise FileNotFoundError(f"Tiny ImageNet not found: {zip_path} does not exist (set ${ENV_VAR} to the folder "
                                f"holding {ZIP_NAME}, 64x64 JPEGs stored as <wnid>/<file>.JPEG)")
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{zip_path}: not a readable zip file: {e}") from e
    with zf:
        names = _members(zf)
        if not names:
            raise ValueError(f"{zip_path}: no images as <wnid>/<file>.JPEG")
        if limit:
            names = names[:limit]
        out = np.empty((len(names), SIZE, SIZE, 3), np.uint8)
        for i, name in enumerate(names):
            out[i] = _decode(zf, zip_path, name)
    return out
