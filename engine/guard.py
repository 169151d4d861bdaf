"""Quality guard: a reduced-precision artifact must colorize (almost) as well as FP32.

    result = check_quality(candidate.run, reference.run, "int8")
    result.passed, result.drop_db

Both runners colorize the same CIFAR-10 test images (true L in, predicted ab out); each output is
turned back into RGB with the true L and scored by PSNR against the original image (mean of
per-image PSNR, RGB in [0, 1]). The candidate fails when its PSNR is lower than FP32's by more than
``TOLERANCE_DB[precision]``: 0.1 dB for bf16/fp16, 0.2 dB for int8 (a drop that small is invisible;
a broken quantization costs whole dB). Results are cached with the artifact by the engine.

Guard images, first hit wins:
  1. CIFAR-10 test (``colorize.data.cifar10``, torch-free): ``GUARD_IMAGES`` images after a fixed shuffle;
  2. otherwise (no dataset on this machine) the 128 CIFAR-10 test images bundled in
     ``engine/data/cifar10_test_guard.npz``, so the guard also works on a user's machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from colorize.image.color import DEFAULT_NORMALIZATION, Normalization, lab_to_rgb, rgb_to_lab

#: allowed PSNR drop against FP32, in dB
TOLERANCE_DB = {"bf16": 0.1, "fp16": 0.1, "int8": 0.2}
GUARD_IMAGES = 256
BUNDLED = Path(__file__).resolve().parent / "data" / "cifar10_test_guard.npz"
_BATCH = 64


class GuardData:
    """Guard images (uint8 RGB [N,H,W,3]) and where they came from (``source`` goes in cache keys)."""

    def __init__(self, images: np.ndarray, source: str):
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"guard images must be uint8 [N,H,W,3], got {images.dtype} {list(images.shape)}")
        self.images = images
        self.source = source


def load_guard_data(n: int = GUARD_IMAGES) -> GuardData:
    """CIFAR-10 test images when the dataset is here, else the bundled set."""
    try:
        from colorize.data.cifar10 import sample_cifar10

        images = sample_cifar10("test", n, seed=0)  # decodes only these, unless the split is cached decoded
        return GuardData(images, f"cifar10-test-{len(images)}-seed0")
    except (FileNotFoundError, ImportError, ValueError):
        with np.load(BUNDLED, allow_pickle=False) as z:
            return GuardData(z["images"][:n], f"bundled-cifar10-test-{min(n, len(z['images']))}")


def guard_source(n: int = GUARD_IMAGES) -> str:
    """The ``source`` that ``load_guard_data(n)`` reports, found without decoding an image (for cache keys:
    a cached verdict is found without loading the guard images). A guess when the CIFAR-10 zip is here but
    unreadable; ``load_guard_data`` then says the truth."""
    try:
        from colorize.data.cifar10 import resolve_data_dir

        if (resolve_data_dir() / "test.zip").is_file():
            return f"cifar10-test-{n}-seed0"
    except ImportError:
        pass
    with np.load(BUNDLED, allow_pickle=False) as z:
        return f"bundled-cifar10-test-{min(n, len(z['labels']))}"


@dataclass
class GuardResult:
    precision: str
    passed: bool
    psnr_fp32: float
    psnr: float
    drop_db: float
    tolerance_db: float
    images: int
    source: str

    def describe(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"quality guard {verdict} for {self.precision}: PSNR {self.psnr:.3f} dB vs FP32 {self.psnr_fp32:.3f} dB "
            f"(drop {self.drop_db:.3f} dB, allowed {self.tolerance_db} dB; {self.images} images, {self.source})"
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GuardResult":
        return cls(**d)


def mean_psnr(pred_rgb: np.ndarray, true_rgb: np.ndarray) -> float:
    """Mean over images of PSNR (peak 1.0) for float RGB [N,H,W,3] in [0, 1]."""
    mse = ((pred_rgb.astype(np.float64) - true_rgb.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return float(np.mean(10.0 * np.log10(1.0 / np.maximum(mse, 1e-12))))


def colorize_psnr(run: Callable[[np.ndarray], np.ndarray], data: GuardData, norm: Normalization) -> float:
    rgb = data.images.astype(np.float32) / 255.0
    lab = rgb_to_lab(rgb)
    l = norm.normalize_l(lab[..., 0])[:, None].astype(np.float32)
    ab = np.concatenate([run(l[i : i + _BATCH]) for i in range(0, len(l), _BATCH)])
    out = np.concatenate([lab[..., :1], norm.denormalize_ab(ab.transpose(0, 2, 3, 1))], axis=-1)
    return mean_psnr(lab_to_rgb(out), rgb)


def check_quality(
    candidate: Callable[[np.ndarray], np.ndarray],
    reference: Callable[[np.ndarray], np.ndarray],
    precision: str,
    data: GuardData | None = None,
    normalization: Normalization = DEFAULT_NORMALIZATION,
) -> GuardResult:
    """Score ``candidate`` against the FP32 ``reference`` (both: normalized L [N,1,H,W] -> ab).

    Raises:
        ValueError: ``precision`` has no tolerance (fp32 is the reference, it is not guarded).
    """
    if precision not in TOLERANCE_DB:
        raise ValueError(f"no guard tolerance for precision {precision!r}; guarded: {', '.join(TOLERANCE_DB)}")
    data = data or load_guard_data()
    ref = colorize_psnr(reference, data, normalization)
    got = colorize_psnr(candidate, data, normalization)
    drop = ref - got
    tol = TOLERANCE_DB[precision]
    return GuardResult(precision, bool(drop <= tol), ref, got, drop, tol, len(data.images), data.source)
