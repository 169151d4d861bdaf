"""A folder of the user's images as a dataset (recursive, common formats).

Files that Pillow cannot open are skipped with a warning naming the file and
the reason, at scan time (header check) and again at load time (full decode).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


def list_images(root: str | os.PathLike, recursive: bool = True, extensions=IMAGE_EXTENSIONS) -> list[Path]:
    """Image files under ``root`` (by extension, case-insensitive), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    it = root.rglob("*") if recursive else root.glob("*")
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in extensions)


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode one image to uint8 RGB [H, W, 3] (EXIF orientation applied)."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


class ImageFolder:
    """Sequence of RGB uint8 arrays from a folder; unreadable files are skipped.

    Args:
        root: folder to scan.
        recursive: descend into sub-folders.
        verify: check each file's header at scan time and drop bad ones.
    """

    def __init__(self, root: str | os.PathLike, recursive: bool = True, verify: bool = True):
        from PIL import Image

        self.root = Path(root)
        paths = list_images(self.root, recursive)
        if verify:
            good = []
            for p in paths:
                try:
                    with Image.open(p) as im:
                        im.verify()
                    good.append(p)
                except Exception as e:  # Pillow raises many types for bad files
                    warnings.warn(f"skipping {p}: not a readable image ({type(e).__name__}: {e})", stacklevel=2)
            paths = good
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return load_rgb(self.paths[i])

    def __iter__(self):
        """Decoded images; files that fail to decode fully are skipped with a warning."""
        for p in self.paths:
            try:
                yield load_rgb(p)
            except Exception as e:
                warnings.warn(f"skipping {p}: failed to decode ({type(e).__name__}: {e})", stacklevel=2)
