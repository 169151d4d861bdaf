"""``Engine``: load a colorizer on a backend, run model-normalized L -> ab.

    eng = Engine.load("resnet18-unet", backend="auto", precision="auto")
    ab = eng.run(l)          # float32 [N,1,H,W] -> float32 [N,2,H,W]
    eng.backend, eng.precision, eng.guard_result, eng.selection

Any H, W: the engine edge-pads to the model's stride and crops back (``engine/image/padding.py``). Any N: a
graph with a static batch (``Engine.static_batch``) is fed chunks of it by its backend (``engine/backends/base.py``).
The stride is ``colorize.model_io.model_stride`` (imported here as ``model_stride``), the one rule.
Any convention: a model described by a ``ModelIO`` (``engine/model_io.py``; ONNX metadata ``colorize.io``)
is adapted around, the same on every backend (``engine/model_adapter.py``); ``run`` keeps its contract.
Thread-safe: calls are serialized unless the backend declares itself thread-safe.

Precision and the quality guard (``engine/guard.py``): every non-FP32 backend is compared with the
same backend at FP32 on CIFAR-10 test images when it loads (the verdict is cached with the artifact).
``auto`` never picks one that failed; an explicit request for it warns with the figures and runs.

``auto`` (``engine/auto_choice.py``) keeps the fastest backend x precision that is available here, loads and
passes the guard: on the first load of a model on a machine it times each on the model's working input and caches
the choice (keyed by the model's files, the candidates, the I/O description and the machine); later loads read it
and load that one only. ``auto="order"`` (or ``COLORIZE_AUTO=order``) times nothing and takes the first in
``AUTO_ORDER`` instead, which is also the order candidates are tried and listed in and the tie-break.
"""

from __future__ import annotations

import inspect
import os
import threading
import warnings

import numpy as np

from colorize import auto_choice
from colorize.artifacts.model_ref import DEFAULT_MODEL, ModelRef, resolve_model
from colorize.backends import BACKENDS, PRECISIONS, backend_class, check_names  # noqa: F401 (PRECISIONS: API)
from colorize.backends.base import Backend, BackendError, MissingDependency
from colorize.model_adapter import ModelAdapter
from colorize.model_io import ModelIO, ModelIOError, model_io, model_stride  # noqa: F401  (model_stride: API)

#: the order ``auto`` tries and lists candidates in, and its tie-break (``auto="order"``: the first that passes wins):
#: GPU first, then the CPU order measured on this project's 2-core
#: AVX-512 (VNNI, BF16) machine by ``python -m colorize.benchmarks.engine_speed``
#: (results/engine_speed_cpu.md): at 32x32 batch 64 / batch 1 and 256x256, OpenVINO INT8
#: > ORT INT8 > OpenVINO BF16 > ORT FP32 >= OpenVINO FP32 > eager. Entries whose backend is not
#: registered, not available, or lacks the precision are skipped, and so are precisions this CPU lacks
#: (``colorize.cpu``: bf16 without AVX512-BF16 or AMX). Where a CPU ranks them otherwise (bf16 against int8 with
#: AMX, int8 without VNNI), the measured choice of ``auto`` follows that CPU, not this order.
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


def _make_backend(ref: ModelRef, name: str, precision: str, options: dict, strict: bool = True,
                  io: ModelIO | None = None) -> Backend:
    """``name`` at ``precision`` for ``ref``; ``io``, the checked description of a model of another convention
    (tensor names, a static batch), goes to the backends that read a graph (``io=``); ours need none."""
    cls = backend_class(name)
    if precision not in cls.precisions:
        raise ValueError(f"backend {name!r} does not run precision {precision!r}; it runs {', '.join(cls.precisions)}")
    params = inspect.signature(cls.__init__).parameters
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params and not accepts_any]
    if unknown and strict and not (unknown == ["cache_dir"]):
        raise ValueError(f"backend {name!r} takes no option(s) {', '.join(unknown)}")
    kw = {k: v for k, v in options.items() if k not in unknown}
    if io is not None and "io" in params:
        kw["io"] = io
    return cls(ref, precision, **kw)


