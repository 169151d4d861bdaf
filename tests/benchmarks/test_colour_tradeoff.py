"""benchmarks/colour_tradeoff.py: one bins checkpoint swept over temperatures, other checkpoints as fixed points."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from colorize.benchmarks import colour_tradeoff
from colorize.models import create_model
from colorize.models.checkpoint import read_metadata, save_checkpoint
from colorize.data.photos import SPLITS


@pytest.fixture()
def photos(tmp_path):
    rng = np.random.default_rng(0)
    for sub in SPLITS["eval"]:
        (tmp_path / "photos" / sub).mkdir(parents=True)
        ramp = np.linspace(0, 255, 48, dtype=np.float32)
        rgb = np.stack([np.add.outer(ramp[:40], ramp) / 2, np.tile(ramp, (40, 1)),
                        rng.uniform(0, 255, (40, 48))], -1).clip(0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(tmp_path / "photos" / sub / "a.png")
    return tmp_path / "photos"


def test_sweep_writes_a_point_per_temperature_and_fixed_points(photos, tmp_path):
    torch.manual_seed(0)
    net = create_model("resnet18-unet-lite", head="bins", refine="convex", refine_channels=8).eval()
    torch.nn.init.normal_(net.head.conv.weight, std=0.5)  # a peaked bin distribution: T matters
    kw = {"head": "bins", "refine": "convex", "refine_channels": 8}
    ckpt = save_checkpoint(net, tmp_path / "bins", arch="resnet18-unet-lite", arch_kwargs=kw)
    ab_net = create_model("resnet18-unet-lite")
    torch.nn.init.zeros_(ab_net.head.weight)
    torch.nn.init.zeros_(ab_net.head.bias)
    other = save_checkpoint(ab_net, tmp_path / "ab", arch="resnet18-unet-lite")
    out = tmp_path / "res" / "tradeoff"
    assert colour_tradeoff.main(["--model", str(ckpt), "--temperatures", "0.1,1.0", "--also", f"zero ab={other}",
                                 "--strengths", "0.5,2", "--photos", str(photos), "--working-size", "64",
                                 "--out", str(out)]) == 0
    rec = json.loads(out.with_suffix(".json").read_text())
    pts = rec["points"]
    assert [p["temperature"] for p in pts] == [0.1, 1.0, 0.38, 0.38, None]
    assert [p["label"] for p in pts] == ["bins", "bins", "bins strength", "bins strength", "zero ab"]
    assert [p["strength"] for p in pts] == [1.0, 1.0, 0.5, 2.0, 1.0]
    # the colour strength scales chroma: 4x the strength, more colour (clipping aside)
    assert pts[3]["colorfulness_ratio"] > 2 * pts[2]["colorfulness_ratio"]
    assert rec["protocol"]["gray_input"] == "pillow" and rec["protocol"]["n"] == len(SPLITS["eval"])
    # the temperature reaches the decoding: a peaked head is more colourful at T 0.1 than at T 1
    assert pts[0]["colorfulness_ratio"] > pts[1]["colorfulness_ratio"]
    assert pts[4]["colorfulness_ratio"] == pytest.approx(0.0, abs=1e-6)  # a zero ab head: gray
    assert out.with_suffix(".png").stat().st_size > 0 and "| bins | 0.1 |" in out.with_suffix(".md").read_text()
    assert read_metadata(ckpt)["arch_kwargs"] == kw  # the swept checkpoint itself is untouched


def test_sweep_refuses_a_regression_head(tmp_path, photos):
    ckpt = save_checkpoint(create_model("resnet18-unet-lite"), tmp_path / "ab", arch="resnet18-unet-lite")
    with pytest.raises(ValueError, match="needs a bins head"):
        colour_tradeoff.main(["--model", str(ckpt), "--photos", str(photos), "--out", str(tmp_path / "x")])


def _record(path, label, protocol, points):
    rec = {"command": f"python benchmarks/colour_tradeoff.py --label {label}", "protocol": protocol,
           "points": [{"label": label, "temperature": t, "strength": 1.0, "psnr": 20 + d, "gray_psnr": 20.0,
                       "delta_psnr": d, "colorfulness_ratio": c, "ssim": 0.9, "per_folder": {}}
                      for t, d, c in points]}
    path.write_text(json.dumps(rec))
    return str(path)


def test_merge_draws_earlier_runs_together_and_refuses_mixed_protocols(tmp_path, capsys):
    proto = {"split": "eval", "n": 127, "gray_input": "pillow", "backend": "torch fp32", "working_size": 256}
    a = _record(tmp_path / "a.json", "arm-a", proto, [(0.38, 1.36, 0.41), (0.7, 1.05, 0.44)])
    b = _record(tmp_path / "b.json", "arm-b", proto, [(0.38, 1.13, 0.38)])
    out = tmp_path / "m" / "sweep"
    assert colour_tradeoff.main(["--merge", a, b, "--out", str(out)]) == 0
    md = out.with_suffix(".md").read_text()
    assert "| arm-a | 0.38 |" in md and "| arm-b | 0.38 |" in md and "+1.36" in md
    assert out.with_suffix(".png").stat().st_size > 0
    assert len(json.loads(out.with_suffix(".json").read_text())["points"]) == 3
    c = _record(tmp_path / "c.json", "arm-c", {**proto, "gray_input": "rec709"}, [(0.38, 1.0, 0.4)])
    assert colour_tradeoff.main(["--merge", a, c, "--out", str(out)]) == 2
    assert "different protocols" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        colour_tradeoff.main(["--out", str(out)])  # neither --model nor --merge
