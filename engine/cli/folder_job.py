"""What the folder commands share, here or on Ray: the job's options from the command line, the progress bar's
per-file line, and the summary and ``--report`` at the end."""

from __future__ import annotations

import argparse
import sys

from colorize.cli.progress import Progress, print_error


def job_options(args: argparse.Namespace):
    """The ``colorize.job.JobOptions`` of the command line (every ``JobOptions`` field has a flag of its name)."""
    from colorize.job.options import JobOptions

    return JobOptions.from_namespace(args)


def outcome_printer(progress: Progress):
    """``on_outcome`` for a job: each failure on its own line, then the bar moves on."""

    def shown(outcome) -> None:
        if not outcome.ok:
            print_error(progress, outcome.task.shown, outcome.error)
        progress.update()

    return shown


def finish(args: argparse.Namespace, summary) -> int:
    """Print the summary, write ``--report``, and return the exit status (0 all done, 1 some failed)."""
    print(summary.describe(), file=sys.stderr)
    if getattr(args, "report", None):
        summary.write_report(args.report)
        print(f"report: {args.report}", file=sys.stderr)
    return summary.exit_status
