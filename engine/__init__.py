"""Inference: backends, ``Engine``, ``Colorizer``, folder jobs (``colorize_folder``), batching, CLI, service.

Importing ``engine`` is cheap and never imports torch: names are loaded on
first use.
"""

from __future__ import annotations

import importlib

#: the package version (pyproject.toml reads it from here); ``colorize --version``
__version__ = "0.1.0"

_LAZY = {
    "Engine": "colorize.engine",
    "Colorizer": "colorize.colorizer",
    "Normalization": "colorize.image.color",
    "resolve_model": "colorize.artifacts.model_ref",
    "colorize_folder": "colorize.folder",
    "colorize_video": "colorize.video.job",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
