"""The padding rule every colorizer follows for sizes that are not a multiple
of its total stride (torch-free: the ONNX engines pad in numpy by this rule).

Rule: pad the bottom and right edges up to the next multiple of ``stride`` by
replicating the last row/column ("edge" mode), run the network, crop the output
back to (H, W). Replicate rather than reflect because reflect is undefined for
a 1-pixel image; bottom/right only so that output pixel (y, x) stays aligned
with input pixel (y, x).
"""

from __future__ import annotations

import numpy as np


def padded_size(h: int, w: int, stride: int) -> tuple[int, int]:
    """Smallest (H', W') >= (h, w) with both divisible by ``stride``."""
    if h < 1 or w < 1:
        raise ValueError(f"image size must be at least 1x1, got {h}x{w}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return -(-h // stride) * stride, -(-w // stride) * stride


def pad_nchw(x: np.ndarray, stride: int) -> np.ndarray:
    """Edge-pad an (N, C, H, W) array on the bottom/right to a multiple of ``stride``."""
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, w, stride)
    if (ph, pw) == (h, w):
        return x
    return np.pad(x, ((0, 0), (0, 0), (0, ph - h), (0, pw - w)), mode="edge")
