"""pytest-benchmark: ``Engine.run`` of every registered backend at its default precision.

One small configuration each (resnet18-unet, batch 1, 32x32); unavailable
backends skip with their reason. Run once by default; ``--benchmark-enable`` times it.
"""

import warnings

import numpy as np
import pytest

from colorize.backends import BACKENDS, backend_class


@pytest.fixture
def shared_cache(tmp_path_factory, monkeypatch):
    """One artifact cache for these tests, so the ONNX export is made once, not per backend."""
    monkeypatch.setenv("COLORIZE_CACHE", str(tmp_path_factory.getbasetemp() / "bench-backends-cache"))


@pytest.mark.parametrize("name", list(BACKENDS))
def test_engine_run(benchmark, name, shared_cache):
    try:
        cls = backend_class(name)
    except ImportError as e:
        pytest.skip(f"{name}: {e}")
    reason = cls.available()
    if reason:
        pytest.skip(f"{name}: {reason}")
    from colorize.engine import Engine

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random-init weights: speed only
        eng = Engine.load("resnet18-unet", backend=name, precision=cls.precisions[0])
    l = np.random.default_rng(0).uniform(-1, 1, (1, 1, 32, 32)).astype(np.float32)
    with eng:
        eng.run(l)  # first call (compilation) outside the timing
        ab = benchmark(eng.run, l)
    assert ab.shape == (1, 2, 32, 32) and np.isfinite(ab).all()
