"""``colorize images --ray [ADDRESS]``: run a planned job on Ray (``engine/ray/``), report it as the local run.

The plan (``engine.cli.images.make_plan``), the summary, ``--report`` and the exit status are the local
run's; the options mean the same (``--jobs``: decode/encode threads in each actor). Checked on the driver
before Ray starts: the backend and precision names and the model (a path must exist here, and on every
node). Exit status 2 also for a missing extra, a cluster that cannot be reached, a pool that does not fit,
and a job that stopped before any file came back; 1 when some files failed or were not run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from engine.cli.images import Plan, finish


def _check_model_options(args: argparse.Namespace):
    """What ``Colorizer.load`` would refuse at once, checked without loading a backend on the driver; returns the
    small-image model (``engine.colorizer.resolve_small_model``), None when there is none."""
    from engine.artifacts.model_ref import resolve_model
    from engine.backends import BACKENDS
    from engine.engine import PRECISIONS

    if args.backend != "auto" and args.backend not in BACKENDS:
        raise ValueError(f"unknown backend {args.backend!r}; valid: {', '.join(list(BACKENDS) + ['auto'])}")
    if args.precision != "auto" and args.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {args.precision!r}; valid: {', '.join(PRECISIONS + ('auto',))}")
    resolve_model(args.model)
    from engine.colorizer import resolve_small_model

    small = resolve_small_model(args.model, args.small_model)
    if small is not None:
        resolve_model(small)
    return small


def run_on_ray(args: argparse.Namespace, plan: Plan) -> int:
    from engine.backends.base import MissingDependency
    from engine.cli.progress import Progress
    from engine.cli.runner import print_error
    from engine.ray.cluster import ClusterError
    from engine.ray.driver import run_tasks
    from engine.ray.pool import fitting_actors

    def fail(message: str) -> int:
        print(f"colorize images: error: {message}", file=sys.stderr)
        return 2

    try:
        small = _check_model_options(args)
    except (ValueError, FileNotFoundError) as e:
        return fail(str(e))
    if not plan.tasks:  # every output exists (--skip-existing): nothing to start Ray for
        return finish(args, plan, [], [], 0.0, "nothing to run")
    progress = Progress(len(plan.tasks), enabled=None if not args.quiet else False)

    def started(cluster, pool) -> None:
        fit = fitting_actors(cluster.nodes, pool)
        wait = f" ({fit} fit on the nodes now; the others start as nodes join)" if fit < pool.actors else ""
        print(f"ray: {cluster.describe()}; pool: {pool.describe()}{wait}", file=sys.stderr)
        progress.start = time.perf_counter()  # the rate counts from here, not from Ray's start-up

    options = dict(model=args.model, backend=args.backend, precision=args.precision, working_size=args.working_size,
                   max_pixels=args.max_pixels, quality=args.quality, batch_size=args.batch_size, jobs=args.jobs,
                   small_model=args.small_model, small_max_side=args.small_max_side)
    try:
        run = run_tasks(plan.tasks, address=None if args.ray == "local" else args.ray, actors=args.ray_actors,
                        cpus_per_actor=args.ray_cpus_per_actor, gpus_per_actor=args.ray_gpus_per_actor,
                        progress=progress, on_start=started,
                        on_error=lambda task, reason: print_error(progress, task.shown, reason), **options)
    except (MissingDependency, ClusterError) as e:
        return fail(str(e))
    progress.close()
    if run.stopped and not run.done and not run.failed:
        return fail(f"the Ray job stopped before any file was done: {run.stopped}")
    errors = run.errors
    if run.stopped:
        print(f"colorize images: error: the Ray job stopped: {run.stopped}; {len(run.not_run)} files not run "
              "(rerun with --skip-existing to finish them)", file=sys.stderr)
        errors += [(t.shown, f"not run: the job stopped ({run.stopped})") for t in run.not_run]
    engines = ", ".join(f"{name}" + (f" ({n} files)" if len(run.engines) > 1 else "")
                        for name, n in run.engines.most_common()) or "no engine"
    where = (f" on {len(run.nodes)} Ray node{'s' if len(run.nodes) != 1 else ''}, {len(run.actors)} actor "
             f"process{'es' if len(run.actors) != 1 else ''} (Ray start-up {run.cluster.startup_s:.1f} s not counted; "
             f"first result after {run.first_row_s or 0:.1f} s)")
    from engine.artifacts.model_ref import resolve_model
    from engine.colorizer import model_min_working_size

    return finish(args, plan, run.done, errors, run.run_s, engines, where,
                  min_working_size=model_min_working_size(resolve_model(args.model).metadata),
                  small_max_side=args.small_max_side if small is not None else 0, small_model=os.fspath(small or ""))

