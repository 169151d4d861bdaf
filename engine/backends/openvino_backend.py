"""OpenVINO backend (CPU): fp32, bf16 (AMX / AVX-512 BF16 through the inference precision hint) and
static INT8 (the QDQ model from ``export/quantize.py``, which OpenVINO runs with int8 kernels).

Never imports torch when the model has an ONNX file. Compiled models are cached by OpenVINO itself
under ``<artifact cache>/openvino`` (``CACHE_DIR``), and compiled from the file's path, so that a cached one is
imported without reading the ONNX (0.1-0.2 s less per load): OpenVINO then keys it by the file's absolute path,
modification time (seconds) and size, the config and its own version; the INT8 model is an artifact-cache entry (``engine/artifacts/onnx_files.py``).
The model keeps its dynamic N, H, W: a new input shape costs its first call ~0.1 s, where a static model
per shape costs ~0.5 s to read, reshape and load from the cache (``benchmarks/cold_start.py``, docs/cli.md).

Precision: OpenVINO's CPU default on an AMX machine is already bf16, so fp32 sets
``INFERENCE_PRECISION_HINT=f32`` explicitly. int8 leaves the non-quantized layers at the CPU's best
precision (bf16 when the CPU has it); the quality guard judges the whole artifact.

Streams (``mode``), tuned rather than left to the default:
  * ``latency``: one stream using every core; one request at a time;
  * ``throughput``: one stream per core; a batch is split across the streams and run concurrently
    (an ``AsyncInferQueue``), so a single large batch still uses every core;
  * ``auto`` (default): latency for batches smaller than 2 x streams, throughput otherwise; each
    compiled on first use.

A graph with a static batch (``Backend.static_batch``) gets chunks of exactly that size; in throughput mode the
chunks of one call run concurrently on the streams.

Thread-safety: each call takes a lock around the infer requests (an OpenVINO request is not
re-entrant), so ``thread_safe = False`` and ``Engine`` serializes calls.
"""

from __future__ import annotations

import threading

import numpy as np

from colorize import cpu
from colorize.artifacts.cache import ArtifactCache, sha256_file
from colorize.artifacts.model_ref import ModelRef
from colorize.artifacts.onnx_files import cpu_cores, int8_onnx, source_onnx
from colorize.backends.base import Backend, BackendError, model_description, require, static_batch_of

_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": None}
MODES = ("auto", "latency", "throughput")


class OpenVinoBackend(Backend):
    name = "openvino"
    precisions = ("fp32", "bf16", "int8")
    thread_safe = False
    uses_artifact_cache = True

    @classmethod
    def available(cls) -> str | None:
        import importlib.util

        if importlib.util.find_spec("openvino") is None:
            return 'openvino is not installed (pip install ".[cpu]")'
        return None

    @classmethod
    def precision_unavailable(cls, precision: str) -> str | None:
        return cpu.precision_missing(precision)

    def __init__(
        self,
        ref: ModelRef,
        precision: str = "fp32",
        *,
        mode: str = "auto",
        num_threads: int | None = None,
        cache_dir: str | None = None,
        io=None,
    ):
        super().__init__(precision)
        ov = require("openvino", "cpu")
        io = model_description(ref, io)  # tensor names, a static batch (colorize.model_io.ModelIO)
        if precision not in self.precisions:
            raise ValueError(f"openvino runs {', '.join(self.precisions)}, not {precision!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        missing = self.precision_unavailable(precision)
        if missing:
            raise BackendError(missing)
        core = ov.Core()
        cache = ArtifactCache(cache_dir)
        if precision != "int8":
            self.path = source_onnx(ref, cache)
        else:
            self.path = int8_onnx(ref, cache, io=io)
        (cache.root / "openvino").mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(cache.root / "openvino")})
        self._in, self._out = io.input_name, io.output_name
        self._ov, self._core = ov, core
        self.mode = mode
        self.cores = num_threads or cpu_cores()
        self.version = ov.__version__
        self._compiled: dict[str, tuple] = {}
        self._lock = threading.Lock()
        compiled, _, _ = self._get("latency" if mode != "throughput" else "throughput")  # compile now: fail early
        self._in = self._in or compiled.inputs[0].any_name
        self._out = self._out or compiled.outputs[0].any_name
        n = compiled.input(self._in).get_partial_shape()[0]
        self.static_batch = static_batch_of(io, n.get_length() if n.is_static else None)

    def _config(self, mode: str) -> dict:
        cfg = {"INFERENCE_NUM_THREADS": self.cores}
        if mode == "latency":
            cfg |= {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        else:
            cfg |= {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": self.cores}
        if _HINTS[self.precision]:
            cfg["INFERENCE_PRECISION_HINT"] = _HINTS[self.precision]
        return cfg

    def _get(self, mode: str):
        if mode not in self._compiled:
            try:  # from the path: with a cached blob, OpenVINO imports it without reading the ONNX file at all
                compiled = self._core.compile_model(str(self.path), "CPU", self._config(mode))
            except Exception as e:  # openvino raises RuntimeError subclasses of its own
                raise BackendError(f"openvino could not compile {self.path} ({mode}): {e}") from None
            streams = int(compiled.get_property("NUM_STREAMS"))
            self._compiled[mode] = (compiled, self._ov.AsyncInferQueue(compiled, streams), streams)
        return self._compiled[mode]

    def artifact_id(self) -> dict:
        return {
            "backend": self.name,
            "version": self.version,
            "precision": self.precision,
            "artifact_sha256": sha256_file(self.path),
        }

    def _run(self, l: np.ndarray) -> np.ndarray:
        return self._infer(l, None)

    def _run_static(self, l: np.ndarray, batch: int) -> np.ndarray:
        return self._infer(l, batch)

    def _infer(self, l: np.ndarray, batch: int | None) -> np.ndarray:
        """Run ``l`` whole, or split across the streams in throughput mode: into one chunk per stream, or for a
        static-batch graph (``batch``) into its chunks of exactly ``batch``."""
        l = np.ascontiguousarray(l, dtype=np.float32)
        mode = self.mode
        if mode == "auto":
            mode = "throughput" if len(l) >= 2 * self.cores and self.cores > 1 else "latency"
        with self._lock:
            _, queue, streams = self._get(mode)
            if batch is not None:
                chunks = [l[i : i + batch] for i in range(0, len(l), batch)]
                if streams == 1 or len(chunks) == 1:
                    return np.concatenate([queue[0].infer({self._in: c})[self._out].copy() for c in chunks])
            elif streams == 1 or len(l) < streams or self.static_batch is not None:
                return queue[0].infer({self._in: l})[self._out].copy()
            else:
                chunks = np.array_split(l, streams)
            out: list[np.ndarray | None] = [None] * len(chunks)

            def done(request, i):
                out[i] = request.get_tensor(self._out).data.copy()

            queue.set_callback(done)
            for i, chunk in enumerate(chunks):
                queue.start_async({self._in: chunk}, i)
            queue.wait_all()
        return np.concatenate(out)

    def _close(self) -> None:
        self._compiled.clear()