def _candidates(backend: str, precision: str) -> list[tuple[str, str]]:
    """What ``auto`` tries, in ``AUTO_ORDER``: every pair matching ``backend`` and ``precision`` ("auto" matches any),
    else each precision of the named backend, else the named precision on every backend."""
    candidates = [(b, p) for b, p in AUTO_ORDER
                  if (backend in ("auto", b)) and (precision in ("auto", p)) and b in BACKENDS]
    if backend != "auto" and not any(b == backend for b, _ in candidates):
        candidates = [(backend, p) for p in backend_class(backend).precisions if precision in ("auto", p)]
    if not candidates and precision != "auto":  # e.g. auto backend, precision nobody orders
        candidates = [(b, precision) for b in BACKENDS]
    return candidates


def _describe(ref: ModelRef) -> str:
    """"model 'mine' (mine.onnx)": the model a load error is about, and its file when it has one."""
    path = ref.onnx if ref.arch == "onnx" or ref.checkpoint is None else ref.checkpoint
    return f"model {ref.name!r}" + (f" ({path})" if path is not None else "")


def _cause(e: BaseException) -> str:
    """An exception as one line: the message alone for ours (they say what failed), else its type and message."""
    text = " ".join(str(e).split())
    return text if isinstance(e, (BackendError, ValueError, FileNotFoundError)) else f"{type(e).__name__}: {text}"


def _load_error(e: Exception, context: str) -> Exception:
    """What ``Engine.load`` raises for ``e``, met while loading, building or calibrating a model (``context``
    names the model and the backend): a ``ValueError`` (it names the file, field or option) or a
    ``MissingDependency`` (the extra) as it is; a missing file as a ``FileNotFoundError``, and anything else (a
    runtime's own exception types included) as a ``BackendError``, with ``context`` and the cause on one line."""
    if isinstance(e, (ValueError, MissingDependency)):
        return e
    if isinstance(e, FileNotFoundError):
        return FileNotFoundError(context + _cause(e))
    return BackendError(context + _cause(e))


def _padded_runner(backend: Backend, adapter: ModelAdapter):
    def run(l: np.ndarray) -> np.ndarray:
        return adapter.run(backend.run, l)

    return run


def adapted_model(ref: ModelRef, io: ModelIO | dict | str | None = None) -> tuple[ModelRef, ModelAdapter]:
    """``ref`` with its ``ModelIO`` (``io`` when given: it replaces the file's) checked against its ONNX graph,
    and the adapter around it.

    Raises:
        colorize.model_io.ModelIOError: a description the graph contradicts (the message names the field).
    """
    if isinstance(io, str):
        io = ModelIO.from_json(io)
    elif isinstance(io, dict):
        io = ModelIO.from_dict(io)
    if io is None:
        try:
            io = model_io(ref)
        except ModelIOError as e:
            raise ModelIOError(f"{ref.onnx or ref.checkpoint or ref.name}: metadata 'colorize.io': {e}") from None
    adapter = ModelAdapter(io, ref.normalization)
    if not adapter.native:
        if ref.onnx is not None:
            from colorize.artifacts.onnx_io import check_onnx_io

            io = check_onnx_io(io, ref.onnx)
            adapter = ModelAdapter(io, ref.normalization)
    return ref, adapter


def quality_guard(backend: Backend, ref: ModelRef, adapter: ModelAdapter | int, options: dict, cache_dir=None):
    """Run (or fetch the cached verdict of) the quality guard for a non-FP32 ``backend``; ``adapter``: the
    model's (or, for our convention, its stride), so both precisions run as ``Engine.run`` runs them."""
    from colorize.artifacts.cache import ArtifactCache
    from colorize.guard import TOLERANCE_DB, GuardResult, check_quality, guard_source, load_guard_data

    artifact = backend.artifact_id() if hasattr(backend, "artifact_id") else None
    cache = ArtifactCache(cache_dir)
    if not isinstance(adapter, ModelAdapter):
        adapter = ModelAdapter(ModelIO.native(ref.normalization, adapter), ref.normalization)

    def key_for(source: str) -> dict | None:
        if artifact is None:
            return None
        key = {"kind": "guard", **artifact, "data": source, "tolerance_db": TOLERANCE_DB[backend.precision]}
        if not adapter.native:
            key["io"] = adapter.io.to_dict()
        return key

    data = None
    for source in (guard_source(), None):  # the images are loaded only when no verdict is cached
        if source is None:
            data = load_guard_data()
            source = data.source
        key = key_for(source)
        hit = cache.lookup(key) if key is not None else None
        if hit is not None and "guard" in hit.meta:
            return GuardResult.from_dict(hit.meta["guard"])
    io = adapter.io if not adapter.native else None
    with _make_backend(ref, backend.name, "fp32", options, strict=False, io=io) as reference:
        result = check_quality(
            _padded_runner(backend, adapter),
            _padded_runner(reference, adapter),
            backend.precision,
            data,
            ref.normalization,
        )
    if key is not None:
        cache.get_or_build(key, lambda tmp: {"guard": result.to_dict()})
    return result


