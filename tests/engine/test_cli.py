"""The colorize CLI: help lists commands; usage errors exit 2; no torch on import."""

import subprocess
import sys

from engine.cli.main import COMMANDS, build_parser, main


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
