import pytest
from PIL import Image

from colorize.benchmarks import e2e


def test_make_folder(tmp_path):
    paths = e2e.make_folder(tmp_path / "in", 3, 12, 20)
    assert len(paths) == 3
    for p in paths:
        with Image.open(p) as im:
            assert im.size == (20, 12) and im.mode == "RGB"


def test_skipped_without_the_images_command(monkeypatch):
    monkeypatch.setattr(e2e, "images_command_help", lambda: None)
    rows = e2e.run_end_to_end([(32, 32)], batch=8, images=4)
    assert rows[0]["status"] == "skipped" and rows[0]["reason"] == "colorize images not available"


def test_attach_model_only():
    rows = [e2e._row("torch", "fp32", 8, 32, 32, 4)]
    results = [
        {"backend": "torch", "precision": "fp32", "batch": 8, "height": 32, "width": 32, "status": "ok",
         "images_per_s": 123.0},
        {"backend": "torch", "precision": "fp32", "batch": 1, "height": 32, "width": 32, "status": "ok",
         "images_per_s": 9.0},
    ]
    e2e.attach_model_only(rows, results)
    assert rows[0]["model_only_images_per_s"] == 123.0


@pytest.mark.slow
def test_real_folder_pipeline():
    pytest.importorskip("torch")
    if e2e.images_command_help() is None:
        pytest.skip("colorize images is not in this checkout")
    (row,) = e2e.run_end_to_end([(16, 16)], batch=2, images=3, model="resnet18-unet", backend="torch",
                                precision="fp32")
    assert row["status"] == "ok", row["reason"]
    assert row["wall_s"] > 0 and row["images_per_s"] == pytest.approx(3 / row["wall_s"])
    assert row["startup_s"] > 0
