"""``colorize video --ray``: one Ray task per video, each running the local per-video code.

The driver plans (``colorize.video.run.make_video_plan``) and collects; each task loads the model once per worker
process (kept for the next video that process gets), colorizes one video with ``colorize.video.run.colorize_file``
and writes it atomically on the shared filesystem, then returns a small row. A failed video is a row with its
reason; a task whose worker died is retried by Ray (``max_retries``) and then reported with Ray's reason. The
summary, the exit status and the outcomes are the local run's. Temporary files of killed workers are removed at
the end. ``cancel`` cancels the tasks not finished (their videos are listed in ``not_run``).
"""

from __future__ import annotations

import os
import time
from collections import Counter

from colorize.job.plan import Plan, Task, output_folders
from colorize.video.options import VideoOptions

#: CPUs each task asks for at most: a video's pipeline keeps about this many busy (decode, model, encode).
MAX_CPUS_PER_TASK = 4
#: Ray retries a task whose worker process died this many times.
MAX_RETRIES = 2
_colorizers: dict = {}  # per worker process: options -> loaded Colorizer


def _colorize_task(src: str, dst: str, shown: str, options: dict) -> dict:
    """Runs in a Ray worker: one video, as the local run does it; returns a row of plain values."""
    import ray
    from colorize.video.run import colorize_file, failure_reason, load_colorizer

    opts = VideoOptions(**options)
    key = tuple(sorted((k, str(v)) for k, v in options.items()))
    node = ray.get_runtime_context().get_node_id()
    try:
        if key not in _colorizers:
            from colorize.image import merge

            merge.choose_for(None)
            _colorizers.clear()
            _colorizers[key] = load_colorizer(opts)
        col = _colorizers[key]
        o = colorize_file(col, Task(_path(src), _path(dst), shown), opts)
    except Exception as e:
        return {"ok": False, "error": failure_reason(e), "node": node}
    return {"ok": True, "error": "", "node": node, "size": o.size, "engine": o.engine, "frames": o.frames,
            "colour_frames": o.colour_frames, "cuts": o.cuts, "seconds": o.seconds, "notes": o.notes}


def _path(p: str):
    from pathlib import Path

    return Path(p)


def _reason(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    causes = [ln for ln in lines if ln.split(":")[0].endswith(("Error", "Exception"))]
    return f"{type(e).__name__}: {causes[-1] if causes else (lines[-1] if lines else '')}"


def run_on_ray(plan: Plan, options: VideoOptions, summary, *, address: str | None = None, on_outcome=None,
               on_start=None, cancel=None):
    """Run ``plan`` on Ray and fill ``summary`` (a ``colorize.video.run.VideoSummary``) as the local run does.

    Raises:
        colorize.deps.MissingDependency: Ray is not installed.
        colorize.ray.cluster.ClusterError: the cluster cannot be reached or started.
        ValueError, FileNotFoundError: an unknown backend or precision, or a bad model (checked before Ray starts).
    """
    from colorize.artifacts.model_ref import resolve_model
    from colorize.colorizer import model_min_working_size
    from colorize.image.io import remove_stale_tmp
    from colorize.ray.cluster import connect
    from colorize.ray.driver import check_model_options
    from colorize.video.run import VideoOutcome

    check_model_options(_ModelOptions(options))
    summary.min_working_size = model_min_working_size(resolve_model(options.model).metadata)
    if not plan.tasks:
        summary.engines = "nothing to run"
        return summary
    engines: Counter = Counter()
    nodes: Counter = Counter()
    with connect(address) as cluster:
        import ray

        if on_start is not None:
            on_start(cluster)
        cpus = min(MAX_CPUS_PER_TASK, max((n.get("CPU", 1) for n in cluster.nodes), default=1))
        remote = ray.remote(num_cpus=cpus, max_retries=MAX_RETRIES)(_colorize_task)
        start = time.perf_counter()
        refs = {remote.remote(os.fspath(t.src), os.fspath(t.dst), t.shown, options.as_dict()): t for t in plan.tasks}
        pending = list(refs)
        try:
            while pending:
                if cancel is not None and cancel.is_set():
                    for ref in pending:
                        ray.cancel(ref, force=True)
                    summary.not_run += [refs[r] for r in pending]
                    summary.cancelled, summary.stopped = True, "cancelled"
                    break
                done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
                for ref in done:
                    task = refs[ref]
                    try:
                        row = ray.get(ref)
                    except Exception as e:  # the worker died more often than Ray retries
                        outcome = VideoOutcome(task, False, _reason(e))
                    else:
                        nodes[row["node"]] += 1
                        outcome = VideoOutcome(task, row["ok"], row["error"])
                        if row["ok"]:
                            engines[row["engine"]] += 1
                            outcome.size, outcome.engine = tuple(row["size"]), row["engine"]
                            outcome.frames, outcome.colour_frames = row["frames"], row["colour_frames"]
                            outcome.cuts, outcome.seconds, outcome.notes = row["cuts"], row["seconds"], row["notes"]
                    summary.outcomes.append(outcome)
                    if on_outcome is not None:
                        on_outcome(outcome)
        finally:
            summary.seconds = time.perf_counter() - start
    for folder, names in output_folders(plan.tasks).items():  # left by a worker killed mid-write
        if folder.is_dir():
            remove_stale_tmp(folder, names)
    summary.engines = ", ".join(engines) or "no engine"
    summary.where = (f" on {len(nodes)} Ray node{'s' if len(nodes) != 1 else ''}, {cpus:g} CPU per video "
                     f"(Ray start-up {cluster.startup_s:.1f} s not counted)")
    return summary


class _ModelOptions:
    """What ``colorize.ray.driver.check_model_options`` reads, from ``VideoOptions`` (no small-image model)."""

    def __init__(self, options: VideoOptions):
        self.backend, self.precision, self.model = options.backend, options.precision, options.model
        self.small_model = None
