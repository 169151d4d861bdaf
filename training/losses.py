"""Colorization losses: L1 / L2 / Huber on normalized ab, optionally weighted per
pixel by class rebalancing over quantized ab bins (Zhang et al., ECCV 2016).

Plain regression pulls uncertain pixels to the mean colour (sepia / gray).
Rebalancing up-weights pixels whose true colour is rare in the training set:
with p the empirical distribution over ab bins (Q occupied bins),

    w(bin) = 1 / ((1 - lambda) * p + lambda / Q),   normalized so that E_p[w] = 1,

then softened as w ** power and renormalized (power = 1 is Zhang's weighting;
it is strong for a regression loss, which is why the default is 0.5).

``BinsLoss`` is the classification alternative for a model with an ab-bins
head (``colorize.models.ab_bins``): cross-entropy against the bilinear soft encoding of
the true ab', rebalanced by the same weights over the head's grid, plus an
optional L1 term on the decoded (annealed-mean) output.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

AB_RANGE = 110.0  # |a|, |b| bound used for the grid (matches the default normalization scale)
BIN_SIZE = 10.0  # ab units per bin, as Zhang et al.


def ab_bin_index(ab: Tensor, bin_size: float = BIN_SIZE, ab_range: float = AB_RANGE) -> Tensor:
    """Bin index (row-major a, b) of each pixel of un-normalized ab [N, 2, H, W] -> [N, H, W]."""
    nb = int(round(2 * ab_range / bin_size))
    idx = ((ab + ab_range) / bin_size).floor().long().clamp_(0, nb - 1)
    return idx[:, 0] * nb + idx[:, 1]


def ab_histogram(ab: Tensor, bin_size: float = BIN_SIZE, ab_range: float = AB_RANGE) -> Tensor:
    """Empirical distribution (float64, sums to 1) over the ab grid of un-normalized ab [N, 2, H, W]."""
    nb = int(round(2 * ab_range / bin_size))
    counts = torch.bincount(ab_bin_index(ab, bin_size, ab_range).flatten(), minlength=nb * nb).double()
    return counts / counts.sum()


def rebalance_weights(p: Tensor, lam: float = 0.5, power: float = 0.5) -> Tensor:
    """Per-bin weights from a distribution ``p`` (see module docstring); unoccupied bins get the max weight.

    Raises:
        ValueError: ``lam`` not in (0, 1], ``power`` negative, or an empty histogram.
    """
    if not 0.0 < lam <= 1.0:
        raise ValueError(f"rebalance lambda must be in (0, 1], got {lam}")
    if power < 0:
        raise ValueError(f"rebalance power must be >= 0, got {power}")
    occupied = p > 0
    q = int(occupied.sum())
    if q == 0:
        raise ValueError("ab histogram is empty")
    w = 1.0 / ((1.0 - lam) * p + lam / q)
    w = w / (p * w).sum()
    w = w.pow(power)
    w = w / (p * w).sum()
    return w.float()


class ColorLoss(torch.nn.Module):
    """Per-pixel regression loss on normalized ab, optionally rebalanced.

    Args:
        kind: "l1", "l2" or "huber" (delta 0.05 in normalized units, about 5.5 ab).
        weights: per-bin weights from ``rebalance_weights`` or None.
        ab_scale: factor from normalized to real ab (110 with the default normalization).
    """

    def __init__(self, kind: str = "l1", weights: Tensor | None = None, ab_scale: float = AB_RANGE):
        super().__init__()
        if kind not in ("l1", "l2", "huber"):
            raise ValueError(f"loss must be 'l1', 'l2' or 'huber', got {kind!r}")
        self.kind = kind
        self.ab_scale = ab_scale
        self.register_buffer("weights", weights if weights is not None else torch.empty(0), persistent=False)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if self.kind == "l1":
            per = (pred - target).abs()
        elif self.kind == "l2":
            per = (pred - target).square()
        else:
            per = F.huber_loss(pred, target, reduction="none", delta=0.05)
        per = per.sum(1)  # [N, H, W]
        if self.weights.numel():
            w = self.weights[ab_bin_index(target * self.ab_scale)]
            return (per * w).mean()
        return per.mean()


class BinsLoss(torch.nn.Module):
    """Rebalanced cross-entropy over ab bins (+ ``l1_weight`` x L1 on the decoded ab') for an ``AbBinsHead``.

    ``cast_weight`` adds that weight times the L1 distance between each image's mean decoded ab' and its target's
    mean: the image's overall colour cast, which the per-pixel terms weigh no more than any other error.

    ``forward(logits, target)``: logits [N, Q, H, W] (at T = 1, as Zhang et al.), target ab' [N, 2, H, W].
    ``weights``: per-bin weights over the head's grid (``rebalance_weights``) or None.
    A pruned head (``gamut="srgb"``): the target's weight on a pruned bin (none, for an sRGB target) is dropped
    and the rest renormalised.
    """

    def __init__(self, head: torch.nn.Module, weights: Tensor | None = None, l1_weight: float = 0.0,
                 cast_weight: float = 0.0):
        super().__init__()
        if l1_weight < 0:
            raise ValueError(f"l1 weight must be >= 0, got {l1_weight}")
        if cast_weight < 0:
            raise ValueError(f"cast weight must be >= 0, got {cast_weight}")
        self.cast_weight = cast_weight
        n = head.bins_per_axis
        if weights is not None and weights.numel() != n * n:
            raise ValueError(f"rebalancing weights have {weights.numel()} bins, the head has {n * n}")
        self.head, self.n, self.l1_weight = head, n, l1_weight
        self.pruned = len(getattr(head, "bins", ())) < n * n
        self.register_buffer("weights", weights if weights is not None else torch.empty(0), persistent=False)

    def forward(self, logits: Tensor, target: Tensor, output: Tensor | None = None,
                output_target: Tensor | None = None) -> Tensor:
        """``output``/``output_target``: the model's final ab' and its target when they are not the decoded
        ``logits`` (a model that predicts at a reduced resolution and refines): the L1 term is taken on them."""
        from colorize.models.ab_bins import bin_index, soft_encode

        idx, w = soft_encode(target, self.n)
        if self.pruned:
            idx = self.head.slot[idx]
            w = w * (idx >= 0)
            w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
            idx = idx.clamp_min(0)
        logp = F.log_softmax(logits.float(), dim=1)
        ce = -(logp.gather(1, idx) * w).sum(1)  # [N, H, W]
        if self.weights.numel():
            ce = ce * self.weights[bin_index(target, self.n)]
        loss = ce.mean()
        if self.l1_weight or self.cast_weight:
            if output is None:
                output, output_target = self.head.decode(logits.float()), target
            err = output.float() - output_target
            if self.l1_weight:
                loss = loss + self.l1_weight * err.abs().sum(1).mean()
            if self.cast_weight:
                loss = loss + self.cast_weight * err.mean(dim=(2, 3)).abs().sum(1).mean()
        return loss


def weights_from_images(images: np.ndarray, lam: float, power: float, sample: int = 5000, seed: int = 0,
                        bin_size: float = BIN_SIZE, ab_range: float = AB_RANGE) -> Tensor:
    """Rebalancing weights estimated from (a random sample of) uint8 NHWC training images.

    The grid is ``ab_bin_index``'s; an ``AbBinsHead`` of ``n`` bins per axis under a normalization of
    ``ab_scale`` is the grid ``bin_size = 2 * ab_scale / n``, ``ab_range = ab_scale``.
    """
    from colorize.training.lab import rgb_to_lab

    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(images))[: min(sample, len(images))]
    x = torch.from_numpy(images[np.sort(idx)]).permute(0, 3, 1, 2).float() / 255.0
    ab = torch.cat([rgb_to_lab(x[i : i + 1000])[:, 1:] for i in range(0, len(x), 1000)])
    return rebalance_weights(ab_histogram(ab, bin_size, ab_range), lam, power)


def colourfulness_torch(rgb: Tensor) -> Tensor:
    """Hasler-Suesstrunk colourfulness of each image of an sRGB batch [N, 3, H, W] in [0, 1], on the 0-255 scale of
    ``colorize.training.metrics.colorfulness`` (which measures uint8 images), differentiable."""
    from colorize.training.metrics import hasler_suesstrunk

    return hasler_suesstrunk(*(rgb.float().flatten(2) * 255.0).unbind(1), eps=1e-6)


def colourfulness_shortfall(pred_rgb: Tensor, truth_rgb: Tensor) -> Tensor:
    """Mean over the batch of how far each prediction's colourfulness falls short of its original's, / 100.

    A hinge: an image as colourful as its original (or more) costs nothing, so the term lifts dull predictions
    without rewarding colour beyond the truth (DDColor's colourfulness loss rewards any colour).
    """
    return F.relu(colourfulness_torch(truth_rgb).detach() - colourfulness_torch(pred_rgb)).mean() / 100.0

