"""Full-resolution output: the input's own luminance merged with the model's ab.

The output keeps the input's luminance exactly, so the only full-resolution
quantity needed from the input is its CIE luminance Y; no full-resolution Lab
round trip in float64 is done. Per pixel, in float32 and in row chunks that
stay in cache:

1. ``Y`` (linear relative luminance) and ``fy = f(Y)`` (the Lab companding,
   ``L = 116 fy - 16``) from the source: lookup tables for 8/16-bit gray, an
   sRGB-linearization table for 8/16-bit colour.
2. ``fx = fy + a/500``, ``fz = fy - b/200`` -> X, Z by the inverse companding;
   Y is the input's.
3. Linear RGB = M⁻¹ · XYZ (sRGB primaries, D65, as ``colorize.image.color``).
4. Out-of-gamut pixels are moved toward the gray of the same luminance,
   ``(Y, Y, Y)``, just far enough to fit in [0, 1]. Because the Y row of M sums
   to 1 this keeps Y, hence L, unchanged (plain clipping would not).
5. sRGB encoding: uint8 through a 65,536-entry table, uint16/float exactly.

The working-size ab is enlarged inside the same row loop (bilinear, as Pillow's), so full-resolution
ab planes are never stored.

The result differs from the input's luminance only by the final rounding to
the output's bit depth.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from colorize.image.color import _EPS, _KAPPA, _RGB_TO_XYZ, _WHITE, _XYZ_TO_RGB
from colorize.image.resize import RowUpsampler

_F32 = np.float32
_Y_ROW = _RGB_TO_XYZ[1].astype(_F32)  # sums to 1.0
_M_INV = _XYZ_TO_RGB.astype(_F32)
_XW, _ZW = float(_WHITE[0]), float(_WHITE[2])
_CHUNK_PIXELS = 1 << 16  # rows per chunk = this / width (planes of 256 KB stay in L2)
#: uint8 images of at least this many pixels are merged by the compiled merge (``merge_jit``, when numba is
#: here), smaller ones by numpy: loading the compiled code costs about 0.7 s of CPU once per process (import
#: numba, load its cache), and it saves ~1/3 of the merge, which on an image under 1 MP is a few ms (numpy
#: merges a 384x384 photo in 8 ms, 1080p in 55 ms against 37 ms). Which one merges depends on the size only.
JIT_MIN_PIXELS = 1 << 20
_compiled_for_all = False  # set by use_compiled(): every uint8 image through the compiled merge


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    return np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)


def _blend(mask: np.ndarray, if_true: np.ndarray, if_false: np.ndarray) -> np.ndarray:
    """Branch-free select (much faster than ``np.where`` on incoherent masks)."""
    m = mask.astype(if_true.dtype)
    return if_false + m * (if_true - if_false)


def _f(y: np.ndarray) -> np.ndarray:
    """Lab companding f(t) (cube root above (6/29)^3, its tangent below); float32 or float64."""
    dt = y.dtype.type
    return _blend(y > dt(_EPS), np.cbrt(y), y * dt(_KAPPA / 116.0) + dt(16.0 / 116.0))


def _finv(t: np.ndarray) -> np.ndarray:
    """Inverse of ``_f``."""
    dt = t.dtype.type
    if t.size and t.min() > dt(6.0 / 29.0):  # common case (no near-black pixel): the cube only
        c = t * t
        c *= t
        return c
    return _blend(t > dt(6.0 / 29.0), t * t * t, (t - dt(4.0 / 29.0)) * dt(3.0 * (6.0 / 29.0) ** 2))


def _tables(levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For codes 0..levels-1 (sRGB-encoded): linear value, and for gray Y = linear: f(Y), L."""
    lin = _srgb_to_linear(np.arange(levels) / (levels - 1))
    fy = _f(lin)
    return lin.astype(_F32), fy.astype(_F32), (116.0 * fy - 16.0).astype(_F32)


_LIN8, _FY8, _L8 = _tables(256)
_LIN16, _FY16, _L16 = _tables(65536)


