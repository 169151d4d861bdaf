"""Encoder pretraining by distillation (colorize.training.distill)."""

import pytest
import torch

from colorize.cli import main as cli


def _teacher_weights():
    from colorize.models.pretrained import WEIGHTS

    try:
        WEIGHTS["efficientnet_lite0"].path()
    except ModuleNotFoundError as e:
        pytest.skip(str(e))


def test_distill_loss_is_zero_when_the_student_matches_the_teacher():
    from colorize.training.distill import distill_loss, standardize

    torch.manual_seed(0)
    logits = torch.randn(4, 10)
    t_feats = {8: torch.randn(4, 3, 5, 5) * 3 + 1}
    loss, parts = distill_loss(logits, logits, {8: standardize(t_feats[8])}, t_feats, 2.0, 1.0)
    assert abs(float(loss)) < 1e-5
    # Another student costs more in both terms.
    loss2, parts2 = distill_loss(logits.flip(1), logits, {8: torch.zeros(4, 3, 5, 5)}, t_feats, 2.0, 1.0)
    assert parts2["kl_sum"] > 0.1 and parts2["feature_sum"] > 0.5
    assert float(loss2) == pytest.approx(parts2["kl_sum"] + parts2["feature_sum"], rel=1e-5)


def test_distilled_student_initialises_a_colorizer(small_photo_tree, tmp_path):
    _teacher_weights()
    from colorize.models.checkpoint import load_checkpoint, read_metadata

    out = tmp_path / "distill"
    common = ["--photos", str(small_photo_tree), "--crop", "32", "--working-size", "64", "--batch-size", "4",
              "--threads", "1", "--log-every", "1", "--save-every", "1"]
    assert cli(["train", "distill", "--out", str(out), "--crops-per-image", "1", "--epochs", "1", *common]) == 0
    meta = read_metadata(out / "model.json")
    assert meta["arch"] == "resnet18" and meta["arch_kwargs"]["in_chans"] == 1
    assert meta["training"]["teacher"]["arch"] == "efficientnet_lite0"
    for k in ("val_agree_top1", "val_in_teacher_top5", "val_kl", "train_kl", "train_feature_mse"):
        assert k in meta["metrics"]
    student, _ = load_checkpoint(out / "model.json")
    assert not any(k.startswith("adapters.") for k in student.state_dict())

    col = tmp_path / "col"
    assert cli(["train", "colorize", "--arch", "resnet18-unet-lite", "--encoder-init", str(out / "model.json"),
                "--encoder-lr-mult", "0", "--out", str(col), "--epochs", "1", "--max-steps", "1",
                "--limit-eval", "2", *common]) == 0
    colorizer, cmeta = load_checkpoint(col / "model.json")
    # The student's conv1 takes L' already: loaded as it is, and with the encoder's LR at 0 it stays so.
    torch.testing.assert_close(colorizer.encoder.conv1.weight, student.conv1.weight)
    torch.testing.assert_close(colorizer.encoder.layer3[0].conv1.weight, student.layer3[0].conv1.weight)
    assert "own" in cmeta["training"]["init"]["encoder"]["conv1"]


def test_one_channel_classifier_of_another_input_is_refused(tmp_path):
    from colorize.image.color import DEFAULT_NORMALIZATION as N
    from colorize.models import create_model
    from colorize.models.checkpoint import save_checkpoint
    from colorize.training.colorize_train import adapt_classifier_to_encoder

    clf = create_model("resnet18", in_chans=1, stem="imagenet")
    path = save_checkpoint(clf, tmp_path / "clf", arch="resnet18",
                           arch_kwargs={"in_chans": 1, "stem": "imagenet"}, data={"input": "gray in [0, 1]"})
    with pytest.raises(ValueError, match="not the colorizer's L'"):
        adapt_classifier_to_encoder(create_model("resnet18-unet-lite").encoder, str(path), N)
