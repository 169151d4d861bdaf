"""The sRGB-pruned ab-bins head (``gamut="srgb"``): which bins it keeps, loading full-grid weights, the loss."""

import numpy as np
import pytest
import torch

from colorize.image.color import rgb_to_lab
from colorize.models import create_model
from colorize.models.ab_bins import AbBinsHead, reachable_bins, soft_encode
from colorize.training.losses import BinsLoss


def _soft_bins_of(rgb: np.ndarray) -> set[int]:
    ab = torch.from_numpy(rgb_to_lab(rgb)[:, 1:].T / 110.0).float()[None, :, :, None]
    idx, w = soft_encode(ab, 22)
    return set(idx[w > 0].tolist())


def test_the_kept_bins_cover_every_srgb_colour_and_drop_the_rest():
    kept = set(reachable_bins(22))
    assert 250 < len(kept) < 484  # the corners of the ab square are not sRGB colours
    rng = np.random.default_rng(0)
    # random colours and the cube's faces, where the gamut's extremes lie
    face = rng.integers(0, 256, (20000, 3)).astype(np.float64)
    face[np.arange(20000), rng.integers(0, 3, 20000)] = rng.choice([0.0, 255.0], 20000)
    rgb = np.concatenate([rng.integers(0, 256, (20000, 3)), face]) / 255.0
    assert _soft_bins_of(rgb) <= kept
    # and the pruned bins really are unreachable: far corners of the square are not kept
    assert 0 not in kept and 22 * 22 - 1 not in kept


def test_a_pruned_head_loads_full_grid_weights_and_gives_the_same_colours():
    torch.manual_seed(0)
    full = create_model("efficientnet_lite0-unet", head="bins", refine="convex").eval()
    pruned = create_model("efficientnet_lite0-unet", head="bins", refine="convex", gamut="srgb").eval()
    assert pruned.head.conv.out_channels == len(reachable_bins(22))
    pruned.load_state_dict(full.state_dict())
    # make the full model's logits concentrate on reachable bins, as a trained model's do
    with torch.no_grad():
        off = torch.ones(484, dtype=torch.bool)
        off[pruned.head.bins] = False
        full.head.conv.bias[off] -= 30.0
        pruned.head.conv.bias.copy_(full.head.conv.bias[pruned.head.bins])
        x = torch.rand(2, 1, 64, 64) * 2 - 1
        torch.testing.assert_close(pruned(x), full(x), atol=1e-4, rtol=0)
    assert "gamut='srgb'" in repr(pruned.head)


def test_bad_gamut_is_refused():
    with pytest.raises(ValueError, match="gamut"):
        AbBinsHead(8, gamut="p3")


def test_bins_loss_on_a_pruned_head_is_the_full_heads_loss_when_pruned_logits_vanish():
    g = torch.Generator().manual_seed(3)
    full, pruned = AbBinsHead(4), AbBinsHead(4, gamut="srgb")
    rgb = torch.rand(2, 6, 6, 3, generator=g).numpy().astype(np.float64)
    target = torch.from_numpy(rgb_to_lab(rgb)[..., 1:] / 110.0).float().permute(0, 3, 1, 2)
    logits_full = torch.randn(2, 484, 6, 6, generator=g)
    off = torch.ones(484, dtype=torch.bool)
    off[pruned.bins] = False
    logits_full[:, off] = -1e4
    for l1 in (0.0, 5.0):
        a = BinsLoss(full, l1_weight=l1)(logits_full, target)
        b = BinsLoss(pruned, l1_weight=l1)(logits_full[:, pruned.bins], target)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
