"""pytest-benchmark: the torch-free pre/post-processing around the model.

Run once as plain tests by default (``--benchmark-disable`` in pyproject);
time them with ``python -m pytest tests/bench --benchmark-enable``.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from colorize.colorizer import Colorizer
from colorize.image.color import DEFAULT_NORMALIZATION, lab_to_rgb, rgb_to_lab
from colorize.image.padding import pad_nchw

SIZE = 256


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def test_rgb_to_lab(benchmark, rgb):
    lab = benchmark(rgb_to_lab, rgb / np.float32(255))
    assert lab.shape == (SIZE, SIZE, 3) and 0 <= lab[..., 0].min() and lab[..., 0].max() <= 100


def test_lab_to_rgb(benchmark, rgb):
    lab = rgb_to_lab(rgb / np.float32(255))
    back = benchmark(lab_to_rgb, lab)
    assert np.abs(back * 255 - rgb).max() < 0.5  # float32 round trip, well under one 8-bit level


def test_pad_nchw(benchmark):
    x = np.random.default_rng(0).standard_normal((8, 1, SIZE - 3, SIZE - 5)).astype(np.float32)
    y = benchmark(pad_nchw, x, 8)
    assert y.shape == (8, 1, SIZE, SIZE)


def test_colorizer_prepare_and_finish(benchmark, rgb):
    # the Colorizer's own steps without a model: prepare (L, resize, normalize) + finish (resize ab, merge)
    col = Colorizer(SimpleNamespace(stride=8, normalization=DEFAULT_NORMALIZATION), working_size=128)
    image = Image.fromarray(rgb)

    def pre_post():
        p = col.prepare(image)
        return col.finish(p, np.zeros((2, *p.key), np.float32))

    out = benchmark(pre_post)
    assert out.size == (SIZE, SIZE)
