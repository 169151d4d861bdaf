"""The small images mixed into each epoch of photo training (``--cifar-mix``, ``--tiny-imagenet-mix``): their
sources for ``colorize.data.photos.PhotoCrops`` and their description in the checkpoint's ``data`` metadata.

The order of the sources is fixed (CIFAR-10, then Tiny ImageNet): each epoch draws them in that order after the
photos' windows, so a run with ``--cifar-mix`` alone sees the same images as before Tiny ImageNet existed.
"""

from __future__ import annotations

import os

from colorize.data.photos import SmallImages
from colorize.training.config import ColorizeConfig


def check_mix(cfg: ColorizeConfig) -> None:
    """Raises ValueError for a negative mix or a mix without ``--photos`` (never a flag silently ignored)."""
    for flag, n in (("--cifar-mix", cfg.cifar_mix), ("--tiny-imagenet-mix", cfg.tiny_imagenet_mix)):
        if n < 0:
            raise ValueError(f"{flag} must be >= 0, got {n}")
        if n and not cfg.photos:
            raise ValueError(f"{flag} mixes small images into photo training; it needs --photos")


def small_sources(cfg: ColorizeConfig) -> list[SmallImages]:
    """The configured small-image sources, loaded (none when both mixes are 0).

    Raises:
        ValueError: a negative mix, a mix without ``--photos``, more images per epoch than the source has, or an
            unreadable source.
        FileNotFoundError: a source's data is missing.
    """
    check_mix(cfg)
    sources = []
    if cfg.cifar_mix:
        from colorize.data.cifar10 import load_cifar10

        sources.append(SmallImages("cifar10", load_cifar10("train", cfg.data)[0], cfg.cifar_mix))
    if cfg.tiny_imagenet_mix:
        from colorize.data.tiny_imagenet import load_tiny_imagenet

        sources.append(SmallImages("tiny-imagenet", load_tiny_imagenet(), cfg.tiny_imagenet_mix))
    return sources


def describe_small(cfg: ColorizeConfig) -> list[dict]:
    """One entry per small-image source of the run, for the checkpoint's ``data["small_images"]``."""
    from colorize.data import cifar10, tiny_imagenet

    out = []
    if cfg.cifar_mix:
        where = cfg.data or os.environ.get(cifar10.ENV_VAR) or "../shared/data/cifar10"
        out.append({"dataset": f"cifar10 (JPEG copy, {where})", "split": "train", "per_epoch": cfg.cifar_mix,
                    "resolution": f"32x32, enlarged (bicubic) to {cfg.crop}x{cfg.crop}"})
    if cfg.tiny_imagenet_mix:
        where = os.environ.get(tiny_imagenet.ENV_VAR) or "../shared/data/tiny-imagenet"
        out.append({"dataset": f"tiny-imagenet ({where}/{tiny_imagenet.ZIP_NAME})", "split": "train, 100 per class",
                    "per_epoch": cfg.tiny_imagenet_mix,
                    "resolution": f"64x64, enlarged (bicubic) to {cfg.crop}x{cfg.crop}",
                    "licence": tiny_imagenet.LICENCE})
    return out
