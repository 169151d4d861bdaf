"""colorize.training.ship: fp16 copy with the source's record, and metrics recorded from one or several evaluate JSONs."""

import json

import pytest
import torch

from colorize.models import create_model
from colorize.models.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from colorize.training.ship import main, read_metrics


def test_read_metrics_plain_and_keyed(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"model": {"psnr": 26.0}}))
    (tmp_path / "b.json").write_text(json.dumps({"model": {"psnr": 24.0}}))
    assert read_metrics([]) is None
    assert read_metrics([str(tmp_path / "a.json")]) == {"model": {"psnr": 26.0}}
    both = read_metrics([f"photos={tmp_path / 'a.json'}", f"cifar={tmp_path / 'b.json'}"])
    assert both == {"photos": {"model": {"psnr": 26.0}}, "cifar": {"model": {"psnr": 24.0}}}
    with pytest.raises(SystemExit, match="KEY=FILE"):
        read_metrics([str(tmp_path / "a.json"), str(tmp_path / "b.json")])


def test_ship_then_update_metrics(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, stem="cifar")
    src = save_checkpoint(model, tmp_path / "run" / "model", arch="resnet18",
                          arch_kwargs={"num_classes": 10, "stem": "cifar"}, data={"dataset": "toy"},
                          metrics={"test_acc": 12.5}, extra={"training": {"command": "colorize train classify"}})
    dest = tmp_path / "weights" / "toy"
    assert main([str(src), str(dest)]) == 0
    shipped, meta = load_checkpoint(dest.with_suffix(".json"))
    assert meta["weights"]["dtype"] == "float16" and meta["name"] == "toy"
    assert meta["source_metrics"] == {"test_acc": 12.5} and meta["training"]["command"].startswith("colorize train")
    w0, w1 = model.state_dict()["conv1.weight"], shipped.state_dict()["conv1.weight"]
    assert torch.equal(w1, w0.half().float())  # fp16 storage, exactly the rounded weights
    (tmp_path / "e.json").write_text(json.dumps({"n": 3}))
    sha = meta["weights"]["sha256"]
    assert main(["-", str(dest), "--update", "--metrics", f"photos={tmp_path / 'e.json'}"]) == 0
    meta2 = read_metadata(dest.with_suffix(".json"))
    assert meta2["metrics"] == {"photos": {"n": 3}} and meta2["weights"]["sha256"] == sha


def test_ship_records_min_working_size_for_the_colorizer(tmp_path):
    from colorize import Colorizer

    torch.manual_seed(0)
    model = create_model("resnet18-unet-lite")
    src = save_checkpoint(model, tmp_path / "run" / "model", arch="resnet18-unet-lite")
    dest = tmp_path / "weights" / "lite"
    assert main([str(src), str(dest), "--min-working-size", "96"]) == 0
    meta = read_metadata(dest.with_suffix(".json"))
    assert meta["inference"] == {"min_working_size": 96} and meta["total_stride"] == 32
    with Colorizer.load(str(dest.with_suffix(".json")), backend="torch", working_size=128) as col:
        assert col.min_working_size == 96 and col.engine.stride == 32
        assert col.prepare(torch.zeros(24, 24, dtype=torch.uint8).numpy()).key == (96, 96)
    with pytest.raises(ValueError, match="min_working_size must be >= 0"):
        main([str(src), str(tmp_path / "x"), "--min-working-size", "-1"])
    # the exported ONNX carries it too, so the torch-free path enlarges small images the same way
    pytest.importorskip("onnxruntime")
    from colorize.artifacts.model_ref import resolve_model
    from colorize.export.onnx_export import export_onnx

    onnx_path = tmp_path / "lite.onnx"
    export_onnx(str(dest.with_suffix(".json")), onnx_path)
    assert resolve_model(onnx_path).metadata["inference"]["min_working_size"] == 96
    with Colorizer.load(str(onnx_path), backend="onnxruntime", working_size=128) as col:
        assert col.min_working_size == 96 and col.engine.stride == 32
