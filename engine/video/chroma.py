"""Between a video's Y'CbCr planes and the Colorizer's gray and ab.

* ``gray_table``: decoded luma Y' -> the 8-bit gray the model is given (R' = G' = B'), for limited-range
  (16..235) and full-range (0..255) video.
* ``chroma_from_ab``: the Colorizer's merge (``colorize.image.merge.compose``: the gray's CIE luminance kept,
  ab enlarged from the working size) at the chroma planes' size, then R'G'B' -> Cb, Cr with the stream's
  matrix (BT.601, BT.709 or BT.2020; an untagged stream is BT.709 above 576 lines, BT.601 otherwise, as
  players assume). The luma plane is never recomputed: the file keeps the decoded one.
* ``chroma_level``: how far a frame's chroma is from neutral, to tell a colour input from a gray one.
"""

from __future__ import annotations

import numpy as np
from colorize.image.merge import compose

#: (Kr, Kb) of each Y'CbCr matrix, by FFmpeg's AVColorSpace code.
_MATRICES = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114), 7: (0.212, 0.087), 9: (0.2627, 0.0593),
             10: (0.2627, 0.0593)}
_BT601, _BT709 = (0.299, 0.114), (0.2126, 0.0722)
#: Mean |U - 128| + |V - 128| (8-bit levels) above which a frame counts as colour: a gray film written as 4:2:0
#: has neutral chroma to within the encoder's rounding (well under one level).
COLOUR_LEVEL = 2.0


def full_range(frame) -> bool:
    """Whether a decoded frame's levels are full range (0..255: JPEG range, ``yuvj`` formats)."""
    return frame.color_range == 2 or frame.format.name.startswith("yuvj")


def gray_table(full: bool) -> np.ndarray:
    """uint8 [256]: luma code -> 8-bit gray (identity for full range, 16..235 stretched to 0..255 otherwise)."""
    codes = np.arange(256, dtype=np.float64)
    if full:
        return codes.astype(np.uint8)
    return np.clip(np.round((codes - 16.0) * 255.0 / 219.0), 0, 255).astype(np.uint8)


def matrix(colorspace: int, height: int) -> tuple[float, float]:
    """(Kr, Kb) of the stream's Y'CbCr matrix; untagged: BT.709 above 576 lines, else BT.601."""
    if colorspace in _MATRICES:
        return _MATRICES[colorspace]
    return _BT709 if height > 576 else _BT601


def chroma_from_ab(gray_small: np.ndarray, ab: np.ndarray, ab_scale: float, kr_kb: tuple[float, float],
                   full: bool) -> tuple[np.ndarray, np.ndarray]:
    """U and V (uint8, the shape of ``gray_small``) of the colour with ``gray_small``'s luminance and chroma ``ab``.

    Args:
        gray_small: the frame's gray (``gray_table`` applied) at the chroma planes' size, uint8 [h/2, w/2].
        ab: model-normalized ab at the working size, float32 [2, h', w'] (enlarged here, bilinear).
        ab_scale: model ab -> CIE ab (the model's normalization times the colour strength).
        kr_kb: the Y'CbCr matrix (``matrix``).
        full: full-range levels (0..255) instead of 16..240.
    """
    import cv2

    rgb = compose(gray_small, ab, np.uint8, ab_scale=ab_scale)
    uv = cv2.transform(rgb, _to_uv(kr_kb, full))  # [h, w, 2] uint8, rounded and saturated
    if not full:
        uv = np.clip(uv, 16, 240)
    return np.ascontiguousarray(uv[..., 0]), np.ascontiguousarray(uv[..., 1])


def _to_uv(kr_kb: tuple[float, float], full: bool) -> np.ndarray:
    """The 2x4 affine matrix R'G'B' (0..255) -> (Cb, Cr) codes of a Y'CbCr matrix and range."""
    kr, kb = kr_kb
    kg = 1.0 - kr - kb
    span = 1.0 if full else 224.0 / 255.0
    su, sv = span / (2.0 * (1.0 - kb)), span / (2.0 * (1.0 - kr))
    return np.array([[-kr * su, -kg * su, (1.0 - kb) * su, 128.0],  # Cb = (B' - Y') su + 128
                     [(1.0 - kr) * sv, -kg * sv, -kb * sv, 128.0]], np.float32)  # Cr = (R' - Y') sv + 128


def chroma_level(u: np.ndarray, v: np.ndarray) -> float:
    """Mean |U - 128| + |V - 128| over a sparse grid of the planes (8-bit levels)."""
    su = u[::4, ::4].astype(np.int16)
    sv = v[::4, ::4].astype(np.int16)
    return float(np.abs(su - 128).mean() + np.abs(sv - 128).mean())
