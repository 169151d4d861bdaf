"""Grayscale as users make it, for the model's input during training and evaluation.

A user's gray photo is rarely the CIE L* of a colour original: Pillow's ``convert("L")`` and most tools store
Rec. 601 luma of the gamma-encoded values, video pipelines Rec. 709 luma, some tools the mean of R, G, B; all
rounded to 8 bits. The engine reads such a file as sRGB gray (v, v, v), so the model sees the L* of that gray.
Training on every kind, chosen at random per image, makes the model right on all of them; evaluating on Pillow's
is what ``colorize images`` meets on a gray file.

Methods (``GRAY_METHODS``):

* ``pillow``: 0.299 R + 0.587 G + 0.114 B on the sRGB values, rounded to uint8 (Pillow, OpenCV, ITU-R BT.601);
* ``rec709``: 0.2126 R + 0.7152 G + 0.0722 B on the sRGB values, rounded to uint8;
* ``mean``: (R + G + B) / 3, rounded to uint8;
* ``lstar``: the L* of the colour original itself (no gray file; the protocol of figures before Pillow gray).
"""

from __future__ import annotations

import numpy as np

GRAY_METHODS = ("pillow", "rec709", "mean", "lstar")
MIXED = "mixed"  # training: one of GRAY_METHODS per image, uniformly

_LUMA = {
    "pillow": (0.299, 0.587, 0.114),
    "rec709": (0.2126, 0.7152, 0.0722),
    "mean": (1 / 3, 1 / 3, 1 / 3),
}


def check_method(method: str, *, allow_mixed: bool = False) -> str:
    names = GRAY_METHODS + ((MIXED,) if allow_mixed else ())
    if method not in names:
        raise ValueError(f"gray method must be one of {', '.join(names)}, got {method!r}")
    return method


def gray_uint8(rgb: np.ndarray, method: str) -> np.ndarray:
    """uint8 [..., H, W, 3] RGB -> uint8 [..., H, W] gray by a luma ``method`` (not ``lstar``)."""
    if method == "pillow":  # Pillow's own integer formula (ImagingConvert: L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16)
        r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
        return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)
    if method not in _LUMA:
        raise ValueError(f"no gray file for method {method!r}; expected one of {', '.join(_LUMA)}")
    w = np.asarray(_LUMA[method], np.float32)
    return np.clip(np.rint(rgb.astype(np.float32) @ w), 0, 255).astype(np.uint8)


def method_indices(gray: str, n: int, generator=None):
    """int64 [n]: the ``GRAY_METHODS`` index of each image of a batch, drawn uniformly (from ``generator``) for
    ``mixed``, else ``gray``'s for all."""
    import torch

    if gray == MIXED:
        return torch.randint(0, len(GRAY_METHODS), (n,), generator=generator)
    return torch.full((n,), GRAY_METHODS.index(gray))


def model_l_torch(rgb, method_index, norm, lstar=None):
    """Model input L' [N, 1, H, W] for an sRGB batch [N, 3, H, W] in [0, 1] (torch), image i made gray by
    ``GRAY_METHODS[method_index[i]]``; the L* of the original (``lstar`` [N, 1, H, W] if already computed) for
    ``lstar``."""
    import torch

    from colorize.training.lab import rgb_to_lab

    if lstar is None:
        lstar = rgb_to_lab(rgb)[:, :1]
    out = lstar.clone()
    for k, name in enumerate(GRAY_METHODS):
        sel = method_index == k
        if name == "lstar" or not bool(sel.any()):
            continue
        w = torch.tensor(_LUMA[name], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
        g = torch.round((rgb[sel] * w).sum(1, keepdim=True) * 255.0) / 255.0  # an 8-bit gray file
        out[sel] = rgb_to_lab(g.expand(-1, 3, -1, -1))[:, :1]
    return norm.normalize_l(out)


def gray_images(rgb, method: str, norm):
    """The gray input a user would have, as uint8 RGB [N, H, W, 3] (torch; also the gray baseline of the
    evaluation: R = G = B = the gray, or keep L* and set ab = 0 for ``lstar``)."""
    import torch

    from colorize.training.metrics import gray_baseline

    check_method(method)
    if method == "lstar":
        return gray_baseline(rgb, norm)
    g = torch.from_numpy(gray_uint8(rgb.numpy(), method))
    return g[..., None].expand(*g.shape, 3).contiguous()


def model_l_uint8(rgb, method: str, norm):
    """Model input L' [N, 1, H, W] of uint8 RGB images [N, H, W, 3] (torch) made gray by ``method``."""
    import torch

    check_method(method)
    x = rgb.permute(0, 3, 1, 2).float() / 255.0
    return model_l_torch(x, torch.full((x.shape[0],), GRAY_METHODS.index(method)), norm)
