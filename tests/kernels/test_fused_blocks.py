"""Fused residual blocks in a BN-folded colorizer against the eager FP32 model."""

import pytest
import torch
from torch import nn

from colorize.export.fold_bn import fold_bn
from colorize.kernels.fused_blocks import FusedBasicBlock, FusedBottleneck, fuse_residual_blocks
from colorize.models import create_model
from colorize.models.resnet import BasicBlock, Bottleneck

# Folding BN and moving the bias add after the conv only reorders float32 sums.
FUSED_FP32_ATOL = 1e-4


def _randomize_bn(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_fused_resnet18_unet_matches_eager(layout, device, mode="epilogue"):
    torch.manual_seed(0)
    model = create_model("resnet18-unet").eval()
    _randomize_bn(model, seed=1)
    fused = fold_bn(model)
    n = fuse_residual_blocks(fused, mode)
    assert n == 8
    assert isinstance(fused.encoder.layer2[0], FusedBasicBlock)
    assert not any(isinstance(m, BasicBlock) for m in fused.modules())
    # names are kept: the fused model is traceable to the original by name
    assert "encoder.layer2.0.downsample.0.weight" in dict(fused.named_parameters())
    model, fused = model.to(device), fused.to(device, memory_format=layout)
    x = torch.randn(2, 1, 8, 16, generator=torch.Generator().manual_seed(2)).to(device)
    with torch.inference_mode():
        ref = model(x)
        y = fused(x.contiguous(memory_format=layout))
    torch.testing.assert_close(y, ref, atol=FUSED_FP32_ATOL, rtol=FUSED_FP32_ATOL)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_mode_basic_block_matches_eager(layout, stride, device):
    # The whole-model conv-mode run takes ~15 s interpreted (512-channel layers), so blocks are tested here.
    torch.manual_seed(stride)
    down = nn.Sequential(nn.Conv2d(16, 24, 1, stride, bias=False), nn.BatchNorm2d(24))
    block = BasicBlock(16, 24, stride=stride, downsample=down)
    _randomize_bn(block, seed=5)
    block.eval()
    fused = fold_bn(nn.Sequential(block))
    assert fuse_residual_blocks(fused, "conv") == 1
    assert dict(fused.named_parameters())["0.conv2.weight"].shape == (9 * 24, 24)
    block, fused = block.to(device), fused.to(device, memory_format=layout)
    x = torch.randn(2, 16, 7, 6, generator=torch.Generator().manual_seed(6)).to(device)
    with torch.inference_mode():
        y = fused(x.contiguous(memory_format=layout))
        torch.testing.assert_close(y, block(x), atol=FUSED_FP32_ATOL, rtol=FUSED_FP32_ATOL)


def test_bottleneck_block_matches_eager(device):
    torch.manual_seed(0)
    block = Bottleneck(32, 8, stride=2, downsample=nn.Sequential(nn.Conv2d(32, 32, 1, 2, bias=False), nn.BatchNorm2d(32)))
    _randomize_bn(block, seed=3)
    block.eval()
    wrapper = nn.Sequential(block)
    fused = fold_bn(wrapper)
    assert fuse_residual_blocks(fused) == 1 and isinstance(fused[0], FusedBottleneck)
    block, fused = block.to(device), fused.to(device)
    x = torch.randn(2, 32, 6, 6, generator=torch.Generator().manual_seed(4)).to(device)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), block(x), atol=FUSED_FP32_ATOL, rtol=FUSED_FP32_ATOL)


def test_unfolded_model_is_refused():
    model = create_model("resnet18-unet").eval()
    with pytest.raises(ValueError, match="fold_bn"):
        fuse_residual_blocks(model)
    with pytest.raises(ValueError, match="mode must be one of"):
        fuse_residual_blocks(fold_bn(model), "fast")


def test_torch_cuda_preparation_with_triton_fusion(device):
    # The same model preparation the torch-cuda backend does (fold, fuse, channels_last), in FP32
    # (on the CPU here, through the interpreter).
    from colorize.backends.torch_cuda import prepare_model

    torch.manual_seed(0)
    model = create_model("resnet18-unet").eval()
    _randomize_bn(model, seed=7)
    prepared = prepare_model(model, "fp32", fuse="epilogue", device=device)
    assert sum(isinstance(m, FusedBasicBlock) for m in prepared.modules()) == 8
    model = model.to(device)
    x = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(8)).to(device)
    with torch.inference_mode():
        y = prepared(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(y, model(x), atol=FUSED_FP32_ATOL, rtol=FUSED_FP32_ATOL)
