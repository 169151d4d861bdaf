"""The one backend interface (Polygraphy's runner lifecycle, simplified).

A backend is built from a resolved model (``colorize.artifacts.model_ref.ModelRef``) and a
precision, runs model-normalized L batches whose H and W are already multiples
of the model's stride, and is closed when done. ``Engine`` does the input
checks and the padding, so backends only implement ``_run`` (and optionally
``_close``). Callers never branch on which backend they hold.

Thread-safety: ``run`` may be called from several threads at once only when
the backend's ``thread_safe`` is True; ``Engine`` serializes calls otherwise.

Static batch: a graph exported with a fixed N (DDColor's and most notebook exports: 1) runs only that
many images per call. A backend that loads such a graph sets ``static_batch`` (``static_batch_of``: the
model's I/O description, else the graph), and ``run`` feeds it in chunks of exactly that size, the last one
padded with copies of its last image and the padding's output dropped. Every caller of a backend (the
``Engine``, so ``colorize images``, the service's batcher, Ray, ``colorize bench``; the quality guard) gets
any N.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from colorize.deps import BackendError, MissingDependency, install_hint, require  # noqa: F401 (the backends' API)


def model_description(ref, io=None):
    """The I/O description a backend runs ``ref`` with: ``io`` as the engine passes it (checked against the graph:
    tensor names, a static batch), else the model file's own (``colorize.model_io.model_io``)."""
    if io is not None:
        return io
    from colorize.model_io import model_io

    return model_io(ref)


def static_batch_of(io, graph_batch: int | None) -> int | None:
    """The batch a backend must feed a graph: its I/O description's ``batch`` (checked against the graph at
    load), else the graph's fixed N (``graph_batch``, None when symbolic)."""
    batch = io.batch
    if batch is None and isinstance(graph_batch, int) and graph_batch > 0:
        batch = graph_batch
    return batch


class Backend(ABC):
    #: registry name, e.g. "torch", "onnxruntime"
    name: str = ""
    #: precisions this backend can run, first = its default
    precisions: tuple[str, ...] = ("fp32",)
    #: whether ``run`` may be called concurrently
    thread_safe: bool = False
    #: the one batch size the loaded graph runs (its fixed N), or None for any; set by the backend at load
    static_batch: int | None = None

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

    def _run_static(self, l: np.ndarray, batch: int) -> np.ndarray:
        """``l``'s N a multiple of ``batch``: one ``_run`` per chunk of ``batch``, in order (a backend that can run
        the chunks concurrently overrides this)."""
        return np.concatenate([self._run(l[i : i + batch]) for i in range(0, len(l), batch)])

    def run(self, l: np.ndarray) -> np.ndarray:
        if self.closed:
            raise BackendError(f"{self.name} backend is closed")
        b = self.static_batch
        if b is None or len(l) == b:
            return self._run(l)
        n = len(l)
        if n % b:  # pad the last chunk with copies of the last image; their output is dropped
            l = np.concatenate([l, np.repeat(l[-1:], b - n % b, axis=0)])
        return self._run_static(l, b)[:n]

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
