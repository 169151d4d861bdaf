"""The ``colorize`` command line.

Each subcommand lives in its own module, which defines
``add_arguments(parser)`` and ``main(args) -> int``; modules are imported to
build the parser, so they must keep heavy imports (torch, onnxruntime, ...)
inside ``main``. Exit codes: 0 success, 1 partial failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "images": ("colorize.cli.images", "colorize image files and folders"),
    "video": ("colorize.cli.video", "colorize video files and folders with steady colour"),
    "train": ("colorize.training.cli", "train a classifier or a colorizer"),
    "evaluate": ("colorize.training.evaluate_cli", "measure a colorizer's quality on CIFAR-10 or photos"),
    "export": ("colorize.export.cli", "export a model to ONNX (BN folded, parity-checked)"),
    "import": ("colorize.cli.import_model", "describe an ONNX colorizer of another convention (colorize.io)"),
    "build": ("colorize.export.build_cli", "build a TensorRT engine from an ONNX model"),
    "bench": ("colorize.benchmarks.cli", "benchmark latency and throughput against eager PyTorch"),
    "serve": ("colorize.cli.serve", "serve colorization over HTTP"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorize", description="Fast grayscale-to-colour inference for ResNet/U-Net colorizers."
    )
    from colorize import __version__

    parser.add_argument("--version", action="version", version=f"colorize {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and module_name.startswith(e.name):
                continue  # command not built in this checkout
            raise
        first_line = (module.__doc__ or help_text).strip().splitlines()[0]
        p = sub.add_parser(name, help=help_text, description=first_line.replace("``", ""))  # no RST markup in --help
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    from colorize.deps import MissingDependency, extra_for, install_hint

    try:
        return int(args._main(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MissingDependency as e:  # an optional dependency this command needs (the message names the extra)
        print(f"colorize {args.command}: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if (extra := extra_for(e.name)) is None:
            raise
        print(f"colorize {args.command}: needs {e.name}, which is not installed; install it with: "
              f"{install_hint(extra)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
