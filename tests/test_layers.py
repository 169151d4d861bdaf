"""The import structure: one namespace, layers that point one way, and no import circle.

Every module of the ``colorize`` namespace is read (not imported) and each import is an arrow: module-level and
function-level ``import``/``from`` statements, relative ones resolved, and the module paths written as strings
in lazy tables (``"colorize.folder"``, ``"colorize.backends.onnxruntime_backend:OnnxRuntimeBackend"``), which
``importlib`` imports on first use. docs/architecture.md draws the same layers.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Layers from the ground up; a module may import its own layer and the layers below it. The first prefix that
#: matches a module's name decides its layer (``colorize.export.cli`` is a command line, the rest of export is not).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground: data and image I/O, paths, optional dependencies",
     ("colorize.image", "colorize.data", "colorize.deps", "colorize.fsutil", "colorize.paths", "colorize.cpu",
      "colorize.machine_id")),
    ("models: architectures, weights and the description of model files",
     ("colorize.models", "colorize.model_io", "colorize.model_adapter", "colorize.artifacts.model_ref",
      "colorize.artifacts.cache", "colorize.artifacts.onnx_metadata", "colorize.artifacts.onnx_props",
      "colorize.artifacts.onnx_io", "colorize.artifacts.eager")),
    ("export: ONNX, INT8, TensorRT plans, Triton kernels",
     ("colorize.export.cli", "colorize.export.build_cli", "colorize.export", "colorize.kernels")),
    ("runtime: engine, backends, job, serve, ray, video, the public API",
     ("colorize.artifacts", "colorize.backends", "colorize.engine", "colorize.auto_choice", "colorize.guard",
      "colorize.colorizer", "colorize.job", "colorize.ray", "colorize.folder", "colorize.serve", "colorize.video")),
    ("tools: training, evaluation, benchmarks",
     ("colorize.training.cli", "colorize.training.evaluate_cli", "colorize.benchmarks.cli",
      "colorize.training", "colorize.benchmarks")),
    ("command lines", ("colorize.cli", "colorize.__main__")),
]
# The command-line modules that live beside their subject are the command-line layer.
CLI_MODULES = ("colorize.export.cli", "colorize.export.build_cli", "colorize.training.cli",
               "colorize.training.evaluate_cli", "colorize.benchmarks.cli")
#: The package itself (``from colorize import Colorizer``): the public API, lazily, at the runtime's level.
ROOT = "colorize"


def _package_dirs() -> dict[str, Path]:
    """``colorize`` name -> folder, from pyproject.toml's package-dir mapping."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name: REPO / folder for name, folder in config["package-dir"].items()}


def _modules() -> dict[str, Path]:
    dirs = _package_dirs()
    mods: dict[str, Path] = {}
    for name, folder in dirs.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            full = ".".join((name, *rel))
            # a subfolder mapped on its own (colorize.models) is read under its own name only
            if any(other != name and full.startswith(other + ".") or full == other
                   for other in dirs if other.startswith(name + ".")):
                continue
            mods[full] = path
    return mods


MODULES = _modules()
_DOTTED = re.compile(r"^colorize(\.\w+)+(:\w+)?$")


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {_resolve(a.name) for a in node.names if a.name.split(".")[0] == "colorize"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = base + (f".{node.module}" if node.module else "")
            else:
                source = node.module or ""
            if source.split(".")[0] != "colorize":
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                found.add(full if full in MODULES else _resolve(source))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DOTTED.match(node.value):
            target = _resolve(node.value.split(":")[0])
            if target != ROOT:  # "colorize.io", "colorize.quantization": metadata keys, not modules
                found.add(target)
    found.discard(None)
    found.discard(module)
    return found  # type: ignore[return-value]


ARROWS = {m: _imports(m, p) for m, p in MODULES.items()}


def layer_of(module: str) -> int:
    if module == ROOT:
        return 3
    if module in CLI_MODULES:
        return len(LAYERS) - 1
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py and to "
                         "docs/architecture.md")


def test_the_namespace_is_one_package():
    dirs = _package_dirs()
    assert all(name == "colorize" or name.startswith("colorize.") for name in dirs)
    assert not (REPO / "colorize").exists(), "a colorize/ folder at the root would shadow the mapping"
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert on_disk == listed, f"packages missing from pyproject.toml: {on_disk - listed}; listed, not on disk: " \
                              f"{listed - on_disk}"


def test_no_module_imports_the_old_top_level_names():
    old = re.compile(r"^\s*(from|import)\s+(engine|models|training|export|kernels|benchmarks)\b", re.M)
    bad = [f"{p.relative_to(REPO)}:{t.count(chr(10), 0, m.start()) + 1}"
           for p in [*MODULES.values(), *(REPO / "tests").rglob("*.py")]
           for t in [p.read_text()] for m in old.finditer(t)]
    assert not bad, f"imports of the names before the colorize namespace: {bad}"


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_layers_point_one_way():
    up = [f"{m} ({LAYERS[layer_of(m)][0].split(':')[0]}) -> {t} ({LAYERS[layer_of(t)][0].split(':')[0]})"
          for m, targets in ARROWS.items() for t in sorted(targets) if layer_of(t) > layer_of(m)]
    assert not up, "imports that point up a layer:\n  " + "\n  ".join(up)


def test_the_runtime_never_imports_training_or_benchmarks():
    runtime = [m for m in MODULES if layer_of(m) <= 3]
    bad = [f"{m} -> {t}" for m in runtime for t in ARROWS[m]
           if t.startswith(("colorize.training", "colorize.benchmarks"))]
    assert not bad, bad


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in ARROWS.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(MODULES)))
    try:
        for v in sorted(MODULES):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


def test_no_import_circle():
    cycles = _cycles()
    assert not cycles, "import circles:\n  " + "\n  ".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", ["colorize.engine", "colorize.colorizer", "colorize.folder"])
def test_the_public_api_is_named_at_the_top(module):
    import colorize

    assert any(v == module for v in getattr(colorize, "_LAZY", {}).values())


#: files in the package folders that the wheel leaves out on purpose: what only training from a clone reads
NOT_SHIPPED = ("colorize.models/weights/classifiers/",)


def test_every_data_file_in_the_package_folders_ships_in_the_wheel():
    """A file the runtime reads (calibration photos, the page, weights) must match a package-data pattern, or an
    installed wheel lacks it while every test run from the clone passes."""
    import fnmatch

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = _package_dirs()
    patterns = {pkg: globs for pkg, globs in config["package-data"].items()}
    missing = []
    for name, folder in dirs.items():
        for path in folder.rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(folder)
            if any(f"{name}/{rel.as_posix()}".startswith(n) for n in NOT_SHIPPED):
                continue
            # the package that owns the file is the deepest one whose folder holds it, with an __init__.py
            owner, sub = name, rel
            for parent in rel.parents:
                if parent != Path(".") and (folder / parent / "__init__.py").is_file():
                    owner, sub = ".".join((name, *parent.parts)), rel.relative_to(parent)
                    break
            if not any(fnmatch.fnmatch(sub.as_posix(), g) for g in patterns.get(owner, [])):
                missing.append(f"{path.relative_to(REPO)} (package {owner})")
    assert not missing, "not in [tool.setuptools.package-data]: " + ", ".join(missing)
