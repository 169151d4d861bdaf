"""``torch-cuda`` backend: FP16, channels_last, BN folded, optional Triton fused
residual blocks, and the whole forward replayed as a CUDA graph.

    model  = fold_bn(eager)                       # conv+BN -> conv with bias
    model  = fuse_residual_blocks(model, fuse)    # optional: Triton block tails
    model  = model.half().to(memory_format=torch.channels_last)
    graphs = one CUDAGraph per (batch bucket, H, W), captured on first use

A batch of N is copied into the static input buffer of the smallest bucket
>= N (rows past N hold stale data and are never read back: samples are
independent once BN is folded), the graph is replayed, and the first N rows of
the static output are copied out. Batches larger than the largest bucket run
in chunks. Graphs are kept in an LRU of ``max_graphs`` entries.

At load the backend runs a seeded probe batch through itself and through the
eager FP32 model on the CPU, and refuses to load when the difference exceeds
the named tolerance (``TOLERANCES``).

Without a CUDA device ``available()`` says why and ``auto`` never picks it.
This backend has not run in this project's CI (no GPU there).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from colorize.artifacts.model_ref import ModelRef
from colorize.backends.base import Backend, BackendError, require

#: batch-size buckets a CUDA graph is captured for
BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
FUSE_MODES = ("epilogue", "conv")


@dataclass(frozen=True)
class Tolerance:
    """Largest accepted difference from eager FP32, on model-normalized ab (ab / 110)."""

    max_abs: float
    mean_abs: float
    why: str


TOLERANCES: dict[str, Tolerance] = {
    # FP16 keeps ~11 significant bits; through ~25 convs the error on a unit-scale
    # output stays well under 1e-2. 2e-2 normalized = 2.2 ab units, just under the
    # CIE76 just-noticeable difference (dE ~ 2.3).
    "fp16": Tolerance(2e-2, 2e-3, "FP16 storage, FP32 accumulation; 2.2 ab units < 1 JND"),
    # cuDNN may pick TF32 or Winograd/FFT algorithms in FP32: summation order and 10-bit TF32 mantissas.
    "fp32": Tolerance(1e-2, 1e-3, "TF32/Winograd conv algorithms in cuDNN"),
}


def parity(reference: np.ndarray, output: np.ndarray, tol: Tolerance, what: str) -> dict[str, float]:
    """Compare ``output`` with the FP32 ``reference``; raise BackendError past ``tol``.

    Returns:
        {"max_abs": ..., "mean_abs": ...}
    """
    if reference.shape != output.shape:
        raise BackendError(f"{what}: output shape {list(output.shape)} != reference {list(reference.shape)}")
    diff = np.abs(output.astype(np.float64) - reference.astype(np.float64))
    if not np.isfinite(diff).all():
        raise BackendError(f"{what}: non-finite outputs (NaN/inf) where eager FP32 is finite")
    report = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean())}
    if report["max_abs"] > tol.max_abs or report["mean_abs"] > tol.mean_abs:
        raise BackendError(
            f"{what}: differs from eager FP32 by max {report['max_abs']:.3g} / mean {report['mean_abs']:.3g}, "
            f"tolerance max {tol.max_abs:g} / mean {tol.mean_abs:g} ({tol.why})"
        )
    return report


def cuda_unavailable_reason() -> str | None:
    """None when torch sees a CUDA device, else why not. Does not import torch when
    the machine has no NVIDIA device node (so ``auto`` stays cheap on CPU machines)."""
    if importlib.util.find_spec("torch") is None:
        return 'torch is not installed (pip install ".[torch]")'
    if "torch" not in sys.modules and not (glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/dxg")):
        return "no CUDA device (no /dev/nvidia* device node)"
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        return f"no CUDA device (torch {torch.__version__}, {build}, sees none)"
    return None


def bucket_for(n: int, buckets: tuple[int, ...] = BUCKETS) -> int:
    """The smallest bucket >= n, or the largest bucket when n exceeds them all."""
    if n < 1:
        raise ValueError(f"batch size must be >= 1, got {n}")
    for b in sorted(buckets):
        if b >= n:
            return b
    return max(buckets)


def batch_chunks(n: int, max_batch: int) -> list[slice]:
    """Slices of ``range(n)`` of at most ``max_batch`` rows."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return [slice(i, min(i + max_batch, n)) for i in range(0, n, max_batch)]


def prepare_model(model, precision: str = "fp16", fuse: str | None = None, device: str = "cuda"):
    """Fold BN, optionally fuse residual tails with Triton, cast and go channels_last.

    Args:
        model: an eager colorizer (nn.Module), left unchanged.
        precision: "fp16" or "fp32".
        fuse: None, "epilogue" (cuDNN conv + Triton bias/residual/ReLU) or "conv" (Triton conv too).
        device: torch device string.
    """
    import torch

    from colorize.export.fold_bn import fold_bn

    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be 'fp16' or 'fp32', got {precision!r}")
    if fuse is not None and fuse not in FUSE_MODES:
        raise ValueError(f"fuse must be None or one of {FUSE_MODES}, got {fuse!r}")
    folded = fold_bn(model)
    if fuse is not None:
        require("triton", "triton")
        from colorize.kernels.fused_blocks import fuse_residual_blocks

        fuse_residual_blocks(folded, fuse)
    dtype = torch.float16 if precision == "fp16" else torch.float32
    return folded.to(device=device, dtype=dtype, memory_format=torch.channels_last).eval()


