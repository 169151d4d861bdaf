"""Colour losses and class rebalancing."""

import pytest
import torch

from colorize.training.losses import BinsLoss, ColorLoss, ab_bin_index, ab_histogram, rebalance_weights


def test_bins_and_histogram():
    ab = torch.tensor([[-110.0, -110.0], [109.9, 109.9], [0.0, 0.0], [200.0, -300.0]]).T.reshape(1, 2, 2, 2)
    idx = ab_bin_index(ab).flatten().tolist()
    assert idx == [0, 22 * 22 - 1, 11 * 22 + 11, 21 * 22 + 0]  # out-of-range values clamp to the edge bins
    p = ab_histogram(ab)
    assert p.sum().item() == pytest.approx(1.0) and (p > 0).sum().item() == 4


def test_rebalance_weights_favour_rare_colours():
    p = torch.zeros(484, dtype=torch.float64)
    p[0], p[1], p[2] = 0.9, 0.09, 0.01
    w = rebalance_weights(p, lam=0.5, power=1.0)
    assert (p * w).sum().item() == pytest.approx(1.0)
    assert w[2] > w[1] > w[0]
    soft = rebalance_weights(p, lam=0.5, power=0.5)
    assert soft[2] / soft[0] == pytest.approx((w[2] / w[0]).sqrt().item(), rel=1e-5)
    assert torch.allclose(rebalance_weights(p, power=0.0)[:3], torch.ones(3))
    with pytest.raises(ValueError, match="lambda"):
        rebalance_weights(p, lam=0.0)


@pytest.mark.parametrize("kind", ["l1", "l2", "huber"])
def test_color_loss(kind):
    t = torch.rand(2, 2, 4, 4) * 2 - 1
    loss = ColorLoss(kind)
    assert loss(t, t).item() == 0.0
    assert loss(t + 0.1, t).item() > 0
    weights = torch.ones(484) * 2.0
    assert ColorLoss(kind, weights)(t + 0.1, t).item() == pytest.approx(2 * loss(t + 0.1, t).item(), rel=1e-5)
    with pytest.raises(ValueError, match="loss"):
        ColorLoss("ce")


def _target_logits(target, n, scale):
    """Logits proportional to the soft encoding of ``target``: log-probabilities close to the target's."""
    from colorize.models.ab_bins import soft_encode

    idx, w = soft_encode(target, n)
    q = torch.zeros(target.shape[0], n * n, *target.shape[2:]).scatter_add_(1, idx, w)
    return (q + 1e-6).log() * scale


def test_bins_loss_prefers_the_true_colour_and_is_rebalanced():
    from colorize.models.ab_bins import AbBinsHead

    n = 8
    head = AbBinsHead(4, bins_per_axis=n)
    g = torch.Generator().manual_seed(0)
    target = torch.empty(2, 2, 4, 4).uniform_(-0.8, 0.8, generator=g)
    right, wrong = _target_logits(target, n, 1.0), _target_logits(-target, n, 1.0)
    loss = BinsLoss(head)
    assert loss(right, target) < loss(torch.zeros_like(right), target) < loss(wrong, target)
    # the uniform distribution's cross-entropy is log(Q)
    assert loss(torch.zeros_like(right), target).item() == pytest.approx(torch.log(torch.tensor(n * n)).item(), rel=1e-5)
    doubled = BinsLoss(head, torch.full((n * n,), 2.0))
    assert doubled(wrong, target).item() == pytest.approx(2 * loss(wrong, target).item(), rel=1e-5)
    # the L1 term scores the decoded colour: zero logits decode to gray, so it adds the mean |ab'| (x weight)
    l1 = BinsLoss(head, l1_weight=3.0)
    expect = loss(torch.zeros_like(right), target) + 3.0 * target.abs().sum(1).mean()
    assert l1(torch.zeros_like(right), target).item() == pytest.approx(expect.item(), rel=1e-4)
    with pytest.raises(ValueError, match="bins"):
        BinsLoss(head, torch.ones(484))
    with pytest.raises(ValueError, match="l1"):
        BinsLoss(head, l1_weight=-1)



