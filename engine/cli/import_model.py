"""Describe an ONNX colorizer of another convention for the engine (``colorize.io``) and write it.

    colorize import model.onnx --input gray_rgb:0..1 --output ab:lab --size 512x512 -o mine.onnx
    colorize import model.onnx --io spec.json -o mine.onnx

The written file runs everywhere a model does (``colorize images --model mine.onnx``, ``serve``, ``--ray``,
``bench``, INT8 with the quality guard). A graph with a fixed batch (N) keeps it, recorded as the description's
``batch``; the engine feeds it chunks of that size. Conventions and worked examples: docs/own-models.md.
Exit codes: 0 written, 2 bad arguments, a description the model contradicts, or a model that cannot be loaded
or run (one line naming the file and the cause; no traceback).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("onnx", help="the model's ONNX file")
    parser.add_argument("-o", "--output-file", dest="out", required=True, help="the .onnx file to write")
    parser.add_argument("--io", metavar="SPEC.json", help="the whole description as JSON (docs/own-models.md)")
    parser.add_argument("--input", help="KIND[:LO..HI|:imagenet|:mean=M,M,M/std=S,S,S], KIND one of l, gray_rgb, "
                                        "rgb (e.g. l:-1..1, gray_rgb:0..1, rgb:imagenet)")
    parser.add_argument("--output", help="ab:lab, ab:110, lab:lab, rgb:0..1, rgb:imagenet, ... (e.g. ab:lab)")
    parser.add_argument("--size", help="HxW (a static model, e.g. 512x512) or dynamic[:STRIDE] (default dynamic:1)")
    parser.add_argument("--layout", choices=("nchw", "nhwc"), help="tensor layout (default nchw)")
    parser.add_argument("--batch", type=int, metavar="N",
                        help="a static batch: the model runs only N images at a time (default: the graph's fixed N, "
                             "else any)")
    parser.add_argument("--input-name", help="the input tensor (default: the graph's first)")
    parser.add_argument("--output-name", help="the output tensor (default: the graph's first)")
    parser.add_argument("--name", help="the model's name (default: the output file's stem)")


def io_from_args(args: argparse.Namespace):
    """The ``ModelIO`` the arguments describe: ``--io``'s file, with any of the other options replacing its
    fields. Raises ModelIOError naming the field."""
    import dataclasses

    from colorize.model_io import ModelIO, ModelIOError, parse_input, parse_output, parse_size, read_io_file

    io = read_io_file(args.io) if args.io else None
    if io is None and not (args.input and args.output):
        raise ModelIOError("give --io SPEC.json, or both --input and --output")
    kw: dict = {}
    if args.input:
        kw["input"], kw["input_scale"], kw["input_offset"] = parse_input(args.input)
    if args.output:
        kw["output"], kw["output_scale"], kw["output_offset"] = parse_output(args.output)
    if args.size:
        kw["size"], kw["stride"] = parse_size(args.size)
    for field in ("layout", "input_name", "output_name", "batch"):
        if getattr(args, field, None) is not None:
            kw[field] = getattr(args, field)
    return dataclasses.replace(io, **kw) if io is not None else ModelIO(**kw)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from colorize.backends.base import MissingDependency
    from colorize.model_io import ModelIOError

    if not args.out.endswith(".onnx"):
        print(f"colorize import: -o must end in .onnx, got {args.out!r}", file=sys.stderr)
        return 2
    if not Path(args.onnx).is_file():
        print(f"colorize import: {args.onnx}: no such file", file=sys.stderr)
        return 2
    try:
        from colorize.artifacts.onnx_io import import_onnx

        io = import_onnx(args.onnx, args.out, io_from_args(args), name=args.name)
    except (ModelIOError, MissingDependency) as e:
        print(f"colorize import: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"colorize import: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    except Exception as e:  # onnx's and onnxruntime's own errors on a file they cannot read or run
        print(f"colorize import: {args.onnx}: cannot be loaded: {type(e).__name__}: {' '.join(str(e).split())}",
              file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({io.describe()}; input {io.input_name!r}, output {io.output_name!r})")
    return 0
