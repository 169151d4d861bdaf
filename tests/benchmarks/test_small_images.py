"""benchmarks/small_images.py: models compared on the evaluation photos reduced to small sizes."""

import json

import numpy as np
from PIL import Image

from colorize.benchmarks import small_images
from colorize.data.photos import SPLITS


def test_shrink_keeps_aspect_and_reaches_the_side():
    a = np.zeros((300, 480, 3), np.uint8)
    assert small_images.shrink(a, 32).shape == (20, 32, 3)
    assert small_images.shrink(a[:, :2], 32).shape == (32, 1, 3)  # never below 1 pixel


def test_rows_per_model_and_side(tmp_path):
    rng = np.random.default_rng(0)
    for sub in SPLITS["eval"]:
        (tmp_path / "photos" / sub).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(tmp_path / "photos" / sub / "a.png")
    out = tmp_path / "small.json"
    # eager torch: the rows are what is checked here, not auto's choice (its ONNX export, INT8 build and guard took most of the time)
    assert small_images.main(["--models", "resnet18-unet,resnet18-unet-lite", "--sides", "16,40",
                              "--backend", "torch", "--precision", "fp32",
                              "--photos", str(tmp_path / "photos"), "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert [(r["model"], r["side"]) for r in rec["rows"]] == [
        ("resnet18-unet", 16), ("resnet18-unet", 40), ("resnet18-unet-lite", 16), ("resnet18-unet-lite", 40)]
    assert all(np.isfinite(r["delta_psnr"]) for r in rec["rows"])
    assert {r["backend"] for r in rec["rows"]} == {"torch/fp32"} and "backend torch/fp32" in rec["protocol"]
