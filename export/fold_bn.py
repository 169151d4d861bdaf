"""Fold eval-mode BatchNorm into the preceding convolution, keeping module names.

Every conv followed by a BN in our models is one of these pairs, found by
structure rather than by tracing, so the folded model keeps torchvision's names
(``layer1.0.conv1`` keeps its name and gains a bias; ``layer1.0.bn1`` becomes
``nn.Identity``):

* a module with attributes ``convN`` and ``bnN`` (ResNet stem, BasicBlock, Bottleneck);
* an ``nn.Sequential`` holding ``Conv2d`` then ``BatchNorm2d`` at consecutive
  indices (ResNet ``downsample``, U-Net ``Conv2dReLU``);
* the (conv, BN) attribute names a module lists in ``conv_bn_pairs`` (EfficientNet-Lite's
  ``_depthwise_conv``/``_bn1`` ..., named as the pretrained checkpoint names them).

    w' = w * gamma / sqrt(var + eps)
    b' = (b - mean) * gamma / sqrt(var + eps) + beta
"""

from __future__ import annotations

import copy

import torch
from torch import nn


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d equal to ``bn(conv(x))`` in eval mode."""
    fused = copy.deepcopy(conv)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
    return fused


def _fold_pairs(module: nn.Module) -> int:
    n = 0
    if isinstance(module, nn.Sequential):
        items = list(module.named_children())
        for (i, a), (j, b) in zip(items, items[1:]):
            if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                setattr(module, i, fuse_conv_bn(a, b))
                setattr(module, j, nn.Identity())
                n += 1
        return n
    for conv_name, bn_name in getattr(module, "conv_bn_pairs", ()):
        conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, conv_name, fuse_conv_bn(conv, bn))
            setattr(module, bn_name, nn.Identity())
            n += 1
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d) and name.startswith("bn"):
            conv = getattr(module, "conv" + name[2:], None)
            if isinstance(conv, nn.Conv2d):
                setattr(module, "conv" + name[2:], fuse_conv_bn(conv, child))
                setattr(module, name, nn.Identity())
                n += 1
    return n


def fold_bn(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return ``model`` (a copy unless ``inplace``) in eval mode with every
    conv->BN pair folded. BNs that follow no conv are left as they are."""
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for m in list(model.modules()):
        _fold_pairs(m)
    return model


def count_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
