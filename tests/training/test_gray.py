"""Gray inputs as users make them (colorize.training.gray): the luma formulas, the model input, the evaluation protocol."""

import numpy as np
import pytest
import torch
from PIL import Image

from colorize.image.color import DEFAULT_NORMALIZATION as NORM
from colorize.image.color import rgb_to_l
from colorize.training.gray import GRAY_METHODS, check_method, gray_images, gray_uint8, model_l_torch, model_l_uint8


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)


def test_pillow_method_is_pillows_convert_l(rgb):
    for im in rgb:
        np.testing.assert_array_equal(gray_uint8(im, "pillow"), np.asarray(Image.fromarray(im).convert("L")))


def test_luma_weights(rgb):
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    assert gray_uint8(px, "rec709").tolist() == [[54, 182, 18]]
    assert gray_uint8(px, "mean").tolist() == [[85, 85, 85]]
    assert gray_uint8(px, "pillow").tolist() == [[76, 150, 29]]
    with pytest.raises(ValueError, match="no gray file for method 'lstar'"):
        gray_uint8(px, "lstar")


def test_model_input_is_the_lstar_of_the_gray_file(rgb):
    """What the engine computes from a gray file (v, v, v) is what training feeds."""
    t = torch.from_numpy(rgb)
    for name in ("pillow", "rec709", "mean"):
        l = model_l_uint8(t, name, NORM)[:, 0].numpy()
        g = gray_uint8(rgb, name).astype(np.float64) / 255.0
        want = NORM.normalize_l(rgb_to_l(np.repeat(g[..., None], 3, -1)))
        np.testing.assert_allclose(l, want, atol=2e-3)
    lstar = model_l_uint8(t, "lstar", NORM)[:, 0].numpy()
    np.testing.assert_allclose(lstar, NORM.normalize_l(rgb_to_l(rgb / 255.0)), atol=2e-3)
    # and the methods really differ on colour images
    assert float((model_l_uint8(t, "pillow", NORM) - model_l_uint8(t, "lstar", NORM)).abs().max()) > 0.05


def test_mixed_batch_picks_per_image(rgb):
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
    idx = torch.tensor([GRAY_METHODS.index("mean"), GRAY_METHODS.index("lstar")])
    l = model_l_torch(x, idx, NORM)
    torch.testing.assert_close(l[0], model_l_uint8(torch.from_numpy(rgb[:1]), "mean", NORM)[0])
    torch.testing.assert_close(l[1], model_l_uint8(torch.from_numpy(rgb[1:]), "lstar", NORM)[0])


def test_gray_baseline_is_the_gray_file(rgb):
    g = gray_images(torch.from_numpy(rgb), "pillow", NORM).numpy()
    assert g.shape == rgb.shape and (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()
    np.testing.assert_array_equal(g[0, ..., 0], np.asarray(Image.fromarray(rgb[0]).convert("L")))
    with pytest.raises(ValueError, match="gray method must be one of"):
        check_method("luma")
    assert check_method("mixed", allow_mixed=True) == "mixed"
