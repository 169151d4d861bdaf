"""``colorize.ray.worker.ColorizeBatch`` called in this process, as an actor calls it (no Ray needed)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from colorize.cli import main

MODEL = ["--model", "efficientnet_lite0-unet-photos", "--backend", "onnxruntime", "--precision", "fp32"]
OPTIONS = dict(model="efficientnet_lite0-unet-photos", backend="onnxruntime", precision="fp32", working_size=32, batch_size=4)


def _gray(h, w, seed=0):
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(128 + 90 * np.sin(x / 4.0 + seed) * np.cos(y / 6.0), 0, 255).astype(np.uint8)


def _pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA" if im.mode in ("RGBA", "LA") else "RGB")).astype(np.int16)


def test_batch_rows_and_outputs_match_the_local_run(tmp_path):
    pytest.importorskip("onnxruntime")
    from colorize.ray.worker import STATUS_COLUMNS, ColorizeBatch

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_gray(24, 36)).save(src / "a.png")
    Image.fromarray(np.stack([_gray(20, 30, 1), _gray(20, 30, 2)], -1), "LA").save(src / "b.png")
    Image.fromarray(_gray(40, 20, 3)).save(src / "c.jpg", quality=95)
    (src / "d.png").write_bytes(b"")
    (src / "e.jpg").write_text("not a JPEG")
    assert main(["images", str(src), "-o", str(tmp_path / "local"), *MODEL, "--working-size", "32", "-q"]) == 1

    names = ["a.png", "b.png", "c.jpg", "d.png", "e.jpg"]
    out = tmp_path / "ray" / "deep"
    batch = {"src": np.array([str(src / n) for n in names], object),
             "dst": np.array([str(out / n) for n in names], object),
             "index": np.array([10, 11, 12, 13, 14]), "thumbnail": np.array([True, False, False, True, False])}
    rows = ColorizeBatch(**OPTIONS, threads=1)(batch)
    assert set(rows) == set(STATUS_COLUMNS) and all(len(v) == 5 for v in rows.values())
    assert list(rows["index"]) == [10, 11, 12, 13, 14] and list(rows["src"]) == list(batch["src"])
    assert list(rows["ok"]) == [True, True, True, False, False]
    assert rows["error"][3] == "empty file (0 bytes)" and rows["error"][4].startswith("not an image")
    assert [(int(w), int(h)) for w, h in zip(rows["width"], rows["height"])][:3] == [(36, 24), (30, 20), (20, 40)]
    assert rows["before"][0].startswith("data:image/jpeg;base64,") and rows["after"][0].startswith("data:image/jpeg")
    assert rows["before"][1] == rows["after"][1] == "" == rows["before"][3]  # only requested, only when done
    # b.png (30 px long side) ran on the small-image model, the others on the model asked for
    assert list(rows["engine"][:3]) == ["onnxruntime/fp32", "resnet18-unet (onnxruntime/fp32)", "onnxruntime/fp32"]
    assert set(rows["pid"]) == {os.getpid()}
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.jpg"]  # no temporary file left
    for n in ("a.png", "b.png", "c.jpg"):  # the code the local run uses: the same pixels (JPEG: same encoder)
        assert np.abs(_pixels(out / n) - _pixels(tmp_path / "local" / n)).max() <= 1, n


def test_ray_modules_import_neither_ray_nor_torch():
    code = ("import sys, colorize.ray, colorize.ray.worker, colorize.ray.pipeline, colorize.ray.pool, colorize.ray.cluster, "
            "colorize.ray.driver, colorize.cli.images_ray, colorize.cli.folder_job; "
            "assert 'ray' not in sys.modules, 'ray imported'; assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
