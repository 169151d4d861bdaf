"""``Engine``: load a colorizer on a backend, run model-normalized L -> ab.

    eng = Engine.load("resnet18-unet", backend="auto", precision="auto")
    ab = eng.run(l)          # float32 [N,1,H,W] -> float32 [N,2,H,W]
    eng.backend, eng.precision, eng.guard_result, eng.selection

Any H, W: the engine edge-pads to the model's stride and crops back (``engine/image/padding.py``).
Thread-safe: calls are serialized unless the backend declares itself thread-safe.

Precision and the quality guard (``engine/guard.py``): every non-FP32 backend is compared with the
same backend at FP32 on CIFAR-10 test images when it loads (the verdict is cached with the artifact).
``auto`` never picks one that failed; an explicit request for it warns with the figures and runs.

``auto`` walks ``AUTO_ORDER`` (fastest first, as measured by ``benchmarks/engine_speed.py``) and
takes the first backend x precision that is available here, loads, and passes the guard.
"""

from __future__ import annotations

import inspect
import os
import threading
import warnings

import numpy as np

from engine.artifacts.model_ref import DEFAULT_MODEL, ModelRef, resolve_model
from engine.backends import BACKENDS, backend_class
from engine.backends.base import Backend, BackendError
from engine.image.padding import pad_nchw

PRECISIONS = ("fp32", "bf16", "fp16", "int8")

#: preference order for ``auto``: GPU first, then the CPU order measured on this project's 2-core
#: AVX-512 (VNNI, BF16) machine by ``python -m benchmarks.engine_speed``
#: (benchmarks/results/engine_speed_cpu.md): at 32x32 batch 64 / batch 1 and 256x256, OpenVINO INT8
#: > ORT INT8 > OpenVINO BF16 > ORT FP32 >= OpenVINO FP32 > eager. Entries whose backend is not
#: registered, not available, or lacks the precision are skipped.
AUTO_ORDER: tuple[tuple[str, str], ...] = (
    ("tensorrt", "int8"),
    ("tensorrt", "fp16"),
    ("torch-cuda", "fp16"),
    ("tensorrt", "fp32"),
    ("onnxruntime-cuda", "fp32"),
    ("torch-cuda", "fp32"),
    ("openvino", "int8"),
    ("onnxruntime", "int8"),
    ("openvino", "bf16"),
    ("onnxruntime", "fp32"),
    ("openvino", "fp32"),
    ("torch", "fp32"),
)


def model_stride(ref: ModelRef) -> int:
    """Total stride of the model (from metadata when present, else the architecture)."""
    if "total_stride" in ref.metadata:
        return int(ref.metadata["total_stride"])
    stem = ref.arch_kwargs.get("stem", "imagenet" if ref.arch.endswith("-unet-lite") else "cifar")
    if ref.arch == "seed-unet":
        return 16
    return 8 if stem == "cifar" else 32


def _make_backend(ref: ModelRef, name: str, precision: str, options: dict, strict: bool = True) -> Backend:
    cls = backend_class(name)
    if precision not in cls.precisions:
        raise ValueError(f"backend {name!r} does not run precision {precision!r}; it runs {', '.join(cls.precisions)}")
    params = inspect.signature(cls.__init__).parameters
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params and not accepts_any]
    if unknown and strict and not (unknown == ["cache_dir"]):
        raise ValueError(f"backend {name!r} takes no option(s) {', '.join(unknown)}")
    kw = {k: v for k, v in options.items() if k not in unknown}
    return cls(ref, precision, **kw)


def _padded_runner(backend: Backend, stride: int):
    def run(l: np.ndarray) -> np.ndarray:
        h, w = l.shape[2:]
        return backend.run(pad_nchw(np.ascontiguousarray(l, dtype=np.float32), stride))[:, :, :h, :w]

    return run


def quality_guard(backend: Backend, ref: ModelRef, stride: int, options: dict, cache_dir=None):
    """Run (or fetch the cached verdict of) the quality guard for a non-FP32 ``backend``."""
    from engine.artifacts.cache import ArtifactCache
    from engine.guard import TOLERANCE_DB, GuardResult, check_quality, guard_source, load_guard_data

    artifact = backend.artifact_id() if hasattr(backend, "artifact_id") else None
    cache = ArtifactCache(cache_dir)

    def key_for(source: str) -> dict | None:
        if artifact is None:
            return None
        return {"kind": "guard", **artifact, "data": source, "tolerance_db": TOLERANCE_DB[backend.precision]}

    data = None
    for source in (guard_source(), None):  # the images are loaded only when no verdict is cached
        if source is None:
            data = load_guard_data()
            source = data.source
        key = key_for(source)
        hit = cache.lookup(key) if key is not None else None
        if hit is not None and "guard" in hit.meta:
            return GuardResult.from_dict(hit.meta["guard"])
    with _make_backend(ref, backend.name, "fp32", options, strict=False) as reference:
        result = check_quality(
            _padded_runner(backend, stride),
            _padded_runner(reference, stride),
            backend.precision,
            data,
            ref.normalization,
        )
    if key is not None:
        cache.get_or_build(key, lambda tmp: {"guard": result.to_dict()})
    return result


