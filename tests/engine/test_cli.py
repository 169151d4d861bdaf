"""The colorize CLI: help lists commands; usage errors exit 2; no torch on import."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.main import COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_available_commands(capsys):
    parser = build_parser()
    text = parser.format_help()
    for name in ("images", "train", "evaluate", "export", "build", "bench", "serve"):
        if name in parser._subparsers._group_actions[0].choices:
            assert name in text
    assert set(parser._subparsers._group_actions[0].choices) <= set(COMMANDS)


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "engine", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "COMMAND" in r.stdout


def test_importing_engine_and_cli_does_not_import_torch():
    code = "import sys, engine, engine.cli, engine.image.color, engine.image.padding, engine.artifacts.model_ref, " \
           "engine.engine; engine.cli.build_parser(); assert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_images_on_the_samples_with_the_defaults_never_imports_torch(tmp_path):
    """``colorize images examples/ -o OUT`` as run after ``pip install ".[cpu]"``: the default model and
    backend auto, with an empty artifact cache so that the quality guard runs as well; torch is never imported."""
    pytest.importorskip("onnxruntime")
    out = tmp_path / "out"
    code = ("import sys; from engine.cli import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    env = {**os.environ, "COLORIZE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", code, "images", str(REPO / "examples"), "-o", str(out), "-q"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    samples = sorted(p.name for p in (REPO / "examples").iterdir() if p.suffix in (".jpg", ".png"))
    assert sorted(p.name for p in out.iterdir()) == samples and "colorized 4 of 4 images" in r.stderr
