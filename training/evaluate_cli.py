"""Measure a colorizer's quality on the CIFAR-10 test split (``colorize evaluate``).

Prints PSNR (per-image mean and from the mean MSE), SSIM, colorfulness and its
ratio to the ground truth, and the shipped classifier's accuracy on true-colour,
gray and colorized images, each beside the gray baseline (keep L, ab = 0).

On ``--photos``, the ``eval`` split of the real photos (``colorize.data.photos``) is
colorized through ``colorize.Colorizer`` at full resolution, as ``colorize images``
does it (``colorize.training.photo_eval``); there is no classifier check there.

Examples:
    colorize evaluate --model resnet18-unet
    colorize evaluate --model efficientnet_lite0-unet-photos --photos --grid docs/samples_photos.jpg
    colorize evaluate --model runs/colorize-resnet18-unet/model.json --limit 1000 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from colorize.fsutil import atomic_write_text

DEFAULT_CLASSIFIER = Path(__file__).resolve().parent.parent / "models" / "weights" / "classifiers" / "resnet18-cifar10.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from colorize.artifacts.model_ref import SMALL_IMAGE_MAX_SIDE

    parser.add_argument("--model", default="resnet18-unet", help="shipped model name or checkpoint .json (default %(default)s)")
    parser.add_argument("--data", default=None, help="CIFAR-10 folder with test.zip (default: ../shared/data/cifar10)")
    parser.add_argument("--split", default="test", choices=("test", "train"))
    parser.add_argument("--limit", type=int, default=0, help="evaluate on a fixed random subset of N images")
    parser.add_argument("--classifier", default=None,
                        help=f"classifier checkpoint for the semantic check, 'none' to skip "
                             f"(default: {DEFAULT_CLASSIFIER.relative_to(DEFAULT_CLASSIFIER.parents[3])} if present)")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the colorizer and classifier (default fp32)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--out", default=None, help="also write the JSON results to this file")
    parser.add_argument("--grid", default=None, help="write a gray | ours | truth sample grid PNG here")
    parser.add_argument("--grid-count", type=int, default=16, help="images in the sample grid")
    parser.add_argument("--temperature", type=float, default=None,
                        help="models with an ab-bins head: annealed-mean temperature to evaluate at "
                             "(default: the checkpoint's; lower is more vivid)")
    parser.add_argument("--photos", nargs="?", const="default", default=None, metavar="DIR",
                        help="evaluate on the real photos' eval split (DIR defaults to ../shared/data/photos)")
    parser.add_argument("--working-size", type=int, default=None,
                        help="photos: the pipeline's working size (default: the Colorizer's)")
    parser.add_argument("--gray", default="pillow", choices=("pillow", "rec709", "mean", "lstar"),
                        help="how the gray input is made from each colour original: pillow (convert('L'), what "
                             "users have; default), rec709, mean (of RGB), or lstar (the original's L*, the protocol "
                             "of earlier figures); the gray baseline is that same gray")
    parser.add_argument("--pipeline", action="store_true",
                        help="CIFAR-10: colorize through colorize.Colorizer as `colorize images` does (any model, "
                             "including the photo default), not the torch model at 32x32")
    parser.add_argument("--min-working-size", type=int, default=None,
                        help="photos/--pipeline: enlarge smaller images to this long side for the model "
                             "(default: the model's own, 0 = never)")
    parser.add_argument("--small-model", default="auto",
                        help="photos/--pipeline: model for images whose long side is at most --small-max-side, as "
                             "`colorize images --small-model` (default auto: the CIFAR-10 model with the default "
                             "photo model; none: every image on --model)")
    parser.add_argument("--small-max-side", type=int, default=SMALL_IMAGE_MAX_SIDE,
                        help="photos/--pipeline: see --small-model (default: %(default)s, as `colorize images`)")
    parser.add_argument("--backend", default="torch", help="photos: engine backend (default torch)")
    parser.add_argument("--precision", default="fp32", help="photos: engine precision (default fp32)")


def load_colorizer(model: str):
    """(model, normalization, description) for a shipped name or checkpoint path.

    Raises:
        ValueError / FileNotFoundError: unknown name, missing file, or an ONNX model (needs a checkpoint).
    """
    from colorize.artifacts.model_ref import resolve_model
    from colorize.models import create_model
    from colorize.models.checkpoint import load_checkpoint, normalization_of

    ref = resolve_model(model)
    if ref.checkpoint is not None:
        net, meta = load_checkpoint(ref.checkpoint)
        if meta.get("kind") not in (None, "colorizer"):
            raise ValueError(f"{ref.checkpoint}: a {meta.get('kind')} checkpoint, not a colorizer")
        return net, normalization_of(meta), {"name": ref.name, "checkpoint": str(ref.checkpoint),
                                             "sha256": ref.sha256, "arch": meta["arch"]}
    if ref.random_init:
        print(f"warning: {model!r} has no weights; evaluating a random init", file=sys.stderr)
        return create_model(ref.arch).eval(), ref.normalization, {"name": ref.name, "random_init": True}
    raise ValueError(f"{model}: evaluate needs a checkpoint (.json/.safetensors) or shipped name, not ONNX")


def set_temperature(model, temperature: float) -> None:
    """Set the annealed-mean temperature of a model with an ab-bins head (``colorize.models.ab_bins``).

    Raises:
        ValueError: the model has no ab-bins head, or the temperature is not positive.
    """
    from colorize.models.ab_bins import AbBinsHead

    head = getattr(model, "head", None)
    if not isinstance(head, AbBinsHead):
        raise ValueError("the model has no ab-bins head (trained with --head bins)")
    head.temperature = temperature


def photos_main(args: argparse.Namespace) -> int:
    """Through ``colorize.Colorizer``: the photos' eval split, or with ``--pipeline`` CIFAR-10 images."""
    from colorize import Colorizer
    from colorize.colorizer import DEFAULT_WORKING_SIZE
    from colorize.training.photo_eval import evaluate_arrays, evaluate_photos
    from colorize.data.photos import photo_paths

    working = args.working_size or DEFAULT_WORKING_SIZE
    try:
        if args.photos:
            paths = photo_paths(None if args.photos == "default" else args.photos, "eval")
        else:
            from colorize.data.cifar10 import load_cifar10
            from colorize.training.classify import subset

            images, labels = load_cifar10(args.split, args.data)
            images, _ = subset(images, labels, args.limit)
        colorizer = Colorizer.load(args.model, args.backend, args.precision, working_size=working,
                                   min_working_size=args.min_working_size, small_model=args.small_model,
                                   small_max_side=args.small_max_side)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ref = colorizer.engine.model
    with colorizer:
        if args.photos:
            res = evaluate_photos(colorizer, paths, ref.normalization, grid=args.grid,
                                  grid_count=min(args.grid_count, 8), gray=args.gray)
        else:
            res = evaluate_arrays(colorizer, ((f"cifar10 {args.split}", im) for im in images), len(images),
                                  ref.normalization, grid=args.grid, grid_count=min(args.grid_count, 8),
                                  grid_height=96, gray=args.gray)
    res = {"model_info": {"name": ref.name, "sha256": ref.sha256, "arch": ref.arch,
                          "backend": colorizer.engine.backend, "precision": colorizer.engine.precision},
           "split": "photos eval" if args.photos else f"cifar10 {args.split} (pipeline)",
           "limit": None if args.photos else (args.limit or None), "working_size": working,
           "min_working_size": colorizer.min_working_size,
           "small_model": colorizer.describe_small() or None, "small_max_side": colorizer.small_max_side, **res}
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=2) + "\n")
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        from colorize.training.evaluate import format_table

        folders = ", ".join(f"{k} {v['model']:.2f}/{v['gray']:.2f} dB" for k, v in res["per_folder"].items())
        print(f"{ref.name} on {res['split']} (working size {working}, gray input: {args.gray})\n"
              f"{format_table(res)}\n"
              f"per-photo PSNR by folder (model/gray): {folders}")
    return 0


