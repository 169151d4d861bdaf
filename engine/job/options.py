"""How a folder job runs: the model, its backend, the working size, batching, threads and encoding.

One dataclass for both runners: the local one (``colorize.job.runner``) and Ray's (``colorize.ray``), whose
actors take these same values (``ColorizeBatch`` arguments). Defaults are the ``colorize images`` ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from colorize.artifacts.model_ref import DEFAULT_PHOTO_MODEL, SMALL_IMAGE_MAX_SIDE
from colorize.colorizer import DEFAULT_WORKING_SIZE
from colorize.image.io import DEFAULT_MAX_PIXELS
from colorize.job.plan import JobError


@dataclass
class JobOptions:
    """The options of a folder job (``colorize images`` has a flag of each name)."""

    model: str | os.PathLike = DEFAULT_PHOTO_MODEL  # name or path
    backend: str = "auto"  # colorize.backends name, or auto
    precision: str = "auto"  # fp32, bf16, fp16, int8 or auto
    working_size: int = DEFAULT_WORKING_SIZE  # long side, in px, the model runs at
    small_model: str | os.PathLike | None = "auto"  # the model for tiny images (colorize.Colorizer.load)
    small_max_side: int = SMALL_IMAGE_MAX_SIDE  # long side up to which small_model takes an image
    batch_size: int = 8  # images of one working shape per inference call
    jobs: int | None = None  # decode/encode threads (None: min(4, CPUs); on Ray: per actor, its threads)
    quality: int = 95  # JPEG/WebP quality
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused (decompression-bomb limit)
    colour_strength: float = 1.0  # the predicted chroma times this (colorize.colorizer.check_strength)

    def check(self) -> None:
        """Raises ``JobError`` naming the first bad value."""
        for name in ("batch_size", "jobs", "working_size", "max_pixels"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise JobError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.small_max_side, int) or self.small_max_side < 0:
            raise JobError(f"small_max_side must be an integer >= 0, got {self.small_max_side!r}")
        from colorize.colorizer import check_strength

        try:
            check_strength(self.colour_strength)
        except ValueError as e:
            raise JobError(str(e)) from None
        if not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise JobError(f"quality must be in 1..100, got {self.quality!r}")

    def threads(self) -> int:
        """Decode/encode threads of a local run: ``jobs``, else min(4, CPUs)."""
        return self.jobs if self.jobs is not None else min(4, os.cpu_count() or 1)

    def colorizer_kwargs(self) -> dict:
        """The ``colorize.ray.worker.ColorizeBatch`` arguments (model, backend, ..., jobs)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
