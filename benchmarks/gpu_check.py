"""The one GPU check: parity and speed of the GPU path, in under 5 minutes, installing nothing.

    PYTHONPATH=. python3 benchmarks/gpu_check.py [--model resnet18-unet] [--budget 280]

Writes ``gpu_check.json`` and ``gpu_check.md`` to ``$OUT`` (or ``results/gpu_check/`` when
``OUT`` is unset). Without a CUDA device it prints "no CUDA device" and exits 0, writing nothing.

Variants, each on device-resident input (no host copies in the timed region):

* ``eager-fp32``: the eager model in FP32 (torch defaults: cuDNN may use TF32, ``cudnn.benchmark`` off);
* ``eager-fp16-cl``: the eager model in FP16, channels_last;
* ``torch-cuda``: the torch-cuda backend (BN folded, FP16, channels_last, CUDA graph per bucket,
  cuDNN algorithms benchmarked during the graph's warm-up), timed through ``forward_device``
  (includes the copy into the static input and out of the static output);
* ``torch-cuda+triton``: the same with the Triton fused residual epilogue in every block;
* ``torch.compile``: ``torch.compile`` (default mode) of the BN-folded FP16 channels_last model,
  run last, shape by shape, while the time budget lasts.

Shapes: batch 1/64/256 at 32x32 and 1/8 at 256x256. Parity: every variant against eager FP32 with
TF32 off, max/mean |delta| on normalized ab against the backend's named FP16 tolerance. Then the
Triton epilogue against the unfused torch sequence (``benchmarks/bench_kernels.py``). Targets:
torch-cuda FP16 >= 10x eager FP32 at batch 1 and >= 4x at batch 256 (32x32); fused epilogue >= 1.3x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
import warnings
from pathlib import Path

from colorize.fsutil import atomic_write_text

SHAPES = ((1, 32, 32), (64, 32, 32), (256, 32, 32), (1, 256, 256), (8, 256, 256))
VARIANTS = ("eager-fp32", "eager-fp16-cl", "torch-cuda", "torch-cuda+triton", "torch.compile")
TARGETS = {  # (variant, shape) -> minimum speedup over eager-fp32
    ("torch-cuda", (1, 32, 32)): 10.0,
    ("torch-cuda", (256, 32, 32)): 4.0,
}
EPILOGUE_TARGET = 1.3


def environment() -> dict:
    import torch

    env = {
        "gpu": torch.cuda.get_device_name(0),
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "python": platform.python_version(),
    }
    for mod in ("triton", "tensorrt"):
        try:
            env[mod] = __import__(mod).__version__
        except ImportError:
            env[mod] = "not installed"
    return env


def diff(y, ref) -> dict[str, float]:
    d = (y.float() - ref.float()).abs()
    return {"max_abs": d.max().item(), "mean_abs": d.mean().item()}


def evaluate_targets(rows: list[dict], kernels: list[dict]) -> list[dict]:
    """The issue's speed targets against the measured rows: met / NOT met / not measured."""
    targets = []
    for (variant, shape), target in TARGETS.items():
        row = next((r for r in rows if r["variant"] == variant and tuple(r["shape"]) == shape and r["status"] == "ok"), None)
        measured = f"{row['speedup']:.2f}x" if row else "not measured"
        verdict = "not measured" if row is None else ("met" if row["speedup"] >= target else "NOT met")
        targets.append({"what": f"{variant} fp16 vs eager fp32, batch {shape[0]} at {shape[1]}x{shape[2]}",
                        "target": target, "measured": measured, "verdict": verdict})
    fp16_cl = [k for k in kernels if k["dtype"] == "float16" and k["layout"] == "channels_last"]
    worst = min((k["speedup"] for k in fp16_cl), default=None)
    targets.append({"what": "fused epilogue vs unfused sequence (fp16 channels_last, worst shape)",
                    "target": EPILOGUE_TARGET, "measured": "not measured" if worst is None else f"{worst:.2f}x",
                    "verdict": "not measured" if worst is None else ("met" if worst >= EPILOGUE_TARGET else "NOT met")})
    return targets


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        f"# GPU check: {env['gpu']} (sm {env['compute_capability']}), torch {env['torch']}, triton {env['triton']}",
        "",
        f"model `{result['model']}`; latency = CUDA events per call on device-resident input; "
        f"speedup = eager-fp32 p50 / variant p50; parity vs eager FP32 (TF32 off), normalized ab, "
        f"tolerance max {result['tolerance']['max_abs']} / mean {result['tolerance']['mean_abs']}.",
        "",
        "| variant | batch | size | p50 ms | p90 ms | p99 ms | img/s | speedup | max abs | mean abs | parity | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        n, h, w = r["shape"]
        if r["status"] != "ok":
            lines.append(f"| {r['variant']} | {n} | {h}x{w} | | | | | | | | | {r['status']} |")
            continue
        lat, par = r["latency_ms"], r["parity"]
        lines.append(
            f"| {r['variant']} | {n} | {h}x{w} | {lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} "
            f"| {r['images_per_s']:.0f} | {r['speedup']:.2f}x | {par['max_abs']:.2g} | {par['mean_abs']:.2g} "
            f"| {'pass' if r['parity_ok'] else 'FAIL'} | {r.get('note', '')} |"
        )
    lines += ["", "Targets:", ""]
    for t in result["targets"]:
        lines.append(f"* {t['what']}: {t['measured']} (target >= {t['target']}x): **{t['verdict']}**")
    if result.get("kernels"):
        from colorize.benchmarks.bench_kernels import kernel_table

        lines += ["", "Triton kernels vs the unfused torch sequence:", "", kernel_table(result["kernels"])]
    lines += ["", f"total {result['seconds']:.0f} s"]
    return "\n".join(lines) + "\n"