def test_bins_loss_cast_term_scores_each_images_mean_colour_only():
    from colorize.models.ab_bins import AbBinsHead

    head = AbBinsHead(4, bins_per_axis=8)
    gray_logits = torch.zeros(2, 64, 4, 4)  # decodes to ab' = 0 everywhere
    cast = torch.tensor([0.3, -0.2]).view(1, 2, 1, 1).expand(2, 2, 4, 4).clone()
    cast[1] = 0.0
    checker = (torch.arange(16).view(4, 4) % 2 * 2 - 1).float() * 0.4  # mean zero, |ab'| 0.4 per channel
    zero_mean = checker.expand(2, 2, 4, 4).clone()
    plain = BinsLoss(head)
    with_cast = BinsLoss(head, cast_weight=5.0)
    # a uniform cast of (0.3, -0.2) on image 0, none on image 1: 5 x (0.5 + 0) / 2
    extra = with_cast(gray_logits, cast) - plain(gray_logits, cast)
    assert extra.item() == pytest.approx(5.0 * 0.5 / 2, rel=1e-4)
    # colour that averages to gray adds nothing, where the L1 term does
    assert (with_cast(gray_logits, zero_mean) - plain(gray_logits, zero_mean)).abs().item() < 1e-5
    assert (BinsLoss(head, l1_weight=1.0)(gray_logits, zero_mean) - plain(gray_logits, zero_mean)).item() > 0.5
    with pytest.raises(ValueError, match="cast"):
        BinsLoss(head, cast_weight=-1)


def test_bins_loss_gradient_step_moves_the_output_toward_the_target():
    from colorize.models.ab_bins import AbBinsHead

    head = AbBinsHead(4, bins_per_axis=22)
    target = torch.tensor([0.5, -0.3]).view(1, 2, 1, 1).expand(1, 2, 3, 3).contiguous()
    logits = torch.zeros(1, 484, 3, 3, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=50.0)
    for _ in range(20):
        opt.zero_grad()
        BinsLoss(head)(logits, target).backward()
        opt.step()
    assert (head.decode(logits.detach()) - target).abs().max() < 0.05


def test_respan_one_cycle_shrinks_the_rest_of_the_schedule():
    from colorize.training.loop import _respan_one_cycle

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=100, pct_start=0.25)
    for _ in range(30):
        opt.step()
        sched.step()
    _respan_one_cycle(sched, 50, 0.25)
    assert sched.total_steps == 50
    for _ in range(19):
        opt.step()
        sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(0.1 / 25 / 1e4, rel=1e-3)  # annealed to min_lr at step 49
    with pytest.raises(ValueError, match="cannot resume"):
        _respan_one_cycle(sched, 40, 0.25)


def test_colourfulness_torch_matches_the_metric_and_its_shortfall_lifts_dull_output():
    from colorize.training.losses import colourfulness_shortfall, colourfulness_torch
    from colorize.training.metrics import colorfulness

    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(3, 3, 16, 20, generator=g)
    rgb[1] = rgb[1].mean(0, keepdim=True)  # a gray image
    u8 = (rgb * 255).round().to(torch.uint8)
    ours = colourfulness_torch(u8.float() / 255)
    torch.testing.assert_close(ours.double(), colorfulness(u8.permute(0, 2, 3, 1)), atol=1e-2, rtol=1e-4)
    assert float(colourfulness_shortfall(rgb, rgb)) == 0.0
    dull = (0.5 * rgb + 0.5 * rgb.mean(1, keepdim=True)).requires_grad_()
    short = colourfulness_shortfall(dull, rgb)
    assert float(short.detach()) > 0.05
    short.backward()
    # Moving along -grad makes the dull images more colourful.
    lifted = (dull - 0.5 * dull.grad).detach()
    assert float(colourfulness_torch(lifted)[0]) > float(colourfulness_torch(dull.detach())[0])
    # Colour beyond the original's costs nothing.
    assert float(colourfulness_shortfall(rgb, dull.detach())) == 0.0
