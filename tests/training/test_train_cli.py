"""End to end on a tiny synthetic CIFAR-like dataset: train classify, resume, train colorize
with the classifier as encoder init, evaluate; JSONL, plot and checkpoints written."""

import io
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from colorize.cli import main as cli
from colorize.models.checkpoint import load_checkpoint, read_metadata
from colorize.training.records import read_jsonl


def _smooth_image(rng, colour):
    """A 16x16 image with a luminance gradient and a class colour (learnable, not noise)."""
    y, x = np.mgrid[0:16, 0:16] / 15.0
    lum = 0.3 + 0.5 * (x * rng.uniform(0.2, 1) + y * rng.uniform(0, 0.5)) / 1.5
    img = np.clip(lum[..., None] * np.asarray(colour)[None, None] * 1.6, 0, 1)
    return (img * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    classes = {"red": (1.0, 0.3, 0.2), "blue": (0.2, 0.4, 1.0)}
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 8)):
        with zipfile.ZipFile(root / f"{split}.zip", "w") as zf:
            for c, colour in classes.items():
                for i in range(n):
                    buf = io.BytesIO()
                    Image.fromarray(_smooth_image(rng, colour)).save(buf, "PNG")
                    zf.writestr(f"{split}/{c}/{i:04d}.png", buf.getvalue())
    return root


