"""Real photos for fine-tuning and evaluating a colorizer (``../shared/data/photos``).

The split is the one the photos README suggests, free of overlaps:

* ``train``: BSDS500 train + test, coco128, Sun_Hays80, ImageNet-samples (1,578 photos);
* ``eval``: BSDS500 val, McMaster, Set14 (127 photos). Set5 is left out (it
  duplicates Set14 and BSDS500 train images).

Training sees photos at the scale the pipeline runs them: each is reduced so
that its long side is the working size (``colorize.colorizer.DEFAULT_WORKING_SIZE``,
the same rule as ``colorize.image.resize.working_shape``), then random square crops are
cut from it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from colorize.paths import repo_root

ENV_VAR = "COLORIZE_PHOTOS"

SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("BSDS500/train", "BSDS500/test", "coco128", "Sun_Hays80", "ImageNet-samples"),
    "eval": ("BSDS500/val", "McMaster", "Set14"),
}


def default_photos_dir() -> Path:
    """``$COLORIZE_PHOTOS``, else ``../shared/data/photos`` next to this repository."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else repo_root().parent / "shared" / "data" / "photos"


def photo_paths(root: str | os.PathLike | None, split: str) -> list[Path]:
    """Image files of ``split`` under ``root`` (default ``../shared/data/photos``), sorted.

    Raises:
        ValueError: an unknown split.
        FileNotFoundError: a folder of the split is missing (named) or holds no image.
    """
    from colorize.data.folder import list_images

    if split not in SPLITS:
        raise ValueError(f"unknown photo split {split!r}; expected one of {', '.join(SPLITS)}")
    root = Path(root) if root is not None else default_photos_dir()
    paths: list[Path] = []
    for sub in SPLITS[split]:
        folder = root / sub
        if not folder.is_dir():
            raise FileNotFoundError(f"photo folder not found: {folder} (split {split!r} needs {', '.join(SPLITS[split])})")
        found = list_images(folder, recursive=False)
        if not found:
            raise FileNotFoundError(f"no images in {folder}")
        paths += found
    return paths


def load_at_working_size(path: str | os.PathLike, working_size: int) -> np.ndarray:
    """uint8 RGB [h, w, 3] of ``path`` reduced so that its long side is at most ``working_size``."""
    from PIL import Image

    from colorize.data.folder import load_rgb

    rgb = load_rgb(path)
    h, w = rgb.shape[:2]
    if max(h, w) <= working_size:
        return rgb
    s = working_size / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BICUBIC, reducing_gap=2.0))


def _pad_to(im: np.ndarray, crop: int) -> np.ndarray:
    """Edge-pad ``im`` on the bottom/right so that both sides are at least ``crop`` (the engine pads the same way)."""
    h, w = im.shape[:2]
    if h >= crop and w >= crop:
        return im
    return np.pad(im, ((0, max(0, crop - h)), (0, max(0, crop - w)), (0, 0)), mode="edge")


def split_folder(path: str | os.PathLike, split: str) -> str:
    """The folder of ``SPLITS[split]`` that ``path`` (from ``photo_paths``) lies in, e.g. ``"BSDS500/val"``."""
    parent = Path(path).parent.as_posix()
    return next(sub for sub in SPLITS[split] if parent.endswith("/" + sub) or parent == sub)


def random_crops(images: list[np.ndarray], crop: int, per_image: int, seed: int = 0) -> np.ndarray:
    """``per_image`` random ``crop`` x ``crop`` crops of each image, uint8 [N * per_image, crop, crop, 3].

    An image with a side shorter than ``crop`` is edge-padded to it (``_pad_to``).
    """
    if crop < 1 or per_image < 1:
        raise ValueError(f"crop and per_image must be >= 1, got {crop} and {per_image}")
    rng = np.random.default_rng(seed)
    out = np.empty((len(images) * per_image, crop, crop, 3), np.uint8)
    k = 0
    for im in images:
        im = _pad_to(im, crop)
        h, w = im.shape[:2]
        for _ in range(per_image):
            y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
            out[k] = im[y : y + crop, x : x + crop]
            k += 1
    return out


def center_crops(images: list[np.ndarray], crop: int) -> np.ndarray:
    """One central ``crop`` x ``crop`` crop of each image (edge-padded when smaller)."""
    out = np.empty((len(images), crop, crop, 3), np.uint8)
    for i, im in enumerate(images):
        im = _pad_to(im, crop)
        h, w = im.shape[:2]
        y, x = (h - crop) // 2, (w - crop) // 2
        out[i] = im[y : y + crop, x : x + crop]
    return out


class SmallImages(NamedTuple):
    """A source of small whole images mixed into each epoch of ``PhotoCrops``."""

    name: str  # e.g. "cifar10", "tiny-imagenet" (named in errors)
    images: np.ndarray  # uint8 [M, h, w, 3]
    per_epoch: int  # how many of them each epoch draws (without replacement), enlarged to the crop


