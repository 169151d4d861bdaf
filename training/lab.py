"""sRGB <-> CIE Lab in torch, channel-first ([N, 3, H, W]), for training.

Same formulas and constants as the numpy version in ``engine/image/color.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from colorize.image.color import _EPS, _KAPPA, _RGB_TO_XYZ, _WHITE, _XYZ_TO_RGB, Normalization


def _mat(m, x: Tensor) -> Tensor:
    return torch.as_tensor(m, dtype=x.dtype, device=x.device)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """[N, 3, H, W] sRGB in [0, 1] -> [N, 3, H, W] Lab."""
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).pow(2.4), rgb / 12.92)
    xyz = torch.einsum("ij,njhw->nihw", _mat(_RGB_TO_XYZ, rgb), lin)
    xyz = xyz / _mat(_WHITE, rgb).view(1, 3, 1, 1)
    f = torch.where(xyz > _EPS, xyz.clamp_min(_EPS).pow(1.0 / 3.0), (_KAPPA * xyz + 16.0) / 116.0)
    L = 116.0 * f[:, 1] - 16.0
    a = 500.0 * (f[:, 0] - f[:, 1])
    b = 200.0 * (f[:, 1] - f[:, 2])
    return torch.stack([L, a, b], dim=1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """[N, 3, H, W] Lab -> [N, 3, H, W] sRGB clipped to [0, 1]."""
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = (fy - b / 200.0).clamp_min(0.0)
    f = torch.stack([fx, fy, fz], dim=1)
    xyz = torch.where(f > 6.0 / 29.0, f.pow(3), (116.0 * f - 16.0) / _KAPPA)
    xyz = xyz * _mat(_WHITE, lab).view(1, 3, 1, 1)
    lin = torch.einsum("ij,njhw->nihw", _mat(_XYZ_TO_RGB, lab), xyz).clamp_min(0.0)
    rgb = torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308).pow(1.0 / 2.4) - 0.055, 12.92 * lin)
    return rgb.clamp(0.0, 1.0)


def split_lab(rgb: Tensor, norm: Normalization) -> tuple[Tensor, Tensor]:
    """sRGB batch -> (model L [N,1,H,W], model ab [N,2,H,W]), normalized by ``norm``."""
    lab = rgb_to_lab(rgb)
    return norm.normalize_l(lab[:, :1]), norm.normalize_ab(lab[:, 1:])


def merge_lab(l: Tensor, ab: Tensor, norm: Normalization) -> Tensor:
    """(model L, model ab) -> sRGB batch in [0, 1]."""
    return lab_to_rgb(torch.cat([norm.denormalize_l(l), norm.denormalize_ab(ab)], dim=1))
