"""Export a colorizer to ONNX (BN folded, dynamic N/H/W, metadata, checker, parity with eager FP32).

    colorize export --model resnet18-unet -o models/weights/resnet18-unet.onnx
    colorize export --model runs/x/best.json -o x.onnx --weights fp32

``--weights auto`` stores fp16 initializers (+ Cast) when the checkpoint itself stores fp16 weights,
which halves the file; compute stays FP32. ``--int8 PATH`` also writes the static-INT8 QDQ model
calibrated on CIFAR-10 train images (or, for a model fine-tuned on photos, on crops of the
photos' train split: ``--calibration``).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="resnet18-unet", help="shipped name, architecture, or checkpoint path")
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    parser.add_argument("--weights", choices=("auto", "fp32", "fp16"), default="auto", help="initializer storage")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    parser.add_argument("--int8", metavar="PATH", help="also write a static-INT8 QDQ model here")
    parser.add_argument("--calibration", choices=("auto", "cifar", "photos"), default="auto",
                        help="INT8 calibration images: CIFAR-10 train, or crops of the photos' train split "
                             "(auto: photos for a model trained on photos)")
    parser.add_argument("--json", action="store_true", help="print the export report as JSON")


def main(args: argparse.Namespace) -> int:
    if not args.output.endswith(".onnx"):
        print(f"colorize export: --output must end in .onnx, got {args.output!r}", file=sys.stderr)
        return 2
    try:
        from export.onnx_export import ExportError, export_onnx
    except ImportError as e:
        print(f'colorize export needs torch and onnx: pip install ".[torch]" ({e})', file=sys.stderr)
        return 2
    try:
        report = export_onnx(args.model, args.output, weights=args.weights, opset=args.opset)
    except (ValueError, FileNotFoundError) as e:
        print(f"colorize export: {e}", file=sys.stderr)
        return 2
    except ExportError as e:
        print(f"colorize export: {e}", file=sys.stderr)
        return 1
    if args.int8:
        from engine.artifacts.model_ref import resolve_model
        from export.quantize import calibration_l, photo_calibration_l, quantize_int8

        source = args.calibration
        if source == "auto":
            dataset = (resolve_model(args.model).metadata.get("data") or {}).get("dataset", "")
            source = "photos" if dataset.startswith("photos") else "cifar"
        try:
            quantize_int8(args.output, args.int8, photo_calibration_l() if source == "photos" else calibration_l())
        except FileNotFoundError as e:  # no CIFAR-10 train split to calibrate on
            print(f"colorize export: wrote {args.output}, but not {args.int8}: {e}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(report.__dict__, indent=2))
    else:
        print(
            f"wrote {report.path} (opset {report.opset}, {report.weights} weights); parity with eager FP32 "
            f"on {len(report.sizes)} sizes: max |dab| = {report.max_abs:.2e} <= {report.tolerance:g}"
            + (f" (vs unrounded fp32 weights: {report.max_abs_vs_unrounded:.2e})" if report.weights == "fp16" else "")
        )
        if args.int8:
            print(f"wrote {args.int8} (static INT8, QDQ, calibrated on {source})")
    return 0
