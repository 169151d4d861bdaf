"""Photo split, working-size crops, photo fine-tuning and photo evaluation on a tiny fake photo tree."""

import json

import numpy as np
import pytest
from PIL import Image

from colorize.cli import main as cli
from colorize.models.checkpoint import load_checkpoint, read_metadata
from colorize.data.photos import SPLITS, center_crops, load_at_working_size, photo_paths, random_crops


@pytest.fixture(scope="module")
def photo_tree(small_photo_tree):
    """conftest's photo tree (three small photos per folder of each split) with a file that is not an image."""
    (small_photo_tree / "coco128" / "notes.txt").write_text("not an image")
    return small_photo_tree


def test_split_lists_each_folder_and_names_a_missing_one(photo_tree, tmp_path, make_photo):
    train = photo_paths(photo_tree, "train")
    assert len(train) == 3 * len(SPLITS["train"])
    assert not set(train) & set(photo_paths(photo_tree, "eval"))
    with pytest.raises(ValueError, match="unknown photo split"):
        photo_paths(photo_tree, "test")
    (tmp_path / "BSDS500" / "val").mkdir(parents=True)
    Image.fromarray(make_photo(np.random.default_rng(0), 20, 20)).save(tmp_path / "BSDS500" / "val" / "a.png")
    with pytest.raises(FileNotFoundError, match="McMaster"):
        photo_paths(tmp_path, "eval")


def test_working_size_and_crops(photo_tree, make_photo):
    p = photo_paths(photo_tree, "train")[0]  # 60x90
    im = load_at_working_size(p, 45)
    assert im.shape == (30, 45, 3) and im.dtype == np.uint8
    assert load_at_working_size(p, 500).shape == (60, 90, 3)  # never enlarged
    rng = np.random.default_rng(1)
    imgs = [make_photo(rng, 30, 45), make_photo(rng, 10, 50)]
    crops = random_crops(imgs, 16, 3, seed=2)
    assert crops.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(crops, random_crops(imgs, 16, 3, seed=2))
    # every crop of the first image is a window of it
    win = np.lib.stride_tricks.sliding_window_view(imgs[0], (16, 16, 3)).reshape(-1, 16, 16, 3)
    assert all((win == c).all(axis=(1, 2, 3)).any() for c in crops[:3])
    # the short image is edge-padded up to the crop
    assert center_crops(imgs, 16).shape == (2, 16, 16, 3)
    with pytest.raises(ValueError, match="crop"):
        random_crops(imgs, 0, 1)


def test_photo_finetune_then_evaluate(photo_tree, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "colorize", "--arch", "resnet18-unet", "--photos", str(photo_tree), "--working-size", "48",
            "--crop", "32", "--crops-per-image", "1", "--batch-size", "4", "--epochs", "1", "--threads", "1",
            "--rebalance", "0", "--out", str(out)]
    assert cli(args) == 0
    meta = read_metadata(out / "model.json")
    assert meta["data"]["dataset"].startswith("photos")
    assert "32x32 crops" in meta["data"]["resolution"]
    rec = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert rec["val_images"] == 3 * len(SPLITS["eval"])  # one center crop per eval photo

    capsys.readouterr()
    grid = tmp_path / "grid.jpg"
    res_path = tmp_path / "photos.json"
    assert cli(["evaluate", "--model", str(out / "model.json"), "--photos", str(photo_tree), "--working-size", "32",
                "--out", str(res_path), "--grid", str(grid), "--grid-count", "2"]) == 0
    res = json.loads(res_path.read_text())
    assert res["n"] == 3 * len(SPLITS["eval"]) and res["working_size"] == 32
    assert res["model_info"]["backend"] == "torch" and res["model_info"]["precision"] == "fp32"
    assert set(res["per_folder"]) == {"BSDS500/val", "McMaster", "Set14"}
    # the gray baseline is colourless; these ramps are not
    assert res["gray"]["colorfulness"] < 1.0 and res["truth"]["colorfulness"] > 10
    for k in ("psnr", "psnr_from_mean_mse", "ssim", "colorfulness_ratio"):
        assert np.isfinite(res["model"][k])
    # the head starts at zero (gray output) and one step of fine-tuning moves it only a little
    assert abs(res["model"]["psnr"] - res["gray"]["psnr"]) < 1.0
    with Image.open(grid) as im:
        assert im.format == "JPEG" and im.height > 2 * 160
    printed = capsys.readouterr().out
    assert "gray" in printed and "per-photo PSNR by folder (model/gray): BSDS500/val" in printed


def test_evaluate_photos_names_a_missing_folder(tmp_path, capsys):
    assert cli(["evaluate", "--model", "resnet18-unet", "--photos", str(tmp_path)]) == 2
    assert "BSDS500" in capsys.readouterr().err


