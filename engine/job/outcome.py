"""What a folder job did: one ``Outcome`` per file tried, and the ``Summary`` of the whole job.

The local runner (``colorize.job.runner``) and the Ray driver (``colorize.ray.driver``) both return these, so
the summary line, the report and the exit status of ``colorize images`` are one code for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from colorize.job.plan import Plan, Task


@dataclass
class Outcome:
    """One file tried: written (``ok``) or not, with the reason."""

    task: Task
    ok: bool
    error: str = ""  # why the file could not be colorized ("" when ok)
    size: tuple[int, int] | None = None  # (width, height) of the image, when it was decoded
    engine: str = ""  # what ran it: "openvino/int8", or the small-image model's "resnet18-unet (openvino/int8)"
    before: str | None = None  # report thumbnails (data: URIs), when the task asked for them
    after: str | None = None

    @property
    def output(self) -> Path:
        return self.task.dst

    def entry(self):
        """The report's row for a written file (``colorize.job.report.Entry``)."""
        from colorize.job.report import Entry

        return Entry(self.task.shown, str(self.task.dst), self.before, self.after, self.size)


class Outcomes:
    """``done``, ``failed`` and ``errors`` of anything that keeps an ``outcomes`` list (a summary, a runner, a run)."""

    @property
    def done(self) -> list[Outcome]:
        """The files written."""
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[Outcome]:
        """The files that could not be colorized, each with its reason."""
        return [o for o in self.outcomes if not o.ok]

    @property
    def errors(self) -> list[tuple[str, str]]:
        """``(file as shown, reason)`` for each failed file."""
        return [(o.task.shown, o.error) for o in self.failed]


@dataclass
class Summary(Outcomes):
    """A finished (or stopped) job: its plan, each file's outcome, and how it ran."""

    plan: Plan
    outcomes: list[Outcome] = field(default_factory=list)  # in the order the files finished
    not_run: list[Task] = field(default_factory=list)  # planned files never tried: the job stopped first
    seconds: float = 0.0  # from the first file started to the last one finished (model load not counted)
    engines: str = ""  # "openvino/int8"; on Ray, each engine with its file count when there were several
    working_size: int = 0
    min_working_size: int = 0  # the model's: smaller images ran enlarged to it
    model_size: tuple[int, int] | None = None  # a static-size model's (H, W): every image ran at it
    small_max_side: int = 0  # images of long side up to this ran on the small-image model
    small_model: str = ""  # that model, as "resnet18-unet (openvino/int8)"
    where: str = ""  # ", on 2 Ray nodes, ..." for a Ray run
    stopped: str | None = None  # why the job stopped before every file was tried ("cancelled", a lost cluster)
    cancelled: bool = False  # stopped by the caller's ``cancel``
    passed_over: list[str] = field(default_factory=list)  # what ``auto`` tried first and why it did not keep it

    @property
    def errors(self) -> list[tuple[str, str]]:
        """``(file as shown, reason)`` for each failed file, then for each file not run."""
        return (super().errors
                + [(t.shown, f"not run: the job stopped ({self.stopped})") for t in self.not_run])

    @property
    def exit_status(self) -> int:
        """``colorize images``' status: 0 every planned file written, 1 some failed or not run."""
        return 1 if self.failed or self.not_run else 0

    def describe(self) -> str:
        """The one-line summary ``colorize images`` prints."""
        from colorize.colorizer import runs_small

        n_ok = len(self.done)
        n_bad = len(self.failed) + (0 if self.cancelled else len(self.not_run))
        enlarge_to = 0 if self.model_size else min(self.min_working_size, self.working_size)  # never above it
        sizes = [o.size for o in self.done if o.size]
        tiny = sum(1 for size in sizes if runs_small(size, self.small_max_side))
        small = sum(1 for size in sizes if not runs_small(size, self.small_max_side) and max(size) < enlarge_to)
        s = self.seconds
        return (f"colorized {n_ok} of {self.plan.found} images in {s:.1f} s "
                f"({n_ok / s if s > 0 else 0:.1f} img/s) with {self.engines}{self.where}, "
                + (f"model size {self.model_size[0]}x{self.model_size[1]}" if self.model_size
                   else f"working size {self.working_size}")
                + (f"; {tiny} image{'s' if tiny != 1 else ''} of long side <= {self.small_max_side} px ran on "
                   f"{self.small_model} at {'their' if tiny != 1 else 'its'} size" if tiny else "")
                + (f"; {small} small image{'s' if small != 1 else ''} (long side < {enlarge_to} px) enlarged to "
                   f"{enlarge_to} px for the model" if small else "")
                + (f"; {self.plan.skipped} skipped (output exists)" if self.plan.skipped else "")
                + (f"; {n_bad} failed" if n_bad else "")
                + (f"; cancelled, {len(self.not_run)} not run" if self.cancelled else "")
                + (f"; output in {self.plan.out_dir}" if n_ok else "; nothing written")
                + "".join(f"\n  auto passed over {why}" for why in self.passed_over))

    def write_report(self, path) -> None:
        """Write the before/after HTML gallery of this job (``colorize.job.report``) to ``path``, atomically."""
        from colorize.job.report import write_report

        write_report(path, [o.entry() for o in self.done], self.errors, self.describe())


def counting(progress, total: int):
    """``on_outcome`` for a job from the API's ``progress(outcome, done, total)`` (None for None): ``done``
    counts the outcomes so far."""
    if progress is None:
        return None
    done = 0

    def on_outcome(outcome: Outcome) -> None:
        nonlocal done
        done += 1
        progress(outcome, done, total)

    return on_outcome

