"""Colour losses and class rebalancing."""

import pytest
import torch

from training.losses import ColorLoss, ab_bin_index, ab_histogram, rebalance_weights


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


def test_respan_one_cycle_shrinks_the_rest_of_the_schedule():
    from training.loop import _respan_one_cycle

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
