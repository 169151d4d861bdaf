"""Where things live: the repository root (for the development data beside a clone) and the one user cache
directory that every cache of the package (artifacts, measured speeds, FLOP counts) sits under."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """``$COLORIZE_CACHE``, else ``$XDG_CACHE_HOME/colorize``, else ``~/.cache/colorize``."""
    env = os.environ.get("COLORIZE_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "colorize"
