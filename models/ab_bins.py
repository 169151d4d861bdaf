"""Colour as classification: a head that predicts a distribution over a grid of
ab bins and outputs its annealed mean (Zhang, Isola & Efros, "Colorful Image
Colorization", ECCV 2016).

A regression head trained with L1/L2 answers the median/mean of the plausible
colours of a pixel, which for an uncertain pixel is a desaturated brown. A
distribution over bins keeps the modes apart; the *annealed mean*
``softmax(logits / T)`` averaged over the bin centres with ``T < 1`` sharpens
toward the mode (vivid) while staying smooth in space (``T = 1``: the mean,
``T -> 0``: the mode). Zhang et al. use ``T = 0.38``.

The grid is square in *normalized* ab' (``colorize.image.color.Normalization``):
``bins_per_axis`` bins over [-1, 1] on each axis, index ``i * n + j`` for the
a-bin ``i`` and the b-bin ``j``. With the default normalization (ab' = ab / 110)
and 22 bins per axis a bin is 10 ab units wide, Zhang's grid.

With ``gamut="srgb"`` the head keeps only the bins that some sRGB colour gives weight in the soft encoding
(``reachable_bins``: 300 of the 484 of the default grid); the rest are never a target, so their logits are work
for nothing. A full-grid checkpoint loads into a pruned head (its rows are selected).

The head's output is ab' [N, 2, H, W] like the regression head's, so engines,
exports and the ``Engine.run`` contract do not change; training reads the
logits from ``AbBinsHead.logits``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_BINS_PER_AXIS = 22
DEFAULT_TEMPERATURE = 0.38
DEFAULT_AB_SCALE = 110.0  # colorize.image.color.Normalization's default: the grid spans ab in [-110, 110]
GAMUTS = ("full", "srgb")
# sRGB is sampled at every 3rd code value per channel (and 255): 658k colours. Every code value (16.8M, 11 s)
# gives the same 300 bins of the default grid; a test checks the set against random colours.
_SRGB_STEP = 3


def bin_centres(bins_per_axis: int = DEFAULT_BINS_PER_AXIS) -> Tensor:
    """Centres of the grid's bins in normalized ab': [2, n * n] (row 0: a', row 1: b')."""
    c = (torch.arange(bins_per_axis, dtype=torch.float32) + 0.5) * (2.0 / bins_per_axis) - 1.0
    a, b = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([a.flatten(), b.flatten()])


def bin_index(ab: Tensor, bins_per_axis: int = DEFAULT_BINS_PER_AXIS) -> Tensor:
    """Bin index of each pixel of normalized ab' [N, 2, H, W] -> int64 [N, H, W] (outside [-1, 1]: edge bin)."""
    n = bins_per_axis
    idx = ((ab + 1.0) * (n / 2.0)).floor().long().clamp_(0, n - 1)
    return idx[:, 0] * n + idx[:, 1]


def soft_encode(ab: Tensor, bins_per_axis: int = DEFAULT_BINS_PER_AXIS) -> tuple[Tensor, Tensor]:
    """Bilinear soft encoding of normalized ab' [N, 2, H, W] over the bin centres.

    Each pixel spreads its unit mass over the (up to) four bin centres around
    it, so the expectation of the target distribution is the pixel's ab' itself
    (inside the centres' hull; outside, it is clamped to the edge centres).

    Returns:
        (indices int64 [N, 4, H, W], weights float [N, 4, H, W]) summing to 1 per pixel.
    """
    n = bins_per_axis
    u = ((ab.float() + 1.0) * (n / 2.0) - 0.5).clamp(0.0, n - 1.0)  # grid coordinate of each centre
    lo = u.floor().clamp_(max=n - 2)
    f = u - lo
    lo = lo.long()
    ia, ib = lo[:, 0], lo[:, 1]
    fa, fb = f[:, 0], f[:, 1]
    idx = torch.stack([ia * n + ib, ia * n + ib + 1, (ia + 1) * n + ib, (ia + 1) * n + ib + 1], dim=1)
    w = torch.stack([(1 - fa) * (1 - fb), (1 - fa) * fb, fa * (1 - fb), fa * fb], dim=1)
    return idx, w


