"""Quality metrics: PSNR on known inputs, SSIM against scikit-image, colorfulness, gray baseline."""

import math

import numpy as np
import pytest
import torch

from colorize.image.color import rgb_to_lab
from colorize.training.metrics import (colorfulness, gap_recovered, gray_baseline, mean_ab, mse_per_image, psnr,
                                      psnr_from_mse, ssim, to_uint8)


def _rand(shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def test_psnr_known_values():
    a = torch.full((2, 4, 4, 3), 100, dtype=torch.uint8)
    b = a.clone()
    b[0] += 10  # MSE 100 -> 20 log10(255 / 10)
    b[1, 0, 0, 0] += 1  # MSE 1/48
    p = psnr(b, a)
    assert p[0].item() == pytest.approx(20 * math.log10(25.5), abs=1e-9)
    assert p[1].item() == pytest.approx(10 * math.log10(255**2 * 48), abs=1e-9)
    assert psnr(a, a)[0].item() == pytest.approx(100.0)  # exact match is capped
    mse = mse_per_image(b, a)
    assert psnr_from_mse(mse.mean()).item() == pytest.approx(10 * math.log10(255**2 / ((100 + 1 / 48) / 2)))


@pytest.mark.parametrize("shape", [(2, 16, 16, 3), (1, 24, 19, 3)])
def test_ssim_matches_skimage(shape):
    from skimage.metrics import structural_similarity

    x = _rand(shape, 1)
    y = (x.int() + torch.from_numpy(np.random.default_rng(2).integers(-40, 40, shape))).clamp(0, 255).to(torch.uint8)
    ours = ssim(x, y)
    for i in range(shape[0]):
        ref = structural_similarity(x[i].numpy(), y[i].numpy(), gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=255, channel_axis=-1)
        assert ours[i].item() == pytest.approx(ref, abs=1e-9)
    assert ssim(x, x)[0].item() == pytest.approx(1.0)


def test_ssim_rejects_small_and_mismatched():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(_rand((1, 8, 8, 3)), _rand((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="same shape"):
        psnr(_rand((1, 8, 8, 3)), _rand((1, 8, 9, 3)))


def test_colorfulness():
    gray = torch.from_numpy(np.repeat(np.random.default_rng(0).integers(0, 256, (2, 8, 8, 1), dtype=np.uint8), 3, -1))
    assert colorfulness(gray).abs().max().item() == 0.0
    red = torch.zeros(1, 4, 4, 3, dtype=torch.uint8)
    red[..., 0] = 255  # rg = 255, yb = 127.5, no spread
    assert colorfulness(red).item() == pytest.approx(0.3 * math.hypot(255, 127.5))
    half = red.clone()
    half[:, :2] = 0  # rg and yb are 0 or (255, 127.5) half the time: std = mean = half the amplitude
    expect = math.hypot(127.5, 63.75) + 0.3 * math.hypot(127.5, 63.75)
    assert colorfulness(half).item() == pytest.approx(expect)


def test_gray_baseline_keeps_l_drops_ab():
    x = _rand((3, 8, 8, 3), 5)
    g = gray_baseline(x)
    lab_in = rgb_to_lab(x.numpy() / 255.0)
    lab_out = rgb_to_lab(g.numpy() / 255.0)
    assert np.abs(lab_out[..., 0] - lab_in[..., 0]).max() < 0.5  # rounding to 8 bits only
    assert np.abs(lab_out[..., 1:]).max() < 1.0
    assert g.dtype == torch.uint8 and g.shape == x.shape
    assert colorfulness(g).max().item() < 1.0


def test_to_uint8_and_gap():
    x = torch.tensor([0.0, 0.5, 1.2]).view(1, 3, 1, 1)
    assert to_uint8(x).flatten().tolist() == [0, 128, 255]
    assert gap_recovered(80.0, 60.0, 90.0) == pytest.approx(2 / 3)
    assert math.isnan(gap_recovered(1.0, 5.0, 5.0))


def test_mean_ab_is_the_images_cast():
    gray = torch.full((1, 8, 8, 3), 120, dtype=torch.uint8)
    assert mean_ab(gray).abs().max().item() < 0.01  # D65 white rounding
    warm = gray.clone()
    warm[..., 2] = 60  # less blue: yellow, b* > 0
    cool = gray.clone()
    cool[..., 2] = 200
    m = mean_ab(torch.cat([warm, cool]))
    assert m.shape == (2, 2) and m[0, 1] > 20 and m[1, 1] < -20
    lab = rgb_to_lab(warm[0].numpy().astype(np.float64) / 255.0)
    assert m[0].numpy() == pytest.approx(lab[..., 1:].reshape(-1, 2).mean(0), abs=1e-6)
    half = torch.cat([warm[:, :4], gray[:, 4:]], dim=1)  # the mean over the pixels
    assert mean_ab(half)[0].numpy() == pytest.approx(((m[0] + mean_ab(gray)[0]) / 2).numpy(), abs=1e-9)
    with pytest.raises(ValueError, match="uint8"):
        mean_ab(gray[0])
