"""CPU engine speed against eager PyTorch FP32, in one process (issue 4's speed report).

    python -m colorize.benchmarks.engine_speed                      # writes results/engine_speed_cpu.{md,json}
    python -m colorize.benchmarks.engine_speed --quick              # fewer rounds, no 256x256

Every backend x precision is loaded once through ``Engine.load`` (quality guard on), then for each
shape (batch 64 and batch 1 at 32x32; batch 4 and batch 1 at 256x256) the engines take turns:
warm-up calls, then ``rounds`` round-robin rounds in which each engine runs ``iters`` timed calls
back to back. The eager ``torch`` FP32 baseline is one of the turns, so a neighbour's load slows
baseline and candidates alike. Reported per engine and shape: p50/p90 call latency, img/s
(batch / p50), and the ratio to the baseline (throughput: img/s ratio; latency: p50 ratio).

Pause other CPU work while measuring (the numbers are for an otherwise idle machine).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from colorize.benchmarks.machine import cpu_model
from colorize.fsutil import atomic_write_text

RESULTS = Path(__file__).resolve().parents[1] / "results"

# (label, backend, precision, options)
CANDIDATES: list[tuple[str, str, str, dict]] = [
    ("torch fp32 (eager, baseline)", "torch", "fp32", {}),
    ("torch bf16 (autocast)", "torch", "bf16", {}),
    ("onnxruntime fp32", "onnxruntime", "fp32", {}),
    ("onnxruntime int8 (QDQ)", "onnxruntime", "int8", {}),
    ("openvino fp32", "openvino", "fp32", {}),
    ("openvino bf16", "openvino", "bf16", {}),
    ("openvino bf16 [1 stream]", "openvino", "bf16", {"mode": "latency"}),
    ("openvino int8", "openvino", "int8", {}),
    ("openvino int8 [1 stream]", "openvino", "int8", {"mode": "latency"}),
]
# (batch, H, W, rounds, iters per round, warm-up calls)
SHAPES = [(64, 32, 32, 5, 3, 3), (1, 32, 32, 5, 20, 3), (4, 256, 256, 2, 1, 1), (1, 256, 256, 3, 2, 1)]
QUICK_SHAPES = [(64, 32, 32, 3, 2, 2), (1, 32, 32, 3, 10, 2)]


def _versions() -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "onnxruntime", "openvino"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    return out


def load_engines(model: str, candidates, skip_bf16_on_ties: bool = False):
    from colorize.engine import Engine

    engines = []
    for label, backend, precision, options in candidates:
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                eng = Engine.load(model, backend, precision, **options)
        except Exception as e:  # report and go on: one backend failing must not end the run
            print(f"  {label}: could not load ({type(e).__name__}: {e})", flush=True)
            engines.append({"label": label, "error": f"{type(e).__name__}: {e}"})
            continue
        g = eng.guard_result
        engines.append(
            {
                "label": label,
                "backend": backend,
                "precision": precision,
                "options": options,
                "engine": eng,
                "load_s": time.perf_counter() - t0,
                "guard": g.to_dict() if g else None,
                "warnings": [str(w.message) for w in caught if "random init" not in str(w.message)],
            }
        )
        print(f"  loaded {label} in {engines[-1]['load_s']:.1f}s" + (f"; {g.describe()}" if g else ""), flush=True)
    return engines


def measure(engines, shape, seed: int = 0) -> dict:
    batch, h, w, rounds, iters, warmup = shape
    l = np.random.default_rng(seed).uniform(-1, 1, (batch, 1, h, w)).astype(np.float32)
    live = [e for e in engines if "engine" in e]
    times: dict[str, list[float]] = {e["label"]: [] for e in live}
    for e in live:  # warm-up: first call (lazy compilation) + more
        for _ in range(warmup):
            e["engine"].run(l)
    for r in range(rounds):
        order = live[r % len(live) :] + live[: r % len(live)]  # rotate who goes first
        for e in order:
            run = e["engine"].run
            for _ in range(iters):
                t0 = time.perf_counter()
                run(l)
                times[e["label"]].append(time.perf_counter() - t0)
    out = {}
    for label, ts in times.items():
        ts = np.asarray(ts)
        p50 = float(np.percentile(ts, 50))
        out[label] = {
            "p50_ms": 1e3 * p50,
            "p90_ms": 1e3 * float(np.percentile(ts, 90)),
            "img_per_s": batch / p50,
            "calls": int(len(ts)),
        }
    base = out.get(CANDIDATES[0][0])
    if base:
        for v in out.values():
            v["speedup_throughput"] = v["img_per_s"] / base["img_per_s"]
            v["speedup_latency"] = base["p50_ms"] / v["p50_ms"]
    return out


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# CPU engine speed vs eager PyTorch FP32",
        "",
        f"Model `{report['model']}` ({report['model_note']}); {m['cpu']}, {m['cores']} cores available; "
        f"versions {', '.join(f'{k} {v}' for k, v in m['versions'].items() if v)}.",
        f"Command: `{report['command']}`; {report['date']}. {report['conditions']}",
        "",
        "One process; engines interleaved round-robin with the eager baseline; warm-up then timed calls.",
        "img/s = batch / p50 call time. Speedup = vs `torch fp32` at the same shape "
        "(throughput: img/s ratio; latency: p50 ratio).",
        "",
        "## Load and quality guard",
        "",
        "Load time includes building artifacts (export, INT8 quantization, guard) unless the artifact cache "
        "already held them from an earlier run.",
        "",
        "| engine | load s | guard (PSNR drop vs FP32, allowed) |",
        "|---|---:|---|",
    ]
    for e in report["engines"]:
        if "error" in e:
            lines.append(f"| {e['label']} | - | could not load: {e['error']} |")
            continue
        g = e["guard"]
        gs = (
            f"{'pass' if g['passed'] else 'FAIL'}: {g['drop_db']:.3f} dB (<= {g['tolerance_db']}), "
            f"{g['images']} images ({g['source']})"
            if g
            else "- (fp32)"
        )
        lines.append(f"| {e['label']} | {e['load_s']:.1f} | {gs} |")
    for key, res in report["results"].items():
        lines += ["", f"## {key}", "", "| engine | p50 ms | p90 ms | img/s | speedup (thr.) | speedup (lat.) |"]
        lines += ["|---|---:|---:|---:|---:|---:|"]
        for label, v in res.items():
            lines.append(
                f"| {label} | {v['p50_ms']:.2f} | {v['p90_ms']:.2f} | {v['img_per_s']:.1f} | "
                f"{v.get('speedup_throughput', float('nan')):.2f}x | {v.get('speedup_latency', float('nan')):.2f}x |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18-unet")
    p.add_argument("--quick", action="store_true", help="fewer rounds, 32x32 only")
    p.add_argument("--out", default=str(RESULTS / "engine_speed_cpu"), help="output path without suffix")
    p.add_argument("--conditions", default="", help="free text recorded in the report (e.g. what else was running)")
    args = p.parse_args(argv)

    from colorize.artifacts.model_ref import resolve_model
    from colorize.artifacts.onnx_files import cpu_cores

    ref = resolve_model(args.model)
    print(f"loading {len(CANDIDATES)} engines for {args.model} ...", flush=True)
    engines = load_engines(args.model, CANDIDATES)
    results = {}
    for shape in QUICK_SHAPES if args.quick else SHAPES:
        key = f"batch {shape[0]}, {shape[1]}x{shape[2]}"
        print(f"measuring {key} ...", flush=True)
        results[key] = measure(engines, shape)
        for label, v in results[key].items():
            print(f"  {label:32s} p50 {v['p50_ms']:8.2f} ms  {v['img_per_s']:8.1f} img/s  "
                  f"x{v.get('speedup_throughput', 0):.2f} thr  x{v.get('speedup_latency', 0):.2f} lat", flush=True)
    report = {
        "model": args.model,
        "model_note": "random init" if ref.random_init else f"weights sha256 {ref.sha256[:12]}...",
        "command": "python -m colorize.benchmarks.engine_speed" + (" --quick" if args.quick else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "conditions": args.conditions,
        "machine": {"cpu": cpu_model(), "cores": cpu_cores(), "versions": _versions()},
        "engines": [{k: v for k, v in e.items() if k != "engine"} for e in engines],
        "results": results,
    }
    for e in engines:
        if "engine" in e:
            e["engine"].close()
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), to_markdown(report))
    print(f"wrote {out.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
