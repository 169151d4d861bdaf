"""U-Net colorizers with a ResNet or EfficientNet-Lite encoder: L [N,1,H,W] -> ab [N,2,H,W].

Structure (as segmentation_models_pytorch): encoder + decoder + head.

* encoder: a ``ResNet`` or ``EfficientNetLite`` with ``in_chans=1``; its ``feature_info`` (channels and
  reduction per level, highest resolution first) is the only thing the decoder
  reads.
* decoder: one ``DecoderBlock`` per encoder level, from the deepest up: upsample
  to the skip's resolution, concatenate the skip, conv-BN-ReLU twice. Each
  block's width is its skip's channel count (capped at ``max_channels``, 256),
  so the decoder follows the encoder.
  A last block at full resolution concatenates the input L itself (sharp
  luminance edges for the colour boundaries).
* head: 1x1 conv to 2 channels (normalized ab, see ``colorize.image.color.Normalization``),
  or with ``head="bins"`` a 1x1 conv to logits over a grid of ab bins whose
  annealed mean is the output (``colorize.models.ab_bins``); the output is ab' either way.

Sizes: any H, W. When they are not multiples of ``total_stride`` the input is
edge-padded on the bottom/right and the output cropped (``engine/image/padding.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorize.image.padding import padded_size
from colorize.models._registry import register_model
from colorize.models.ab_bins import DEFAULT_BINS_PER_AXIS, DEFAULT_TEMPERATURE, AbBinsHead
from colorize.models.efficientnet_lite import EfficientNetLite, efficientnet_lite0, efficientnet_lite1, efficientnet_lite2
from colorize.models.resnet import ResNet, Stem, resnet18, resnet34, resnet50


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
    """Decoder blocks from the deepest feature up to ``output_stride``.

    Widths: ``decoder_channels`` (one per block, deepest first, as smp's ``decoder_channels``), or by default each
    skip's channel count capped at ``max_channels`` and ``final_channels`` for the full-resolution block.
    ``output_stride`` 1 ends with a block at the input's resolution whose skip is the input itself; a larger value
    (one of the encoder's reductions) stops at that resolution.
    """

    def __init__(
        self, feature_info: list[dict], in_chans: int = 1, final_channels: int = 32, max_channels: int = 256,
        decoder_channels: Sequence[int] | None = None, output_stride: int = 1,
    ):
        super().__init__()
        chs = [f["num_chs"] for f in feature_info]
        reds = [f["reduction"] for f in feature_info]
        if output_stride != 1 and output_stride not in reds[:-1]:
            raise ValueError(f"output_stride must be 1 or one of the encoder's reductions {reds[:-1]}, "
                             f"got {output_stride}")
        levels = [i for i in range(len(chs) - 2, -1, -1) if reds[i] >= output_stride]
        n_blocks = len(levels) + (output_stride == 1)
        if decoder_channels is None:
            widths = [min(chs[i], max_channels) for i in levels] + [final_channels] * (output_stride == 1)
        else:
            widths = [int(c) for c in decoder_channels]
            if len(widths) != n_blocks or min(widths) < 1:
                raise ValueError(f"decoder_channels needs {n_blocks} positive widths (deepest first) for "
                                 f"output_stride {output_stride}, got {list(decoder_channels)}")
        blocks = []
        in_ch = chs[-1]
        for i, out_ch in zip(levels, widths):
            blocks.append(DecoderBlock(in_ch, chs[i], out_ch, scale=reds[i + 1] // reds[i]))
            in_ch = out_ch
        if output_stride == 1:  # full-resolution block: the skip is the input image itself
            blocks.append(DecoderBlock(in_ch, in_chans, widths[-1], scale=reds[0]))
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = widths[-1]
        self.output_stride = output_stride

    def forward(self, features: list[Tensor], image: Tensor) -> Tensor:
        skips = (features[:-1][::-1] + [image])[: len(self.blocks)]
        x = features[-1]
        for block, skip in zip(self.blocks, skips):
            x = block(x, skip)
        return x


class GuidedRefine(nn.Module):
    """ab' predicted at 1/``scale`` of the input, enlarged bilinearly, then corrected at full resolution by a thin
    conv stack that sees the input L (colour edges follow luminance edges). The last conv starts at zero, so an
    untrained refinement is plain bilinear upsampling."""

    def __init__(self, scale: int, channels: int = 16, in_chans: int = 1):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(2 + in_chans, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, 2, 3, padding=1),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, ab: Tensor, image: Tensor, features: Tensor | None = None) -> Tensor:
        ab = F.interpolate(ab, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return ab + self.body(torch.cat([ab, image], dim=1))


class ConvexRefine(nn.Module):
    """ab' predicted at 1/``scale`` of the input, enlarged by a learned convex combination of each output pixel's
    3x3 low-resolution neighbours (RAFT's upsampling, Teed & Deng 2020).

    The weights are predicted at the low resolution from the decoder's features and the full-resolution L folded
    into channels (``pixel_unshuffle``), so colour edges can follow luminance edges. Being convex, the enlargement
    can move colour across an edge but never scale chroma: how saturated the output is stays the head's (and its
    temperature's) business. ``GuidedRefine``'s free residual, trained with L1, learned to shrink chroma toward
    the median instead (sepia). The mask's last conv starts at zero: an untrained refinement is a 3x3 box filter
    followed by nearest enlargement.
    """

    def __init__(self, scale: int, feature_channels: int, channels: int = 64, in_chans: int = 1):
        super().__init__()
        self.scale = scale
        self.mask = nn.Sequential(
            nn.Conv2d(feature_channels + in_chans * scale * scale, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, 9 * scale * scale, 1),
        )
        nn.init.zeros_(self.mask[-1].weight)
        nn.init.zeros_(self.mask[-1].bias)

    def forward(self, ab: Tensor, image: Tensor, features: Tensor | None = None) -> Tensor:
        if features is None:
            raise ValueError("ConvexRefine needs the decoder's features")
        n, c, h, w = ab.shape
        s = self.scale
        mask = self.mask(torch.cat([features, F.pixel_unshuffle(image, s)], dim=1))
        mask = torch.softmax(mask.view(n, 9, 1, s * s, h, w), dim=1)
        pad = F.pad(ab, (1, 1, 1, 1), mode="replicate")
        # The 9 neighbours as slices (exports as plain Slice ops on every backend).
        nbrs = torch.stack([pad[:, :, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)], dim=1)
        up = (mask * nbrs.unsqueeze(3)).sum(dim=1)  # [N, C, s*s, h, w]
        return F.pixel_shuffle(up.reshape(n, c * s * s, h, w), s)


HEADS = ("ab", "bins")
REFINES = ("guided", "convex")


class UnetColorizer(nn.Module):
    """Encoder + decoder + head.

    Args:
        head: "ab" (1x1 conv regressing ab') or "bins" (classification over ab bins, ``colorize.models.ab_bins``).
        bins_per_axis, temperature, gamut: of the "bins" head (ignored by "ab"); ``gamut="srgb"`` keeps only the
            bins an sRGB colour can reach (``colorize.models.ab_bins.reachable_bins``).
        decoder_channels, output_stride: see ``UnetDecoder``. With ``output_stride`` > 1 the head predicts ab' at
            that reduction and a refinement (``refine_channels`` wide) brings it to the input's resolution:
            ``refine="guided"`` (``GuidedRefine``, a residual conv stack at full resolution) or ``"convex"``
            (``ConvexRefine``, a learned convex upsampling that keeps the head's saturation).
    """

    def __init__(self, encoder: ResNet | EfficientNetLite, final_channels: int = 32, head: str = "ab",
                 bins_per_axis: int = DEFAULT_BINS_PER_AXIS, temperature: float = DEFAULT_TEMPERATURE,
                 decoder_channels: Sequence[int] | None = None, output_stride: int = 1, refine_channels: int = 16,
                 refine: str = "guided", gamut: str = "full"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if refine not in REFINES:
            raise ValueError(f"refine must be one of {REFINES}, got {refine!r}")
        self.encoder = encoder
        self.decoder = UnetDecoder(encoder.feature_info, in_chans=1, final_channels=final_channels,
                                   decoder_channels=decoder_channels, output_stride=output_stride)
        final_channels = self.decoder.out_channels
        if output_stride == 1:
            self.refine = None
        elif refine == "convex":
            self.refine = ConvexRefine(output_stride, final_channels, refine_channels)
        else:
            self.refine = GuidedRefine(output_stride, refine_channels)
        if head == "ab":
            self.head = nn.Conv2d(final_channels, 2, kernel_size=1)
        else:
            self.head = AbBinsHead(final_channels, bins_per_axis=bins_per_axis, temperature=temperature,
                                   gamut=gamut)
        # The classifier head of a ResNet encoder is unused; drop it (EfficientNet-Lite encoders are built without).
        if hasattr(self.encoder, "fc"):
            self.encoder.fc = nn.Identity()
        self.total_stride = encoder.total_stride

    def features_padded(self, l: Tensor) -> Tensor:
        """Decoder output (the head's input) for H, W that are multiples of ``total_stride``."""
        return self.decoder(self.encoder.forward_features(l), l)

    def upsample(self, ab: Tensor, l: Tensor, features: Tensor) -> Tensor:
        """The head's ab' (at 1/``output_stride``) at the input's resolution; ``features``: the head's input."""
        return ab if self.refine is None else self.refine(ab, l, features)

    def forward_padded(self, l: Tensor) -> Tensor:
        """Forward for H, W that are multiples of ``total_stride`` (what ONNX export traces)."""
        features = self.features_padded(l)
        return self.upsample(self.head(features), l, features)

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


# Photo colorizers: the ImageNet stem (7x7/2 + max-pool, total stride 32), a decoder that narrows toward high
# resolution and stops at 1/4, and an L-guided refinement to full resolution. 16x fewer FLOPs than the CIFAR-shaped
# U-Net at photo sizes (``benchmarks/flops.py``). Stopping at 1/4 also keeps a bins head's per-pixel softmax over
# its 484 bins small: at 1/2 that loss took 6x the time of the network's forward and backward in training.
LITE_DEFAULTS = dict(stem="imagenet", decoder_channels=(192, 128, 64), output_stride=4, refine_channels=16)


@register_model("resnet18-unet-lite", kind="colorizer")
def resnet18_unet_lite(**kwargs) -> UnetColorizer:
    kw = {**LITE_DEFAULTS, **kwargs}
    return _unet(resnet18, **kw)


@register_model("resnet34-unet-lite", kind="colorizer")
def resnet34_unet_lite(**kwargs) -> UnetColorizer:
    kw = {**LITE_DEFAULTS, **kwargs}
    return _unet(resnet34, **kw)


# Photo colorizers on an ImageNet-pretrained EfficientNet-Lite encoder (``colorize.models.pretrained`` loads its weights for
# training; ``colorize train colorize --encoder-init imagenet``): the same decoder to 1/4 and refinement as the
# ResNet "lite" U-Nets, on features 16/2, 24/4, 40/8, 112/16, 320/32 (Lite0).
def _effnet_unet(encoder_fn, **kwargs) -> UnetColorizer:
    kw = {**LITE_DEFAULTS, **kwargs}
    kw.pop("stem")
    return UnetColorizer(encoder_fn(in_chans=1, features_only=True), **kw)


@register_model("efficientnet_lite0-unet", kind="colorizer")
def efficientnet_lite0_unet(**kwargs) -> UnetColorizer:
    return _effnet_unet(efficientnet_lite0, **kwargs)


@register_model("efficientnet_lite1-unet", kind="colorizer")
def efficientnet_lite1_unet(**kwargs) -> UnetColorizer:
    return _effnet_unet(efficientnet_lite1, **kwargs)


@register_model("efficientnet_lite2-unet", kind="colorizer")
def efficientnet_lite2_unet(**kwargs) -> UnetColorizer:
    return _effnet_unet(efficientnet_lite2, **kwargs)
