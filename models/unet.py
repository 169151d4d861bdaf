"""U-Net colorizers with a ResNet encoder: L [N,1,H,W] -> ab [N,2,H,W].

Structure (as segmentation_models_pytorch): encoder + decoder + head.

* encoder: a ``ResNet`` with ``in_chans=1``; its ``feature_info`` (channels and
  reduction per level, highest resolution first) is the only thing the decoder
  reads.
* decoder: one ``DecoderBlock`` per encoder level, from the deepest up: upsample
  to the skip's resolution, concatenate the skip, conv-BN-ReLU twice. Each
  block's width is its skip's channel count (capped at ``max_channels``, 256),
  so the decoder follows the encoder.
  A last block at full resolution concatenates the input L itself (sharp
  luminance edges for the colour boundaries).
* head: 1x1 conv to 2 channels (normalized ab, see ``engine.image.color.Normalization``),
  or with ``head="bins"`` a 1x1 conv to logits over a grid of ab bins whose
  annealed mean is the output (``models.ab_bins``); the output is ab' either way.

Sizes: any H, W. When they are not multiples of ``total_stride`` the input is
edge-padded on the bottom/right and the output cropped (``engine/image/padding.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.image.padding import padded_size
from models._registry import register_model
from models.ab_bins import DEFAULT_BINS_PER_AXIS, DEFAULT_TEMPERATURE, AbBinsHead
from models.resnet import ResNet, Stem, resnet18, resnet34, resnet50


class Conv2dReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DecoderBlock(nn.Module):
    """Upsample by ``scale``, concat the skip, conv, conv."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, scale: int):
        super().__init__()
        self.scale = scale
        self.conv1 = Conv2dReLU(in_channels + skip_channels, out_channels)
        self.conv2 = Conv2dReLU(out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        if self.scale != 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        x = torch.cat([x, skip], dim=1)
        x = self.conv1(x)
        x = self.conv2(x)
        return x


class UnetDecoder(nn.Module):
    def __init__(
        self, feature_info: list[dict], in_chans: int = 1, final_channels: int = 32, max_channels: int = 256
    ):
        super().__init__()
        chs = [f["num_chs"] for f in feature_info]
        reds = [f["reduction"] for f in feature_info]
        blocks = []
        in_ch = chs[-1]
        for i in range(len(chs) - 2, -1, -1):
            out_ch = min(chs[i], max_channels)
            blocks.append(DecoderBlock(in_ch, chs[i], out_ch, scale=reds[i + 1] // reds[i]))
            in_ch = out_ch
        # Full-resolution block: skip is the input image itself.
        blocks.append(DecoderBlock(in_ch, in_chans, final_channels, scale=reds[0]))
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = final_channels

    def forward(self, features: list[Tensor], image: Tensor) -> Tensor:
        skips = features[:-1][::-1] + [image]
        x = features[-1]
        for block, skip in zip(self.blocks, skips):
            x = block(x, skip)
        return x


HEADS = ("ab", "bins")


class UnetColorizer(nn.Module):
    """Encoder + decoder + head.

    Args:
        head: "ab" (1x1 conv regressing ab') or "bins" (classification over ab bins, ``models.ab_bins``).
        bins_per_axis, temperature: of the "bins" head (ignored by "ab").
    """

    def __init__(self, encoder: ResNet, final_channels: int = 32, head: str = "ab",
                 bins_per_axis: int = DEFAULT_BINS_PER_AXIS, temperature: float = DEFAULT_TEMPERATURE):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.encoder = encoder
        self.decoder = UnetDecoder(encoder.feature_info, in_chans=1, final_channels=final_channels)
        if head == "ab":
            self.head = nn.Conv2d(final_channels, 2, kernel_size=1)
        else:
            self.head = AbBinsHead(final_channels, bins_per_axis=bins_per_axis, temperature=temperature)
        # The classifier head of the encoder is unused; drop it.
        self.encoder.fc = nn.Identity()
        self.total_stride = encoder.total_stride

    def features_padded(self, l: Tensor) -> Tensor:
        """Decoder output (the head's input) for H, W that are multiples of ``total_stride``."""
        return self.decoder(self.encoder.forward_features(l), l)

    def forward_padded(self, l: Tensor) -> Tensor:
        """Forward for H, W that are multiples of ``total_stride`` (what ONNX export traces)."""
        return self.head(self.features_padded(l))

    def forward(self, l: Tensor) -> Tensor:
        return pad_forward_crop(self.forward_padded, l, self.total_stride)


def pad_forward_crop(fn, x: Tensor, stride: int) -> Tensor:
    """Apply the padding rule of ``engine/image/padding.py`` around ``fn``."""
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"expected L of shape [N, 1, H, W], got {list(x.shape)}")
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, w, stride)
    if (ph, pw) != (h, w):
        x = F.pad(x, (0, pw - w, 0, ph - h), mode="replicate")
        return fn(x)[..., :h, :w]
    return fn(x)


def _unet(encoder_fn, stem: Stem = "cifar", **kwargs) -> UnetColorizer:
    return UnetColorizer(encoder_fn(in_chans=1, stem=stem), **kwargs)


@register_model("resnet18-unet", kind="colorizer")
def resnet18_unet(stem: Stem = "cifar", **kwargs) -> UnetColorizer:
    return _unet(resnet18, stem=stem, **kwargs)


@register_model("resnet34-unet", kind="colorizer")
def resnet34_unet(stem: Stem = "cifar", **kwargs) -> UnetColorizer:
    return _unet(resnet34, stem=stem, **kwargs)


@register_model("resnet50-unet", kind="colorizer")
def resnet50_unet(stem: Stem = "cifar", **kwargs) -> UnetColorizer:
    return _unet(resnet50, stem=stem, **kwargs)
