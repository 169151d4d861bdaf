"""Build a TensorRT engine (plan) from an ONNX model exported by ``colorize export``.

    colorize build model.onnx --precision fp16 -o model.plan
    colorize build model.onnx --min l:1x1x8x8 --opt l:8x1x256x256 --max l:32x1x512x512
    colorize build model.onnx --dry-run          # print the profile and the plan check, build nothing

Shapes use trtexec's syntax (``NAME:DxDxDxD``, comma-separated; the name may be left out for a
single-input model). Missing ones default from the ONNX's dynamic axes (batch 1/8/32, H and W
1/32/64 times the model's stride). An existing plan is reused when its sidecar
(``model.plan.json``) matches this GPU, TensorRT version, ONNX, precision and profile, and rebuilt
otherwise. Exit codes: 0 built or up to date, 1 build failed or TensorRT/CUDA missing, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("onnx", help="ONNX model (from 'colorize export')")
    parser.add_argument("-o", "--output", help="plan path (default: the ONNX path with .plan)")
    parser.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="default: fp16")
    parser.add_argument("--min", dest="min_shapes", metavar="SHAPES", help="min shapes, e.g. l:1x1x8x8")
    parser.add_argument("--opt", dest="opt_shapes", metavar="SHAPES", help="opt shapes, e.g. l:8x1x256x256")
    parser.add_argument("--max", dest="max_shapes", metavar="SHAPES", help="max shapes, e.g. l:32x1x512x512")
    parser.add_argument("--workspace", type=float, default=4.0, metavar="GiB", help="workspace limit (default 4)")
    parser.add_argument("--timing-cache", metavar="PATH", help="timing cache file (default: one per TensorRT/GPU in the cache)")
    parser.add_argument("--no-timing-cache", action="store_true", help="build without a timing cache")
    parser.add_argument("--force", action="store_true", help="rebuild even when the plan is up to date")
    parser.add_argument("--dry-run", action="store_true", help="resolve and print the profile; build nothing")
    parser.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from colorize.deps import MissingDependency
    from colorize.export.trt_profile import onnx_inputs, onnx_stride, parse_shapes, resolve_profile

    onnx_path = Path(args.onnx)
    plan_path = Path(args.output) if args.output else onnx_path.with_suffix(".plan")
    if args.workspace <= 0:
        print(f"error: --workspace must be > 0 GiB, got {args.workspace}", file=sys.stderr)
        return 2
    try:
        inputs = onnx_inputs(onnx_path)
        stride = onnx_stride(onnx_path) or 8
        shapes = {k: parse_shapes(getattr(args, f"{k}_shapes"), inputs) for k in ("min", "opt", "max")}
        profile = resolve_profile(inputs, shapes["min"], shapes["opt"], shapes["max"], stride=stride)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps({"onnx": str(onnx_path), "plan": str(plan_path), "stride": stride,
                          "precision": args.precision, "profile": profile.to_json()}, indent=2))
        return 0

    from colorize.export.tensorrt_build import TensorRTBuildError, build_plan

    timing_cache = False if args.no_timing_cache else (args.timing_cache or True)
    try:
        result = build_plan(
            onnx_path,
            plan_path,
            precision=args.precision,
            min_shapes=shapes["min"],
            opt_shapes=shapes["opt"],
            max_shapes=shapes["max"],
            workspace_bytes=int(args.workspace * (1 << 30)),
            timing_cache=timing_cache,
            force=args.force,
            verbose=args.verbose,
        )
    except (MissingDependency, TensorRTBuildError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    info = result.info
    state = f"built in {info.build_seconds:.1f} s" if result.rebuilt else "up to date"
    print(f"{plan_path}: {state} (TensorRT {info.tensorrt_version}, {info.gpu_name} sm{info.compute_capability}, {info.precision})")
    return 0