class PhotoCrops:
    """Fresh random crops each epoch (``for_epoch``, seeded by (seed, epoch), so a resumed run sees the same data).

    Each crop: the photo is scaled so that its long side is ``working_size`` times a factor drawn from
    ``scale`` (at least enough for its short side to hold the crop), then a random ``crop`` x ``crop`` window is cut.
    Small images (``small``: ``SmallImages`` sources, e.g. CIFAR-10 and Tiny ImageNet): ``per_epoch`` more images
    from each per epoch, drawn at random and enlarged whole to the crop size (bicubic), so the model also learns
    small images as the Colorizer runs them (enlarged to its minimum working size). ``cifar`` (uint8 [M, 32, 32, 3])
    with ``cifar_per_epoch`` is the first such source, named ``"cifar10"``. Sources are drawn after the photos' windows,
    in order, so adding a source after the others leaves their draws unchanged.
    """

    def __init__(self, photos: list[np.ndarray], working_size: int, crop: int, per_image: int,
                 scale: tuple[float, float] = (0.85, 1.4), seed: int = 0,
                 cifar: np.ndarray | None = None, cifar_per_epoch: int = 0, small: Sequence[SmallImages] = ()):
        if crop < 1 or per_image < 1:
            raise ValueError(f"crop and crops per image must be >= 1, got {crop} and {per_image}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale range must satisfy 0 < low <= high, got {scale}")
        self.photos, self.working_size, self.crop, self.per_image = photos, working_size, crop, per_image
        self.scale, self.seed = scale, seed
        sources = ([SmallImages("cifar10", cifar, cifar_per_epoch)] if cifar is not None else []) + list(small)
        for s in sources:
            if not 0 <= s.per_epoch <= len(s.images):
                raise ValueError(f"{s.name}: {s.per_epoch} images per epoch asked, expected 0 to {len(s.images)} "
                                 f"(the images it has)")
        self.small = [s for s in sources if s.per_epoch]

    @property
    def small_per_epoch(self) -> int:
        """How many small images each epoch holds, all sources together."""
        return sum(s.per_epoch for s in self.small)

    def __len__(self) -> int:
        return len(self.photos) * self.per_image + self.small_per_epoch

    def _box(self, im: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float, float]:
        """The source window of one crop (three draws from ``rng``, in a fixed order)."""
        h, w = im.shape[:2]
        c = self.crop
        long_side = self.working_size * rng.uniform(*self.scale)
        s = max(long_side / max(h, w), c / min(h, w))  # the short side holds the crop when it can
        th, tw = max(c, round(h * s)), max(c, round(w * s))
        # Cut the source window of the crop, then resize only that window.
        wy, wx = c * h / th, c * w / tw
        y0, x0 = rng.uniform(0, h - wy), rng.uniform(0, w - wx)
        return (x0, y0, x0 + wx, y0 + wy)

    def _cut(self, im: np.ndarray, boxes: list[tuple[float, float, float, float] | None]) -> list[np.ndarray]:
        """The crops of ``im`` at ``boxes``, each resized to the crop (bicubic); the whole image for a None box
        (a small image). ``im`` becomes a Pillow image once for all its crops."""
        from PIL import Image

        c, pil = self.crop, Image.fromarray(im)
        return [np.asarray(pil.resize((c, c), Image.BICUBIC)) if box is None
                else np.asarray(pil.resize((c, c), Image.BICUBIC, box=box, reducing_gap=2.0)) for box in boxes]

    def for_epoch(self, epoch: int, workers: int = 1) -> np.ndarray:
        """uint8 [len(self), crop, crop, 3]: the photos' crops, then the enlarged small images, source by source.

        The windows are drawn in one sequence; ``workers`` > 1 cuts them in that many threads (Pillow releases
        the GIL while it resamples), with the same result.
        """
        rng = np.random.default_rng([self.seed, epoch])
        jobs: list[tuple[np.ndarray, list]] = [(im, [self._box(im, rng) for _ in range(self.per_image)])
                                               for im in self.photos]
        for s in self.small:
            jobs += [(s.images[i], [None]) for i in rng.choice(len(s.images), s.per_epoch, replace=False)]
        starts = np.cumsum([0] + [len(b) for _, b in jobs]).tolist()
        out = np.empty((len(self), self.crop, self.crop, 3), np.uint8)

        def fill(j: int) -> None:
            for k, crop in enumerate(self._cut(*jobs[j]), start=starts[j]):
                out[k] = crop

        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(fill, range(len(jobs)), chunksize=16))
        else:
            for j in range(len(jobs)):
                fill(j)
        return out


def load_photo_source(root: str | os.PathLike | None, working_size: int, crop: int, per_image: int,
                      scale: tuple[float, float], seed: int = 0, cifar: np.ndarray | None = None,
                      cifar_per_epoch: int = 0, small: Sequence[SmallImages] = ()) -> tuple[PhotoCrops, np.ndarray]:
    """(per-epoch training crops, validation crops: one center crop per eval photo at the working size)."""
    keep = max(working_size, round(working_size * scale[1]))
    train = [load_at_working_size(p, keep) for p in photo_paths(root, "train")]
    val = [load_at_working_size(p, working_size) for p in photo_paths(root, "eval")]
    return (PhotoCrops(train, working_size, crop, per_image, scale, seed, cifar, cifar_per_epoch, small),
            center_crops(val, crop))
