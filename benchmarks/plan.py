"""What a benchmark run covers: ``BenchSettings`` and the backend x precision plan.

The plan enumerates ``colorize.backends.BACKENDS`` (or an injected registry):
every class's ``precisions``, ``available()`` and ``precision_unavailable(p)``
(None = usable, else the reason, recorded as "skipped": a missing extra or
device, or a precision this CPU lacks, such as bf16 on an AVX2-only CPU).
Eager ``torch``/``fp32`` is always added as the baseline unless disabled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from colorize.artifacts.model_ref import DEFAULT_MODEL

BASELINE = ("torch", "fp32")


@dataclass
class BenchSettings:
    """What to benchmark and how long (defaults: the full run; ``quick_run()``: a smoke run)."""

    model: str = DEFAULT_MODEL  # shipped model name, checkpoint/ONNX path, or architecture (random init)
    backends: tuple[str, ...] | None = None  # None: every registered backend (unavailable ones recorded as skipped)
    precisions: tuple[str, ...] | None = None  # None: every precision each backend runs
    batch_sizes: tuple[int, ...] = (1, 8, 64)
    sizes: tuple[tuple[int, int], ...] = ((32, 32), (256, 256))  # (H, W)
    warmup: int = 3  # calls after the first, per engine and shape
    min_iters: int = 10  # timed calls per configuration, at least
    max_iters: int = 200  # ... and at most
    target_seconds: float = 2.0  # timed seconds per configuration (sets the iteration count)
    rounds: int = 5  # round-robin rounds the timed calls are split into
    max_call_seconds: float = 3.0  # skip shapes estimated slower than this per call at the fp32 peak
    baseline: bool = True  # time eager torch fp32 alongside (needed for the ratios)
    seed: int = 0  # input data seed
    quick: bool = False

    @classmethod
    def quick_run(cls, **overrides: Any) -> "BenchSettings":
        """A smoke run well under a minute: size 32, batches 1 and 8, short timings."""
        base = cls(
            batch_sizes=(1, 8),
            sizes=((32, 32),),
            warmup=1,
            min_iters=3,
            max_iters=50,
            target_seconds=0.15,
            rounds=3,
            max_call_seconds=1.0,
            quick=True,
        )
        return replace(base, **overrides)

    def validate(self) -> None:
        """Raises ValueError naming the bad field."""
        if not self.batch_sizes or any(int(b) < 1 for b in self.batch_sizes):
            raise ValueError(f"batch_sizes must be integers >= 1, got {self.batch_sizes}")
        if not self.sizes or any(len(s) != 2 or min(s) < 1 for s in self.sizes):
            raise ValueError(f"sizes must be (H, W) pairs >= 1, got {self.sizes}")
        if self.min_iters < 1 or self.max_iters < self.min_iters:
            raise ValueError(f"need 1 <= min_iters <= max_iters, got {self.min_iters}, {self.max_iters}")
        if self.rounds < 1 or self.warmup < 0:
            raise ValueError(f"rounds must be >= 1 and warmup >= 0, got {self.rounds}, {self.warmup}")
        if self.target_seconds < 0 or self.max_call_seconds < 0:
            raise ValueError("target_seconds and max_call_seconds must be >= 0")


def backend_device(cls: type) -> str:
    """"cuda" for GPU backends, else "cpu" (a class may declare ``device``)."""
    device = getattr(cls, "device", None)
    if isinstance(device, str):
        return "cuda" if device.startswith("cuda") or device == "gpu" else device
    name = getattr(cls, "name", "")
    return "cuda" if any(k in name for k in ("cuda", "tensorrt", "trt", "gpu")) else "cpu"


@dataclass
class PlannedConfig:
    backend: str
    precision: str
    device: str
    baseline: bool = False
    engine: Any = None
    load_s: float | None = None
    status: str = "ok"
    reason: str | None = None
    guard: str | None = None  # the engine's quality-guard verdict (non-FP32 precisions), when it ran

    @property
    def key(self) -> tuple[str, str]:
        return (self.backend, self.precision)


def load_registry() -> dict[str, type | Exception]:
    from colorize.backends import BACKENDS, backend_class

    out: dict[str, type | Exception] = {}
    for name in BACKENDS:
        try:
            out[name] = backend_class(name)
        except Exception as e:  # a broken backend module is a result, not a crash
            out[name] = e
    return out


def plan_configs(settings: BenchSettings, registry: Mapping[str, type | Exception]) -> list[PlannedConfig]:
    """Every selected backend x precision, with skipped ones carrying their reason."""
    wanted = list(settings.backends) if settings.backends else list(registry)
    configs: list[PlannedConfig] = []
    for name in wanted:
        cls = registry.get(name)
        if cls is None:
            raise ValueError(f"unknown backend {name!r}; registered: {', '.join(registry)}")
        if isinstance(cls, Exception):
            configs.append(PlannedConfig(name, "*", "cpu", status="error", reason=f"import failed: {error_text(cls)}"))
            continue
        device = backend_device(cls)
        precisions = list(settings.precisions) if settings.precisions else list(cls.precisions)
        reason = cls.available()
        for p in precisions:
            if p not in cls.precisions:
                configs.append(PlannedConfig(name, p, device, status="skipped", reason=f"{name} does not run {p}"))
            elif reason or (missing := _precision_unavailable(cls, p)):
                configs.append(PlannedConfig(name, p, device, status="skipped", reason=reason or missing))
            else:
                configs.append(PlannedConfig(name, p, device, baseline=(name, p) == BASELINE))
    if settings.baseline and not any(c.baseline for c in configs):
        cls = registry.get(BASELINE[0])
        if isinstance(cls, type) and BASELINE[1] in cls.precisions and not cls.available():
            configs.insert(0, PlannedConfig(*BASELINE, backend_device(cls), baseline=True))
    return configs


def _precision_unavailable(cls: type, precision: str) -> str | None:
    """Why this machine cannot run ``precision`` on ``cls`` (e.g. bf16 on a CPU without it), else None."""
    check = getattr(cls, "precision_unavailable", None)
    return check(precision) if check is not None else None


def error_text(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters), for the report."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}"[:300]
