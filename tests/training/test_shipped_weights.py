"""The shipped CIFAR-10 colorizer and classifier: load by name, sha256 checked, size, metadata,
and (opt-in, full data) a quality check against the gray baseline."""

import shutil

import numpy as np
import pytest
import torch

from colorize.artifacts.model_ref import WEIGHTS_DIR, resolve_model
from colorize.models.checkpoint import CheckpointError, checkpoint_paths, load_checkpoint

CLASSIFIER = WEIGHTS_DIR / "classifiers" / "resnet18-cifar10.json"
MAX_BYTES = 32 * 1024 * 1024


def test_shipped_colorizer_loads_by_name():
    ref = resolve_model("resnet18-unet")
    assert ref.checkpoint is not None and not ref.random_init, "models/weights/resnet18-unet.json is not shipped"
    model, meta = load_checkpoint(ref.checkpoint)
    assert meta["arch"] == "resnet18-unet" and meta["arch_kwargs"].get("stem", "cifar") == "cifar"
    assert meta["weights"]["dtype"] == "float16" and meta["normalization"]["ab_scale"] == 110.0
    assert meta["training"]["command"].startswith("colorize train colorize")
    assert "psnr" in meta["metrics"]["model"] and "psnr" in meta["metrics"]["gray"]
    assert checkpoint_paths(ref.checkpoint)[1].stat().st_size <= MAX_BYTES
    l = torch.linspace(-1, 1, 2 * 32 * 32).view(2, 1, 32, 32)
    with torch.no_grad():
        ab = model(l)
    assert ab.shape == (2, 2, 32, 32) and torch.isfinite(ab).all() and ab.abs().max() > 0


def test_shipped_classifier_loads():
    assert CLASSIFIER.is_file(), f"{CLASSIFIER} is not shipped"
    model, meta = load_checkpoint(CLASSIFIER)
    assert meta["kind"] == "classifier" and meta["arch_kwargs"] == {"num_classes": 10, "stem": "cifar", "in_chans": 3}
    assert len(meta["data"]["classes"]) == 10 and len(meta["data"]["input_std"]) == 3
    assert checkpoint_paths(CLASSIFIER)[1].stat().st_size <= MAX_BYTES
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_tampered_weights_are_refused(tmp_path):
    json_path, st_path = checkpoint_paths(resolve_model("resnet18-unet").checkpoint)
    shutil.copy(json_path, tmp_path / json_path.name)
    blob = bytearray(st_path.read_bytes())
    blob[-1] ^= 0xFF
    (tmp_path / st_path.name).write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(tmp_path / json_path.name)


@pytest.mark.data
def test_shipped_colorizer_beats_gray_on_test_subset():
    from colorize.data.cifar10 import load_cifar10
    from colorize.training.classify import subset
    from colorize.training.evaluate import evaluate_colorizer

    model, meta = load_checkpoint(resolve_model("resnet18-unet").checkpoint)
    images, labels = subset(*load_cifar10("test"), 500)
    res = evaluate_colorizer(model, images, labels)
    # Shipped model (short CPU run): +0.53 dB per-image, +1.48 dB from the mean MSE on the full 10k split.
    assert res["model"]["psnr"] > res["gray"]["psnr"]
    assert res["model"]["psnr_from_mean_mse"] > res["gray"]["psnr_from_mean_mse"] + 0.5
    assert res["model"]["colorfulness_ratio"] > res["gray"]["colorfulness_ratio"] + 0.2
    assert np.isfinite(res["model"]["ssim"])


def test_photo_model_is_the_default_for_photos():
    """`colorize images`, `Colorizer.load()` and `colorize serve` use the photo model; `Engine.load` and the name
    `resnet18-unet` keep the CIFAR-10 model. The photo model is the EfficientNet-Lite0 U-Net (within the 4 GFLOP
    budget at 256x256), shipped with its ONNX files (runs without torch), enlarges small images to its minimum
    working size, and its recorded figures (Pillow gray input, through the Colorizer) beat the gray input on photos
    and against the model it replaced (``previous_model_*``, measured the same way) give much more colour on photos
    for at most 0.3 dB of PSNR, and no worse on small (CIFAR-10) images."""
    import argparse
    import inspect

    from colorize.benchmarks.flops import count_torch
    from colorize import Colorizer, Engine
    from colorize.artifacts.model_ref import DEFAULT_MODEL, DEFAULT_PHOTO_MODEL
    from colorize.cli import images
    from colorize.serve.config import ServeConfig
    from colorize.models.checkpoint import load_checkpoint

    assert DEFAULT_MODEL == "resnet18-unet" and DEFAULT_PHOTO_MODEL == "efficientnet_lite0-unet-photos"
    assert inspect.signature(Engine.load).parameters["model"].default == DEFAULT_MODEL
    assert inspect.signature(Colorizer.load).parameters["model"].default == DEFAULT_PHOTO_MODEL
    assert ServeConfig().model == DEFAULT_PHOTO_MODEL
    parser = argparse.ArgumentParser()
    images.add_arguments(parser)
    assert parser.parse_args(["in", "-o", "out"]).model == DEFAULT_PHOTO_MODEL

    ref = resolve_model(DEFAULT_PHOTO_MODEL)
    assert ref.checkpoint is not None and ref.onnx is not None, f"{DEFAULT_PHOTO_MODEL} is not shipped with its ONNX"
    assert (WEIGHTS_DIR / f"{DEFAULT_PHOTO_MODEL}.int8.onnx").is_file()
    meta = ref.metadata
    assert meta["arch"] == "efficientnet_lite0-unet" and meta["data"]["dataset"].startswith("photos")
    assert meta["arch_kwargs"]["refine"] == "convex" and meta["arch_kwargs"]["head"] == "bins"
    assert meta["training"]["config"]["gray"] == "mixed" and meta["total_stride"] == 32
    assert checkpoint_paths(ref.checkpoint)[1].stat().st_size <= MAX_BYTES
    model, _ = load_checkpoint(ref.checkpoint)
    assert count_torch(model.eval(), 256, 256) <= 4e9
    assert meta["inference"]["min_working_size"] > 32
    photos, cifar = meta["metrics"]["photos"], meta["metrics"]["cifar10_pipeline"]
    assert photos["gray_input"] == cifar["gray_input"] == "pillow"
    assert photos["n"] == 127 and photos["model"]["psnr"] > photos["gray"]["psnr"] + 1.0
    assert photos["model"]["colorfulness_ratio"] > 0.3
    before = meta["metrics"]["previous_model_cifar10_pipeline"]
    # CIFAR-sized images run on the same small-image model before and after: no worse
    assert cifar["n"] == before["n"] >= 2000 and cifar["model"]["psnr"] >= before["model"]["psnr"] - 0.01
    auto, before = meta["metrics"]["photos_default_pipeline"], meta["metrics"]["previous_model_photos"]
    assert auto["n"] == before["n"] == 127 and auto["gray_input"] == before["gray_input"] == "pillow"
    # much more colour for at most 0.3 dB of PSNR (docs/quality.md: the trade that was chosen)
    assert auto["model"]["colorfulness_ratio"] > before["model"]["colorfulness_ratio"] + 0.15
    assert auto["model"]["psnr"] >= before["model"]["psnr"] - 0.3
    assert cifar["min_working_size"] == meta["inference"]["min_working_size"]
