"""``--device``: resolution, CPU-side states, resume across devices (the CUDA parts only where a GPU is)."""

import json

import pytest
import torch

from colorize.cli import main as cli
from colorize.training.device import autocast, resolve_device, to_cpu

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="--device cuda: .*use --device cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="--device must be one of cpu, cuda, auto"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a fake CUDA machine: only the mapping
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_to_cpu_copies_every_tensor_of_a_state():
    w = torch.ones(2, requires_grad=True)
    state = {"model": {"w": w}, "opt": {"state": {0: {"exp_avg": torch.zeros(2)}}, "groups": [{"lr": 1e-3}]},
             "pair": (torch.zeros(1), 3), "step": 7}
    out = to_cpu(state)
    assert not out["model"]["w"].requires_grad and out["model"]["w"].device.type == "cpu"
    assert out["opt"]["groups"] == [{"lr": 1e-3}] and out["step"] == 7 and isinstance(out["pair"], tuple)


def test_a_cpu_state_follows_the_parameters_to_another_device(tmp_path):
    """How ``fit`` resumes on CUDA: the state is read onto the CPU, the model is already on its device, and the
    optimizer's moments go where their parameters are. The "meta" device stands in for CUDA here."""
    from colorize.training.loop import atomic_torch_save

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    atomic_torch_save(to_cpu({"model": model.state_dict(), "optimizer": opt.state_dict()}), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", map_location="cpu", weights_only=True)
    moved = torch.nn.Linear(3, 2).to("meta")
    with pytest.warns(UserWarning, match="no-op"):  # meta tensors hold no values: only the placement is checked
        moved.load_state_dict(state["model"])
    opt2 = torch.optim.AdamW(moved.parameters())
    opt2.load_state_dict(state["optimizer"])
    moments = [t for s in opt2.state.values() for k, t in s.items() if k != "step"]
    assert len(moments) == 4 and all(t.device.type == "meta" for t in moments)
    assert all(t.device.type == "cpu" for t in _state_tensors(state))


def test_autocast_is_bf16_on_the_device_type():
    with autocast(torch.device("cpu"), True):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16
    with autocast("cpu", False):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.float32


def _state_tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _state_tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _state_tensors(v)


def _train_args(photos, out, device):
    return ["train", "colorize", "--photos", str(photos), "--working-size", "64", "--crop", "32",
            "--crops-per-image", "2", "--batch-size", "4", "--threads", "1", "--limit-eval", "2",
            "--arch", "resnet18-unet-lite", "--rebalance", "0", "--epochs", "2", "--device", device,
            "--out", str(out)]


def _assert_cpu_state(path):
    state = torch.load(path, weights_only=True)  # no map_location: tensors come back where they were saved
    tensors = list(_state_tensors(state))
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    assert state["optimizer"]["state"]  # AdamW moments were saved


def test_a_cpu_state_resumes_with_device_auto(small_photo_tree, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(_train_args(small_photo_tree, out, "cpu") + ["--max-steps", "2"]) == 0
    _assert_cpu_state(out / "state.pt")
    assert cli(_train_args(small_photo_tree, out, "auto") + ["--resume", "--workers", "2"]) == 0
    assert "resumed" in capsys.readouterr().err
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs if r["kind"] == "epoch"][-1] == 1
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["config"]["device"] == "auto" and meta["training"]["config"]["workers"] == 2
    _assert_cpu_state(out / "state.pt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_device_cuda_without_a_gpu_is_a_clear_error(small_photo_tree, tmp_path, capsys):
    assert cli(_train_args(small_photo_tree, tmp_path / "run", "cuda")) == 2
    assert "--device cuda" in capsys.readouterr().err


@needs_cuda
@pytest.mark.gpu
def test_cuda_training_resumes_on_the_cpu_and_back(small_photo_tree, tmp_path):
    out = tmp_path / "run"
    args = _train_args(small_photo_tree, out, "cuda")
    args[args.index("--epochs") + 1] = "3"
    assert cli(args + ["--max-steps", "2", "--workers", "2"]) == 0
    _assert_cpu_state(out / "state.pt")  # written on CUDA, stored as CPU tensors
    cpu = list(args)
    cpu[cpu.index("--device") + 1] = "cpu"
    assert cli(cpu + ["--max-steps", "4", "--resume"]) == 0
    assert cli(args + ["--resume"]) == 0
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs if r["kind"] == "epoch"][-1] == 2
    assert all(r["train_loss"] == r["train_loss"] for r in recs if r["kind"] == "epoch")  # finite, not NaN


@needs_cuda
@pytest.mark.gpu
def test_prefetched_epochs_on_cuda_are_the_cpu_ones(small_photo_tree):
    import numpy as np

    from colorize.training.loop import _EpochImages
    from colorize.data.photos import load_photo_source

    src, _ = load_photo_source(small_photo_tree, 64, 32, 3, (0.85, 1.4), seed=5)
    images = _EpochImages(src, torch.device("cuda"), workers=2)
    for epoch in range(3):
        got = images.get(epoch, 3)
        assert got.device.type == "cuda"
        np.testing.assert_array_equal(got.cpu().numpy(), src.for_epoch(epoch))
