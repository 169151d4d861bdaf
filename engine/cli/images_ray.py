"""``colorize images --ray [ADDRESS]``: run a planned job on Ray (``colorize.folder.run_plan``), shown as the local run.

The plan (``colorize.job.make_plan``), the summary, ``--report`` and the exit status are the local run's; the
options mean the same (``--jobs``: decode/encode threads in each actor). Checked on the driver before Ray
starts: the backend and precision names and the model (a path must exist here, and on every node). Exit
status 2 also for a missing extra, a cluster that cannot be reached, a pool that does not fit, and a job that
stopped before any file came back; 1 when some files failed or were not run.
"""

from __future__ import annotations

import argparse
import sys
import time

from colorize.cli.folder_job import finish, job_options, outcome_printer
from colorize.job.plan import Plan


def run_on_ray(args: argparse.Namespace, plan: Plan) -> int:
    from colorize.backends.base import MissingDependency
    from colorize.cli.progress import Progress
    from colorize.folder import run_plan
    from colorize.ray.cluster import ClusterError
    from colorize.ray.pool import fitting_actors

    def fail(message: str) -> int:
        print(f"colorize images: error: {message}", file=sys.stderr)
        return 2

    progress = Progress(len(plan.tasks), enabled=None if not args.quiet else False)

    def started(cluster, pool) -> None:
        fit = fitting_actors(cluster.nodes, pool)
        wait = f" ({fit} fit on the nodes now; the others start as nodes join)" if fit < pool.actors else ""
        print(f"ray: {cluster.describe()}; pool: {pool.describe()}{wait}", file=sys.stderr)
        progress.start = time.perf_counter()  # the rate counts from here, not from Ray's start-up

    try:
        summary = run_plan(plan, job_options(args), ray=args.ray, ray_actors=args.ray_actors,
                           ray_cpus_per_actor=args.ray_cpus_per_actor, ray_gpus_per_actor=args.ray_gpus_per_actor,
                           on_outcome=outcome_printer(progress), on_start=started, report=bool(args.report))
    except (ValueError, FileNotFoundError, MissingDependency, ClusterError) as e:
        return fail(str(e))
    if not plan.tasks:  # every output exists (--skip-existing): Ray was not started
        return finish(args, summary)
    progress.close()
    if summary.stopped and not summary.outcomes:
        return fail(f"the Ray job stopped before any file was done: {summary.stopped}")
    if summary.stopped:
        print(f"colorize images: error: the Ray job stopped: {summary.stopped}; {len(summary.not_run)} files not "
              "run (rerun with --skip-existing to finish them)", file=sys.stderr)
    return finish(args, summary)
