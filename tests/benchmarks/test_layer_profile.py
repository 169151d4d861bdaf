"""benchmarks/layer_profile.py: OpenVINO's per-layer time summed by part of the model."""

import json

import pytest

from colorize.benchmarks.layer_profile import main, part_of


@pytest.mark.parametrize("name,typ,part", [
    ("/encoder/layer1/layer1.0/conv1/Conv", "Convolution", "encoder"),
    ("/layer1/layer1.0/conv1/Conv/WithoutBiases", "Convolution", "encoder"),
    ("/_blocks.3/_depthwise_conv/Conv/WithoutBiases", "GroupConvolution", "encoder"),
    ("/decoder/blocks.0/Concat", "Concatenation", "decoder"),
    ("/head/Exp", "Subgraph", "head"),
    ("/refine/ReduceSum", "ReduceSum", "refine"),
    ("Multiply_22689", "Convolution", "fused (Convolution)"),
    ("ab", "DepthToSpace", "other (DepthToSpace)"),
])
def test_parts(name, typ, part):
    assert part_of(name, typ) == part


def test_profile_of_a_small_unet(tmp_path, capsys):
    pytest.importorskip("openvino", reason="the profile needs OpenVINO (the cpu extra)")
    torch = pytest.importorskip("torch")
    from colorize.models import create_model

    model = create_model("resnet18-unet-lite", head="bins", refine="convex").eval()
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, torch.zeros(2, 1, 64, 64), str(path), input_names=["l"], output_names=["ab"],
                      opset_version=17, dynamo=False)
    assert main(["--model", str(path), "--precision", "fp32", "--batch", "2", "--size", "64x64", "--repeat", "2",
                 "--out", str(tmp_path / "prof")]) == 0
    r = json.loads((tmp_path / "prof.json").read_text())
    assert {"encoder", "decoder", "head", "refine"} <= set(r["parts"])
    assert sum(v["share"] for v in r["parts"].values()) == pytest.approx(1.0)
    assert r["wall_ms_per_image"] > 0 and len(r["top_layers"]) > 3
    assert "| encoder |" in capsys.readouterr().out


def test_usage_errors(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "missing.onnx")]) == 2
    assert main(["--size", "big"]) == 2
    assert "HxW" in capsys.readouterr().err
