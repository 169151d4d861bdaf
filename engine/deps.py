"""Optional dependencies and the errors of what could not be loaded: the ground every layer may raise from.

    ort = require("onnxruntime", "cpu")    # or MissingDependency: 'onnxruntime is not installed (...);
                                           #  install it with: pip install ".[cpu]"'
"""

from __future__ import annotations


class BackendError(RuntimeError):
    """A backend could not be loaded or run."""


class MissingDependency(BackendError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


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
