"""Training configurations: one dataclass per task, defaults commented.

Defaults are sized for a short CPU run (2 cores, bf16 autocast on AMX): a
one-cycle schedule reaches a useful model in a few epochs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    out: str = "runs/train"  # run folder: state.pt, metrics.jsonl, curves.png, model.{json,safetensors}
    data: str | None = None  # CIFAR-10 folder (train.zip/test.zip); None = default lookup
    epochs: int = 2  # full passes over the training split
    batch_size: int = 128
    lr: float = 0.2  # one-cycle peak learning rate
    weight_decay: float = 5e-4
    pct_start: float = 0.25  # fraction of steps spent warming up to the peak
    bf16: bool = True  # bf16 autocast on CPU (AMX); weights and optimizer stay fp32
    channels_last: bool = True
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    seed: int = 0
    save_every: int = 100  # also save the resumable state every N steps (0 = only per epoch)
    log_every: int = 20  # write a step record to metrics.jsonl every N steps
    limit_train: int = 0  # use only the first N training images (0 = all; for tests and sizing)
    limit_eval: int = 0  # evaluate on the first N test images (0 = all)
    max_steps: int = 0  # stop after this many steps in total (0 = no limit; the schedule still spans `epochs`)
    command: str = ""  # the command line that started the run (recorded in the checkpoint)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ClassifyConfig(TrainConfig):
    arch: str = "resnet18"  # registry name of a classifier
    stem: str = "cifar"  # 3x3 stride-1 stem, no max-pool (32x32 inputs)
    label_smoothing: float = 0.1
    crop_padding: int = 4  # random crop from the zero-padded image
    init: str | None = None  # classifier checkpoint to start from (a new one-cycle on trained weights)
    out: str = "runs/classify-resnet18"


@dataclass
class ColorizeConfig(TrainConfig):
    arch: str = "resnet18-unet"  # registry name of a colorizer
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    encoder_init: str | None = None  # classifier checkpoint whose weights initialise the encoder, or "imagenet"
    encoder_lr_mult: float = 1.0  # the encoder's peak learning rate is lr x this (below 1: keep pretrained features)
    freeze_encoder_steps: int = 0  # the encoder's learning rate is 0 for the first N steps (the decoder learns first)
    init: str | None = None  # colorizer checkpoint to start from (fine-tuning); overrides encoder_init
    loss: str = "l1"  # "l1" | "l2" | "huber" on normalized ab; "ce" over ab bins (needs arch_kwargs head="bins")
    l1_weight: float = 0.0  # loss "ce": weight of an L1 term on the decoded (annealed-mean) ab'
    cast_weight: float = 0.0  # loss "ce": weight of an L1 term on each image's mean ab' (its colour cast)
    colourfulness_weight: float = 0.0  # weight of the colourfulness shortfall (colorize.training.losses) on the final ab'
    rebalance: float = 0.5  # Zhang et al. lambda: weight = 1/((1-lambda) p + lambda/Q); 0 = no rebalancing
    rebalance_power: float = 0.5  # soften the rebalancing weights (w ** power), 1 = full strength
    batch_size: int = 64
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 1e-4
    pct_start: float = 0.15
    limit_eval: int = 1000  # quick validation PSNR on the first N test images each epoch
    photos: str | None = None  # train on real photos (colorize.data.photos) from this folder instead of CIFAR-10
    working_size: int = 256  # photos: long side they are reduced to (the pipeline's working size)
    crop: int = 128  # photos: side of the random square training crops
    crops_per_image: int = 8  # photos: random crops cut from each training photo (fresh ones every epoch)
    scale_min: float = 0.85  # photos: each crop's photo is scaled to a long side of working_size x U(min, max)
    scale_max: float = 1.4
    cifar_mix: int = 0  # photos: this many CIFAR-10 train images per epoch too, enlarged to the crop size
    tiny_imagenet_mix: int = 0  # photos: this many Tiny ImageNet images (64x64) per epoch too, enlarged likewise
    gray: str = "mixed"  # model input: "mixed" (a gray method per image, colorize.training.gray) or one of GRAY_METHODS
    init_matching: bool = False  # --init: copy only the tensors whose name and shape match (another arch)
    device: str = "cpu"  # "cpu" | "cuda" | "auto" (cuda when available); colorize.training.device
    workers: int = 1  # photos: threads that cut each epoch's crops (on CUDA the next epoch's, while this one trains)
    out: str = "runs/colorize-resnet18-unet"


@dataclass
class DistillConfig(TrainConfig):
    """A gray student classifier that learns an ImageNet teacher's logits and features of the colour image
    (``colorize.training.distill``); its weights then initialise a colorizer's encoder (``--encoder-init``)."""

    arch: str = "resnet18"  # the student: a classifier of the registry, one input channel (the colorizer's L')
    teacher: str = "efficientnet_lite0"  # an arch with installable ImageNet weights (colorize.models.pretrained)
    kd_temperature: float = 2.0  # softening of both logits in the KL term
    feature_weight: float = 4.0  # weight of the feature-matching term (strides 8, 16, 32); at the start the KL term is ~4x it
    batch_size: int = 32
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 1e-4
    pct_start: float = 0.1
    photos: str | None = "default"  # photo folder (colorize.data.photos; "default": ../shared/data/photos)
    working_size: int = 256
    crop: int = 160
    crops_per_image: int = 4
    scale_min: float = 0.85
    scale_max: float = 1.4
    gray: str = "mixed"  # the student's input gray (colorize.training.gray)
    out: str = "runs/distill-resnet18"


def decoder_widths(text: str) -> list[int]:
    """``--decoder-channels C1,C2,...``: positive integers, deepest first (an argparse ``type``)."""
    import argparse

    try:
        widths = [int(c) for c in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def arch_kwargs(head: str, bins_per_axis: int | None, temperature: float | None, refine: str | None,
                refine_channels: int | None, gamut: str | None = None,
                decoder_channels: list[int] | None = None) -> dict:
    """arch_kwargs for ``--head``, ``--refine``, ``--gamut`` and ``--decoder-channels``; empty for the defaults, so
    such checkpoints are unchanged."""
    kw: dict = {}
    if decoder_channels:
        kw["decoder_channels"] = list(decoder_channels)
    if refine is not None:
        kw["refine"] = refine
    if refine_channels is not None:
        kw["refine_channels"] = refine_channels
    if head == "ab":
        return kw
    kw["head"] = head
    if bins_per_axis is not None:
        kw["bins_per_axis"] = bins_per_axis
    if temperature is not None:
        kw["temperature"] = temperature
    if gamut is not None:
        kw["gamut"] = gamut
    return kw
