"""ONNX Runtime backend: CPU provider (fp32, static-INT8 QDQ), CUDA provider where it really works.

Never imports torch when the model has an ONNX file (shipped, or an ``.onnx`` path); otherwise the
model is exported once into the artifact cache (``engine/artifacts/onnx_files.py``), which needs torch.

Tuning: ``intra_op_num_threads`` = the cores this process may use (not ORT's default, which counts
hyper-threads and spins across all of them), one inter-op thread (the graph is a chain), all graph
optimizations (constant-folds the fp16-weight Casts, fuses Conv+ReLU).

Thread-safety: ``InferenceSession.run`` is thread-safe, so ``thread_safe = True``.

``provider="cuda"`` (needs ``onnxruntime-gpu``): onnxruntime-gpu lists CUDAExecutionProvider even
with no GPU and silently falls back to CPU, so the backend checks the providers the session actually
got and raises ``BackendError`` when CUDA is not among them.
"""

from __future__ import annotations

import numpy as np

from colorize.artifacts.cache import ArtifactCache, sha256_file
from colorize.artifacts.model_ref import ModelRef
from colorize.artifacts.onnx_files import cpu_cores, int8_onnx, source_onnx
from colorize.backends.base import Backend, BackendError, model_description, require, static_batch_of

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = ("fp32", "int8")
    thread_safe = True
    uses_artifact_cache = True

    @classmethod
    def available(cls) -> str | None:
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None:
            return 'onnxruntime is not installed (pip install ".[cpu]")'
        return None

    def __init__(
        self,
        ref: ModelRef,
        precision: str = "fp32",
        *,
        provider: str = "cpu",
        num_threads: int | None = None,
        cache_dir: str | None = None,
        io=None,
    ):
        super().__init__(precision)
        ort = require("onnxruntime", "cpu")
        io = model_description(ref, io)  # tensor names, a static batch (colorize.model_io.ModelIO)
        if precision not in self.precisions:
            raise ValueError(f"onnxruntime runs {', '.join(self.precisions)}, not {precision!r}")
        if provider not in _PROVIDERS:
            raise ValueError(f"provider must be one of {', '.join(_PROVIDERS)}, got {provider!r}")
        cache = ArtifactCache(cache_dir)
        if precision == "fp32":
            path = source_onnx(ref, cache)
        else:
            path = int8_onnx(ref, cache, io=io)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = num_threads or cpu_cores()
        so.inter_op_num_threads = 1
        want = _PROVIDERS[provider]
        if want not in ort.get_available_providers():
            have = ", ".join(ort.get_available_providers())
            raise BackendError(f"onnxruntime has no {want} here (available: {have})")
        try:
            self.session = ort.InferenceSession(str(path), so, providers=[want])
        except Exception as e:  # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime could not load {path}: {e}") from None
        got = self.session.get_providers()
        if want not in got:  # onnxruntime-gpu falls back to CPU silently
            raise BackendError(f"onnxruntime asked for {want} but the session got {got} (no usable GPU?)")
        self.input_name = io.input_name or self.session.get_inputs()[0].name
        self.output_name = io.output_name or self.session.get_outputs()[0].name
        shape = next((i.shape for i in self.session.get_inputs() if i.name == self.input_name), None) or [None]
        self.static_batch = static_batch_of(io, shape[0])  # a fixed N: run() feeds chunks of it
        self.provider = provider
        self.path = path
        self.version = ort.__version__

    def artifact_id(self) -> dict:
        """What runs, for caching the quality guard's verdict."""
        return {
            "backend": self.name,
            "version": self.version,
            "provider": self.provider,
            "precision": self.precision,
            "artifact_sha256": sha256_file(self.path),
        }

    def _run(self, l: np.ndarray) -> np.ndarray:
        (y,) = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(l, dtype=np.float32)})
        return y

    def _close(self) -> None:
        self.session = None


class OnnxRuntimeCudaBackend(OnnxRuntimeBackend):
    """ONNX Runtime with the CUDA provider (``pip install ".[gpu]"``), FP32.

    ``available()`` only sees that the provider is listed (onnxruntime-gpu lists it even without a
    GPU); loading then checks the providers the session really got, so ``auto`` moves on when the
    session silently fell back to CPU.
    """

    name = "onnxruntime-cuda"
    precisions = ("fp32",)
    thread_safe = True

    @classmethod
    def available(cls) -> str | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return 'onnxruntime-gpu is not installed (pip install ".[gpu]")'
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return 'this onnxruntime has no CUDAExecutionProvider (pip install ".[gpu]")'
        return None

    def __init__(self, ref: ModelRef, precision: str = "fp32", *, num_threads: int | None = None, cache_dir=None,
                 io=None):
        super().__init__(ref, precision, provider="cuda", num_threads=num_threads, cache_dir=cache_dir, io=io)
