"""Tiny ImageNet from its zip, mixed into photo training (``--tiny-imagenet-mix``), on a tiny fake zip."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from colorize.cli import main as cli
from colorize.data.photos import PhotoCrops, SmallImages
from colorize.data.tiny_imagenet import ENV_VAR, ZIP_NAME, default_tiny_imagenet_dir, load_tiny_imagenet
from colorize.models.checkpoint import read_metadata

#: member name -> (mode, colour); listed out of order, the loader sorts by name
MEMBERS = {
    "n02/b.JPEG": ("RGB", (30, 200, 60)),
    "n01/b.JPEG": ("RGB", (200, 40, 40)),
    "n03/a.JPEG": ("L", 150),
    "n01/a.JPEG": ("RGB", (40, 60, 210)),
    "n02/a.JPEG": ("RGB", (220, 200, 30)),
    "n03/b.JPEG": ("RGB", (120, 30, 160)),
}


def _jpeg(mode, colour) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (64, 64), colour).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def make_zip(folder, corrupt: bool = False):
    """A zip laid out as the real one (stored, ``<wnid>/<file>.JPEG``); ``corrupt``: one member is not a JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / ZIP_NAME, "w", zipfile.ZIP_STORED) as zf:
        for name, (mode, colour) in MEMBERS.items():
            zf.writestr(name, _jpeg(mode, colour))
        if corrupt:
            zf.writestr("n02/c.JPEG", b"\xff\xd8 not really a jpeg")
    return folder


def test_loads_rgb_in_name_order_and_converts_gray(tmp_path):
    images = load_tiny_imagenet(make_zip(tmp_path / "ti"))
    assert images.shape == (len(MEMBERS), 64, 64, 3) and images.dtype == np.uint8
    want = [MEMBERS[n] for n in sorted(MEMBERS)]
    for im, (mode, colour) in zip(images, want):
        rgb = (colour,) * 3 if mode == "L" else colour
        np.testing.assert_allclose(im.reshape(-1, 3).mean(0), rgb, atol=3)
    gray = images[sorted(MEMBERS).index("n03/a.JPEG")]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    np.testing.assert_array_equal(load_tiny_imagenet(tmp_path / "ti", limit=2), images[:2])


def test_env_var_names_the_default_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(make_zip(tmp_path / "elsewhere")))
    assert default_tiny_imagenet_dir() == tmp_path / "elsewhere"
    assert load_tiny_imagenet().shape[0] == len(MEMBERS)


def test_errors_name_the_corrupt_member_and_the_missing_zip(tmp_path):
    with pytest.raises(ValueError, match="n02/c.JPEG"):
        load_tiny_imagenet(make_zip(tmp_path / "bad", corrupt=True))
    with pytest.raises(FileNotFoundError, match=f"nowhere/{ZIP_NAME}.*<wnid>/<file>.JPEG"):
        load_tiny_imagenet(tmp_path / "nowhere")
    (tmp_path / "notzip").mkdir()
    (tmp_path / "notzip" / ZIP_NAME).write_bytes(b"plain bytes")
    with pytest.raises(ValueError, match="not a readable zip"):
        load_tiny_imagenet(tmp_path / "notzip")
    with pytest.raises(ValueError, match="limit"):
        load_tiny_imagenet(tmp_path / "ti", limit=-1)


def test_photo_crops_mix_both_sources_deterministically(make_photo, tmp_path):
    rng = np.random.default_rng(4)
    photos = [make_photo(rng, 60, 90), make_photo(rng, 90, 60)]
    cifar = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    tiny = load_tiny_imagenet(make_zip(tmp_path / "ti"))
    kw = dict(working_size=48, crop=32, per_image=2, scale=(0.8, 1.3), seed=7, cifar=cifar, cifar_per_epoch=3)
    src = PhotoCrops(photos, **kw, small=[SmallImages("tiny-imagenet", tiny, 4)])
    assert len(src) == 2 * 2 + 3 + 4
    e1 = src.for_epoch(1)
    assert e1.shape == (11, 32, 32, 3) and e1.dtype == np.uint8
    np.testing.assert_array_equal(e1, src.for_epoch(1))  # a resumed run sees the same images
    np.testing.assert_array_equal(e1, src.for_epoch(1, workers=3))
    assert not np.array_equal(e1, src.for_epoch(2))
    # the photos' crops and the CIFAR draws are those of the same run without Tiny ImageNet
    np.testing.assert_array_equal(e1[:7], PhotoCrops(photos, **kw).for_epoch(1))
    # the last four are four different Tiny ImageNet images, whole, enlarged to the crop
    enlarged = np.stack([np.asarray(Image.fromarray(t).resize((32, 32), Image.BICUBIC)) for t in tiny])
    hits = [int(np.flatnonzero((enlarged == im).all(axis=(1, 2, 3)))[0]) for im in e1[7:]]
    assert len(set(hits)) == 4
    with pytest.raises(ValueError, match="tiny-imagenet: 7 images per epoch"):
        PhotoCrops(photos, 48, 32, 1, small=[SmallImages("tiny-imagenet", tiny, 7)])


def test_training_with_tiny_imagenet_mix_records_the_source(small_photo_tree, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(make_zip(tmp_path / "ti")))
    out = tmp_path / "run"
    args = ["train", "colorize", "--arch", "resnet18-unet", "--photos", str(small_photo_tree), "--working-size", "48",
            "--crop", "32", "--crops-per-image", "1", "--batch-size", "4", "--epochs", "1", "--threads", "1",
            "--rebalance", "0", "--limit-eval", "2", "--max-steps", "2", "--tiny-imagenet-mix", "4",
            "--out", str(out)]
    assert cli(args) == 0
    meta = read_metadata(out / "model.json")
    (small,) = meta["data"]["small_images"]
    assert small["dataset"].startswith("tiny-imagenet") and small["per_epoch"] == 4
    assert "non-commercial" in small["licence"] and "32x32" in small["resolution"]
    assert meta["training"]["config"]["tiny_imagenet_mix"] == 4


def test_training_mix_errors_exit_2(small_photo_tree, tmp_path, monkeypatch, capsys):
    base = ["train", "colorize", "--photos", str(small_photo_tree), "--working-size", "48", "--crop", "32",
            "--out", str(tmp_path / "run")]
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "absent"))
    assert cli(base + ["--tiny-imagenet-mix", "4"]) == 2
    assert f"absent/{ZIP_NAME}" in capsys.readouterr().err
    monkeypatch.setenv(ENV_VAR, str(make_zip(tmp_path / "ti")))
    assert cli(base + ["--tiny-imagenet-mix", "100"]) == 2
    assert "tiny-imagenet: 100 images per epoch" in capsys.readouterr().err
    assert cli(["train", "colorize", "--tiny-imagenet-mix", "4", "--out", str(tmp_path / "run2")]) == 2
    assert "needs --photos" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "run2").exists()


@pytest.mark.data
@pytest.mark.skipif(not (default_tiny_imagenet_dir() / ZIP_NAME).is_file(),
                    reason=f"Tiny ImageNet not found ({default_tiny_imagenet_dir() / ZIP_NAME}; set ${ENV_VAR})")
def test_real_tiny_imagenet_first_images():
    images = load_tiny_imagenet(limit=200)
    assert images.shape == (200, 64, 64, 3) and images.dtype == np.uint8
    # colour images (the gray ones were left out of the zip): the channels differ
    spread = images.astype(np.int16).max(-1) - images.astype(np.int16).min(-1)
    assert (spread.reshape(200, -1).max(1) > 2).all()