class Engine:
    def __init__(self, ref: ModelRef, backend: Backend, stride: int, guard_result=None, selection=None):
        self.model = ref
        self._backend = backend
        self.stride = stride
        self.normalization = ref.normalization
        #: the quality guard's verdict (``engine.guard.GuardResult``), None at FP32
        self.guard_result = guard_result
        #: for ``auto``: every candidate tried, as (backend, precision, outcome)
        self.selection: list[tuple[str, str, str]] = selection or []
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model: str | os.PathLike = DEFAULT_MODEL,
        backend: str = "auto",
        precision: str = "auto",
        *,
        guard: bool = True,
        cache_dir: str | os.PathLike | None = None,
        **options,
    ) -> "Engine":
        """Load ``model`` (a shipped model's name or a path) on ``backend`` at ``precision``.

        Args:
            model: shipped model name, architecture name (random init), checkpoint or .onnx path.
            backend: a registered backend or "auto" (fastest available that passes the guard).
            precision: "fp32", "bf16", "fp16", "int8" or "auto" (the backend's fastest that passes).
            guard: run the quality guard on non-FP32 precisions (cached per artifact).
            cache_dir: artifact cache root (default ``$COLORIZE_CACHE/artifacts``).
            **options: backend options (``num_threads``; openvino ``mode``; onnxruntime ``provider``).
        Raises:
            ValueError: unknown backend or precision (the message lists the valid ones).
            MissingDependency: the backend's extra is not installed.
            BackendError: ``auto`` found nothing that loads.
        """
        if precision != "auto" and precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS + ('auto',))}")
        if backend != "auto" and backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(list(BACKENDS) + ['auto'])}")
        if backend != "auto" and precision != "auto":
            precisions = backend_class(backend).precisions
            if precision not in precisions:
                raise ValueError(
                    f"backend {backend!r} does not run precision {precision!r}; it runs {', '.join(precisions)}"
                )
        ref = resolve_model(model)
        stride = model_stride(ref)
        if cache_dir is not None:
            options["cache_dir"] = os.fspath(cache_dir)

        if backend != "auto" and precision != "auto":  # explicit: load it, warn if the guard fails
            be = _make_backend(ref, backend, precision, options)
            result = None
            if guard and precision != "fp32":
                try:
                    result = quality_guard(be, ref, stride, options, options.get("cache_dir"))
                except BaseException:
                    be.close()
                    raise
                if not result.passed:
                    warnings.warn(f"{backend} {precision}: {result.describe()}", stacklevel=2)
            return cls(ref, be, stride, result)

        candidates = [
            (b, p)
            for b, p in AUTO_ORDER
            if (backend in ("auto", b)) and (precision in ("auto", p)) and b in BACKENDS
        ]
        if backend != "auto" and not any(b == backend for b, _ in candidates):
            candidates = [(backend, p) for p in backend_class(backend).precisions if precision in ("auto", p)]
        if not candidates and precision != "auto":  # e.g. auto backend, precision nobody orders
            candidates = [(b, precision) for b in BACKENDS]
        tried: list[tuple[str, str, str]] = []
        for b, p in candidates:
            cls_b = backend_class(b)
            if p not in cls_b.precisions:
                continue
            reason = cls_b.available()
            if reason:
                tried.append((b, p, f"unavailable: {reason}"))
                continue
            try:
                be = _make_backend(ref, b, p, options, strict=False)
            except (BackendError, ImportError, RuntimeError, FileNotFoundError) as e:
                tried.append((b, p, f"failed to load: {e}"))
                continue
            result = None
            if guard and p != "fp32":
                try:
                    result = quality_guard(be, ref, stride, options, options.get("cache_dir"))
                except (BackendError, ImportError, RuntimeError, FileNotFoundError) as e:
                    be.close()
                    tried.append((b, p, f"guard could not run: {e}"))
                    continue
                if not result.passed:
                    be.close()
                    tried.append((b, p, f"rejected: {result.describe()}"))
                    continue
            tried.append((b, p, "selected"))
            return cls(ref, be, stride, result, tried)
        lines = "\n".join(f"  {b} {p}: {why}" for b, p, why in tried)
        raise BackendError(f"no backend could run {ref.name!r} (backend={backend}, precision={precision}):\n{lines}")

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
