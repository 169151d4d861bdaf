"""Film: ``colorize video`` and ``colorize_video``, steady colour along the motion, streamed through PyAV.

    from colorize.video import colorize_video
    summary = colorize_video(["film.mp4"], "colour/")

Modules (``docs/video.md``):
  * ``io``: PyAV decode, encode and remux; temporary output names.
  * ``chroma``: between Y'CbCr planes and the model's gray and ab.
  * ``temporal``: motion, confidence, cuts and the blend that keeps the colour steady.
  * ``pipeline``: the decoding thread, batched inference and the encoding thread for one video.
  * ``options``: ``VideoOptions``.
  * ``run``: the plan, one video's colorization, the local run, the outcomes and the summary.
  * ``job``: ``colorize_video`` and ``run_plan``: here or on Ray.
  * ``on_ray``: one Ray task per video.

Importing this package is cheap (names load on first use); PyAV and OpenCV are imported when a video is
opened, and their absence names the extra: ``pip install ".[video]"``.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "colorize_video": "colorize.video.job",
    "make_video_plan": "colorize.video.run",
    "run_plan": "colorize.video.job",
    "VideoOutcome": "colorize.video.run",
    "VideoSummary": "colorize.video.run",
    "VideoOptions": "colorize.video.options",
    "TemporalOptions": "colorize.video.temporal",
    "MediaError": "colorize.video.io",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'colorize.video' has no attribute {name!r}")
