"""Export a colorizer to ONNX (BN folded, dynamic N/H/W, metadata, checker, parity with eager FP32).

    colorize export --model resnet18-unet -o models/weights/resnet18-unet.onnx
    colorize export --model runs/x/best.json -o x.onnx --weights fp32

Your own ``nn.Module``, in any convention (docs/own-models.md):

    colorize export --module mypkg.net:build --weights net.safetensors --io spec.json -o mine.onnx

``--weights auto`` stores fp16 initializers (+ Cast) when the checkpoint itself stores fp16 weights,
which halves the file; compute stays FP32. ``--int8 PATH`` also writes the static-INT8 QDQ model
calibrated on CIFAR-10 train images (or, for a model fine-tuned on photos, on crops of the
photos' train split; or on the gray photos that ship with the package: ``--calibration``).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="resnet18-unet", help="shipped name, architecture, or checkpoint path")
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    parser.add_argument("--weights", default="auto", metavar="auto|fp32|fp16|FILE",
                        help="initializer storage (auto, fp32, fp16); with --module: the weights file "
                             "(.safetensors, or a state dict read with torch.load(weights_only=True))")
    parser.add_argument("--module", metavar="PKG.MOD:BUILD_FN",
                        help="export your own nn.Module, built by BUILD_FN() (its convention: --io)")
    parser.add_argument("--io", metavar="SPEC.json|JSON",
                        help="with --module: the model's I/O description (docs/own-models.md); default ours")
    parser.add_argument("--name", help="with --module: the model's name (default: the output file's stem)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    parser.add_argument("--int8", metavar="PATH", help="also write a static-INT8 QDQ model here")
    parser.add_argument("--calibration", choices=("auto", "cifar", "photos", "bundled"), default="auto",
                        help="INT8 calibration images: CIFAR-10 train, crops of the photos' train split (both beside "
                             "a clone), or the gray photos that ship with the package (auto: photos for a model "
                             "trained on photos, else cifar)")
    parser.add_argument("--json", action="store_true", help="print the export report as JSON")


def main(args: argparse.Namespace) -> int:
    if not args.output.endswith(".onnx"):
        print(f"colorize export: --output must end in .onnx, got {args.output!r}", file=sys.stderr)
        return 2
    try:
        from colorize.export.onnx_export import ExportError, export_onnx
    except ImportError as e:
        print(f'colorize export needs torch and onnx: pip install ".[torch]" ({e})', file=sys.stderr)
        return 2
    if args.module:
        return _main_module(args)
    if args.io:
        print("colorize export: --io goes with --module (an ONNX file of another convention: colorize import)",
              file=sys.stderr)
        return 2
    if args.weights not in ("auto", "fp32", "fp16"):
        print(f"colorize export: --weights must be auto, fp32 or fp16 (a weights file goes with --module), "
              f"got {args.weights!r}", file=sys.stderr)
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
        from colorize.artifacts.model_ref import resolve_model
        from colorize.export.quantize import (calibration_l, cifar_calibration_l, photo_calibration_l,
                                              quantize_int8)

        source = args.calibration
        if source == "auto":
            dataset = (resolve_model(args.model).metadata.get("data") or {}).get("dataset", "")
            source = "photos" if dataset.startswith("photos") else "cifar"
        data = {"photos": lambda: photo_calibration_l(split="train"), "cifar": cifar_calibration_l,
                "bundled": calibration_l}[source]
        try:
            quantize_int8(args.output, args.int8, data())
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


def _main_module(args: argparse.Namespace) -> int:
    """``--module``: a user's own nn.Module (export/module_export.py)."""
    from colorize.model_io import ModelIO, ModelIOError, read_io_file

    try:
        from colorize.export.module_export import export_module
        from colorize.export.onnx_export import ExportError
    except ImportError as e:
        print(f'colorize export --module needs torch, onnx and onnxruntime: pip install ".[torch]" ({e})',
              file=sys.stderr)
        return 2
    try:
        if not args.io:
            io = ModelIO.native()
        elif args.io.lstrip().startswith("{"):
            io = ModelIO.from_json(args.io, source="--io")
        else:
            io = read_io_file(args.io)
        weights = None if args.weights == "auto" else args.weights
        report = export_module(args.module, weights, args.output, io, opset=args.opset, name=args.name)
    except (ModelIOError, ValueError, FileNotFoundError) as e:
        print(f"colorize export: {e}", file=sys.stderr)
        return 2
    except ExportError as e:
        print(f"colorize export: {e}", file=sys.stderr)
        return 1
    if args.int8:
        from colorize.artifacts.model_ref import resolve_model
        from colorize.model_adapter import ModelAdapter
        from colorize.export.quantize import (cifar_calibration_l, photo_calibration_l, photos_available,
                                              quantize_int8)

        ref = resolve_model(args.output)
        if args.calibration == "cifar":
            data = cifar_calibration_l()
        elif args.calibration == "photos" or (args.calibration == "auto" and photos_available()):
            data = photo_calibration_l(split="train")
        else:
            data = photo_calibration_l()  # the bundled photos
        quantize_int8(args.output, args.int8, ModelAdapter(io, ref.normalization).to_model(data),
                      input_name=ModelIO.from_dict(report.io).input_name)
    if args.json:
        print(json.dumps(report.__dict__, indent=2))
    else:
        print(f"wrote {report.path} ({ModelIO.from_dict(report.io).describe()}); parity with eager FP32 on "
              f"{len(report.sizes)} sizes: max |d| / (1 + max |y|) = {report.max_abs:.2e} <= {report.tolerance:g}")
        if args.int8:
            print(f"wrote {args.int8} (static INT8, QDQ, calibrated through the model's convention)")
    return 0
