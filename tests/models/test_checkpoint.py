"""Checkpoint format: round trip, metadata, tampering detected, no pickle."""

import json

import pytest
import torch

from colorize.image.color import Normalization
from colorize.models import create_model
from colorize.models.checkpoint import CheckpointError, checkpoint_paths, load_checkpoint, read_metadata, save_checkpoint


def _model():
    torch.manual_seed(0)
    m = create_model("resnet18-unet")
    # make BN buffers non-trivial so the round trip covers them
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-1, 1)
    return m.eval()


def test_round_trip(tmp_path):
    m = _model()
    norm = Normalization(ab_scale=100.0)
    path = save_checkpoint(m, tmp_path / "ck", arch="resnet18-unet", arch_kwargs={"stem": "cifar"},
                           normalization=norm, data={"dataset": "test"}, metrics={"psnr": 1.0})
    m2, meta = load_checkpoint(path)
    assert meta["arch"] == "resnet18-unet" and meta["normalization"] == norm.to_dict()
    assert meta["metrics"] == {"psnr": 1.0} and len(meta["weights"]["sha256"]) == 64
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(m(x), m2(x), rtol=0, atol=0)
    # .safetensors path and stem both resolve
    assert read_metadata(tmp_path / "ck.safetensors") == meta
    assert read_metadata(tmp_path / "ck") == meta


def test_fp16_storage(tmp_path):
    m = _model()
    path = save_checkpoint(m, tmp_path / "half", arch="resnet18-unet", dtype=torch.float16)
    m2, meta = load_checkpoint(path)
    assert meta["weights"]["dtype"] == "float16"
    assert next(m2.parameters()).dtype == torch.float32
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * sum(p.numel() * 4 for p in m.parameters())


def test_tampered_weights_rejected(tmp_path):
    path = save_checkpoint(_model(), tmp_path / "ck", arch="resnet18-unet")
    _, st = checkpoint_paths(path)
    data = bytearray(st.read_bytes())
    data[-5] ^= 0xFF
    st.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def test_bad_metadata_named(tmp_path):
    path = save_checkpoint(_model(), tmp_path / "ck", arch="resnet18-unet")
    meta = json.loads(path.read_text())
    meta["format"] = "pickle"
    path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(path)
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match="ck.json"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing")


def test_weights_not_fitting_arch_named(tmp_path):
    path = save_checkpoint(_model(), tmp_path / "ck", arch="resnet18-unet")
    meta = json.loads(path.read_text())
    meta["arch"] = "seed-unet"
    path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path)
