"""The full-resolution merge of ``colorize.image.merge`` as one compiled loop (numba), for 8-bit images.

``compose`` in ``engine/image/merge.py`` makes about 50 passes of numpy over each band of rows; for 8-bit input
and output (what ``colorize images`` reads and writes) this module does the same arithmetic per pixel in one
loop compiled by numba: the vertical bilinear taps of the ab enlargement, L* -> XYZ from the input's luminance,
XYZ -> linear RGB, the move toward the gray of the same luminance for out-of-gamut pixels, and the sRGB encoding
through the same 65,536-entry table. The operations and their float32 order are ``_compose_chunk``'s, so the
two paths agree to a rounding step of the output (tests/engine/test_merge_jit.py).

numba is optional (``pip install ".[cpu]"`` brings it): ``colorize.image.merge`` imports this module on
first use and stays on numpy without it, or with ``COLORIZE_NO_JIT=1`` in the environment. The loops release the
GIL, so the pipeline's I/O workers merge in parallel; compiled code is cached on disk (numba's ``cache=True``:
next to this file, or in the user's cache folder when that is read-only).
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(nogil=True, cache=True, fastmath=False, error_model="numpy")


@numba.njit(inline="always", fastmath=False, cache=True)
def _pixel(out, r, c, y, fy, wide, i0, i1, gr0, gr, consts, m, enc):  # pragma: no cover - compiled
    """Output pixel (r, c) from the input's Y and f(Y): a, b from the two rows of ``wide`` (the vertical taps of
    the enlargement, Lab units), then ``_compose_chunk``'s steps 2-5."""
    one = np.float32(1.0)
    a = wide[0, i0, c] * gr0 + wide[0, i1, c] * gr
    b = wide[1, i0, c] * gr0 + wide[1, i1, c] * gr
    x = a * consts[2] + fy
    x = x * x * x if x > consts[4] else (x - consts[6]) * consts[5]
    x = x * consts[0]
    z = b * consts[3] + fy
    z = z * z * z if z > consts[4] else (z - consts[6]) * consts[5]
    z = z * consts[1]
    d0 = x * m[0, 0] + y * m[0, 1] + z * m[0, 2]  # linear RGB minus (Y, Y, Y)
    d1 = x * m[1, 0] + y * m[1, 1] + z * m[1, 2]
    d2 = x * m[2, 0] + y * m[2, 1] + z * m[2, 2]
    hi = max(max(max(d0, d1), d2), consts[7])
    lo = max(-min(min(d0, d1), d2), consts[7])
    t = min(min((one - y) / hi, y / lo), one) * consts[8]
    base = y * consts[8] + consts[9]
    zero, top = np.float32(0.0), consts[10]
    out[r, c, 0] = enc[np.uint16(min(max(d0 * t + base, zero), top))]
    out[r, c, 1] = enc[np.uint16(min(max(d1 * t + base, zero), top))]
    out[r, c, 2] = enc[np.uint16(min(max(d2 * t + base, zero), top))]


@_jit
def merge_gray(gray, lin, fyt, wide, r0, r1, g, consts, m, enc, out):  # pragma: no cover - compiled
    """8-bit gray [H, W] -> ``out`` uint8 [H, W, 3]. ``lin``, ``fyt``: Y and f(Y) per gray code; ``wide``: ab
    enlarged horizontally [2, h, W]; row r's ab is ``wide[:, r0[r]] * (1 - g[r]) + wide[:, r1[r]] * g[r]``."""
    H, W = gray.shape
    for r in range(H):
        i0, i1, gr = r0[r], r1[r], g[r]
        gr0 = np.float32(1.0) - gr
        for c in range(W):
            code = gray[r, c]
            _pixel(out, r, c, lin[code], fyt[code], wide, i0, i1, gr0, gr, consts, m, enc)


@_jit
def merge_planes(y, fy, wide, r0, r1, g, consts, m, enc, out):  # pragma: no cover - compiled
    """As ``merge_gray``, from float32 planes [H, W] of the input's Y and f(Y) (colour input)."""
    H, W = y.shape
    for r in range(H):
        i0, i1, gr = r0[r], r1[r], g[r]
        gr0 = np.float32(1.0) - gr
        for c in range(W):
            _pixel(out, r, c, y[r, c], fy[r, c], wide, i0, i1, gr0, gr, consts, m, enc)
