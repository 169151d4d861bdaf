"""The ``colorize`` command line."""

from colorize.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
