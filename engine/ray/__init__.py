"""``colorize images --ray``: the same job on a Ray cluster, with Ray Data batch inference (``docs/ray.md``).

For a Ray program of your own:

    import ray
    from colorize.ray import ColorizeBatch, colorize_dataset, size_pool, alive_nodes

    ray.init()                                                     # or ray.init("auto")
    ds = ray.data.from_items([{"src": "/shared/in/a.png", "dst": "/shared/out/a.png"}, ...])
    rows = colorize_dataset(ds, files_per_call=32, model="efficientnet_lite0-unet-photos").take_all()
    # or by hand: ds.map_batches(ColorizeBatch, fn_constructor_kwargs={...}, compute=ActorPoolStrategy(...), ...)

``run_plan`` runs a planned job (``colorize.job.make_plan``) end to end and returns what the local run
returns. Importing this package is cheap: Ray is imported only when one of these names is used, and its
absence raises ``MissingDependency`` naming the extra (``pip install ".[ray]"``).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ColorizeBatch": "colorize.ray.worker",
    "STATUS_COLUMNS": "colorize.ray.worker",
    "colorize_dataset": "colorize.ray.pipeline",
    "tasks_dataset": "colorize.ray.pipeline",
    "files_per_block": "colorize.ray.pipeline",
    "PoolPlan": "colorize.ray.pool",
    "size_pool": "colorize.ray.pool",
    "connect": "colorize.ray.cluster",
    "alive_nodes": "colorize.ray.cluster",
    "require_ray": "colorize.ray.cluster",
    "ClusterError": "colorize.ray.cluster",
    "RayRun": "colorize.ray.driver",
    "run_tasks": "colorize.ray.driver",
    "run_plan": "colorize.ray.driver",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'colorize.ray' has no attribute {name!r}")
