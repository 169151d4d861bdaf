"""The Ray Data pipeline of ``colorize images --ray``: paths in, status rows out.

    tasks_dataset(tasks, files_per_block)      # Dataset of (index, src, dst, thumbnail), one block per chunk
        -> colorize_dataset(ds, pool, ...)     # map_batches(ColorizeBatch) on a fixed actor pool
        -> rows of colorize.ray.worker.STATUS_COLUMNS, streamed back to the driver

For a Ray program of your own: build any Dataset with ``src`` and ``dst`` string columns and pass it to
``colorize_dataset`` (or hand ``colorize.ray.worker.ColorizeBatch`` to ``map_batches`` yourself).

A block is the unit Ray schedules and retries: an actor lost mid-run costs at most its blocks in flight,
which Ray runs again (on the restarted actor or another one); every output is written under a temporary
name and renamed, so a redone file replaces nothing half-written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from colorize.ray.pool import PoolPlan

#: Most files per block (one ``ColorizeBatch`` call): the most an actor killed mid-run redoes per block.
MAX_FILES_PER_BLOCK = 256
#: Files per ``ColorizeBatch`` call when the caller does not say.
FILES_PER_CALL = 32
#: Environment of each actor process. numpy's OpenBLAS threads (the colour conversion and the ab upsampler
#: call matmul from every decode/encode thread) fight the actor's own threads: 2.8x slower here with them.
ACTOR_ENV = {"OPENBLAS_NUM_THREADS": "1"}
#: Blocks per actor aimed at, so the pool stays balanced to the end of the job.
BLOCKS_PER_ACTOR = 4


def files_per_block(n_files: int, actors: int, batch_size: int) -> int:
    """About ``BLOCKS_PER_ACTOR`` blocks per actor, no fewer files than one inference batch, at most the cap."""
    per = math.ceil(max(1, n_files) / (BLOCKS_PER_ACTOR * max(1, actors)))
    return max(batch_size, min(per, MAX_FILES_PER_BLOCK))


def tasks_dataset(tasks: Sequence, files_per_block: int):
    """A Ray Dataset of ``colorize.job.Task`` rows (``index`` = position in ``tasks``), in blocks of
    ``files_per_block`` rows, built on the driver from Arrow tables (compact: about the paths' bytes)."""
    import pyarrow as pa
    import ray.data

    tables = []
    for start in range(0, len(tasks), files_per_block):
        chunk = tasks[start : start + files_per_block]
        tables.append(pa.table({
            "index": pa.array(range(start, start + len(chunk)), pa.int64()),
            "src": pa.array([str(t.src) for t in chunk], pa.string()),
            "dst": pa.array([str(t.dst) for t in chunk], pa.string()),
            "thumbnail": pa.array([bool(t.thumbnail) for t in chunk], pa.bool_()),
        }))
    return ray.data.from_arrow(tables)


def colorize_dataset(ds, pool: PoolPlan | None = None, *, files_per_call: int | None = None, worker_class=None,
                     **options):
    """Colorize the files of ``ds`` (columns ``src``, ``dst``, optional ``index``, ``thumbnail``) on an actor pool.

    Args:
        ds: a ``ray.data.Dataset``.
        pool: actors and their CPU/GPU requests (default: ``size_pool`` on the connected cluster's alive nodes
            for ``options["backend"]``).
        files_per_call: files per ``ColorizeBatch`` call (default ``FILES_PER_CALL``); Ray bundles smaller
            blocks up to it, so give the block size of ``ds`` to keep one call per block.
        worker_class: the callable class each actor runs (default ``ColorizeBatch``; a subclass of it, say,
            that also does something with each output).
        **options: ``colorize.ray.worker.ColorizeBatch`` arguments (model, backend, precision, working_size,
            max_pixels, quality, batch_size, jobs, threads); ``threads`` defaults to the pool's.

    Returns:
        A lazy ``ray.data.Dataset`` of status rows (``colorize.ray.worker.STATUS_COLUMNS``), one per file.
    """
    import ray.data

    from colorize.ray.worker import ColorizeBatch

    if pool is None:
        from colorize.ray.cluster import alive_nodes
        from colorize.ray.pool import size_pool

        pool = size_pool(alive_nodes(), backend=options.get("backend", "auto"))
    options.setdefault("threads", pool.threads)
    return ds.map_batches(
        worker_class or ColorizeBatch,
        fn_constructor_kwargs=options,
        batch_size=files_per_call or FILES_PER_CALL,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=pool.actors),
        num_cpus=pool.cpus,
        num_gpus=pool.gpus or None,
        udf_modifying_row_count=False,
        runtime_env={"env_vars": ACTOR_ENV},
    )
