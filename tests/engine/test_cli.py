"""The colorize CLI: help lists commands; usage errors exit 2; no torch on import."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from colorize.cli.main import COMMANDS, build_parser, main

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
    r = subprocess.run([sys.executable, "-m", "colorize", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "COMMAND" in r.stdout


def test_version(capsys):
    from colorize import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"colorize {__version__}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_has_no_rst_markup(command, capsys):
    if command not in build_parser()._subparsers._group_actions[0].choices:
        pytest.skip(f"{command} is not built in this checkout")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "``" not in text
    if command == "images":
        assert text.startswith("usage: colorize images INPUT [INPUT ...] -o OUTDIR")


def test_importing_engine_and_cli_does_not_import_torch():
    code = "import sys, colorize, colorize.cli, colorize.image.color, colorize.image.padding, colorize.artifacts.model_ref, " \
           "colorize.engine; colorize.cli.build_parser(); assert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_images_on_the_samples_with_the_defaults_never_imports_torch(tmp_path):
    """``colorize images examples/ -o OUT`` as run after ``pip install ".[cpu]"``: the default model and
    backend auto, with an empty artifact cache so that the quality guard runs as well; torch is never imported."""
    pytest.importorskip("onnxruntime")
    out = tmp_path / "out"
    code = ("import sys; from colorize.cli import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    env = {**os.environ, "COLORIZE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", code, "images", str(REPO / "examples"), "-o", str(out), "-q"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    samples = sorted(p.name for p in (REPO / "examples").iterdir() if p.suffix in (".jpg", ".png"))
    assert sorted(p.name for p in out.iterdir()) == samples and "colorized 4 of 4 images" in r.stderr


_NO_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


@pytest.mark.parametrize("name", ["nosuchmodel", "efficientnet_lite0-unet-photo"])
def test_unknown_model_without_torch_names_the_shipped_models(tmp_path, name):
    """As after ``pip install ".[cpu]"`` (no torch): the API and the CLI say the name is unknown and list the
    shipped models; the CLI exits 2 (usage error)."""
    code = _NO_TORCH + (
        "from colorize import Colorizer\n"
        "try:\n"
        f"    Colorizer.load({name!r})\n"
        "except ValueError as e:\n"
        "    print('API:', e)\n"
        "from colorize.cli import main\n"
        f"rc = main(['images', {str(REPO / 'examples')!r}, '-o', 'out', '--model', {name!r}])\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "sys.exit(rc)\n"
    )
    env = {**os.environ, "COLORIZE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120)
    want = f"unknown model {name!r}; shipped models: efficientnet_lite0-unet-photos, resnet18-unet"
    assert r.returncode == 2, r.stdout + r.stderr[-3000:]
    assert f"API: {want}" in r.stdout and want in r.stderr and "torch" not in r.stderr.split(want)[0]
    assert not (tmp_path / "out").exists()
    if name == "efficientnet_lite0-unet-photo":
        assert "did you mean 'efficientnet_lite0-unet-photos'?" in r.stderr


_MISSING = """
import sys
class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {missing!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Missing())
from colorize.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("argv, missing, extra", [
    (["evaluate", "--model", "resnet18-unet"], ("torch",), "torch"),
    (["train", "colorize", "--epochs", "1"], ("torch",), "torch"),
    (["train", "classify", "--epochs", "1"], ("torch",), "torch"),
    (["export", "--model", "resnet18-unet", "-o", "m.onnx"], ("torch",), "torch"),
])
def test_a_command_without_its_extra_names_the_install_and_shows_no_traceback(tmp_path, argv, missing, extra):
    """As after ``pip install ".[cpu]"``: commands that need torch say how to install it (exit 2, usage)."""
    env = {**os.environ, "COLORIZE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", _MISSING.format(missing=set(missing)), *argv], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-3000:]
    assert f'pip install ".[{extra}]"' in r.stderr and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.stderr.startswith(f"colorize {argv[0]}"), r.stderr
