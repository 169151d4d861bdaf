"""resnet18/34-unet-lite: the photo colorizers (ImageNet stem, decoder to 1/4, L-guided or convex refinement)."""

import numpy as np
import pytest
import torch

from colorize.benchmarks.flops import count_torch
from colorize.models import create_model, list_models
from colorize.models.unet import UnetDecoder


def test_registered_and_under_the_flop_budget():
    assert {"resnet18-unet-lite", "resnet34-unet-lite"} <= set(list_models("colorizer"))
    lite = create_model("resnet18-unet-lite").eval()
    full = create_model("resnet18-unet").eval()
    gflop = count_torch(lite, 256, 256) / 1e9
    assert gflop <= 10.0  # the photo model's budget per 256x256 image
    assert count_torch(full, 256, 256) / 1e9 > 8 * gflop
    assert lite.total_stride == 32 and lite.decoder.output_stride == 4


@pytest.mark.parametrize("h,w", [(64, 96), (50, 70), (33, 257)])
def test_any_size_full_resolution_output(h, w):
    m = create_model("resnet18-unet-lite").eval()
    with torch.no_grad():
        y = m(torch.randn(2, 1, h, w))
    assert y.shape == (2, 2, h, w)


def test_untrained_refinement_is_bilinear_upsampling():
    m = create_model("resnet18-unet-lite").eval()
    ab = torch.randn(1, 2, 8, 8)
    l = torch.randn(1, 1, 32, 32)
    up = torch.nn.functional.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(m.refine(ab, l), up)


def test_refinement_sees_luminance_after_training_it():
    """The refinement is a function of L too: after a few steps toward an L-dependent target it no longer
    equals plain upsampling."""
    torch.manual_seed(0)
    m = create_model("resnet18-unet-lite")
    opt = torch.optim.Adam(m.refine.parameters(), lr=1e-2)
    ab, l = torch.zeros(1, 2, 8, 8), torch.randn(1, 1, 32, 32)
    for _ in range(20):
        loss = (m.refine(ab, l) - l.expand(-1, 2, -1, -1) * 0.1).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert m.refine(ab, l).abs().max() > 1e-3


def _convex(**kw):
    return create_model("resnet18-unet-lite", head="bins", refine="convex", refine_channels=16, **kw)


def test_convex_refinement_under_budget_any_size_and_checked():
    m = _convex().eval()
    assert count_torch(m, 256, 256) / 1e9 <= 10.0
    with torch.no_grad():
        assert m(torch.randn(1, 1, 50, 70)).shape == (1, 2, 50, 70)
    with pytest.raises(ValueError, match="refine must be one of"):
        create_model("resnet18-unet-lite", refine="bicubic")


def test_untrained_convex_refinement_is_a_box_filter_then_nearest():
    m = _convex().eval()
    ab, l, f = torch.randn(1, 2, 8, 8), torch.randn(1, 1, 32, 32), torch.randn(1, m.decoder.out_channels, 8, 8)
    box = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(ab, (1, 1, 1, 1), mode="replicate"), 3, 1)
    torch.testing.assert_close(m.refine(ab, l, f), torch.nn.functional.interpolate(box, scale_factor=4))


def test_convex_refinement_cannot_change_saturation():
    """Whatever its weights, every output pixel is a convex mix of its 3x3 low-resolution neighbours: a flat
    colour stays exactly that colour, and no output is outside its neighbours' range (GuidedRefine's free
    residual, by contrast, can shrink chroma anywhere)."""
    torch.manual_seed(0)
    m = _convex().eval()
    torch.nn.init.normal_(m.refine.mask[-1].weight, std=1.0)
    l, f = torch.randn(1, 1, 32, 32), torch.randn(1, m.decoder.out_channels, 8, 8)
    flat = torch.tensor([0.4, -0.3]).view(1, 2, 1, 1).expand(1, 2, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(m.refine(flat, l, f), flat[:, :, :1, :1].expand(1, 2, 32, 32))
        ab = torch.randn(1, 2, 8, 8)
        up = m.refine(ab, l, f)
    pad = torch.nn.functional.pad(ab, (1, 1, 1, 1), mode="replicate")
    hi = torch.nn.functional.interpolate(torch.nn.functional.max_pool2d(pad, 3, 1), scale_factor=4)
    lo = -torch.nn.functional.interpolate(torch.nn.functional.max_pool2d(-pad, 3, 1), scale_factor=4)
    assert (up <= hi + 1e-5).all() and (up >= lo - 1e-5).all()
    assert not torch.allclose(up, torch.nn.functional.interpolate(
        torch.nn.functional.avg_pool2d(pad, 3, 1), scale_factor=4))  # the weights are used


def test_convex_refinement_follows_luminance():
    """The weights are a function of the full-resolution L: two L images give two enlargements of one ab."""
    torch.manual_seed(0)
    m = _convex().eval()
    torch.nn.init.normal_(m.refine.mask[-1].weight, std=0.5)
    ab, f = torch.randn(1, 2, 8, 8), torch.zeros(1, m.decoder.out_channels, 8, 8)
    with torch.no_grad():
        a, b = m.refine(ab, torch.randn(1, 1, 32, 32), f), m.refine(ab, torch.randn(1, 1, 32, 32), f)
    assert (a - b).abs().max() > 1e-3


def test_decoder_widths_and_output_stride_are_checked():
    info = create_model("resnet18-unet-lite").encoder.feature_info
    assert UnetDecoder(info, decoder_channels=(32, 16, 8, 8), output_stride=2).out_channels == 8
    with pytest.raises(ValueError, match="needs 3 positive widths"):
        UnetDecoder(info, decoder_channels=(32, 16), output_stride=4)
    with pytest.raises(ValueError, match="output_stride must be 1 or one of"):
        UnetDecoder(info, output_stride=3)
    # the default decoder (no widths) is unchanged: the CIFAR-shaped models keep their checkpoints
    assert create_model("resnet18-unet").state_dict().keys() == create_model("resnet18-unet").state_dict().keys()
    assert create_model("resnet18-unet").refine is None


@pytest.mark.parametrize("refine", ["guided", "convex"])
def test_bins_head_lite_forward_and_onnx_parity(tmp_path, refine):
    pytest.importorskip("onnxruntime")
    from colorize.export.onnx_export import export_onnx
    from colorize.models.checkpoint import save_checkpoint
    import onnxruntime as ort

    torch.manual_seed(0)
    kw = {"head": "bins", "refine": refine}
    m = create_model("resnet18-unet-lite", **kw).eval()
    for mod in m.modules():  # non-trivial BN statistics and a non-zero refinement
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    last = m.refine.body[-1] if refine == "guided" else m.refine.mask[-1]
    torch.nn.init.normal_(last.weight, std=0.05)
    torch.nn.init.normal_(m.head.conv.weight, std=0.05)
    ckpt = save_checkpoint(m, tmp_path / "m", arch="resnet18-unet-lite", arch_kwargs=kw)
    onnx_path = tmp_path / "m.onnx"
    export_onnx(str(ckpt), onnx_path)
    x = np.random.default_rng(0).standard_normal((2, 1, 64, 96)).astype(np.float32)
    ref = m(torch.from_numpy(x)).detach().numpy()
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"l": x})[0]
    assert got.shape == (2, 2, 64, 96)
    np.testing.assert_allclose(got, ref, atol=1e-4)
