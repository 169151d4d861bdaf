"""Measured matmul peak of this machine, per device and precision.

"Share of peak" in the report divides a configuration's achieved GFLOP/s by
the peak measured here, in the same process, at the matching precision:

  * ``cpu/fp32``: the faster of numpy float32 matmul (its BLAS) and torch
    float32 ``mm``;
  * ``cpu/bf16``: torch bfloat16 ``mm`` on CPU (uses AMX or AVX512-BF16 when
    oneDNN finds them); only on a CPU with native bf16 (``colorize.cpu``), since
    no bf16 configuration runs elsewhere;
  * ``cpu/int8``: ONNX Runtime ``MatMulInteger`` (uint8 x int8 -> int32, the
    kernel family its static-INT8 models run on; AVX512-VNNI or AMX when MLAS
    finds them, AVX2 ``vpmaddubsw`` on CPUs without VNNI, as ``how`` says),
    when onnxruntime and onnx are installed; one multiply-add counts as 2
    operations, as for the floating-point peaks;
  * ``cuda/fp32``, ``cuda/fp16``, ``cuda/bf16``: torch ``mm`` on the GPU
    (fp32 with TF32 off), when a CUDA device is present.

A peak is the best of a few timed repetitions after one warm-up: a measured
roofline for dense GEMM, not the datasheet number. A configuration is only
ever compared with the peak of its own device and precision (``peak_key``);
with none measured (e.g. int8 without onnxruntime) its share is left empty.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

from colorize import cpu


@dataclass(frozen=True)
class Peak:
    gflops: float
    how: str

    def to_dict(self) -> dict:
        return asdict(self)


def _best_time(fn: Callable[[], object], reps: int, sync: Callable[[], None] = lambda: None) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def _numpy_fp32(n: int, reps: int) -> Peak:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    t = _best_time(lambda: a @ b, reps)
    return Peak(2 * n**3 / t / 1e9, f"numpy float32 matmul {n}x{n}x{n}, best of {reps}")


def _torch_mm(torch, dtype, device: str, n: int, reps: int) -> Peak:
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, generator=g, device=device).to(dtype)
    b = torch.randn(n, n, generator=g, device=device).to(dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.inference_mode():
        t = _best_time(lambda: torch.mm(a, b), reps, sync)
    name = str(dtype).replace("torch.", "")
    return Peak(2 * n**3 / t / 1e9, f"torch {name} mm {n}x{n}x{n} on {device}, best of {reps}")


def _onnxruntime_int8(n: int, reps: int) -> Peak | None:
    """ONNX Runtime MatMulInteger, uint8 [n,n] x int8 [n,n] -> int32, on the CPU provider; None without it."""
    try:
        import numpy as np
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    b = numpy_helper.from_array(rng.integers(-128, 128, (n, n), dtype=np.int8), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "int8_peak",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])], initializer=[b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    from colorize.artifacts.onnx_files import cpu_cores

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = cpu_cores(), 1, 3
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = {"A": rng.integers(0, 256, (n, n), dtype=np.uint8)}
    t = _best_time(lambda: session.run(None, feed), reps)
    vnni = "with VNNI" if cpu.features().vnni else "without VNNI"
    return Peak(2 * n**3 / t / 1e9, f"onnxruntime MatMulInteger u8 x s8 {n}x{n}x{n} on cpu ({vnni}), best of "
                                   f"{reps}, 2 operations per multiply-add")


def probe_peaks(quick: bool = False, use_torch: bool = True) -> dict[str, Peak]:
    """Measure matmul peaks; keys are ``"<device>/<precision>"``.

    Args:
        quick: smaller matrices and fewer repetitions (a rougher peak, ~0.2 s).
        use_torch: also probe torch (CPU bf16, and CUDA when present) if torch is installed.
    """
    n, reps = (512, 3) if quick else (1024, 5)
    peaks = {"cpu/fp32": _numpy_fp32(n, reps)}
    int8 = _onnxruntime_int8(n, reps)
    if int8 is not None:
        peaks["cpu/int8"] = int8
    if not use_torch:
        return peaks
    try:
        import torch
    except ImportError:
        return peaks
    tf32 = _torch_mm(torch, torch.float32, "cpu", n, reps)
    if tf32.gflops > peaks["cpu/fp32"].gflops:
        peaks["cpu/fp32"] = tf32
    if cpu.features().bf16:
        peaks["cpu/bf16"] = _torch_mm(torch, torch.bfloat16, "cpu", 2 * n if not quick else n, reps)
    if torch.cuda.is_available():
        gn = 4096 if not quick else 2048
        old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            peaks["cuda/fp32"] = _torch_mm(torch, torch.float32, "cuda", gn, reps)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old
        peaks["cuda/fp16"] = _torch_mm(torch, torch.float16, "cuda", gn, reps)
        peaks["cuda/bf16"] = _torch_mm(torch, torch.bfloat16, "cuda", gn, reps)
    return peaks


def peak_key(device: str, precision: str, peaks: dict) -> str | None:
    """The peak a configuration is compared with: its own device and precision, or None when that one was not
    measured (never another precision's: an int8 row held against a bf16 peak reads as over 100 %)."""
    key = f"{device}/{precision}"
    return key if key in peaks else None
