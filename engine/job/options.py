"""How a folder job runs: the model, its backend, the working size, batching, threads and encoding.

The one source of a job's settings: their defaults (which ``colorize images``'s flags, ``colorize_folder``'s
arguments and Ray's ``ColorizeBatch`` take from here), their validation (``check``: the API names a field, the
command line its flag), and the ``Colorizer`` they set up (``load_colorizer``: the local runner and each Ray actor).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from colorize.artifacts.model_ref import DEFAULT_PHOTO_MODEL, MAX_COLOUR_STRENGTH, SMALL_IMAGE_MAX_SIDE
from colorize.colorizer import DEFAULT_WORKING_SIZE
from colorize.image.io import DEFAULT_MAX_PIXELS
from colorize.job.plan import JobError

BATCH_SIZE = 8  # images of one working shape per inference call
QUALITY = 95  # JPEG/WebP quality
COLOUR_STRENGTH = 1.0  # the model's own chroma


@dataclass
class JobOptions:
    """The options of a folder job (``colorize images`` has a flag of each name)."""

    model: str | os.PathLike = DEFAULT_PHOTO_MODEL  # name or path
    backend: str = "auto"  # colorize.backends name, or auto
    precision: str = "auto"  # fp32, bf16, fp16, int8 or auto
    working_size: int = DEFAULT_WORKING_SIZE  # long side, in px, the model runs at
    small_model: str | os.PathLike | None = "auto"  # the model for tiny images (colorize.Colorizer.load)
    small_max_side: int = SMALL_IMAGE_MAX_SIDE  # long side up to which small_model takes an image
    batch_size: int = BATCH_SIZE  # images of one working shape per inference call
    jobs: int | None = None  # decode/encode threads (None: min(4, CPUs); on Ray: per actor, its threads)
    quality: int = QUALITY  # JPEG/WebP quality
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused (decompression-bomb limit)
    colour_strength: float = COLOUR_STRENGTH  # the predicted chroma times this (colorize.colorizer.check_strength)

    @classmethod
    def from_namespace(cls, args) -> "JobOptions":
        """The options of a parsed command line (an ``argparse.Namespace`` with an attribute per field)."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    def check(self, flags: bool = False) -> None:
        """Raises ``JobError`` naming the first bad value: as its field (``batch_size``), or as its command-line
        option (``--batch-size``) when ``flags``."""

        def label(name: str) -> str:
            return "--" + name.replace("_", "-") if flags else name

        for name, low in (("batch_size", 1), ("jobs", 1), ("working_size", 1), ("max_pixels", 1),
                          ("small_max_side", 0)):
            value = getattr(self, name)
            if value is None and name == "jobs":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise JobError(f"{label(name)} must be {'' if flags else 'an integer '}>= {low}, got {value!r}")
        s = self.colour_strength
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s <= MAX_COLOUR_STRENGTH:  # NaN too
            raise JobError(f"{label('colour_strength')} must be in 0..{MAX_COLOUR_STRENGTH:g}, got {s!r}")
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise JobError(f"{label('quality')} must be in 1..100, got {self.quality!r}")

    def load_colorizer(self, **engine_options):
        """The ``Colorizer`` these options describe (``engine_options``: the backend's, e.g. ``num_threads``).

        Raises:
            ValueError, FileNotFoundError, ImportError, colorize.backends.base.BackendError: as
                ``colorize.Colorizer.load``.
        """
        from colorize.colorizer import Colorizer

        if self.max_pixels > DEFAULT_MAX_PIXELS:
            from PIL import Image

            Image.MAX_IMAGE_PIXELS = self.max_pixels  # our own limit is checked in load_image
        return Colorizer.load(self.model, self.backend, self.precision, working_size=self.working_size,
                              max_pixels=self.max_pixels, small_model=self.small_model,
                              small_max_side=self.small_max_side, colour_strength=self.colour_strength,
                              **engine_options)

    def threads(self) -> int:
        """Decode/encode threads of a local run: ``jobs``, else min(4, CPUs)."""
        return self.jobs if self.jobs is not None else min(4, os.cpu_count() or 1)

    def colorizer_kwargs(self) -> dict:
        """The ``colorize.ray.worker.ColorizeBatch`` arguments (model, backend, ..., jobs)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
