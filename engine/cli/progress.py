"""A dependency-free progress bar: count, images/s and ETA on one line.

Drawn only when the stream is a terminal (so logs and pipes stay clean), at
most ``fps`` times per second; ``close`` ends the line.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_time(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """``Progress(total)``; call ``update(n)`` as items finish."""

    def __init__(self, total: int, desc: str = "", stream: TextIO | None = None, enabled: bool | None = None,
                 fps: float = 8.0, width: int = 24, unit: str = "img"):
        self.total = total
        self.desc = desc
        self.unit = unit  # what is counted, as the rate shows it ("img/s", "frames/s")
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = isatty() if enabled is None else enabled
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._interval = 1.0 / fps
        self._width = width

    def rate(self) -> float:
        """Items per second so far."""
        dt = time.perf_counter() - self.start
        return self.done / dt if dt > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self._width))
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        return (f"{self.desc}[{'#' * filled}{'.' * (self._width - filled)}] {self.done}/{self.total} "
                f"{rate:.1f} {self.unit}/s ETA {_fmt_time(eta)}")

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last >= self._interval or self.done >= self.total:
            self._last = now
            self.stream.write("\r" + self.line() + "\033[K")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self.line() + "\033[K\n")
            self.stream.flush()


def print_error(progress: Progress, shown: str, reason: str) -> None:
    """``error: FILE: REASON`` on stderr, on its own line even while the progress bar is drawn."""
    if progress.enabled:
        sys.stderr.write("\r\033[K")
    print(f"error: {shown}: {reason}", file=sys.stderr)