@functools.lru_cache(maxsize=8)
def reachable_bins(bins_per_axis: int = DEFAULT_BINS_PER_AXIS, ab_scale: float = DEFAULT_AB_SCALE) -> tuple[int, ...]:
    """Sorted indices of the bins that ``soft_encode`` gives weight for some sRGB colour (ab' = ab / ``ab_scale``)."""
    import numpy as np

    from colorize.image.color import rgb_to_lab

    v = np.unique(np.r_[np.arange(0, 256, _SRGB_STEP), 255]).astype(np.float64) / 255.0
    g, b = np.meshgrid(v, v, indexing="ij")
    hit = torch.zeros(bins_per_axis * bins_per_axis, dtype=torch.bool)
    for r in v:
        rgb = np.stack([np.full_like(g, r), g, b], axis=-1).reshape(-1, 3)
        ab = torch.from_numpy(rgb_to_lab(rgb)[:, 1:].T / ab_scale).float()[None, :, :, None]
        idx, w = soft_encode(ab, bins_per_axis)
        hit[idx[w > 0]] = True
    return tuple(torch.nonzero(hit).flatten().tolist())


class AbBinsHead(nn.Module):
    """1x1 conv to one logit per kept bin; ``forward`` returns the annealed mean ab' [N, 2, H, W].

    ``gamut``: "full" keeps the whole ``bins_per_axis`` x ``bins_per_axis`` grid, "srgb" only ``reachable_bins``.
    ``bins`` (buffer, int64 [Q]) holds the kept bins' indices in the full grid, ``slot`` (int64 [n * n]) each grid
    bin's position among them (-1: pruned). The buffers are non-persistent: the state dict holds only the conv
    (``conv.weight``, ``conv.bias``), and ``bins_per_axis``/``temperature``/``gamut`` are architecture kwargs
    recorded with the checkpoint.
    """

    def __init__(self, in_channels: int, bins_per_axis: int = DEFAULT_BINS_PER_AXIS,
                 temperature: float = DEFAULT_TEMPERATURE, gamut: str = "full"):
        super().__init__()
        if bins_per_axis < 2:
            raise ValueError(f"bins_per_axis must be >= 2, got {bins_per_axis}")
        if gamut not in GAMUTS:
            raise ValueError(f"gamut must be one of {', '.join(GAMUTS)}, got {gamut!r}")
        self.bins_per_axis, self.gamut = bins_per_axis, gamut
        self.temperature = temperature
        n2 = bins_per_axis * bins_per_axis
        kept = torch.tensor(reachable_bins(bins_per_axis) if gamut == "srgb" else range(n2), dtype=torch.long)
        slot = torch.full((n2,), -1, dtype=torch.long)
        slot[kept] = torch.arange(len(kept))
        self.register_buffer("bins", kept, persistent=False)
        self.register_buffer("slot", slot, persistent=False)
        self.conv = nn.Conv2d(in_channels, len(kept), kernel_size=1)
        # [2, Q, 1, 1]: the expectation over bins is a 1x1 convolution (exports as a Conv node).
        self.register_buffer("centres", bin_centres(bins_per_axis)[:, kept, None, None], persistent=False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A full-grid checkpoint into a pruned head: keep the rows of the kept bins.
        n2 = self.bins_per_axis * self.bins_per_axis
        for key in (prefix + "conv.weight", prefix + "conv.bias"):
            t = state_dict.get(key)
            if t is not None and len(self.bins) < n2 and t.shape[0] == n2:
                state_dict[key] = t[self.bins]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def temperature(self) -> float:
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"temperature must be > 0, got {value}")
        self._temperature = float(value)

    def logits(self, x: Tensor) -> Tensor:
        return self.conv(x)

    def decode(self, logits: Tensor) -> Tensor:
        """Annealed mean of the bin centres under ``softmax(logits / T)``.

        Written as ``exp(z - max z)`` and one 1x1 conv whose output channels are the two centre-weighted sums and
        their normalizer (a row of ones): softmax's function, but an exported graph of elementwise ops, a channel
        max and a conv, which OpenVINO keeps in its blocked layout. A Softmax over the 484 channels made it reorder
        the tensor before and after: the model ran 1.2x slower (OpenVINO INT8, batch 8 at 160x256, 2-core Xeon).
        """
        z = logits.float() / self.temperature
        e = torch.exp(z - z.amax(dim=1, keepdim=True))
        w = torch.cat([self.centres, torch.ones_like(self.centres[:1])]).to(e.dtype)
        s = F.conv2d(e, w)
        return s[:, :2] / s[:, 2:]

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.logits(x))

    def extra_repr(self) -> str:
        return (f"bins_per_axis={self.bins_per_axis}, temperature={self.temperature}, gamut={self.gamut!r} "
                f"({len(self.bins)} bins)")
