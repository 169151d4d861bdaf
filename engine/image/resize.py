"""Working resolution: which size the model runs at, and resizing float planes to and from it.

Rule (``working_shape``): an image whose long side is at most ``working_size``
runs at its own size (the engine edge-pads it to the model's stride), unless it
is below ``min_size`` (a model trained on small images enlarged, see
``colorize.colorizer``): then it is enlarged so that its long side is ``min_size``. A larger
one is scaled so that its long side is ``working_size`` keeping its aspect
ratio; each side is then rounded to the nearest multiple of the model's stride
(sides shorter than one stride are rounded to whole pixels, at least 1), so
the engine does not pad and same-aspect photos share one batch shape.

L is reduced to the working size with Pillow's float ("F") bilinear resampling,
antialiased (the filter support grows with the scale). The predicted ab is
enlarged back with ``RowUpsampler``: the same bilinear result as Pillow's when
enlarging (smooth, pixel centres aligned), computed a band of rows at a time so
that ``colorize.image.merge`` never stores full-size ab planes. (When stride rounding
makes a working side slightly larger than the image's, that side is plain
linear interpolation, without antialiasing.)
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def working_shape(h: int, w: int, working_size: int, stride: int = 1, min_size: int = 0) -> tuple[int, int]:
    """(h', w') the model runs at for an h x w image (see the module docstring).

    Raises:
        ValueError: a size below 1.
    """
    if h < 1 or w < 1:
        raise ValueError(f"image size must be at least 1x1, got {h}x{w}")
    if working_size < 1:
        raise ValueError(f"working_size must be >= 1, got {working_size}")
    if max(h, w) < min(min_size, working_size):
        scale = min(min_size, working_size) / max(h, w)
    elif max(h, w) <= working_size:
        return h, w
    else:
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


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-centre-aligned linear interpolation taps (i0, i1, weight of i1), edges clamped."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.minimum(np.floor(src).astype(np.intp), max(n_in - 2, 0))
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


class RowUpsampler:
    """Bilinear enlargement of small planes [C, h, w] to [C, H, W], produced a band of rows at a time.

    Same result as Pillow's bilinear resize when enlarging (pixel centres aligned, edges clamped),
    but the full-size planes are never stored: ``rows(r0, r1)`` interpolates the horizontally
    enlarged [C, h, W] planes (computed once) between their two nearest rows.
    """

    def __init__(self, planes: np.ndarray, shape: tuple[int, int]):
        c, h, w = planes.shape
        self.shape = shape
        i0, i1, f = _linear_taps(w, shape[1])
        p = np.asarray(planes, dtype=np.float32)
        wide = p[:, :, i0] * (1 - f)
        wide += p[:, :, i1] * f
        self._wide = wide  # [C, h, W]
        self._r0, self._r1, self._g = _linear_taps(h, shape[0])

    def taps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(horizontally enlarged planes [C, h, W], row index i0 [H], i1 [H], weight of i1 [H]): row r of the
        result is ``wide[:, i0[r]] * (1 - g[r]) + wide[:, i1[r]] * g[r]``, as ``rows`` computes it."""
        return self._wide, self._r0, self._r1, self._g

    def rows(self, r0: int, r1: int) -> np.ndarray:
        """Rows r0..r1 of the enlarged planes: float32 [C, r1 - r0, W].

        Two taps per row, as element-wise products: a matrix product here would go through BLAS, whose own
        threads contend with the pipeline's decode/encode threads (about 2x slower end to end on 2 cores).
        """
        i0, i1, g = self._r0[r0:r1], self._r1[r0:r1], self._g[r0:r1, None]
        out = self._wide[:, i0] * (1 - g)
        out += self._wide[:, i1] * g
        return out
