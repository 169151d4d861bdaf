"""Size the actor pool of ``colorize images --ray`` from the cluster's resources.

Each actor holds one model and runs ``threads`` inference threads (and as many decode/encode threads, which
take turns with inference inside the actor), so its CPU request is its share of a node and the threads it
runs match that share: actors do not oversubscribe a node.

* **CPU actors.** Every node keeps ``RESERVED_CPUS`` free for Ray Data's own tasks (two actors asking 1 CPU
  each on a 2-CPU instance left nothing for them and the job never finished; 0.5 each ran). The smallest
  node's remaining CPUs are split between about one actor per ``CPUS_PER_ACTOR_TARGET`` CPUs (at least one);
  that share is every actor's request, and each node runs as many actors as fit in its own remaining CPUs.
  Ray places actors by their request alone, so the share is raised, where needed, just past the point where
  Ray could put one actor more on the smallest node than planned (and leave it no reserve).
  On 2-CPU nodes: one actor of 1.5 CPUs, 2 threads; on 1-CPU nodes: one of 0.501 (0.5 would let Ray put
  two on one node and none on another), 1 thread; on 16-CPU nodes: four of 3.875, 4 threads each.
  The reserve suits this pipeline, whose input is built on the driver (no read tasks: even a pool that
  books every CPU runs). A pipeline of your own with ``read_*`` upstream needs a whole free CPU per node
  for its read tasks (1 CPU each by default): pass ``cpus`` so that one is left.
* **GPU actors** (the backend can use a GPU and the cluster has one): one actor per GPU, each asking the
  CPUs of its node (less the reserve) divided by the node's GPUs, for decoding and encoding.

Every figure can be overridden (``--ray-actors``, ``--ray-cpus-per-actor``, ``--ray-gpus-per-actor``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: CPUs left free on every node for Ray Data's own tasks.
RESERVED_CPUS = 0.5
#: About one CPU actor per this many CPUs of a node (fewer, larger actors: fewer model copies in memory).
CPUS_PER_ACTOR_TARGET = 4
#: Backends that run on a GPU (``auto`` picks one where a GPU is visible).
GPU_BACKENDS = frozenset({"auto", "tensorrt", "torch-cuda", "onnxruntime-cuda"})


@dataclass(frozen=True)
class PoolPlan:
    """The actor pool: how many actors, and what each asks Ray for and runs."""

    actors: int
    cpus: float  # CPUs each actor asks for
    gpus: float  # GPUs each actor asks for (0: a CPU actor)
    threads: int  # inference (and decode/encode) threads in each actor

    def describe(self) -> str:
        gpu = f", {self.gpus:g} GPU" if self.gpus else ""
        return (f"{self.actors} actor{'s' if self.actors != 1 else ''} x {self.cpus:g} CPU{gpu}, "
                f"{self.threads} thread{'s' if self.threads != 1 else ''} each")


def threads_for(cpus: float) -> int:
    """Threads an actor of ``cpus`` CPUs runs: its share rounded up, at least one."""
    return max(1, math.ceil(cpus - 1e-9))


def size_pool(
    nodes: Sequence[Mapping[str, float]],
    *,
    backend: str = "auto",
    actors: int | None = None,
    cpus: float | None = None,
    gpus: float | None = None,
) -> PoolPlan:
    """The pool for a cluster whose alive nodes have these resources (``{"CPU": 16, "GPU": 1, ...}`` each).

    Args:
        nodes: resources of each alive node (``ray.nodes()[i]["Resources"]``).
        backend: the ``--backend``; only backends in ``GPU_BACKENDS`` get GPU actors by default.
        actors, cpus, gpus: overrides of the pool size and of each actor's CPU and GPU request.

    Raises:
        ValueError: a bad override, or no node can hold one actor of the requested size.
    """
    if actors is not None and actors < 1:
        raise ValueError(f"actors must be >= 1, got {actors}")
    if cpus is not None and cpus <= 0:
        raise ValueError(f"CPUs per actor must be > 0, got {cpus}")
    if gpus is not None and gpus < 0:
        raise ValueError(f"GPUs per actor must be >= 0, got {gpus}")
    if gpus is None:
        gpus = 1.0 if backend in GPU_BACKENDS and any(n.get("GPU", 0) >= 1 for n in nodes) else 0.0
    if cpus is None:
        cpus = _default_cpus(nodes, gpus)
    cpus = math.floor(cpus * 1000 + 1e-6) / 1000  # a request Ray can place: never rounded up
    plan = PoolPlan(1, cpus, gpus, threads_for(cpus))
    fit = fitting_actors(nodes, plan)
    if fit < 1:
        raise ValueError(f"no node has {cpus:g} CPU" + (f" and {gpus:g} GPU" if gpus else "")
                         + f" free for one actor ({RESERVED_CPUS:g} CPU of each node is kept for Ray's own "
                         f"tasks); nodes: {_describe(nodes)}")
    return PoolPlan(actors if actors is not None else fit, cpus, gpus, plan.threads)


def fitting_actors(nodes: Sequence[Mapping[str, float]], plan: PoolPlan) -> int:
    """How many actors of ``plan``'s size the nodes hold now (a larger pool waits for more nodes)."""
    return sum(min(_fits(n, plan.cpus), math.floor(n.get("GPU", 0) / plan.gpus + 1e-9) if plan.gpus else 1 << 30)
               for n in nodes)


def _default_cpus(nodes: Sequence[Mapping[str, float]], gpus: float) -> float:
    if gpus > 0:  # a GPU actor gets its node's CPUs (less the reserve) for decoding and encoding
        shares = [max(RESERVED_CPUS, n.get("CPU", 0) - RESERVED_CPUS) / math.floor(n["GPU"] / gpus + 1e-9)
                  for n in nodes if n.get("GPU", 0) >= gpus]
        if not shares:
            raise ValueError(f"no node has {gpus:g} GPU for one actor; nodes: {_describe(nodes)}")
        return min(shares)
    sizes = [n.get("CPU", 0) for n in nodes if n.get("CPU", 0) > RESERVED_CPUS]
    if not sizes:
        raise ValueError(f"no node has more than {RESERVED_CPUS:g} CPU for an actor; nodes: {_describe(nodes)}")
    smallest = min(sizes)
    per_node = max(1, round(smallest / CPUS_PER_ACTOR_TARGET))
    share = (smallest - RESERVED_CPUS) / per_node
    if math.floor(smallest / share + 1e-9) > per_node:  # Ray, blind to the reserve, could place one more there
        share = math.ceil(smallest / (per_node + 1) * 1000 + 1e-6) / 1000  # 1-CPU nodes: 0.501, not 0.5
    return share


def _describe(nodes: Sequence[Mapping[str, float]]) -> str:
    return ", ".join(f"{n.get('CPU', 0):g} CPU" + (f" + {n['GPU']:g} GPU" if n.get("GPU") else "")
                     for n in nodes) or "none"


def _fits(node: Mapping[str, float], cpus: float) -> int:
    """Actors of ``cpus`` a node holds with its reserve kept (to 1 % of a share: see 0.501 above), and with no
    more threads than it has CPUs (a share under 1 CPU still runs one thread)."""
    cpu = node.get("CPU", 0)
    return max(0, min(math.floor((cpu - RESERVED_CPUS) / cpus + 0.01), math.floor(cpu / threads_for(cpus) + 1e-9)))
