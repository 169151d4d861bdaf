"""GPU benchmark of the Triton kernels against what eager PyTorch runs instead.

    PYTHONPATH=. python3 benchmarks/bench_kernels.py          # prints a table; needs a CUDA GPU

* epilogue: ``bias_residual_relu`` (one pass) vs the unfused ``x + b; += r; relu_`` (three kernels),
  FP16 and FP32, NCHW and channels-last, on activation shapes of resnet18-unet;
* conv: the implicit-GEMM 3x3 conv with the epilogue fused vs cuDNN conv + the unfused epilogue.

Timing: ``cuda_graph_time`` captures 20 calls in a CUDA graph and times its replays (GPU time per
call, no Python launch cost: how the kernels run inside the torch-cuda backend's graphs);
``cuda_time`` times eager calls with CUDA events (includes launch overhead, which for Triton's Python
launcher can dominate small tensors). Warm-up first; p50/p90/p99 in ms. Both sides of a ratio run in
the same process, back to back. The speed target uses the GPU-time ratio.
Also used by ``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

#: (N, C, H, W) activations of resnet18-unet (cifar stem: layer1 at full resolution)
EPILOGUE_SHAPES = ((256, 64, 32, 32), (64, 128, 16, 16), (8, 64, 256, 256), (1, 64, 256, 256))
CONV_SHAPES = ((256, 64, 32, 32), (8, 64, 256, 256))


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted list (q in [0, 100])."""
    if not sorted_values:
        raise ValueError("no samples")
    k = (len(sorted_values) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def summarize(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    return {"p50": percentile(s, 50), "p90": percentile(s, 90), "p99": percentile(s, 99), "mean": sum(s) / len(s),
            "min": s[0], "iters": len(s)}


def cuda_time(fn: Callable[[], object], warmup: int = 5, min_iters: int = 10, max_iters: int = 300,
              budget_s: float = 0.5) -> dict[str, float]:
    """Latency of ``fn()`` on the current CUDA stream, in ms (CUDA events, synchronized per call)."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ms: list[float] = []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0 = time.perf_counter()
    while len(ms) < max_iters and (len(ms) < min_iters or time.perf_counter() - t0 < budget_s):
        start.record()
        fn()
        end.record()
        end.synchronize()
        ms.append(start.elapsed_time(end))
    return summarize(ms)


def cuda_graph_time(fn: Callable[[], object], reps: int = 20, **kw) -> dict[str, float]:
    """GPU time of one ``fn()`` without the CPU launch cost: ``reps`` calls captured in one CUDA graph,
    the replay timed by ``cuda_time``, divided by ``reps``."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            fn()
    stats = cuda_time(graph.replay, **kw)
    return {k: (v / reps if k != "iters" else v) for k, v in stats.items()}


def bench_epilogue(shapes=EPILOGUE_SHAPES, dtypes=("float16", "float32"), layouts=("channels_last", "nchw"),
                   budget_s: float = 0.25) -> list[dict]:
    """Fused epilogue vs the unfused torch sequence; one row per shape x dtype x layout."""
    import torch

    from colorize.kernels.residual_epilogue import bias_residual_relu, bias_residual_relu_reference, bias_residual_relu_unfused

    rows = []
    for shape in shapes:
        for dt in dtypes:
            for layout in layouts:
                dtype = getattr(torch, dt)
                fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
                g = torch.Generator(device="cuda").manual_seed(0)
                x = torch.randn(shape, device="cuda", generator=g).to(dtype).contiguous(memory_format=fmt)
                r = torch.randn(shape, device="cuda", generator=g).to(dtype).contiguous(memory_format=fmt)
                b = torch.randn(shape[1], device="cuda", generator=g).to(dtype)
                out = torch.empty_like(x)
                y = bias_residual_relu(x, b, r, out=out)
                err = (y.float() - bias_residual_relu_reference(x, b, r).float()).abs().max().item()
                fused = cuda_graph_time(lambda: bias_residual_relu(x, b, r, out=out), budget_s=budget_s)
                unfused = cuda_graph_time(lambda: bias_residual_relu_unfused(x, b, r), budget_s=budget_s)
                fused_eager = cuda_time(lambda: bias_residual_relu(x, b, r, out=out), budget_s=budget_s)
                unfused_eager = cuda_time(lambda: bias_residual_relu_unfused(x, b, r), budget_s=budget_s)
                nbytes = 3 * x.numel() * x.element_size()  # read x, r; write out
                rows.append({
                    "kernel": "epilogue", "shape": list(shape), "dtype": dt, "layout": layout,
                    "max_abs_vs_reference": err, "fused_ms": fused, "unfused_ms": unfused,
                    "speedup": unfused["p50"] / fused["p50"],
                    "fused_eager_ms": fused_eager, "unfused_eager_ms": unfused_eager,
                    "speedup_eager": unfused_eager["p50"] / fused_eager["p50"],
                    "fused_GBps": nbytes / fused["p50"] / 1e6,
                })
    return rows


def bench_conv(shapes=CONV_SHAPES, dtype: str = "float16") -> list[dict]:
    """Implicit-GEMM conv + fused epilogue vs cuDNN conv + unfused epilogue (channels-last)."""
    import torch
    import torch.nn.functional as F

    from colorize.kernels.conv3x3 import conv3x3_bias_act, conv3x3_bias_act_reference, pack_conv3x3_weight
    from colorize.kernels.residual_epilogue import bias_residual_relu_unfused

    rows = []
    dt = getattr(torch, dtype)
    for n, c, h, w in shapes:
        g = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn(n, c, h, w, device="cuda", generator=g).to(dt).contiguous(memory_format=torch.channels_last)
        wt = (torch.randn(c, c, 3, 3, device="cuda", generator=g) * (2 / (9 * c)) ** 0.5).to(dt)
        wt_cl = wt.contiguous(memory_format=torch.channels_last)
        b = torch.randn(c, device="cuda", generator=g).to(dt)
        r = torch.randn(n, c, h, w, device="cuda", generator=g).to(dt).contiguous(memory_format=torch.channels_last)
        wp = pack_conv3x3_weight(wt)
        y = conv3x3_bias_act(x, wp, b, r)
        err = (y.float() - conv3x3_bias_act_reference(x, wt, b, r).float()).abs().max().item()
        triton_ms = cuda_graph_time(lambda: conv3x3_bias_act(x, wp, b, r), reps=5)
        cudnn_ms = cuda_graph_time(lambda: bias_residual_relu_unfused(F.conv2d(x, wt_cl, None, padding=1), b, r), reps=5)
        flops = 2 * n * h * w * c * c * 9
        rows.append({
            "kernel": "conv3x3+epilogue", "shape": [n, c, h, w], "dtype": dtype, "layout": "channels_last",
            "max_abs_vs_reference": err, "triton_ms": triton_ms, "cudnn_unfused_ms": cudnn_ms,
            "speedup": cudnn_ms["p50"] / triton_ms["p50"], "triton_TFLOPs": flops / triton_ms["p50"] / 1e9,
        })
    return rows


def kernel_table(rows: list[dict]) -> str:
    """Markdown table; times are GPU time per call (CUDA-graph replay), the eager column includes launches."""
    lines = ["| kernel | shape | dtype | layout | fused p50 ms | baseline p50 ms | speedup (GPU time) "
             "| speedup (eager launches) | max abs err |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fused = r.get("fused_ms") or r.get("triton_ms")
        base = r.get("unfused_ms") or r.get("cudnn_unfused_ms")
        eager = f"{r['speedup_eager']:.2f}x" if "speedup_eager" in r else ""
        lines.append(
            f"| {r['kernel']} | {'x'.join(map(str, r['shape']))} | {r['dtype']} | {r['layout']} | {fused['p50']:.4f} "
            f"| {base['p50']:.4f} | {r['speedup']:.2f}x | {eager} | {r['max_abs_vs_reference']:.2g} |"
        )
    return "\n".join(lines)


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: the kernel benchmark needs a GPU (the tests run the kernels on CPU with TRITON_INTERPRET=1)")
        return 0
    print(torch.cuda.get_device_name(0))
    print(kernel_table(bench_epilogue() + bench_conv()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
