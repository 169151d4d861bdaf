"""``colorize images --report``: the gallery page, made by ``colorize.job.report`` (names re-exported here)."""

from colorize.job.report import THUMB_SIDE, Entry, href, render, thumbnail_uri, write_report  # noqa: F401