def run(model_name: str, budget_s: float, out_dir: Path) -> int:
    import torch

    from colorize.benchmarks.bench_kernels import bench_epilogue, cuda_time
    from colorize.artifacts.model_ref import resolve_model
    from colorize.backends.base import BackendError
    from colorize.backends.torch_backend import build_torch_model
    from colorize.backends.torch_cuda import TOLERANCES, TorchCudaBackend, prepare_model

    t_start = time.perf_counter()
    deadline = t_start + budget_s
    tol = TOLERANCES["fp16"]
    result: dict = {"environment": environment(), "model": model_name, "rows": [], "targets": [], "kernels": [],
                    "tolerance": {"max_abs": tol.max_abs, "mean_abs": tol.mean_abs, "why": tol.why}, "errors": []}
    print(json.dumps(result["environment"]), flush=True)

    ref = resolve_model(model_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager_cpu = build_torch_model(ref).eval()
    result["model"] = f"{ref.name} ({'random init' if ref.random_init else 'trained weights'})"
    import copy

    eager32 = copy.deepcopy(eager_cpu).cuda()
    eager16 = copy.deepcopy(eager32).half().to(memory_format=torch.channels_last)
    backends = {}
    for variant, fuse in (("torch-cuda", None), ("torch-cuda+triton", "epilogue")):
        try:
            backends[variant] = TorchCudaBackend(ref, "fp16", fuse=fuse)
            result[f"{variant} load parity"] = backends[variant].parity
        except BackendError as e:  # the load-time parity check failed: record it, still time the variant
            result["errors"].append(f"{variant}: load-time parity check failed: {e}")
            backends[variant] = TorchCudaBackend(ref, "fp16", fuse=fuse, check=False)
        except Exception as e:  # report and go on with the other variants
            result["errors"].append(f"{variant}: load failed: {e!r}")
            traceback.print_exc()

    fns = {
        "eager-fp32": lambda x: eager32(x),
        "eager-fp16-cl": lambda x: eager16(x.half().contiguous(memory_format=torch.channels_last)),
    }
    for variant, be in backends.items():
        fns[variant] = be.forward_device

    baseline: dict[tuple, float] = {}
    out_dir.mkdir(parents=True, exist_ok=True)

    def save_partial() -> None:  # so a run cut short still leaves its rows behind
        atomic_write_text(out_dir / "gpu_check.json", json.dumps(result | {"partial": True}, indent=2, default=str))

    def measure(variant, fn, shape, note=""):
        n, h, w = shape
        x = torch.empty(n, 1, h, w, device="cuda").uniform_(-1, 1, generator=torch.Generator("cuda").manual_seed(n + h))
        with torch.inference_mode():
            prev = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
            ref_out = eager32(x)
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = prev
            y = fn(x)
            par = diff(y, ref_out)
            lat = cuda_time(lambda: fn(x), budget_s=0.4)
        row = {"variant": variant, "shape": list(shape), "status": "ok", "latency_ms": lat, "parity": par,
               "parity_ok": par["max_abs"] <= tol.max_abs and par["mean_abs"] <= tol.mean_abs,
               "images_per_s": n / lat["p50"] * 1e3, "note": note}
        if variant == "eager-fp32":
            baseline[shape] = lat["p50"]
        row["speedup"] = baseline[shape] / lat["p50"] if shape in baseline else float("nan")
        result["rows"].append(row)
        print(f"{variant:18s} {shape}  p50 {lat['p50']:.3f} ms  x{row['speedup']:.2f}  max|d| {par['max_abs']:.2g}",
              flush=True)

    for shape in SHAPES:
        for variant in VARIANTS[:4]:
            if variant not in fns:
                result["rows"].append({"variant": variant, "shape": list(shape), "status": "load failed"})
                continue
            if time.perf_counter() > deadline - 60:
                result["rows"].append({"variant": variant, "shape": list(shape), "status": "skipped: time budget"})
                continue
            try:
                measure(variant, fns[variant], shape)
            except Exception as e:
                result["rows"].append({"variant": variant, "shape": list(shape), "status": f"error: {e!r}"[:200]})
                traceback.print_exc()
        save_partial()

    try:
        if time.perf_counter() < deadline - 45:
            result["kernels"] = bench_epilogue()
    except Exception as e:
        result["errors"].append(f"kernel benchmark: {e!r}")
        traceback.print_exc()
    save_partial()

    # torch.compile last: compilation time is large and unpredictable; shapes in order of interest.
    compiled = None
    for shape in ((1, 32, 32), (256, 32, 32), (64, 32, 32), (1, 256, 256), (8, 256, 256)):
        left = deadline - time.perf_counter()
        if left < (90 if compiled is None else 45):  # the first compilation is the slow one
            result["rows"].append({"variant": "torch.compile", "shape": list(shape), "status": "skipped: time budget"})
            continue
        try:
            if compiled is None:
                folded16 = prepare_model(eager32, "fp16", None, "cuda")
                compiled = torch.compile(folded16, dynamic=False)
            t0 = time.perf_counter()
            with torch.inference_mode():
                compiled(torch.zeros(shape[0], 1, shape[1], shape[2], device="cuda", dtype=torch.float16)
                         .contiguous(memory_format=torch.channels_last))
            torch.cuda.synchronize()
            note = f"compile {time.perf_counter() - t0:.0f} s"
            measure("torch.compile", lambda x: compiled(x.half().contiguous(memory_format=torch.channels_last)),
                    shape, note)
        except Exception as e:
            result["rows"].append({"variant": "torch.compile", "shape": list(shape), "status": f"error: {e!r}"[:200]})
            traceback.print_exc()
        save_partial()

    result["targets"] = evaluate_targets(result["rows"], result["kernels"])
    result["all_parity_ok"] = all(r.get("parity_ok", True) for r in result["rows"])
    result["seconds"] = time.perf_counter() - t_start
    for be in backends.values():
        be.close()

    atomic_write_text(out_dir / "gpu_check.json", json.dumps(result | {"partial": False}, indent=2, default=str))
    table = markdown(result)
    atomic_write_text(out_dir / "gpu_check.md", table)
    print(table)
    return 0 if result["all_parity_ok"] and not result["errors"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18-unet", help="model name or checkpoint (default resnet18-unet)")
    parser.add_argument("--budget", type=float, default=280.0, help="seconds for the whole check (default 280)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("no CUDA device: torch is not installed")
        return 0
    if not torch.cuda.is_available():
        print(f"no CUDA device: torch {torch.__version__} sees none; the GPU check did not run")
        return 0
    out_dir = Path(os.environ.get("OUT") or Path(__file__).resolve().parents[1] / "results" / "gpu_check")
    return run(args.model, args.budget, out_dir)


if __name__ == "__main__":
    sys.exit(main())
