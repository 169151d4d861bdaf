"""The original notebook's plain U-Net, kept as the baseline colorizer.

Two 3x3 conv + ReLU per level, widths 64 -> 1024 over five levels, 2x2 max-pool
down, 2x2 transposed conv up, skip concatenation, 1x1 head. Adapted to the
colorizer contract: 1 input channel (L), 2 output channels (ab). No BatchNorm,
as in the notebook. Total stride 16; other sizes use the padding rule of
``engine/image/padding.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from colorize.models._registry import register_model
from colorize.models.unet import pad_forward_crop


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)
        x = torch.cat([skip, x], dim=1)
        return self.conv(x)


class SeedUNet(nn.Module):
    def __init__(self, in_chans: int = 1, out_chans: int = 2, widths: tuple[int, ...] = (64, 128, 256, 512, 1024)):
        super().__init__()
        self.inc = DoubleConv(in_chans, widths[0])
        self.downs = nn.ModuleList(DoubleConv(widths[i], widths[i + 1]) for i in range(len(widths) - 1))
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.outc = nn.Conv2d(widths[0], out_chans, kernel_size=1)
        self.total_stride = 2 ** (len(widths) - 1)

    def forward_padded(self, x: Tensor) -> Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(self.pool(skips[-1])))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)

    def forward(self, l: Tensor) -> Tensor:
        return pad_forward_crop(self.forward_padded, l, self.total_stride)


@register_model("seed-unet", kind="colorizer")
def seed_unet(**kwargs) -> SeedUNet:
    return SeedUNet(**kwargs)