def _loaded(ref: ModelRef, adapter: ModelAdapter, b: str, p: str, options: dict) -> Backend | str:
    """``b`` at ``p`` for an ``auto`` load, or why it did not load, as ``Engine.selection`` says it."""
    try:
        return _make_backend(ref, b, p, options, strict=False, io=adapter.io if not adapter.native else None)
    except Exception as e:  # any failure to load, build or calibrate: the next candidate
        return f"failed to load: {_cause(e)}"


def _guarded(be: Backend, ref: ModelRef, adapter: ModelAdapter, guard: bool, options: dict):
    """The guard's verdict on ``be`` (None at FP32 or without the guard), or why ``auto`` cannot keep it."""
    if not guard or be.precision == "fp32":
        return None
    try:
        result = quality_guard(be, ref, adapter, options, options.get("cache_dir"))
    except Exception as e:
        return f"guard could not run: {_cause(e)}"
    return result if result.passed else f"rejected: {result.describe()}"


class Engine:
    def __init__(self, ref: ModelRef, backend: Backend, adapter: ModelAdapter | int, guard_result=None,
                 selection=None):
        """``adapter``: the model's ``ModelAdapter``, or for our convention its stride."""
        self.model = ref
        self._backend = backend
        if not isinstance(adapter, ModelAdapter):
            adapter = ModelAdapter(ModelIO.native(ref.normalization, adapter), ref.normalization)
        #: the pre- and post-processing around the model (identity for our own models' convention)
        self.adapter = adapter
        #: H, W of ``Colorizer`` working shapes are rounded to this (1 for a static-size model)
        self.stride = self.adapter.stride
        self.normalization = ref.normalization
        #: the quality guard's verdict (``colorize.guard.GuardResult``), None at FP32
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
        io: ModelIO | dict | str | None = None,
        auto: str | None = None,
        **options,
    ) -> "Engine":
        """Load ``model`` (a shipped model's name or a path) on ``backend`` at ``precision``.

        Args:
            model: shipped model name, architecture name (random init), checkpoint or .onnx path.
            backend: a registered backend or "auto" (the fastest available that passes the guard).
            precision: "fp32", "bf16", "fp16", "int8" or "auto" (the backend's fastest that passes).
            guard: run the quality guard on non-FP32 precisions (cached per artifact).
            cache_dir: artifact cache root (default ``$COLORIZE_CACHE/artifacts``).
            io: the model's I/O convention (``colorize.model_io.ModelIO``, its dict or JSON), for an ONNX file that
                does not carry one (``colorize.io``) or to replace it; default: the file's, else ours.
            auto: how an "auto" backend or precision chooses: "measure" (time the candidates on the first load on
                this machine, cache the fastest) or "order" (the first in ``AUTO_ORDER``, nothing timed); default
                ``$COLORIZE_AUTO``, else "measure" (``engine/auto_choice.py``).
            **options: backend options (``num_threads``; openvino ``mode``; onnxruntime ``provider``).
        Raises:
            ValueError: unknown backend or precision (the message lists the valid ones), or ``auto`` mode.
            colorize.model_io.ModelIOError: an I/O description the model contradicts (names the field).
            MissingDependency: the backend's extra is not installed.
            BackendError: the model could not be loaded, built or calibrated on ``backend`` (the message names the
                model, the backend and the cause), or ``auto`` found nothing that loads (each candidate's reason).
        """
        check_names(backend, precision)
        mode = auto_choice.auto_mode(auto) if auto is not None or "auto" in (backend, precision) else None
        if backend != "auto" and precision != "auto":
            precisions = backend_class(backend).precisions
            if precision not in precisions:
                raise ValueError(
                    f"backend {backend!r} does not run precision {precision!r}; it runs {', '.join(precisions)}"
                )
        if io is not None and os.fspath(model).endswith(".onnx"):
            from colorize.artifacts.model_ref import onnx_ref

            ref = onnx_ref(model)
        else:
            ref = resolve_model(model)
        ref, adapter = adapted_model(ref, io)
        if cache_dir is not None:
            options["cache_dir"] = os.fspath(cache_dir)
        if backend != "auto" and precision != "auto":
            return cls._load_explicit(ref, adapter, backend, precision, guard, options)
        return cls._load_auto(ref, adapter, backend, precision, guard, options, mode)

    @classmethod
    def _load_explicit(cls, ref: ModelRef, adapter: ModelAdapter, backend: str, precision: str, guard: bool,
                       options: dict) -> "Engine":
        """The backend and precision asked for: loaded, guarded, and kept with a warning if the guard fails."""
        try:
            be = _make_backend(ref, backend, precision, options, io=adapter.io if not adapter.native else None)
        except Exception as e:
            raise _load_error(e, f"{_describe(ref)} on {backend} {precision}: ") from None
        result = None
        if guard and precision != "fp32":
            try:
                result = quality_guard(be, ref, adapter, options, options.get("cache_dir"))
            except BaseException as e:
                be.close()
                if not isinstance(e, Exception):
                    raise
                raise _load_error(e, f"{_describe(ref)} on {backend} {precision}: the quality guard could not "
                                     "run: ") from None
            if not result.passed:
                warnings.warn(f"{backend} {precision}: {result.describe()}", stacklevel=4)
        return cls(ref, be, adapter, result)._probed()

    @classmethod
    def _load_auto(cls, ref: ModelRef, adapter: ModelAdapter, backend: str, precision: str, guard: bool,
                   options: dict, mode: str) -> "Engine":
        """The candidate (``_candidates``) that ``auto_choice.choose`` keeps in ``mode``: the fastest measured (or
        cached) one, or the first, of those available that load and pass the guard; each one tried is recorded in
        ``selection`` with what became of it."""
        candidates = []
        for b, p in _candidates(backend, precision):
            cls_b = backend_class(b)
            if p in cls_b.precisions:
                candidates.append((b, p, cls_b.available() or cls_b.precision_unavailable(p)))

        def key(reachable: list[tuple[str, str]]) -> dict:
            return auto_choice.choice_key(ref, adapter, reachable, guard, options)

        try:
            be, result, tried = auto_choice.choose(
                candidates, lambda b, p: _loaded(ref, adapter, b, p, options),
                lambda be: _guarded(be, ref, adapter, guard, options), lambda be: _padded_runner(be, adapter),
                adapter, mode=mode, key=key, cache_dir=options.get("cache_dir"))
        except auto_choice.NothingKept as e:
            lines = "\n".join(f"  {b} {p}: {why}" for b, p, why in e.selection)
            raise BackendError(f"no backend could run {_describe(ref)} (backend={backend}, precision={precision}):"
                               f"\n{lines}") from None
        return cls(ref, be, adapter, result, tried)._probed()

    def _probed(self) -> "Engine":
        """Run one small input through a model of another convention, so that an output of the wrong channel
        count fails at load (``ModelIOError`` naming the field), not on the first image."""
        if not self.adapter.native:
            try:
                self.run(np.zeros((1, 1, self.stride, self.stride), np.float32))
            except BaseException as e:
                self.close()
                if not isinstance(e, Exception):
                    raise
                raise _load_error(e, f"{_describe(self.model)} on {self.backend} {self.precision}: the model did "
                                     f"not run on a {self.adapter.io.describe()} input: ") from None
        return self

    @property
    def static_batch(self) -> int | None:
        """The batch a static-batch graph runs (its fixed N), None for any; ``run`` takes any N all the same,
        in chunks of it (``engine/backends/base.py``)."""
        return self._backend.static_batch

    @property
    def static_size(self) -> tuple[int, int] | None:
        """(H, W) of a static-size model (the ``Colorizer`` prepares images at it), None for a dynamic one."""
        return self.adapter.io.size

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def precision(self) -> str:
        return self._backend.precision

    def run(self, l: np.ndarray) -> np.ndarray:
        """Model-normalized L, float32 [N,1,H,W] -> normalized ab, float32 [N,2,H,W], whatever the model's own
        convention (``self.adapter``)."""
        l = np.asarray(l)
        if l.ndim != 4 or l.shape[1] != 1 or l.shape[0] < 1 or min(l.shape[2:]) < 1:
            raise ValueError(f"l must have shape [N>=1, 1, H>=1, W>=1], got {list(l.shape)}")
        h, w = l.shape[2:]
        x = self.adapter.to_model(l)
        if self._backend.thread_safe:
            y = self._backend.run(x)
        else:
            with self._lock:
                y = self._backend.run(x)
        return self.adapter.from_model(y, (h, w))

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Engine(model={self.model.name!r}, backend={self.backend!r}, precision={self.precision!r})"
