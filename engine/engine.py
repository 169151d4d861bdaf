"""``Engine``: load a colorizer on a backend, run model-normalized L -> ab.

    eng = Engine.load("resnet18-unet", backend="auto", precision="auto")
    ab = eng.run(l)          # float32 [N,1,H,W] -> float32 [N,2,H,W]
    eng.backend, eng.precision

Any H, W: the engine edge-pads to the model's stride and crops back
(``engine/padding.py``). Thread-safe: calls are serialized unless the backend
declares itself thread-safe.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from engine.backends.base import Backend
from engine.model_ref import DEFAULT_MODEL, ModelRef, resolve_model
from engine.padding import pad_nchw

from engine.backends import BACKENDS, backend_class

PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def _make_backend(ref: ModelRef, backend: str, precision: str, **options) -> Backend:
    cls = backend_class(backend)
    if precision not in cls.precisions:
        raise ValueError(f"backend {backend!r} does not run precision {precision!r}; it runs {', '.join(cls.precisions)}")
    return cls(ref, precision, **options)


def model_stride(ref: ModelRef) -> int:
    """Total stride of the model (from metadata when present, else the architecture)."""
    if "total_stride" in ref.metadata:
        return int(ref.metadata["total_stride"])
    stem = ref.arch_kwargs.get("stem", "cifar")
    if ref.arch == "seed-unet":
        return 16
    return 8 if stem == "cifar" else 32


class Engine:
    def __init__(self, ref: ModelRef, backend: Backend, stride: int):
        self.model = ref
        self._backend = backend
        self.stride = stride
        self.normalization = ref.normalization
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, model: str | os.PathLike = DEFAULT_MODEL, backend: str = "auto", precision: str = "auto", **options
    ) -> "Engine":
        """Load ``model`` (a shipped model's name or a path) on ``backend`` at ``precision``.

        Raises:
            ValueError: unknown backend or precision (the message lists the valid ones).
            MissingDependency: the backend's extra is not installed.
        """
        ref = resolve_model(model)
        if backend == "auto":
            backend = "torch"
        if precision != "auto" and precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS + ('auto',))}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(list(BACKENDS) + ['auto'])}")
        if precision == "auto":
            precision = "fp32"
        return cls(ref, _make_backend(ref, backend, precision, **options), model_stride(ref))

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def precision(self) -> str:
        return self._backend.precision

    def run(self, l: np.ndarray) -> np.ndarray:
        """Model-normalized L, float32 [N,1,H,W] -> normalized ab, float32 [N,2,H,W]."""
        l = np.asarray(l)
        if l.ndim != 4 or l.shape[1] != 1 or l.shape[0] < 1 or min(l.shape[2:]) < 1:
            raise ValueError(f"l must have shape [N>=1, 1, H>=1, W>=1], got {list(l.shape)}")
        h, w = l.shape[2:]
        x = pad_nchw(np.ascontiguousarray(l, dtype=np.float32), self.stride)
        if self._backend.thread_safe:
            y = self._backend.run(x)
        else:
            with self._lock:
                y = self._backend.run(x)
        return np.ascontiguousarray(y[:, :, :h, :w], dtype=np.float32)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Engine(model={self.model.name!r}, backend={self.backend!r}, precision={self.precision!r})"
