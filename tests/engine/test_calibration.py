"""INT8 calibration from the photos that ship with the package: no dataset beside the clone is needed."""

import numpy as np
import pytest

from colorize.data.calibration import calibration_crops, calibration_photos

AB_SCALE = 110.0  # the model's ab' is ab / 110


@pytest.fixture
def no_datasets(monkeypatch, tmp_path):
    """A user's machine: neither CIFAR-10 nor the photos are anywhere to be found."""
    monkeypatch.setenv("COLORIZE_CIFAR10", str(tmp_path / "no-cifar10"))
    monkeypatch.setenv("COLORIZE_PHOTOS", str(tmp_path / "no-photos"))


def test_bundled_photos_are_gray_and_licensed():
    paths = calibration_photos()
    assert len(paths) >= 12
    readme = (paths[0].parent / "README.md").read_text()
    from PIL import Image

    for p in paths:
        assert f"`{p.name}`" in readme, f"{p.name} has no source and licence in the README"
        with Image.open(p) as im:
            assert im.mode == "L" and max(im.size) <= 512


def test_crops_are_seeded_varied_and_from_every_photo():
    a = calibration_crops(28, 64, working_size=128, seed=0)
    assert a.shape == (28, 64, 64) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, calibration_crops(28, 64, working_size=128, seed=0))
    assert not np.array_equal(a, calibration_crops(28, 64, working_size=128, seed=1))
    # photos take turns: the first len(photos) crops are all different pictures
    n = len(calibration_photos())
    means = a[:n].reshape(n, -1).mean(1)
    assert len(set(np.round(means, 3))) == n
    assert a.std() > 20  # real image content, not padding


def test_crop_larger_than_a_reduced_photo_is_padded():
    a = calibration_crops(3, 96, working_size=48)
    assert a.shape == (3, 96, 96)


def test_calibration_needs_no_dataset(no_datasets):
    from colorize.export import quantize

    with pytest.raises(FileNotFoundError, match="CIFAR-10"):
        quantize.cifar_calibration_l(8)
    l32 = quantize.calibration_l()
    assert l32.shape == (quantize.CALIBRATION_IMAGES, 1, 32, 32) and l32.dtype == np.float32
    assert -1.0 <= l32.min() < -0.5 and 0.5 < l32.max() <= 1.0  # model-normalized L spans most of its range
    l128 = quantize.photo_calibration_l()
    assert l128.shape == (quantize.PHOTO_CALIBRATION_CROPS, 1, 128, 128)
    with pytest.raises(FileNotFoundError):
        quantize.photo_calibration_l(split="train")


def test_engine_builds_int8_without_a_dataset(no_datasets, tmp_path):
    """What a user's ``--precision int8`` does for a model with no shipped INT8 file: calibrate on the bundled
    photos, pass the quality guard (on its bundled images), and stay close to FP32."""
    pytest.importorskip("onnxruntime")
    import shutil

    from colorize import Engine
    from colorize.artifacts.model_ref import resolve_model

    src = shutil.copy(resolve_model("resnet18-unet").onnx, tmp_path / "m.onnx")  # no m.int8.onnx beside it
    l = np.random.default_rng(0).uniform(-1, 1, (4, 1, 32, 32)).astype(np.float32)
    with Engine.load(src, "onnxruntime", "fp32", cache_dir=tmp_path / "c") as eng:
        want = eng.run(l)
    with Engine.load(src, "onnxruntime", "int8", cache_dir=tmp_path / "c") as eng:
        assert eng.guard_result is not None and eng.guard_result.passed, eng.guard_result
        assert eng._backend.path.parent.is_relative_to(tmp_path / "c")  # built here, not a shipped file
        got = eng.run(l)
    assert np.abs(got - want).mean() * AB_SCALE <= 1.0  # mean |delta ab| under one Lab unit


def test_the_summary_says_what_auto_passed_over_and_why(tmp_path, monkeypatch):
    """``auto`` that cannot build INT8 falls back, and the job's summary names each candidate it dropped."""
    pytest.importorskip("onnxruntime")
    import shutil

    from PIL import Image

    from colorize import colorize_folder
    from colorize.artifacts.model_ref import resolve_model
    from colorize.export import quantize

    def broken(*a, **k):
        raise RuntimeError("calibration exploded (test)")

    monkeypatch.setattr(quantize, "quantize_int8", broken)
    src = shutil.copy(resolve_model("resnet18-unet").onnx, tmp_path / "m.onnx")  # no INT8 file beside it
    (tmp_path / "in").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24), np.uint8)).save(tmp_path / "in" / "a.png")
    monkeypatch.setenv("COLORIZE_CACHE", str(tmp_path / "cache"))
    summary = colorize_folder(tmp_path / "in", tmp_path / "out", model=src, small_model=None)
    assert summary.exit_status == 0
    assert any("int8" in p and "calibration exploded (test)" in p for p in summary.passed_over), summary.passed_over
    assert "auto passed over" in summary.describe() and "calibration exploded" in summary.describe()
