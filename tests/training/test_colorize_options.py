"""Colorizer training options: freeze-then-unfreeze (--freeze-encoder-steps) and the colourfulness term
(--colourfulness-weight)."""

import json

import torch

from colorize.cli import main as cli
from colorize.models.checkpoint import read_metadata


def test_colourfulness_weight_trains_and_is_recorded(small_photo_tree, tmp_path):
    out = tmp_path / "run"
    assert cli(["train", "colorize", "--arch", "resnet18-unet-lite", "--head", "bins", "--loss", "ce",
                "--refine", "convex", "--l1-weight", "1", "--colourfulness-weight", "3", "--photos",
                str(small_photo_tree), "--crop", "32", "--working-size", "64", "--batch-size", "4", "--epochs", "1",
                "--max-steps", "2", "--limit-eval", "2", "--threads", "1", "--out", str(out)]) == 0
    meta = read_metadata(out / "model.json")
    assert meta["training"]["loss"]["colourfulness_weight"] == 3.0
    assert meta["metrics"]["step"] == 2


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}


def _changed(before, module):
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items() if k in before
               and not k.endswith(("running_mean", "running_var")))


def test_freeze_encoder_steps_then_unfreeze(tmp_path):
    from colorize.training.colorize_train import ColorizeTask
    from colorize.training.config import ColorizeConfig

    cfg = ColorizeConfig(arch="resnet18-unet-lite", freeze_encoder_steps=2, lr=1e-2, out=str(tmp_path))
    task = ColorizeTask(cfg, test=None, weights=None)
    opt, sched = task.make_optimizer(20)
    enc_ids = {id(p) for p in task.model.encoder.parameters()}
    enc = [i for i, g in enumerate(opt.param_groups) if id(g["params"][0]) in enc_ids]
    assert enc and all(opt.param_groups[i]["lr"] == 0.0 for i in enc)
    x = torch.randn(2, 1, 64, 64)

    def step():
        loss = task.model(x).square().mean() + 1.0
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    enc0, dec0 = _snapshot(task.model.encoder), _snapshot(task.model.decoder)
    step()
    state = sched.state_dict()
    step()
    assert not _changed(enc0, task.model.encoder), "the encoder moved while frozen"
    assert _changed(dec0, task.model.decoder)
    assert all(opt.param_groups[i]["lr"] > 0 for i in enc)  # the schedule's own value from step 2
    step()
    assert _changed(enc0, task.model.encoder)
    # A resumed run (the scheduler's state after step 1) is still frozen for one more step.
    opt2, sched2 = task.make_optimizer(20)
    sched2.load_state_dict(state)
    assert all(opt2.param_groups[i]["lr"] == 0.0 for i in enc)
    assert json.dumps(cfg.to_dict())  # the setting is recorded with the run's config
