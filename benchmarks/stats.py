"""Latency statistics: percentiles, throughput and ratios against a baseline.

Percentiles use linear interpolation between order statistics (numpy's default
``"linear"`` method), so p50 of an even number of samples is the mean of the
two middle ones. Throughput is images per second of timed compute:
``batch * n / sum(latencies)`` (= batch / mean latency).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

@dataclass(frozen=True)
class LatencyStats:
    """Summary of ``n`` timed calls of one batch each (times in milliseconds)."""

    n: int
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    images_per_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples``, linear interpolation.

    Raises:
        ValueError: no samples, or ``q`` outside [0, 100].
    """
    if len(samples) == 0:
        raise ValueError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


def summarize(latencies_s: Sequence[float], batch: int) -> LatencyStats:
    """Summarize per-call latencies (seconds) of calls that each process ``batch`` images.

    Raises:
        ValueError: no samples, a negative latency, or ``batch`` < 1.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    t = np.asarray(latencies_s, dtype=np.float64)
    if t.size == 0:
        raise ValueError("no latency samples to summarize")
    if (t < 0).any() or not np.isfinite(t).all():
        raise ValueError("latency samples must be finite and >= 0")
    ms = t * 1e3
    total = float(t.sum())
    return LatencyStats(
        n=int(t.size),
        batch=batch,
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        mean_ms=float(ms.mean()),
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        std_ms=float(ms.std()),
        images_per_s=batch * t.size / total if total > 0 else float("inf"),
    )


def speedup(baseline: LatencyStats, candidate: LatencyStats) -> dict[str, float]:
    """How much faster ``candidate`` is than ``baseline`` (> 1 = faster).

    Returns:
        ``latency``: baseline p50 / candidate p50; ``throughput``: candidate img/s / baseline img/s.
    """
    return {
        "latency": baseline.p50_ms / candidate.p50_ms if candidate.p50_ms > 0 else float("inf"),
        "throughput": candidate.images_per_s / baseline.images_per_s if baseline.images_per_s > 0 else float("inf"),
    }