def test_photo_crops_are_fresh_each_epoch_and_reproducible(make_photo):
    from colorize.data.photos import PhotoCrops

    rng = np.random.default_rng(3)
    photos = [make_photo(rng, 60, 90), make_photo(rng, 90, 60), make_photo(rng, 20, 30)]
    cifar = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    src = PhotoCrops(photos, working_size=48, crop=32, per_image=2, scale=(0.8, 1.3), seed=5,
                     cifar=cifar, cifar_per_epoch=4)
    assert len(src) == 3 * 2 + 4
    e0, e1 = src.for_epoch(0), src.for_epoch(1)
    assert e0.shape == (10, 32, 32, 3) and e0.dtype == np.uint8
    np.testing.assert_array_equal(e0, src.for_epoch(0))  # a resumed run sees the same crops
    assert not np.array_equal(e0[:6], e1[:6])  # a new epoch, new crops
    # a crop keeps the photo's colours (a window of the ramps, rescaled), never black padding
    assert e0[:6].min() > 20
    with pytest.raises(ValueError, match="scale range"):
        PhotoCrops(photos, 48, 32, 1, scale=(1.2, 1.0))


def test_lite_bins_training_on_photos_with_mixed_gray(photo_tree, tmp_path):
    """The photo recipe end to end on tiny data: lite arch, bins head at 1/4 + L1 on the refined output,
    users' grays, per-epoch crops, a warm start copying matching tensors, then a resume."""
    src = tmp_path / "src"
    base = ["train", "colorize", "--photos", str(photo_tree), "--working-size", "64", "--crop", "64",
            "--crops-per-image", "2", "--batch-size", "4", "--threads", "1", "--limit-eval", "2"]
    assert cli(base + ["--arch", "resnet18-unet-lite", "--epochs", "1", "--rebalance", "0", "--out", str(src)]) == 0
    out = tmp_path / "run"
    args = base + ["--arch", "resnet18-unet-lite", "--head", "bins", "--loss", "ce", "--l1-weight", "10",
                   "--gray", "mixed", "--init", str(src / "model.json"), "--init-matching", "--epochs", "2",
                   "--out", str(out)]
    assert cli(args + ["--max-steps", "3"]) == 0
    meta = read_metadata(out / "model.json")
    assert meta["arch"] == "resnet18-unet-lite" and meta["total_stride"] == 32
    got, total = meta["training"]["init"]["matching"].split(" of ")
    assert 0 < int(got.split()[0]) < int(total.split()[0])  # the body matched, the new bins head did not
    assert meta["training"]["config"]["gray"] == "mixed"
    assert cli(args + ["--resume"]) == 0
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs if r["kind"] == "epoch"][-1] == 1
    assert all(np.isfinite(r["train_loss"]) for r in recs if r["kind"] == "epoch")


def test_convex_refine_training_warm_starts_from_a_guided_model(photo_tree, tmp_path):
    """``--refine convex``: the arch kwargs reach the checkpoint, the warm start keeps the body and the new
    refinement trains away from its zero start (the box filter)."""
    src = tmp_path / "src"
    base = ["train", "colorize", "--photos", str(photo_tree), "--working-size", "64", "--crop", "64",
            "--crops-per-image", "2", "--batch-size", "4", "--threads", "1", "--limit-eval", "2",
            "--arch", "resnet18-unet-lite", "--head", "bins", "--loss", "ce", "--l1-weight", "10", "--lr", "1e-2"]
    assert cli(base + ["--epochs", "1", "--max-steps", "1", "--out", str(src)]) == 0
    out = tmp_path / "run"
    assert cli(base + ["--refine", "convex", "--refine-channels", "8", "--init", str(src / "model.json"),
                       "--init-matching", "--epochs", "1", "--max-steps", "3", "--out", str(out)]) == 0
    model, meta = load_checkpoint(out / "model.json")
    assert meta["arch_kwargs"] == {"refine": "convex", "refine_channels": 8, "head": "bins"}
    assert model.refine.mask[-1].weight.abs().max() > 0
    got, total = meta["training"]["init"]["matching"].split(" of ")
    assert 0 < int(got.split()[0]) < int(total.split()[0])


def test_evaluate_gray_protocols(photo_tree, tmp_path):
    res = {}
    for gray in ("pillow", "lstar"):
        path = tmp_path / f"{gray}.json"
        assert cli(["evaluate", "--model", "resnet18-unet", "--photos", str(photo_tree), "--working-size", "32",
                    "--gray", gray, "--out", str(path)]) == 0
        res[gray] = json.loads(path.read_text())
        assert res[gray]["gray_input"] == gray
    # the two protocols have different gray baselines (luma vs L*) on colour photos
    assert res["pillow"]["gray"]["psnr"] != pytest.approx(res["lstar"]["gray"]["psnr"], abs=1e-3)
    with pytest.raises(SystemExit):
        cli(["evaluate", "--model", "resnet18-unet", "--photos", str(photo_tree), "--gray", "luma"])


