"""Swap the residual blocks of a BN-folded ResNet for ones whose tail is a Triton kernel.

After ``colorize.export.fold_bn.fold_bn`` a ``BasicBlock`` computes

    out = relu(conv1(x) + b1)              # conv1 has the folded bias
    out = conv2(out) + b2                  # bn2 is Identity
    out = relu(out + downsample(x) or x)

``FusedBasicBlock`` runs the same thing with the tail in one Triton pass:

* ``mode="epilogue"``: ``conv2`` without its bias (cuDNN), then
  ``bias_residual_relu`` adds the bias and the identity and applies the ReLU, in place;
* ``mode="conv"``: both 3x3 convs are the implicit-GEMM Triton kernel with the
  epilogue fused (conv1: bias + ReLU; conv2: bias + identity + ReLU).

``FusedBottleneck`` does the same for the 1x1 ``conv3`` tail of a ``Bottleneck``
(epilogue only). Module names are kept (``layer1.0.conv2``, ``downsample``), so
a fused model is traceable to the original by name.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from colorize.kernels.conv3x3 import conv3x3_bias_act, pack_conv3x3_weight
from colorize.kernels.residual_epilogue import bias_residual_relu
from colorize.models.resnet import BasicBlock, Bottleneck

MODES = ("epilogue", "conv")


def _unbiased(conv: nn.Conv2d) -> tuple[nn.Conv2d, Tensor]:
    """A copy of ``conv`` without its bias, and the bias."""
    if conv.bias is None:
        raise ValueError("expected a BN-folded conv (with a bias); run colorize.export.fold_bn.fold_bn(model) first")
    plain = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=False,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        plain.weight.copy_(conv.weight)
    return plain, conv.bias.detach().clone()


def _check_folded(block: nn.Module, *bns: str) -> None:
    for name in bns:
        if not isinstance(getattr(block, name), nn.Identity):
            raise ValueError(f"block {type(block).__name__} has an unfolded {name}; run colorize.export.fold_bn.fold_bn(model) first")


class TritonConv3x3(nn.Module):
    """A 3x3 (padding 1) conv run by the implicit-GEMM kernel, with optional fused ReLU."""

    def __init__(self, conv: nn.Conv2d, relu: bool):
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError(f"TritonConv3x3 needs a dense 3x3 conv with padding 1, got {conv}")
        if conv.stride[0] != conv.stride[1] or conv.stride[0] not in (1, 2):
            raise ValueError(f"TritonConv3x3 needs stride 1 or 2, got {conv.stride}")
        self.stride = conv.stride[0]
        self.relu = relu
        self.out_channels = conv.out_channels
        # The packed weight is a parameter so .half()/.to() convert it with the module.
        self.weight = nn.Parameter(pack_conv3x3_weight(conv.weight), requires_grad=False)
        bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
        self.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        return conv3x3_bias_act(x, self.weight, self.bias, residual, relu=self.relu, stride=self.stride)


class FusedBasicBlock(nn.Module):
    expansion: int = 1

    def __init__(self, block: BasicBlock, mode: str = "epilogue"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        _check_folded(block, "bn1", "bn2")
        self.mode = mode
        self.downsample = block.downsample
        self.stride = block.stride
        if mode == "conv":
            self.conv1 = TritonConv3x3(block.conv1, relu=True)
            self.conv2 = TritonConv3x3(block.conv2, relu=True)
        else:
            self.conv1 = block.conv1
            self.relu = nn.ReLU(inplace=True)
            self.conv2, bias2 = _unbiased(block.conv2)
            self.bias2 = nn.Parameter(bias2, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        if self.downsample is not None:
            identity = self.downsample(x)

        if self.mode == "conv":
            out = self.conv1(x)
            return self.conv2(out, residual=identity)

        out = self.conv1(x)
        out = self.relu(out)
        out = self.conv2(out)
        # bias + identity + ReLU in one pass, written over conv2's output
        return bias_residual_relu(out, self.bias2, identity.contiguous(memory_format=_format_of(out)), out=out)


class FusedBottleneck(nn.Module):
    expansion: int = 4

    def __init__(self, block: Bottleneck, mode: str = "epilogue"):
        super().__init__()
        if mode != "epilogue":
            raise ValueError(f"Bottleneck blocks support mode 'epilogue' only, got {mode!r}")
        _check_folded(block, "bn1", "bn2", "bn3")
        self.mode = mode
        self.conv1 = block.conv1
        self.conv2 = block.conv2
        self.relu = nn.ReLU(inplace=True)
        self.conv3, bias3 = _unbiased(block.conv3)
        self.bias3 = nn.Parameter(bias3, requires_grad=False)
        self.downsample = block.downsample
        self.stride = block.stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x

        out = self.conv1(x)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.relu(out)
        out = self.conv3(out)

        if self.downsample is not None:
            identity = self.downsample(x)
        return bias_residual_relu(out, self.bias3, identity.contiguous(memory_format=_format_of(out)), out=out)


def _format_of(t: Tensor) -> torch.memory_format:
    if not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def fuse_residual_blocks(model: nn.Module, mode: str = "epilogue") -> int:
    """Replace, in place, every BasicBlock/Bottleneck of a BN-folded ``model`` by its fused version.

    Returns:
        The number of blocks replaced.

    Raises:
        ValueError: unknown mode, or a block whose BNs are not folded.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    n = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BasicBlock):
                setattr(parent, name, FusedBasicBlock(child, mode))
                n += 1
            elif isinstance(child, Bottleneck):
                setattr(parent, name, FusedBottleneck(child, "epilogue"))
                n += 1
    return n
