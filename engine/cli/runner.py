"""``colorize images`` on this machine: the per-file code is ``colorize.job.runner`` (names re-exported here);
this module only prints what the command line shows."""

from __future__ import annotations

import sys

from colorize.job.runner import TaskRunner, failure_reason  # noqa: F401


def print_error(progress, shown: str, reason: str) -> None:
    """``error: FILE: REASON`` on stderr, on its own line even while the progress bar is drawn."""
    if progress.enabled:
        sys.stderr.write("\r\033[K")
    print(f"error: {shown}: {reason}", file=sys.stderr)
