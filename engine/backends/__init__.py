"""Backend registry: name -> "module:Class", imported only when used.

Each backend class (see ``engine/backends/base.py``) provides
``available() -> str | None``: None when it can run on this machine, else the
reason it cannot (missing extra, no GPU), and ``precision_unavailable(p)``:
the same for one precision (bf16 on a CPU without it, from ``colorize.cpu``).
``auto`` in ``engine/engine.py`` only considers available backends and precisions.
"""

from __future__ import annotations

import importlib

BACKENDS: dict[str, str] = {
    "torch": "colorize.backends.torch_backend:TorchBackend",
    "onnxruntime": "colorize.backends.onnxruntime_backend:OnnxRuntimeBackend",
    "onnxruntime-cuda": "colorize.backends.onnxruntime_backend:OnnxRuntimeCudaBackend",
    "openvino": "colorize.backends.openvino_backend:OpenVinoBackend",
    "torch-cuda": "colorize.backends.torch_cuda:TorchCudaBackend",
    "tensorrt": "colorize.backends.tensorrt_backend:TensorRTBackend",
}

#: the precisions a backend may offer (each backend says which of them it has: ``precisions``)
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def check_names(backend: str, precision: str = "auto") -> None:
    """Raises ``ValueError`` for a backend or precision that is neither registered nor ``auto`` (the message
    lists the valid ones): the one check of these names, for the engine, the job and the Ray driver."""
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(list(BACKENDS) + ['auto'])}")
    if precision != "auto" and precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS + ('auto',))}")


def backend_class(name: str):
    """The backend class registered as ``name``.

    Raises:
        ValueError: unknown name (the message lists the registered ones).
    """
    if name not in BACKENDS:
        check_names(name)
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)
