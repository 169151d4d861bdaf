"""A fake backend world for the harness: engines that "take" known times on a fake clock.

Each fake engine advances the shared clock by its scripted duration on every
``run`` and logs it, so a test knows exactly which durations the harness
should have timed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from colorize.benchmarks.harness import run_benchmark
from colorize.benchmarks.plan import BenchSettings


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeEngine:
    def __init__(self, clock: FakeClock, duration: Callable[[int, int, float, int], float], fail_batch: int | None):
        self.clock, self.duration, self.fail_batch = clock, duration, fail_batch
        self.log: dict[tuple, list[float]] = {}  # (batch, H, W) -> every duration it took
        self.closed = False
        self.stride = 1

    def run(self, l: np.ndarray) -> np.ndarray:
        n, _, h, w = l.shape
        if n == self.fail_batch:
            raise RuntimeError(f"fake failure at batch {n}")
        calls = self.log.setdefault((n, h, w), [])
        dt = self.duration(len(calls), n, self.clock.t, h * w)
        calls.append(dt)
        self.clock.t += dt
        return np.zeros((n, 2, h, w), np.float32)

    def close(self) -> None:
        self.closed = True


class FakeWorld:
    """Fake registry + loader + clock; ``add`` a backend, then ``run`` the harness."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.registry: dict[str, type] = {}
        self.engines: dict[tuple[str, str], FakeEngine] = {}
        self._spec: dict[str, dict] = {}

    def add(self, name, precisions=("fp32",), duration=None, reason=None, load_error=None, fail_batch=None):
        """``duration(call_index, batch, now, pixels) -> seconds`` (default 1 ms per image)."""
        attrs = {"name": name, "precisions": tuple(precisions), "available": classmethod(lambda c: reason)}
        self.registry[name] = type(f"Fake_{name}", (), attrs)
        self._spec[name] = {
            "duration": duration or (lambda i, n, t, px: 1e-3 * n),
            "load_error": load_error,
            "fail_batch": fail_batch,
        }

    def load(self, model: str, backend: str, precision: str) -> FakeEngine:
        spec = self._spec[backend]
        self.clock.t += 0.25  # load time
        if spec["load_error"]:
            raise spec["load_error"]
        eng = FakeEngine(self.clock, spec["duration"], spec["fail_batch"])
        self.engines[(backend, precision)] = eng
        return eng

    def run(self, peaks=None, gflop=2.0, **settings) -> dict:
        s = BenchSettings(**{"batch_sizes": (1, 4), "sizes": ((8, 8),), "warmup": 2, "min_iters": 5,
                             "max_iters": 40, "target_seconds": 0.05, "rounds": 3, **settings})
        return run_benchmark(
            s,
            registry=self.registry,
            load=self.load,
            clock=self.clock,
            peaks=peaks if peaks is not None else {"cpu/fp32": {"gflops": 4000.0, "how": "fake"}},
            gflop=gflop if callable(gflop) else (lambda h, w: gflop),
            machine={"cpu": "Fake CPU", "date_utc": "2026-01-01T00:00:00Z", "isa": {}, "gpus": []},
            log=lambda msg: None,
        )


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
def fake_report(world) -> dict:
    """A small finished report: baseline 4 ms/image with jitter, "fast" 1 ms/image, one unavailable backend."""
    world.add("torch", ("fp32", "bf16"), duration=lambda i, n, t, px: 4e-3 * n * (1 + 0.1 * (i % 3)))
    world.add("fast", ("fp32", "int8"), duration=lambda i, n, t, px: 1e-3 * n)
    world.add("gpu-only", ("fp16",), reason="no CUDA device")
    return world.run()