def main(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from colorize.data.cifar10 import load_cifar10
    from colorize.training.classify import subset
    from colorize.training.evaluate import evaluate_colorizer, format_table, sample_grid

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.photos or args.pipeline:
        if args.temperature is not None:
            print("error: --temperature is for the torch CIFAR-10 evaluation (--photos and --pipeline run through "
                  "the engine; evaluate a checkpoint copy with another temperature instead)", file=sys.stderr)
            return 2
        return photos_main(args)
    try:
        model, norm, desc = load_colorizer(args.model)
        images, labels = load_cifar10(args.split, args.data)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.temperature is not None:
        try:
            set_temperature(model, args.temperature)
        except ValueError as e:
            print(f"error: --temperature: {args.model}: {e}", file=sys.stderr)
            return 2
        desc["temperature"] = args.temperature
    images, labels = subset(images, labels, args.limit)
    classifier = classifier_input = None
    clf_path = args.classifier or (str(DEFAULT_CLASSIFIER) if DEFAULT_CLASSIFIER.is_file() else None)
    if clf_path and clf_path != "none":
        from colorize.models.checkpoint import CheckpointError, load_checkpoint

        try:
            classifier, cmeta = load_checkpoint(clf_path)
        except CheckpointError as e:
            print(f"error: --classifier: {e}", file=sys.stderr)
            return 2
        d = cmeta.get("data", {})
        classifier_input = (d.get("input_mean", [0.0] * 3), d.get("input_std", [1.0] * 3))
        desc["classifier"] = str(clf_path)
    elif not args.json:
        print("no classifier: semantic check skipped (pass --classifier)", file=sys.stderr)
    res = evaluate_colorizer(model, images, labels, norm=norm, classifier=classifier,
                             classifier_input=classifier_input, batch_size=args.batch_size, bf16=args.bf16,
                             gray=args.gray)
    res = {"model_info": desc, "split": args.split, "limit": args.limit or None, **res}
    if args.grid:
        idx = np.random.default_rng(1).permutation(len(images))[: args.grid_count]
        sample_grid(model, images[np.sort(idx)], args.grid, norm=norm, gray=args.gray)
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2) if args.json else f"{desc['name']} on CIFAR-10 {args.split} (gray input: {args.gray})\n"
                                                                  f"{format_table(res)}")
    return 0
