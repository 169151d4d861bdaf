import math

import numpy as np
import pytest

from colorize.benchmarks.stats import percentile, speedup, summarize


def test_percentile_linear_interpolation():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile(range(1, 11), 90) == pytest.approx(9.1)
    assert percentile(range(1, 11), 99) == pytest.approx(9.91)
    assert percentile([7.0], 99) == 7.0


@pytest.mark.parametrize("bad", [[], None])
def test_percentile_rejects_empty(bad):
    with pytest.raises((ValueError, TypeError)):
        percentile(bad, 50)


def test_percentile_rejects_bad_q():
    with pytest.raises(ValueError, match="q must be in"):
        percentile([1, 2], 101)


def test_summarize_known_samples():
    lat = [0.010, 0.020, 0.030, 0.040]  # seconds
    st = summarize(lat, batch=8)
    assert st.n == 4 and st.batch == 8
    assert st.p50_ms == pytest.approx(25.0)
    assert st.p90_ms == pytest.approx(37.0)
    assert st.p99_ms == pytest.approx(39.7)
    assert st.mean_ms == pytest.approx(25.0)
    assert (st.min_ms, st.max_ms) == (pytest.approx(10.0), pytest.approx(40.0))
    assert st.images_per_s == pytest.approx(8 * 4 / 0.1)  # batch * calls / total time


def test_summarize_rejects_bad_input():
    with pytest.raises(ValueError, match="batch"):
        summarize([0.1], batch=0)
    with pytest.raises(ValueError, match="no latency"):
        summarize([], batch=1)
    with pytest.raises(ValueError, match=">= 0"):
        summarize([0.1, -0.1], batch=1)


def test_speedup_ratios():
    base = summarize([0.04] * 5, batch=2)
    cand = summarize([0.01] * 5, batch=2)
    r = speedup(base, cand)
    assert r["latency"] == pytest.approx(4.0)
    assert r["throughput"] == pytest.approx(4.0)
    # throughput ratio uses means, latency ratio uses medians: a slow outlier moves only the first
    cand2 = summarize([0.01] * 4 + [0.06], batch=2)
    r2 = speedup(base, cand2)
    assert r2["latency"] == pytest.approx(4.0)
    assert r2["throughput"] == pytest.approx(np.mean([0.04] * 5) / np.mean([0.01] * 4 + [0.06]))
    assert not math.isclose(r2["throughput"], 4.0)
