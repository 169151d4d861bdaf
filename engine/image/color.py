"""sRGB (D65) <-> CIE Lab in numpy, and the model's L/ab normalization.

This module is on the inference path, so it imports numpy only (never torch).
The torch twin used in training is ``training/lab.py``; both follow the same
formulas as scikit-image's ``rgb2lab``/``lab2rgb`` (sRGB companding, D65 white,
CIE 1976 L*a*b*), and tests check both against scikit-image.

Arrays are channel-last: ``rgb[..., 3]`` in [0, 1] and ``lab[..., 3]`` with
L in [0, 100] and a, b roughly in [-128, 127].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# sRGB (linear) -> XYZ, D65, as in scikit-image / IEC 61966-2-1.
_RGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
# D65 / 2-degree observer reference white, as in scikit-image.
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPS = 216.0 / 24389.0  # (6/29)^3
_KAPPA = 24389.0 / 27.0


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.maximum(c, 0.0)
    return np.where(c > 0.0031308, 1.055 * np.power(c, 1.0 / 2.4) - 0.055, 12.92 * c)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1], shape (..., 3) -> Lab, shape (..., 3). Computes in float64
    for float64 input, float32 otherwise."""
    dtype = np.float64 if rgb.dtype == np.float64 else np.float32
    rgb = np.asarray(rgb, dtype=dtype)
    xyz = _srgb_to_linear(rgb) @ _RGB_TO_XYZ.T.astype(dtype)
    xyz = xyz / _WHITE.astype(dtype)
    f = np.where(xyz > _EPS, np.cbrt(xyz), (_KAPPA * xyz + 16.0) / 116.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    L = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return np.stack([L, a, b], axis=-1).astype(dtype, copy=False)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Lab, shape (..., 3) -> sRGB clipped to [0, 1], shape (..., 3)."""
    dtype = np.float64 if lab.dtype == np.float64 else np.float32
    lab = np.asarray(lab, dtype=dtype)
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    fz = np.maximum(fz, 0.0)  # as scikit-image: negative z is clipped
    f = np.stack([fx, fy, fz], axis=-1)
    xyz = np.where(f > 6.0 / 29.0, f**3, (116.0 * f - 16.0) / _KAPPA)
    xyz = xyz * _WHITE.astype(dtype)
    rgb = _linear_to_srgb(xyz @ _XYZ_TO_RGB.T.astype(dtype))
    return np.clip(rgb, 0.0, 1.0).astype(dtype, copy=False)


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """L channel only (cheaper than a full conversion): shape (...,)."""
    dtype = np.float64 if rgb.dtype == np.float64 else np.float32
    y = _srgb_to_linear(np.asarray(rgb, dtype=dtype)) @ _RGB_TO_XYZ[1].astype(dtype)
    return np.where(y > _EPS, 116.0 * np.cbrt(y) - 16.0, _KAPPA * y).astype(dtype, copy=False)


def l_to_gray(L: np.ndarray) -> np.ndarray:
    """The sRGB value in [0, 1] of the gray (a = b = 0) of lightness ``L`` (any shape; R = G = B = this)."""
    dtype = np.float64 if np.asarray(L).dtype == np.float64 else np.float32
    L = np.asarray(L, dtype=dtype)
    fy = (L + 16.0) / 116.0
    y = np.where(fy > 6.0 / 29.0, fy**3, L / _KAPPA)
    return np.clip(_linear_to_srgb(y), 0.0, 1.0).astype(dtype, copy=False)


@dataclass(frozen=True)
class Normalization:
    """How a model sees Lab. Recorded in every checkpoint and ONNX file.

    model_L = (L - l_center) / l_scale   (L in [0, 100] -> [-1, 1] by default)
    model_ab = ab / ab_scale             (ab in about [-110, 110] -> [-1, 1])
    """

    l_center: float = 50.0  # L value mapped to 0
    l_scale: float = 50.0  # L half-range mapped to 1
    ab_scale: float = 110.0  # |ab| mapped to 1

    def normalize_l(self, L):
        return (L - self.l_center) / self.l_scale

    def denormalize_l(self, l):
        return l * self.l_scale + self.l_center

    def normalize_ab(self, ab):
        return ab / self.ab_scale

    def denormalize_ab(self, ab):
        return ab * self.ab_scale

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        unknown = set(d) - {"l_center", "l_scale", "ab_scale"}
        if unknown:
            raise ValueError(f"normalization: unknown fields {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in d.items()})


DEFAULT_NORMALIZATION = Normalization()