def _encode_table() -> np.ndarray:
    """Linear value (index / 65535) -> rounded 8-bit sRGB code."""
    v = np.arange(65536) / 65535.0
    srgb = np.where(v > 0.0031308, 1.055 * np.power(v, 1.0 / 2.4) - 0.055, 12.92 * v)
    return np.round(255.0 * srgb).astype(np.uint8)


_ENC8 = _encode_table()
# per-channel contributions to Y: _YW8[c][code] = Y-row weight of channel c * linear(code)
_YW8 = [(w * _LIN8.astype(np.float64)).astype(_F32) for w in _RGB_TO_XYZ[1]]
_YW16 = [(w * _LIN16.astype(np.float64)).astype(_F32) for w in _RGB_TO_XYZ[1]]


def _linear(pixels: np.ndarray) -> np.ndarray:
    """sRGB-encoded pixels (uint8, uint16 or float in [0, 1]) -> linear float32."""
    if pixels.dtype == np.uint8:
        return _LIN8.take(pixels)
    if pixels.dtype == np.uint16:
        return _LIN16.take(pixels)
    return _srgb_to_linear(np.clip(pixels, 0.0, 1.0)).astype(_F32)


def luminance(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H×W (gray) or H×W×3 (sRGB) pixels -> (Y, f(Y)), float32 H×W."""
    if pixels.ndim == 2:
        if pixels.dtype == np.uint8:
            return _LIN8.take(pixels), _FY8.take(pixels)
        if pixels.dtype == np.uint16:
            return _LIN16.take(pixels), _FY16.take(pixels)
        y = _linear(pixels)
        return y, _f(y)
    if pixels.dtype in (np.uint8, np.uint16):
        tables = _YW8 if pixels.dtype == np.uint8 else _YW16
        y = tables[0].take(pixels[..., 0])
        y += tables[1].take(pixels[..., 1])
        y += tables[2].take(pixels[..., 2])
    else:
        lin = _linear(pixels)
        y = lin[..., 0] * _Y_ROW[0] + lin[..., 1] * _Y_ROW[1] + lin[..., 2] * _Y_ROW[2]
    np.minimum(y, _F32(1), out=y)  # the weights sum to 1 only to float32 rounding
    return y, _f(y)


def lightness(pixels: np.ndarray) -> np.ndarray:
    """CIE L* in [0, 100], float32 H×W, of H×W or H×W×3 sRGB pixels."""
    if pixels.ndim == 2 and pixels.dtype == np.uint8:
        return _L8.take(pixels)
    if pixels.ndim == 2 and pixels.dtype == np.uint16:
        return _L16.take(pixels)
    h, w = pixels.shape[:2]
    out = np.empty((h, w), _F32)
    rows = max(1, _CHUNK_PIXELS // max(w, 1))
    for r0 in range(0, h, rows):
        fy = luminance(pixels[r0 : r0 + rows])[1]
        np.multiply(fy, _F32(116), out=out[r0 : r0 + rows])
        out[r0 : r0 + rows] -= _F32(16)
    return out


def _compose_chunk(pixels: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """Write sRGB (``out``'s dtype) with the luminance of ``pixels`` and the given a, b into ``out`` [h, w, 3]."""
    y, fy = luminance(pixels)
    x = np.multiply(a, _F32(1 / 500))
    x += fy
    x = _finv(x)
    x *= _F32(_XW)
    z = np.multiply(b, _F32(-1 / 200))
    z += fy
    z = _finv(z)
    z *= _F32(_ZW)
    # d: linear RGB minus the gray of the same luminance (Y, Y, Y); M's Y column enters as (m - 1)
    m = _M_INV
    d = []
    for c in range(3):
        dc = x * m[c, 0]
        dc += y * _F32(m[c, 1] - 1.0)
        dc += z * m[c, 2]
        d.append(dc)
    # Move out-of-gamut pixels toward (Y, Y, Y): rgb = Y + t d with the largest t <= 1 that fits [0, 1].
    tiny = _F32(1e-30)
    hi = np.maximum(d[0], d[1])
    np.maximum(hi, d[2], out=hi)
    np.maximum(hi, tiny, out=hi)
    lo = np.minimum(d[0], d[1])
    np.minimum(lo, d[2], out=lo)
    np.negative(lo, out=lo)
    np.maximum(lo, tiny, out=lo)
    t = np.subtract(_F32(1), y)
    t /= hi
    np.divide(y, lo, out=lo)
    np.minimum(t, lo, out=t)
    np.minimum(t, _F32(1), out=t)
    if out.dtype == np.uint8:  # encode through the table: index = round(65535 * linear)
        t *= _F32(65535)
        base = y * _F32(65535)
        base += _F32(0.5)
        for c in range(3):
            v = d[c]
            v *= t
            v += base
            np.clip(v, _F32(0), _F32(65535.49), out=v)
            out[..., c] = _ENC8.take(v.astype(np.uint16))
    else:
        for c in range(3):
            v = d[c]
            v *= t
            v += y
            out[..., c] = _encode(np.clip(v, _F32(0), _F32(1), out=v), out.dtype)


def _encode(lin: np.ndarray, dtype: np.dtype) -> np.ndarray:
    srgb = _blend(lin > _F32(0.0031308), _F32(1.055) * np.power(lin, _F32(1 / 2.4)) - _F32(0.055), _F32(12.92) * lin)
    if dtype == np.uint16:
        return np.round(np.clip(srgb, 0.0, 1.0) * _F32(65535)).astype(np.uint16)
    return np.clip(srgb, 0.0, 1.0).astype(dtype)


def compose(pixels: np.ndarray, ab: np.ndarray, out_dtype=np.uint8, *, ab_scale: float = 1.0) -> np.ndarray:
    """Merge full-resolution luminance with ab.

    Args:
        pixels: H×W gray or H×W×3 sRGB, uint8/uint16/float in [0, 1]; only its luminance is used.
        ab: float32 [2, h, w]; ``ab * ab_scale`` are a and b in Lab units. When (h, w) is not (H, W)
            it is enlarged bilinearly on the fly, a band of rows at a time (``colorize.image.resize.RowUpsampler``).
        out_dtype: uint8, uint16 or a float dtype (sRGB in [0, 1]).
        ab_scale: multiplies ab (the model's normalization scale).

    Returns:
        H×W×3 sRGB of ``out_dtype`` whose luminance is the input's (to rounding).
    """
    h, w = pixels.shape[:2]
    if ab.ndim != 3 or ab.shape[0] != 2:
        raise ValueError(f"ab must have shape [2, h, w], got {list(ab.shape)}")
    ab = np.asarray(ab, dtype=np.float32)
    if ab_scale != 1.0:
        ab = ab * _F32(ab_scale)
    up = RowUpsampler(ab, (h, w)) if ab.shape[1:] != (h, w) else None
    rows = max(1, _CHUNK_PIXELS // max(w, 1))
    if (np.dtype(out_dtype) == np.uint8 and pixels.dtype == np.uint8 and (h * w >= JIT_MIN_PIXELS or _compiled_for_all)
            and (kernels := compiled()) is not None):
        return _compose_jit(kernels, pixels, ab, up, rows)
    out = np.empty((h, w, 3), np.dtype(out_dtype))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        a, b = up.rows(r0, r1) if up is not None else ab[:, r0:r1]
        _compose_chunk(pixels[r0:r1], a, b, out[r0:r1])
    return out


# the compiled merge (engine/image/merge_jit.py): constants in _compose_chunk's float32 form
_JIT_CONSTS = np.array([_XW, _ZW, 1 / 500, -1 / 200, 6.0 / 29.0, 3.0 * (6.0 / 29.0) ** 2, 4.0 / 29.0, 1e-30,
                        65535, 0.5, 65535.49], dtype=_F32)
_JIT_M = _M_INV.copy()
_JIT_M[:, 1] -= _F32(1.0)  # d = linear RGB minus (Y, Y, Y): M's Y column enters as (m - 1)


@functools.cache
def _import_jit():
    try:
        from colorize.image import merge_jit
    except ImportError:
        return None
    return merge_jit


def compiled():
    """``colorize.image.merge_jit`` when it can be used (numba installed, ``COLORIZE_NO_JIT`` unset or 0), else None."""
    if os.environ.get("COLORIZE_NO_JIT", "") not in ("", "0"):
        return None
    return _import_jit()


def warm_up() -> None:
    """Load (or, the first time on a machine, compile) the compiled merge now: about 0.5-1.5 s that would
    otherwise fall on the first large image. ``Colorizer`` calls it once per process, on a background thread,
    when it prepares the first image of ``JIT_MIN_PIXELS`` or more."""
    if (kernels := compiled()) is not None:
        for px in (np.zeros((2, 2), np.uint8), np.zeros((2, 2, 3), np.uint8)):
            ab = np.zeros((2, 1, 1), np.float32)
            _compose_jit(kernels, px, ab, RowUpsampler(ab, px.shape[:2]), 2)


def use_compiled() -> None:
    """From now on, in this process, merge every uint8 image with the compiled merge, whatever its size (a large
    job or a long-lived service repays the load), and start loading it now on a background thread; a merge that
    comes before it is loaded waits for it, so which merge runs an image never depends on timing."""
    global _compiled_for_all
    if not _compiled_for_all:
        _compiled_for_all = True
        _warm_up_in_background()


#: A job of at least this many images merges every one with the compiled merge (``use_compiled``; a local folder
#: job's threshold, ``colorize.job.runner.COMPILED_MERGE_MIN_FILES``, is this one): loading it costs about 0.7 s of
#: CPU, and it saves about 4.5 ms of CPU per 481x321 photo on a 2-core Xeon with AMX (22.6 against 27.4 ms per
#: photo, whole pipeline) but about 2.3 ms on a 2-core EPYC Zen 4 (7.9 against 8.0 s of CPU for 400 photos through
#: ``colorize images``, 2.8-3.0 against 2.4-2.5 s for 100): it repays its load after ~155 photos on the one and
#: ~300 on the other. Smaller jobs merge images under 1 MP on numpy.
COMPILED_MERGE_MIN_IMAGES = 256


def choose_for(images: int | None, threshold: int = COMPILED_MERGE_MIN_IMAGES) -> None:
    """The one rule for which merge a piece of work uses: the compiled merge for every image when the work is
    open-ended (``None``: a service, a Ray actor, a film) or has ``threshold`` images or more; otherwise the
    default (numpy under 1 MP)."""
    if images is None or images >= threshold:
        use_compiled()


@functools.cache
def _warm_up_in_background() -> None:
    import threading

    threading.Thread(target=warm_up, name="colorize-merge-warm-up", daemon=True).start()


def _compose_jit(kernels, pixels: np.ndarray, ab: np.ndarray, up: RowUpsampler | None, rows: int) -> np.ndarray:
    """``compose`` for uint8 in and out through ``merge_jit`` (colour input: a band of ``rows`` rows at a time)."""
    h, w = pixels.shape[:2]
    if up is not None:
        wide, r0, r1, g = up.taps()
    else:
        wide = np.ascontiguousarray(ab)
        r0 = r1 = np.arange(h, dtype=np.intp)
        g = np.zeros(h, _F32)
    out = np.empty((h, w, 3), np.uint8)
    if pixels.ndim == 2:
        kernels.merge_gray(np.ascontiguousarray(pixels), _LIN8, _FY8, wide, r0, r1, g, _JIT_CONSTS, _JIT_M, _ENC8,
                           out)
        return out
    for s in range(0, h, rows):
        e = min(h, s + rows)
        y, fy = luminance(pixels[s:e])
        kernels.merge_planes(y, fy, wide, r0[s:e], r1[s:e], g[s:e], _JIT_CONSTS, _JIT_M, _ENC8, out[s:e])
    return out