COMMON = ["--batch-size", "8", "--epochs", "2", "--log-every", "1", "--save-every", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def classifier_run(tiny_cifar, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cls"
    args = ["train", "classify", "--data", str(tiny_cifar), "--out", str(out), *COMMON]
    assert cli(args + ["--max-steps", "1"]) == 0  # stops inside epoch 0 (2 steps per epoch)
    state = torch.load(out / "state.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, 1, 1)
    assert cli(args) == 2  # state exists and no --resume: refused
    assert cli(args + ["--resume"]) == 0
    return out


def test_classify_resume_metrics_plot(classifier_run):
    out = classifier_run
    records = read_jsonl(out / "metrics.jsonl")
    steps = [r["step"] for r in records if r["kind"] == "step"]
    assert steps == list(range(1, 5))  # resumed at step 2, not from scratch
    epochs = [r for r in records if r["kind"] == "epoch" and r["complete"]]
    assert [r["epoch"] for r in epochs] == [0, 1]
    assert {"train_loss", "train_acc", "test_acc", "test_loss", "img_per_s"} <= set(epochs[-1])
    assert (out / "curves.png").stat().st_size > 1000
    model, meta = load_checkpoint(out / "model.json")
    assert meta["kind"] == "classifier" and meta["arch_kwargs"]["stem"] == "cifar"
    assert len(meta["data"]["input_mean"]) == 3 and meta["metrics"]["epoch"] == 1
    assert model(torch.zeros(1, 3, 16, 16)).shape == (1, 2)


def test_colorize_encoder_init_and_evaluate(classifier_run, tiny_cifar, tmp_path, capsys):
    out = tmp_path / "col"
    args = ["train", "colorize", "--data", str(tiny_cifar), "--out", str(out), *COMMON,
            "--encoder-init", str(classifier_run / "model.json"), "--limit-eval", "8", "--lr", "3e-3"]
    assert cli(args) == 0
    meta = read_metadata(out / "model.json")
    assert meta["kind"] == "colorizer" and meta["training"]["init"]["encoder"]["arch"] == "resnet18"
    records = [r for r in read_jsonl(out / "metrics.jsonl") if r["kind"] == "epoch"]
    assert len(records) == 2 and "val_psnr" in records[-1] and "val_psnr_gray" in records[-1]

    # fine-tune from the colorizer (--init): starts from its weights, records where it came from
    ft = tmp_path / "ft"
    assert cli(["train", "colorize", "--data", str(tiny_cifar), "--out", str(ft), "--init", str(out / "model.json"),
                "--max-steps", "1", "--rebalance", "0", *COMMON]) == 0
    assert read_metadata(ft / "model.json")["training"]["init"]["from"] == str(out / "model.json")

    capsys.readouterr()
    grid = tmp_path / "grid.png"
    res_path = tmp_path / "eval.json"
    rc = cli(["evaluate", "--model", str(out / "model.json"), "--data", str(tiny_cifar), "--json",
              "--classifier", str(classifier_run / "model.json"), "--out", str(res_path), "--grid", str(grid),
              "--grid-count", "4"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res == json.loads(res_path.read_text())
    assert res["n"] == 16
    for k in ("psnr", "psnr_from_mean_mse", "ssim", "colorfulness", "colorfulness_ratio", "accuracy"):
        assert k in res["model"] and k in res["gray"]
    assert res["gray"]["colorfulness"] < 1.0 < res["truth"]["colorfulness"]
    assert 0 <= res["truth"]["accuracy"] <= 100 and "gap_recovered" in res["classifier"]
    assert Image.open(grid).size[0] > 3 * 16


def test_bins_head_fine_tune_from_a_regression_colorizer(tiny_cifar, tmp_path, capsys):
    """--head bins --loss ce --init REGRESSION.json: the body is loaded, the new head starts at zero (gray)."""
    from colorize.models import create_model
    from colorize.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    start = save_checkpoint(create_model("resnet18-unet"), tmp_path / "start", arch="resnet18-unet")
    out = tmp_path / "bins"
    base = ["train", "colorize", "--data", str(tiny_cifar), "--batch-size", "8", "--epochs", "1", "--threads", "1",
            "--limit-eval", "8"]
    assert cli(base + ["--out", str(out), "--init", str(start), "--head", "bins", "--bins-per-axis", "12",
                       "--temperature", "0.5", "--loss", "ce", "--rebalance", "0.5", "--rebalance-power", "1",
                       "--l1-weight", "2", "--cast-weight", "3", "--lr", "0"]) == 0  # lr 0: the weights stay the loaded ones
    model, meta = load_checkpoint(out / "model.json")
    assert meta["arch_kwargs"] == {"head": "bins", "bins_per_axis": 12, "temperature": 0.5}
    assert meta["training"]["init"]["head"] == "new bins head, zero-initialised"
    assert meta["training"]["loss"] == {"kind": "ce", "rebalance": 0.5, "rebalance_power": 1.0, "l1_weight": 2.0,
                                        "cast_weight": 3.0}
    a, _ = load_checkpoint(start)
    torch.testing.assert_close(model.encoder.layer3[0].conv1.weight, a.encoder.layer3[0].conv1.weight)
    torch.testing.assert_close(model.decoder.blocks[-1].conv2[0].weight, a.decoder.blocks[-1].conv2[0].weight)
    assert model.head.conv.weight.abs().max() == 0 and model.head.temperature == 0.5
    # the cast term is a term of the bins loss: refused on a regression head, nothing written
    capsys.readouterr()
    assert cli(base + ["--out", str(tmp_path / "reg"), "--cast-weight", "3"]) == 2
    assert "--cast-weight needs --loss ce" in capsys.readouterr().err and not (tmp_path / "reg" / "model.json").exists()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 16, 16)).abs().max() < 1e-6
    capsys.readouterr()
    # evaluate at another annealed-mean temperature (bins heads only)
    ev = ["evaluate", "--data", str(tiny_cifar), "--classifier", "none", "--json"]
    assert cli(ev + ["--model", str(out / "model.json"), "--temperature", "0.2"]) == 0
    assert json.loads(capsys.readouterr().out)["model_info"]["temperature"] == 0.2
    assert cli(ev + ["--model", str(start), "--temperature", "0.2"]) == 2
    assert "no ab-bins head" in capsys.readouterr().err
    assert cli(ev + ["--model", str(out / "model.json"), "--temperature", "0"]) == 2
    # the loss and the head go together
    assert cli(base + ["--out", str(tmp_path / "x1"), "--loss", "ce"]) == 2
    assert cli(base + ["--out", str(tmp_path / "x2"), "--head", "bins"]) == 2
    assert cli(base + ["--out", str(tmp_path / "x3"), "--arch", "seed-unet", "--loss", "ce"]) == 2
    assert "--loss ce" in capsys.readouterr().err


def test_encoder_init_adapts_conv1(classifier_run):
    from colorize.image.color import DEFAULT_NORMALIZATION as N
    from colorize.models import create_model
    from colorize.training.colorize_train import adapt_classifier_to_encoder

    clf, meta = load_checkpoint(classifier_run / "model.json")
    col = create_model("resnet18-unet")
    adapt_classifier_to_encoder(col.encoder, str(classifier_run / "model.json"), N)
    std = torch.tensor(meta["data"]["input_std"]).view(1, 3, 1, 1)
    expect = (clf.conv1.weight * N.l_scale / 100 / std).sum(1, keepdim=True)
    torch.testing.assert_close(col.encoder.conv1.weight, expect)
    torch.testing.assert_close(col.encoder.layer4[1].conv2.weight, clf.layer4[1].conv2.weight)
    # A gray image seen by the classifier and its L seen by the adapted conv1 give nearly the same response
    # (up to a per-filter constant, which the following BatchNorm absorbs).
    with pytest.raises(ValueError, match="do not fit"):
        adapt_classifier_to_encoder(create_model("resnet34-unet").encoder, str(classifier_run / "model.json"), N)


def test_evaluate_usage_errors(tmp_path, capsys):
    assert cli(["evaluate", "--model", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_classify_init_starts_from_a_checkpoint(classifier_run, tiny_cifar, tmp_path, capsys):
    start = classifier_run / "model.json"
    args = ["train", "classify", "--data", str(tiny_cifar), "--batch-size", "8", "--epochs", "1", "--threads", "1",
            "--init", str(start)]
    out = tmp_path / "cont"
    assert cli(args + ["--out", str(out), "--lr", "0"]) == 0  # lr 0: the weights stay the loaded ones
    a, _ = load_checkpoint(start)
    b, meta = load_checkpoint(out / "model.json")
    assert torch.equal(a.state_dict()["conv1.weight"], b.state_dict()["conv1.weight"])
    assert torch.equal(a.state_dict()["fc.weight"], b.state_dict()["fc.weight"])
    assert meta["training"]["config"]["init"] == str(start)
    capsys.readouterr()
    assert cli(args + ["--out", str(tmp_path / "bad"), "--arch", "resnet34"]) == 2
    assert "resnet18" in capsys.readouterr().err


def test_evaluate_cifar_through_the_pipeline_on_pillow_gray(tiny_cifar, tmp_path):
    """--pipeline colorizes CIFAR-10 images through colorize.Colorizer (as `colorize images` does), on Pillow gray."""
    path = tmp_path / "pipe.json"
    assert cli(["evaluate", "--data", str(tiny_cifar), "--pipeline", "--model", "resnet18-unet", "--limit", "6",
                "--working-size", "32", "--out", str(path)]) == 0
    res = json.loads(path.read_text())
    assert res["n"] == 6 and res["gray_input"] == "pillow" and res["split"] == "cifar10 test (pipeline)"
    assert res["model_info"]["backend"] == "torch" and res["min_working_size"] == 0
    # the gray baseline is the Pillow gray itself: colourless
    assert res["gray"]["colorfulness"] < 1.0 and res["truth"]["colorfulness"] > 10
    torch_path = tmp_path / "torch.json"
    assert cli(["evaluate", "--data", str(tiny_cifar), "--model", "resnet18-unet", "--limit", "6",
                "--classifier", "none", "--out", str(torch_path)]) == 0
    # the same gray baseline either way (the torch path and the pipeline make the same Pillow gray)
    assert json.loads(torch_path.read_text())["gray"]["psnr"] == pytest.approx(res["gray"]["psnr"], abs=1e-6)
    big = tmp_path / "big.json"
    assert cli(["evaluate", "--data", str(tiny_cifar), "--pipeline", "--model", "resnet18-unet", "--limit", "6",
                "--working-size", "64", "--min-working-size", "48", "--out", str(big)]) == 0
    res_big = json.loads(big.read_text())
    assert res_big["min_working_size"] == 48
    assert res_big["model"]["psnr"] != pytest.approx(res["model"]["psnr"], abs=1e-6)  # it ran at another size
