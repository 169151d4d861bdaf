"""Sizing the ``colorize images --ray`` actor pool from a cluster's resources (no Ray needed)."""

import math

import pytest

from colorize.ray.pipeline import MAX_FILES_PER_BLOCK, files_per_block
from colorize.ray.pool import RESERVED_CPUS, fitting_actors, size_pool


@pytest.mark.parametrize("nodes, cpus, threads, per_node", [
    ([{"CPU": 2}], 1.5, 2, [1]),  # 2 x 1 CPU deadlocked a 2-CPU instance; the reserve keeps 0.5 free
    ([{"CPU": 1}, {"CPU": 1}], 0.501, 1, [1, 1]),  # 0.5 would let Ray put both actors on one node
    ([{"CPU": 16}] * 3, 3.875, 4, [4, 4, 4]),
    ([{"CPU": 8}, {"CPU": 16}], 3.75, 4, [2, 4]),  # the smallest node sets the share, the larger holds more
    ([{"CPU": 0}, {"CPU": 4}], 3.5, 4, [0, 1]),  # a head node kept free of work (num_cpus=0) gets no actor
    ([{"CPU": 3}], 2.5, 3, [1]),
    ([{"CPU": 1}, {"CPU": 8}], 0.501, 1, [1, 8]),  # one thread each, so no more actors than CPUs
])
def test_cpu_pool_leaves_the_reserve_and_threads_match_the_share(nodes, cpus, threads, per_node):
    plan = size_pool(nodes, backend="onnxruntime")
    assert (plan.actors, plan.cpus, plan.gpus, plan.threads) == (sum(per_node), cpus, 0.0, threads)
    assert fitting_actors(nodes, plan) == plan.actors
    for node, n in zip(nodes, per_node):
        assert n == 0 or n * plan.cpus <= node["CPU"] - RESERVED_CPUS + 0.01  # Ray's own tasks keep (about) their CPU
        assert n * plan.threads <= node["CPU"]  # no node runs more threads than it has CPUs
    smallest = min(range(len(nodes)), key=lambda i: nodes[i]["CPU"] if nodes[i]["CPU"] > RESERVED_CPUS else 1e9)
    assert math.floor(nodes[smallest]["CPU"] / plan.cpus) == per_node[smallest]  # Ray can place no more there


def test_gpu_nodes_get_one_actor_per_gpu_with_their_cpus():
    nodes = [{"CPU": 16, "GPU": 2}, {"CPU": 4}]
    plan = size_pool(nodes, backend="auto")
    assert (plan.actors, plan.gpus, plan.cpus, plan.threads) == (2, 1.0, 7.75, 8)
    assert size_pool(nodes, backend="tensorrt").gpus == 1.0
    cpu_only = size_pool(nodes, backend="openvino")  # a CPU backend never asks for a GPU
    assert cpu_only.gpus == 0 and cpu_only.actors == 5
    assert size_pool(nodes, backend="auto", gpus=0).gpus == 0  # --ray-gpus-per-actor 0: CPU actors
    half = size_pool(nodes, backend="auto", gpus=0.5)
    assert half.actors == 4 and half.cpus == 3.875  # (16 - 0.5) / 4 actors sharing 2 GPUs


def test_overrides_and_what_cannot_fit():
    nodes = [{"CPU": 2}, {"CPU": 2}]
    assert size_pool(nodes, actors=7).actors == 7  # more than fit: the rest wait for nodes (autoscaling)
    one = size_pool(nodes, cpus=0.75)
    assert (one.actors, one.cpus, one.threads) == (4, 0.75, 1)
    assert size_pool(nodes, cpus=1.2345).cpus == 1.234  # never rounded up past what a node holds
    with pytest.raises(ValueError, match=r"no node has 4 CPU free for one actor .*nodes: 2 CPU, 2 CPU"):
        size_pool(nodes, cpus=4)
    with pytest.raises(ValueError, match="no node has 1 GPU for one actor; nodes: 2 CPU, 2 CPU"):
        size_pool(nodes, gpus=1)
    with pytest.raises(ValueError, match="no node has more than 0.5 CPU"):
        size_pool([{"CPU": 0.5}])
    for bad, match in [({"actors": 0}, "actors must be >= 1"), ({"cpus": 0}, "CPUs per actor must be > 0"),
                       ({"gpus": -1}, "GPUs per actor must be >= 0")]:
        with pytest.raises(ValueError, match=match):
            size_pool(nodes, **bad)
    assert "2 actors x 1.5 CPU, 2 threads each" == size_pool(nodes).describe()


@pytest.mark.parametrize("n, actors, batch, want", [
    (40, 2, 4, 5), (3, 2, 8, 8), (10_000_000, 100, 8, MAX_FILES_PER_BLOCK), (1000, 4, 8, 63),
])
def test_blocks_balance_the_pool_within_bounds(n, actors, batch, want):
    assert files_per_block(n, actors, batch) == want
