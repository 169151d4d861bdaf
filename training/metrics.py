"""Colorization quality metrics on 8-bit RGB, as a user sees the output.

All functions take uint8 tensors [N, H, W, 3] (RGB) and return float64 per-image
values [N] unless said otherwise.

* PSNR: 10 log10(255^2 / MSE) per image over all pixels and channels; the
  per-image values are averaged (``psnr`` mean), and separately the PSNR of the
  mean MSE is reported (``psnr_from_mse``). An exact match is capped at 100 dB.
* SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
  K2 = 0.03, L = 255, population covariances, computed per RGB channel over the
  "valid" window positions and averaged over channels; this equals
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1)``.
* Colorfulness: Hasler & Suesstrunk 2003, on 0..255 values:
  rg = R - G, yb = (R + G) / 2 - B,
  M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2).
  The colorfulness ratio of a method is mean_i M(output_i) / mean_i M(truth_i).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from colorize.image.color import DEFAULT_NORMALIZATION, Normalization

PSNR_CAP_DB = 100.0


def _check_pair(pred: Tensor, truth: Tensor) -> None:
    if pred.shape != truth.shape or pred.dim() != 4 or pred.shape[-1] != 3:
        raise ValueError(f"expected two uint8 [N, H, W, 3] batches of the same shape, got "
                         f"{list(pred.shape)} and {list(truth.shape)}")


def mse_per_image(pred: Tensor, truth: Tensor) -> Tensor:
    """Mean squared error per image on 0..255 values."""
    _check_pair(pred, truth)
    d = pred.double() - truth.double()
    return d.square().flatten(1).mean(1)


def psnr_from_mse(mse: Tensor | float) -> Tensor:
    """PSNR in dB of MSE values on 0..255 (capped at ``PSNR_CAP_DB``)."""
    mse = torch.as_tensor(mse, dtype=torch.float64)
    floor = 255.0**2 / 10 ** (PSNR_CAP_DB / 10)
    return 10.0 * torch.log10(255.0**2 / mse.clamp_min(floor))


def psnr(pred: Tensor, truth: Tensor) -> Tensor:
    """Per-image PSNR in dB."""
    return psnr_from_mse(mse_per_image(pred, truth))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: Tensor, truth: Tensor, *, win_size: int = 11, sigma: float = 1.5, data_range: float = 255.0) -> Tensor:
    """Per-image SSIM (mean over valid window positions and RGB channels).

    Raises:
        ValueError: images smaller than the window.
    """
    _check_pair(pred, truth)
    if min(pred.shape[1:3]) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}x{win_size}, got {list(pred.shape[1:3])}")
    x = pred.double().permute(0, 3, 1, 2)
    y = truth.double().permute(0, 3, 1, 2)
    n, c, h, w = x.shape
    g = _gaussian_window(win_size, sigma)
    kh, kw = g.view(1, 1, -1, 1), g.view(1, 1, 1, -1)

    def blur(t: Tensor) -> Tensor:
        t = t.reshape(n * c, 1, *t.shape[-2:])
        return F.conv2d(F.conv2d(t, kh), kw).view(n, c, h - win_size + 1, w - win_size + 1)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def hasler_suesstrunk(r: Tensor, g: Tensor, b: Tensor, eps: float = 0.0) -> Tensor:
    """Hasler-Suesstrunk colourfulness of each row of the [N, P] channel planes (0-255 scale); ``eps`` inside the
    square roots keeps the gradient finite at a gray image (``colorize.training.losses``)."""
    rg = r - g
    yb = 0.5 * (r + g) - b
    std = torch.sqrt(rg.var(1, unbiased=False) + yb.var(1, unbiased=False) + eps)
    mean = torch.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2 + eps)
    return std + 0.3 * mean


def colorfulness(rgb: Tensor) -> Tensor:
    """Hasler-Suesstrunk colorfulness of each uint8 RGB image (0 for a gray image)."""
    if rgb.dim() != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"expected uint8 [N, H, W, 3], got {list(rgb.shape)}")
    return hasler_suesstrunk(*rgb.double().flatten(1, 2).unbind(-1))  # [N, HW] each


def mean_ab(rgb: Tensor) -> Tensor:
    """Mean Lab a*, b* of each uint8 RGB image [N, H, W, 3] -> [N, 2] (float64): its overall colour cast.

    The difference between a colorized image's and its original's is the cast the colorizer added: b* > 0 is
    yellow/warm, b* < 0 blue/cool, a* > 0 red/magenta, a* < 0 green.
    """
    from colorize.training.lab import rgb_to_lab

    if rgb.dim() != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"expected uint8 [N, H, W, 3], got {list(rgb.shape)}")
    lab = rgb_to_lab(rgb.permute(0, 3, 1, 2).double() / 255.0)
    return lab[:, 1:].mean(dim=(2, 3))


def to_uint8(rgb: Tensor) -> Tensor:
    """float sRGB [N, 3, H, W] in [0, 1] -> uint8 [N, H, W, 3], rounded as an image writer would."""
    return (rgb.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def gray_baseline(rgb: Tensor, norm: Normalization = DEFAULT_NORMALIZATION) -> Tensor:
    """The do-nothing colorizer: keep L, set ab = 0 (uint8 [N, H, W, 3] in and out)."""
    from colorize.training.lab import merge_lab, split_lab

    x = rgb.permute(0, 3, 1, 2).float() / 255.0
    l, ab = split_lab(x, norm)
    return to_uint8(merge_lab(l, torch.zeros_like(ab), norm))


def gap_recovered(acc_model: float, acc_gray: float, acc_truth: float) -> float:
    """Fraction of the gray-to-true-colour accuracy gap that the colorized images recover."""
    gap = acc_truth - acc_gray
    return (acc_model - acc_gray) / gap if gap != 0 else math.nan