class CudaGraphRunner:
    """One captured forward of ``module`` for a fixed input shape.

    ``runner(x)`` copies ``x`` into the static input, replays the graph and
    returns the static output (overwritten by the next call: copy it first).
    """

    def __init__(self, module, shape: tuple[int, ...], dtype, device: str = "cuda", warmup: int = 3,
                 cudnn_benchmark: bool = True):
        import torch

        self.shape = tuple(shape)
        self.static_in = torch.zeros(self.shape, dtype=dtype, device=device).contiguous(
            memory_format=torch.channels_last
        )
        # cuDNN benchmark mode during warm-up and capture only: warm-up times the conv algorithms for
        # this shape, capture records the fastest (the flag is restored afterwards).
        previous = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = cudnn_benchmark
        try:
            # Warm up on a side stream (cuDNN autotuning, Triton compilation, allocator) before capture.
            stream = torch.cuda.Stream(device=device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.inference_mode(), torch.cuda.stream(stream):
                for _ in range(warmup):
                    module(self.static_in)
            torch.cuda.current_stream(device).wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(self.graph):
                self.static_out = module(self.static_in)
        finally:
            torch.backends.cudnn.benchmark = previous

    def __call__(self, x):
        if tuple(x.shape) != self.shape:
            raise ValueError(f"CUDA graph captured for input {list(self.shape)}, got {list(x.shape)}")
        self.static_in.copy_(x)
        self.graph.replay()
        return self.static_out


class TorchCudaBackend(Backend):
    name = "torch-cuda"
    precisions = ("fp16", "fp32")
    thread_safe = False  # static graph buffers

    @classmethod
    def available(cls) -> str | None:
        return cuda_unavailable_reason()

    def __init__(
        self,
        ref: ModelRef,
        precision: str = "fp16",
        fuse: str | None = None,
        cuda_graphs: bool = True,
        buckets: tuple[int, ...] = BUCKETS,
        max_graphs: int = 32,
        check: bool = True,
        device: str = "cuda",
    ):
        super().__init__(precision)
        reason = self.available()
        if reason:
            raise BackendError(f"torch-cuda backend unavailable: {reason}")
        torch = require("torch", "torch")
        from colorize.backends.torch_backend import build_torch_model

        if not buckets or min(buckets) < 1:
            raise ValueError(f"buckets must be positive batch sizes, got {buckets}")
        self.torch = torch
        self.device = device
        self.fuse = fuse
        self.cuda_graphs = cuda_graphs
        self.buckets = tuple(sorted(set(buckets)))
        self.max_graphs = max_graphs
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        eager = build_torch_model(ref).eval()
        self.model = prepare_model(eager, precision, fuse, device)
        self._graphs: OrderedDict[tuple[int, int, int], CudaGraphRunner] = OrderedDict()
        self.parity: dict[str, float] | None = None
        if check:
            self.parity = self._check(eager)

    def _check(self, eager) -> dict[str, float]:
        torch = self.torch
        probe = np.random.default_rng(0).uniform(-1, 1, size=(2, 1, 32, 32)).astype(np.float32)
        with torch.inference_mode():
            reference = eager.float().cpu()(torch.from_numpy(probe)).numpy()
        what = f"torch-cuda {self.precision}{' + triton ' + self.fuse if self.fuse else ''}"
        return parity(reference, self._run(probe), TOLERANCES[self.precision], what)

    def _graph(self, bucket: int, h: int, w: int) -> CudaGraphRunner:
        key = (bucket, h, w)
        runner = self._graphs.get(key)
        if runner is None:
            runner = CudaGraphRunner(self.model, (bucket, 1, h, w), self.dtype, self.device)
            self._graphs[key] = runner
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        return runner

    def forward_device(self, x):
        """CUDA tensor [N,1,H,W] (any float dtype) -> float32 CUDA tensor [N,2,H,W]; no host copies."""
        torch = self.torch
        n, _, h, w = x.shape
        outs = []
        with torch.inference_mode():
            for rows in batch_chunks(n, self.buckets[-1]):
                xb = x[rows].to(self.dtype)
                if not self.cuda_graphs:
                    y = self.model(xb.contiguous(memory_format=torch.channels_last))
                    outs.append(y.to(dtype=torch.float32, memory_format=torch.contiguous_format))
                    continue
                m = xb.shape[0]
                runner = self._graph(bucket_for(m, self.buckets), h, w)
                static = runner.static_in
                static[:m].copy_(xb)
                runner.graph.replay()
                # copy out of the static buffer (the next replay overwrites it), even when already FP32
                outs.append(
                    runner.static_out[:m].to(dtype=torch.float32, memory_format=torch.contiguous_format, copy=True)
                )
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _run(self, l: np.ndarray) -> np.ndarray:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(l, dtype=np.float32)).to(self.device)
        return self.forward_device(x).cpu().numpy()

    def _close(self) -> None:
        self._graphs.clear()
        self.model = None
        self.torch.cuda.empty_cache()
