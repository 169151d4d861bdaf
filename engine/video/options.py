"""The options of a video job: model, batching, encoder, steadiness (``colorize video`` has a flag of each name)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from colorize.artifacts.model_ref import DEFAULT_PHOTO_MODEL
from colorize.colorizer import DEFAULT_WORKING_SIZE
from colorize.job.plan import JobError
from colorize.video.temporal import TemporalOptions

#: x264's presets, fastest first (``--preset``).
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
           "placebo")


@dataclass
class VideoOptions:
    """How each video is colorized and encoded. Defaults are the ``colorize video`` ones."""

    model: str | os.PathLike = DEFAULT_PHOTO_MODEL  # name or path
    backend: str = "auto"  # colorize.backends name, or auto
    precision: str = "auto"  # fp32, bf16, fp16, int8 or auto
    working_size: int = DEFAULT_WORKING_SIZE  # long side, in px, the model (and the motion) runs at
    batch_size: int = 4  # frames per inference call (4 is the fastest at 256x144 on a 2-core CPU)
    colour_strength: float = 1.0  # the predicted chroma times this (colorize.colorizer.check_strength)
    codec: str = "libx264"  # FFmpeg video encoder (PyAV's wheel has libx264, libx265, libvpx-vp9, libaom-av1, ...)
    crf: int = 18  # constant rate factor: lower is better and larger (x264: 0..51; 18 is visually lossless)
    preset: str = "veryfast"  # x264/x265 speed preset (``PRESETS``)
    steady: bool = True  # carry colour along the motion (False: every frame on its own, as ``colorize images``)
    weight: float = TemporalOptions.weight  # the carried colour's weight where the motion is trusted
    threads: int = 0  # encoder threads (0: FFmpeg's choice; on Ray, the task's CPUs)

    def check(self) -> None:
        """Raises ``JobError`` naming the first bad value."""
        for name in ("batch_size", "working_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise JobError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise JobError(f"threads must be an integer >= 0, got {self.threads!r}")
        if not isinstance(self.crf, int) or not 0 <= self.crf <= 63:
            raise JobError(f"crf must be an integer in 0..63, got {self.crf!r}")
        if self.preset not in PRESETS:
            raise JobError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        from colorize.colorizer import check_strength

        try:
            check_strength(self.colour_strength)
            TemporalOptions(weight=self.weight).check()
        except ValueError as e:
            raise JobError(str(e)) from None

    def temporal(self) -> TemporalOptions | None:
        """The temporal step's options, None for per-frame colour."""
        return TemporalOptions(weight=self.weight) if self.steady else None

    def as_dict(self) -> dict:
        """The options as plain values (what a Ray task is given)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
