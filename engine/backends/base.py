"""The one backend interface (Polygraphy's runner lifecycle, simplified).

A backend is built from a resolved model (``colorize.artifacts.model_ref.ModelRef``) and a
precision, runs model-normalized L batches whose H and W are already multiples
of the model's stride, and is closed when done. ``Engine`` does the input
checks and the padding, so backends only implement ``_run`` (and optionally
``_close``). Callers never branch on which backend they hold.

Thread-safety: ``run`` may be called from several threads at once only when
the backend's ``thread_safe`` is True; ``Engine`` serializes calls otherwise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


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


class Backend(ABC):
    #: registry name, e.g. "torch", "onnxruntime"
    name: str = ""
    #: precisions this backend can run, first = its default
    precisions: tuple[str, ...] = ("fp32",)
    #: whether ``run`` may be called concurrently
    thread_safe: bool = False

    @classmethod
    def available(cls) -> str | None:
        """None if this backend can run here, else why not (missing extra, no device)."""
        return None

    @classmethod
    def precision_unavailable(cls, precision: str) -> str | None:
        """None if this backend can run ``precision`` natively here, else why not (e.g. a CPU without bf16).
        ``auto`` and ``colorize bench`` skip such a precision with the reason; an explicit request raises it."""
        return None

    def __init__(self, precision: str):
        self.precision = precision
        self.closed = False

    @abstractmethod
    def _run(self, l: np.ndarray) -> np.ndarray:
        """float32 [N,1,H,W] (H, W multiples of the stride) -> float32 [N,2,H,W]."""

    def _close(self) -> None:
        pass

    def run(self, l: np.ndarray) -> np.ndarray:
        if self.closed:
            raise BackendError(f"{self.name} backend is closed")
        return self._run(l)

    def close(self) -> None:
        if not self.closed:
            self._close()
            self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(precision={self.precision!r})"
