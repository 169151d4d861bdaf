"""Working resolution: which size the model runs at, and resizing float planes to and from it.

Rule (``working_shape``): an image whose long side is at most ``working_size``
runs at its own size (the engine edge-pads it to the model's stride). A larger
one is scaled so that its long side is ``working_size`` keeping its aspect
ratio; each side is then rounded to the nearest multiple of the model's stride
(sides shorter than one stride are rounded to whole pixels, at least 1), so
the engine does not pad and same-aspect photos share one batch shape.

Resizing uses Pillow's float ("F") resampling: bilinear, antialiased when
reducing (the filter support grows with the scale), which is smooth when
enlarging the predicted ab back to full resolution.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def working_shape(h: int, w: int, working_size: int, stride: int = 1) -> tuple[int, int]:
    """(h', w') the model runs at for an h x w image (see the module docstring).

    Raises:
        ValueError: a size below 1.
    """
    if h < 1 or w < 1:
        raise ValueError(f"image size must be at least 1x1, got {h}x{w}")
    if working_size < 1:
        raise ValueError(f"working_size must be >= 1, got {working_size}")
    if max(h, w) <= working_size:
        return h, w
    scale = working_size / max(h, w)

    def side(n: int) -> int:
        s = n * scale
        if s >= stride:
            return max(stride, int(round(s / stride)) * stride)
        return max(1, int(round(s)))

    return side(h), side(w)


def resize_plane(x: np.ndarray, shape: tuple[int, int], resample: int = Image.BILINEAR) -> np.ndarray:
    """Resize a 2-D float32 plane to ``shape`` = (h, w) with Pillow (antialiased when reducing)."""
    h, w = shape
    if x.shape == (h, w):
        return np.asarray(x, dtype=np.float32)
    im = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32))  # 2-D float32 -> mode "F"
    return np.asarray(im.resize((w, h), resample), dtype=np.float32)
