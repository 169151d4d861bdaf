"""``colorize.video`` is runtime: it imports neither training, benchmarks nor torch, not even inside a function."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("colorize.training", "colorize.benchmarks", "torch", "colorize.cli")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_video_modules_import_only_the_layers_below():
    files = sorted((REPO / "engine" / "video").glob("*.py"))
    assert len(files) >= 7
    for f in files:
        bad = [m for m in _imports(f) if m.startswith(FORBIDDEN)]
        assert not bad, f"{f.relative_to(REPO)} imports {bad}"


def test_a_video_on_onnx_runtime_never_imports_torch(clips, tmp_path):
    code = ("import sys; from colorize import colorize_video; "
            f"s = colorize_video({str(clips['silent'].path)!r}, {str(tmp_path)!r}, backend='onnxruntime', "
            "precision='fp32', working_size=64); "
            "assert s.exit_status == 0, s.errors; "
            "bad = [m for m in ('torch', 'colorize.training', 'colorize.benchmarks') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert r.returncode == 0, r.stderr
