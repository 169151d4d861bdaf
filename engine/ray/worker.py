"""``ColorizeBatch``: the callable class that Ray Data's ``map_batches`` runs on each actor of the pool.

    ds = ray.data.from_items([{"src": "in/a.png", "dst": "out/a.png"}, ...])
    status = ds.map_batches(ColorizeBatch, fn_constructor_kwargs={"model": "efficientnet_lite0-unet-photos", "threads": 2},
                            batch_size=32, compute=ray.data.ActorPoolStrategy(size=4), num_cpus=2)

``__init__`` loads one ``colorize.Colorizer`` per actor (backend ``auto`` by default: on a node with a GPU
visible to the actor it picks the GPU backend, elsewhere the fastest CPU one). ``__call__`` colorizes a batch
of files with the code the local ``colorize images`` runs (``colorize.job.runner.TaskRunner``: decode, batched
inference, merge, encode, temporary file + rename beside the output) and returns one small status row per
file: pixels never travel through Ray, only paths and status.

Input columns: ``src`` and ``dst`` (paths every node can read and write), optional ``index`` (echoed) and
``thumbnail`` (make report thumbnails). Output columns: ``STATUS_COLUMNS``. A file that cannot be colorized
is a row with ``ok`` False and its ``error``; it never fails the batch.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from colorize.artifacts.model_ref import DEFAULT_PHOTO_MODEL

#: Columns of the rows ``ColorizeBatch`` returns (thumbnails are data: URIs, or "").
STATUS_COLUMNS = ("index", "src", "dst", "ok", "error", "width", "height", "before", "after", "node", "pid", "engine")


def _node_id() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except ImportError:
        pass
    import socket

    return socket.gethostname()


def _engine_options(backend: str, threads: int) -> dict:
    """``num_threads`` for backends that take it (``auto`` passes it to each one that does)."""
    if backend == "auto":
        return {"num_threads": threads}
    from colorize.backends import backend_class

    return {"num_threads": threads} if "num_threads" in inspect.signature(backend_class(backend)).parameters else {}


class ColorizeBatch:
    """Colorize batches of image files on one actor (see the module docstring).

    Args:
        model, backend, precision: as ``colorize.Colorizer.load`` (``colorize images --model/--backend/--precision``).
        **options: the other ``colorize.job.JobOptions`` fields (working_size, max_pixels, quality, batch_size,
            small_model, small_max_side, colour_strength, jobs), with its defaults.
        threads: inference threads (default: the CPUs this process may use); Ray gives an actor
            ``num_cpus`` of scheduling share, not a CPU set, so pass its share here.
        jobs: decode/encode threads (default: ``threads``).
    """

    def __init__(
        self,
        model: str | os.PathLike = DEFAULT_PHOTO_MODEL,
        backend: str = "auto",
        precision: str = "auto",
        *,
        threads: int | None = None,
        **options,
    ):
        from colorize.artifacts.onnx_files import cpu_cores
        from colorize.image import merge
        from colorize.job.options import JobOptions

        merge.choose_for(None)  # an actor colorizes many files: the compiled merge for all of them
        threads = threads or cpu_cores()
        job = JobOptions(model, backend, precision, **options)
        self.colorizer = job.load_colorizer(**_engine_options(backend, threads))
        batch_size, jobs, quality = job.batch_size, job.jobs, job.quality
        self.options = SimpleNamespace(batch_size=batch_size, jobs=jobs or threads, quality=quality)
        self.engine = f"{self.colorizer.engine.backend}/{self.colorizer.engine.precision}"
        self.node = _node_id()
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from colorize.job.plan import Task
        from colorize.job.runner import TaskRunner

        srcs, dsts = [str(s) for s in batch["src"]], [str(d) for d in batch["dst"]]
        n = len(srcs)
        index = np.asarray(batch["index"], np.int64) if "index" in batch else np.full(n, -1, np.int64)
        thumbs = np.asarray(batch["thumbnail"], bool) if "thumbnail" in batch else np.zeros(n, bool)
        tasks = [Task(Path(s), Path(d), s, bool(t)) for s, d, t in zip(srcs, dsts, thumbs)]
        runner = TaskRunner(self.colorizer, self.options, report=True)  # errors go back as rows
        runner.run(tasks)
        by_task = {id(o.task): o for o in runner.outcomes}
        outcomes = [by_task.get(id(task)) for task in tasks]
        done = [o if o is not None and o.ok else None for o in outcomes]
        sizes = [o.size if o is not None and o.size else (0, 0) for o in done]

        def text(values) -> np.ndarray:
            return np.asarray(list(values), dtype=object)

        return {
            "index": index,
            "src": text(srcs),
            "dst": text(dsts),
            "ok": np.array([o is not None for o in done], dtype=bool),
            "error": text("" if d is not None else (o.error if o is not None else "not written")
                          for o, d in zip(outcomes, done)),
            "width": np.array([w for w, _ in sizes], dtype=np.int64),
            "height": np.array([h for _, h in sizes], dtype=np.int64),
            "before": text((o.before or "") if o is not None else "" for o in done),
            "after": text((o.after or "") if o is not None else "" for o in done),
            "node": text([self.node] * n),
            "pid": np.full(n, self.pid, dtype=np.int64),
            "engine": text(o.engine if o is not None else self.engine for o in done),
        }

    def __del__(self):
        colorizer = getattr(self, "colorizer", None)
        if colorizer is not None:
            colorizer.close()
