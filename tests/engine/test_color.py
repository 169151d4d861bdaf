"""Lab conversions (numpy and torch) against scikit-image, within 1e-3."""

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from colorize.image.color import DEFAULT_NORMALIZATION, Normalization, lab_to_rgb, rgb_to_l, rgb_to_lab
from colorize.training import lab as tlab

TOL = 1e-3  # the agreement bound, in Lab units / RGB [0,1] units


def _rgb_samples():
    rng = np.random.default_rng(1234)
    edges = np.array([0.0, 1.0, 0.5, 0.04045, 0.04046, 0.0031308, 1e-6, 0.999])
    grid = np.stack(np.meshgrid(edges, edges, edges, indexing="ij"), -1).reshape(-1, 3)
    return np.concatenate([rng.random((4000, 3)), grid])


def _lab_samples():
    rng = np.random.default_rng(99)
    lab = rgb2lab(_rgb_samples())  # in-gamut colours round-trip exactly
    wild = np.stack([rng.uniform(0, 100, 2000), rng.uniform(-128, 127, 2000), rng.uniform(-128, 127, 2000)], -1)
    edge = np.array([[0, 0, 0], [100, 0, 0], [50, 127, 127], [50, -128, -128], [0, 127, -128], [100, -128, 127]])
    return np.concatenate([lab, wild, edge])


def test_rgb_to_lab_numpy_matches_skimage():
    x = _rgb_samples()
    assert np.abs(rgb_to_lab(x) - rgb2lab(x)).max() < TOL
    assert np.abs(rgb_to_l(x) - rgb2lab(x)[:, 0]).max() < TOL


def test_lab_to_rgb_numpy_matches_skimage():
    lab = _lab_samples()
    with pytest.warns(UserWarning):  # skimage warns about out-of-gamut values
        ref = lab2rgb(lab)
    assert np.abs(lab_to_rgb(lab) - ref).max() < TOL


def test_numpy_float32_batched_shapes():
    x = np.random.default_rng(0).random((4, 5, 7, 3)).astype(np.float32)
    lab = rgb_to_lab(x)
    assert lab.shape == x.shape and lab.dtype == np.float32
    assert np.abs(lab_to_rgb(lab) - x).max() < 1e-4


def test_torch_matches_skimage():
    x = _rgb_samples()
    t = torch.tensor(x.T.reshape(1, 3, -1, 1))
    got = tlab.rgb_to_lab(t).numpy().reshape(3, -1).T
    assert np.abs(got - rgb2lab(x)).max() < TOL
    lab = _lab_samples()
    with pytest.warns(UserWarning):
        ref = lab2rgb(lab)
    got = tlab.lab_to_rgb(torch.tensor(lab.T.reshape(1, 3, -1, 1))).numpy().reshape(3, -1).T
    assert np.abs(got - ref).max() < TOL


def test_torch_split_merge_round_trip():
    rgb = torch.rand(2, 3, 8, 8)
    l, ab = tlab.split_lab(rgb, DEFAULT_NORMALIZATION)
    assert l.shape == (2, 1, 8, 8) and ab.shape == (2, 2, 8, 8)
    assert l.min() >= -1.0001 and l.max() <= 1.0001
    torch.testing.assert_close(tlab.merge_lab(l, ab, DEFAULT_NORMALIZATION), rgb, atol=1e-4, rtol=0)


def test_normalization_round_trip_and_validation():
    n = Normalization(l_center=50, l_scale=50, ab_scale=128)
    assert Normalization.from_dict(n.to_dict()) == n
    assert n.denormalize_ab(n.normalize_ab(64.0)) == 64.0
    with pytest.raises(ValueError, match="bogus"):
        Normalization.from_dict({"bogus": 1})
