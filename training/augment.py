"""Batch augmentation on uint8 NHWC tensors (on their device; the random draws from a CPU generator)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def to_float_nchw(images: Tensor) -> Tensor:
    """uint8 [N, H, W, 3] -> float32 [N, 3, H, W] in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def random_flip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each image of an NCHW batch left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    if flip.any():
        x = x.clone()
        x[flip] = x[flip].flip(-1)
    return x


def random_crop(x: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Random HxW crop of each NCHW image after zero-padding it by ``padding`` pixels."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).tolist()
    return torch.stack([padded[i, :, y : y + h, x_ : x_ + w] for i, (y, x_) in enumerate(zip(dy, dx))])
