"""The compiled 8-bit merge (engine/image/merge_jit.py) against the numpy merge it replaces.

Same float32 operations in the same order, so the outputs are equal except where numpy's branch-free blend of
the two Lab companding branches rounds differently from the compiled branch: at most one code, on a tiny
fraction of pixels (MAX_DIFFERENT).
"""

import numpy as np
import pytest

from colorize.image import merge

pytest.importorskip("numba")
from colorize.image import merge_jit  # noqa: E402

MAX_DIFFERENT = 1e-4  # fraction of output values allowed to differ by one code


@pytest.fixture(autouse=True)
def _compiled_for_every_size(monkeypatch):
    monkeypatch.setattr(merge, "JIT_MIN_PIXELS", 0)  # small test images through the compiled merge too
    monkeypatch.setattr(merge, "_compiled_for_all", False)  # as a fresh process (another test may have set it)


def _numpy_compose(monkeypatch, *args, **kw):
    with monkeypatch.context() as m:
        m.setenv("COLORIZE_NO_JIT", "1")
        assert merge.compiled() is None
        return merge.compose(*args, **kw)


@pytest.mark.parametrize("shape, ab_shape", [
    ((321, 481), (160, 256)),     # a BSDS500 photo at working size 256: enlarged ab
    ((1080, 1920), (144, 256)),
    ((97, 64), (97, 64)),         # same size: no enlargement
    ((1, 1), (1, 1)),
    ((1, 9), (1, 2)),
    ((321, 481, 3), (160, 256)),  # colour input: its luminance, banded
    ((5, 3, 3), (5, 3)),
])
def test_compiled_merge_equals_numpy(monkeypatch, shape, ab_shape):
    assert merge.compiled() is merge_jit
    rng = np.random.default_rng(sum(shape))
    px = rng.integers(0, 256, shape, dtype=np.uint8)
    px.flat[: px.size // 20] = rng.integers(0, 8, px.size // 20)  # near-black pixels: the linear companding branch
    ab = (rng.standard_normal((2, *ab_shape)) * 0.6).astype(np.float32)  # many out of gamut
    got = merge.compose(px, ab, np.uint8, ab_scale=110.0)
    ref = _numpy_compose(monkeypatch, px, ab, np.uint8, ab_scale=110.0)
    assert got.shape == ref.shape == (*shape[:2], 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(np.int16) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() <= MAX_DIFFERENT


def test_compiled_merge_keeps_the_input_luminance():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    ab = (rng.standard_normal((2, 16, 20)) * 0.8).astype(np.float32)
    out = merge.compose(g, ab, np.uint8, ab_scale=110.0)
    lum = merge.lightness(out)
    assert np.abs(lum - merge.lightness(g)).max() < 0.8  # one 8-bit code of sRGB is ~0.4 L* at most mid-range


def test_other_dtypes_stay_on_numpy(monkeypatch):
    calls = []
    monkeypatch.setattr(merge_jit, "merge_gray", lambda *a: calls.append(a))
    g16 = np.full((4, 4), 30000, np.uint16)
    out = merge.compose(g16, np.zeros((2, 4, 4), np.float32), np.uint16)
    assert out.dtype == np.uint16 and not calls
    merge.compose(np.zeros((4, 4), np.uint8), np.zeros((2, 4, 4), np.float32), np.float32)
    assert not calls


def test_no_jit_environment_switch(monkeypatch):
    monkeypatch.setenv("COLORIZE_NO_JIT", "1")
    assert merge.compiled() is None
    monkeypatch.setenv("COLORIZE_NO_JIT", "0")
    assert merge.compiled() is merge_jit


def test_images_under_the_size_threshold_stay_on_numpy(monkeypatch):
    calls = []
    monkeypatch.setattr(merge_jit, "merge_gray", lambda *a: calls.append(a))
    monkeypatch.setattr(merge, "JIT_MIN_PIXELS", 64)
    merge.compose(np.zeros((7, 9), np.uint8), np.zeros((2, 7, 9), np.float32))  # 63 pixels: numpy
    assert not calls
    merge.compose(np.zeros((8, 8), np.uint8), np.zeros((2, 8, 8), np.float32))  # 64 pixels: compiled
    assert len(calls) == 1


def test_use_compiled_takes_every_size_from_then_on(monkeypatch):
    calls = []
    monkeypatch.setattr(merge_jit, "merge_gray", lambda *a: calls.append(a))
    monkeypatch.setattr(merge, "JIT_MIN_PIXELS", 64)
    monkeypatch.setattr(merge, "_compiled_for_all", False)
    monkeypatch.setattr(merge, "_warm_up_in_background", lambda: None)  # its warm-up merge is not one of these
    merge.compose(np.zeros((2, 2), np.uint8), np.zeros((2, 2, 2), np.float32))
    assert not calls
    merge.use_compiled()
    merge.compose(np.zeros((2, 2), np.uint8), np.zeros((2, 2, 2), np.float32))
    assert len(calls) == 1