def test_crops_cut_in_threads_are_the_same(photo_tree):
    from colorize.data.photos import PhotoCrops

    rng = np.random.default_rng(3)
    photos = [load_at_working_size(p, 64) for p in photo_paths(photo_tree, "train")]
    cifar = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    src = PhotoCrops(photos, 64, 32, 3, seed=2, cifar=cifar, cifar_per_epoch=4)
    one = src.for_epoch(1)
    np.testing.assert_array_equal(src.for_epoch(1, workers=3), one)
    assert not np.array_equal(src.for_epoch(2, workers=3), one)


def test_srgb_gamut_head_warm_starts_from_a_full_grid_bins_model(photo_tree, tmp_path):
    """``--gamut srgb``: the pruned head takes the full-grid checkpoint's rows of the kept bins (``--init``, no
    name matching needed), the kwargs reach the checkpoint and the run trains; ``--decoder-channels`` too."""
    from colorize.models.ab_bins import reachable_bins

    src = tmp_path / "src"
    base = ["train", "colorize", "--photos", str(photo_tree), "--working-size", "64", "--crop", "64",
            "--crops-per-image", "2", "--batch-size", "4", "--threads", "1", "--limit-eval", "2",
            "--arch", "resnet18-unet-lite", "--head", "bins", "--loss", "ce", "--l1-weight", "10", "--lr", "1e-2"]
    assert cli(base + ["--epochs", "1", "--max-steps", "1", "--out", str(src)]) == 0
    out = tmp_path / "run"
    assert cli(base + ["--gamut", "srgb", "--init", str(src / "model.json"), "--epochs", "1", "--max-steps", "2",
                       "--out", str(out)]) == 0
    model, meta = load_checkpoint(out / "model.json")
    assert meta["arch_kwargs"] == {"head": "bins", "gamut": "srgb"}
    assert model.head.conv.out_channels == len(reachable_bins(22))
    narrow = tmp_path / "narrow"
    assert cli(base + ["--gamut", "srgb", "--decoder-channels", "96,64,16", "--init", str(out / "model.json"),
                       "--init-matching", "--epochs", "1", "--max-steps", "1", "--out", str(narrow)]) == 0
    model, meta = load_checkpoint(narrow / "model.json")
    assert meta["arch_kwargs"]["decoder_channels"] == [96, 64, 16]
    assert model.decoder.out_channels == 16


def test_photo_report_gives_every_photo_each_source_and_the_worst_first(photo_tree, tmp_path):
    """``benchmarks/photo_report.py``: per-image rows named by source, per-source colourfulness, the worst gains
    first, and a contact sheet of them."""
    import importlib.util

    from colorize.colorizer import Colorizer
    from colorize.training.photo_eval import contact_sheet, evaluate_photos

    spec = importlib.util.spec_from_file_location("photo_report", "benchmarks/photo_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    paths = photo_paths(photo_tree, "eval")
    with Colorizer.load("efficientnet_lite0-unet-photos", "torch", "fp32", working_size=64) as col:
        res = evaluate_photos(col, paths, col.engine.normalization, per_image=True)
        assert [r["name"].split("/")[-1] for r in res["per_image"]] == [p.name for p in paths]
        assert {r["group"] for r in res["per_image"]} == set(res["per_folder"]) == set(SPLITS["eval"])
        assert all(0 <= f["colorfulness_ratio"] < 5 for f in res["per_folder"].values())
        lines, worst = mod.report(res, worst=4)
        gains = [r["psnr_model"] - r["psnr_gray"] for r in worst]
        assert len(worst) == 4 and gains == sorted(gains)
        assert gains[-1] <= min(r["psnr_model"] - r["psnr_gray"] for r in res["per_image"] if r not in worst) + 1e-9
        assert any(line.startswith("| all | 9 |") for line in lines)
        for r in res["per_image"]:  # the original's own mean colour and the model's cast, within Lab's range
            assert abs(r["truth_a"]) < 128 and abs(r["truth_b"]) < 128 and abs(r["cast_b"]) < 256
        c = mod.cast_summary(res["per_image"])
        cool = [r for r in res["per_image"] if r["truth_b"] < mod.NEUTRAL_B]
        assert c["cool_originals"] == len(cool) and c["warm"] == sum(r["cast_b"] > mod.WARM_CAST for r in res["per_image"])
        assert any(line.startswith("Casts: a warm cast") for line in lines)
        sheet = tmp_path / "worst.jpg"
        contact_sheet(col, [photo_tree / r["name"] for r in worst], str(sheet), height=40)
        # without per_image, the shipped metrics stay small
        assert "per_image" not in evaluate_photos(col, paths[:1], col.engine.normalization)
    with Image.open(sheet) as im:
        assert im.height >= 4 * 40
