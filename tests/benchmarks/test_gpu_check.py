"""The GPU check script: clean stop without CUDA, and its CPU-side logic (stats, targets, table)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from colorize.benchmarks.bench_kernels import percentile, summarize
from colorize.benchmarks.gpu_check import evaluate_targets, markdown

ROOT = Path(__file__).resolve().parents[2]


def test_stops_cleanly_without_cuda(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script would run the real check")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OUT=str(tmp_path))
    r = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("no CUDA device") and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_percentiles():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([5.0], 99) == 5.0
    s = summarize([3.0, 1.0, 2.0])
    assert s["p50"] == 2.0 and s["min"] == 1.0 and s["iters"] == 3
    with pytest.raises(ValueError):
        percentile([], 50)


def _row(variant, shape, speedup, status="ok"):
    lat = {"p50": 1.0, "p90": 1.1, "p99": 1.2}
    return {"variant": variant, "shape": list(shape), "status": status, "latency_ms": lat, "speedup": speedup,
            "images_per_s": shape[0] * 1e3, "parity": {"max_abs": 1e-3, "mean_abs": 1e-4}, "parity_ok": True}


def test_targets_and_table():
    rows = [_row("torch-cuda", (1, 32, 32), 12.0), _row("torch-cuda", (256, 32, 32), 3.5),
            {"variant": "torch.compile", "shape": [8, 256, 256], "status": "skipped: time budget"}]
    kernels = [{"kernel": "epilogue", "shape": [8, 64, 32, 32], "dtype": "float16", "layout": "channels_last",
                "fused_ms": {"p50": 0.01}, "unfused_ms": {"p50": 0.03}, "speedup": 3.0, "max_abs_vs_reference": 0.0}]
    targets = evaluate_targets(rows, kernels)
    assert [t["verdict"] for t in targets] == ["met", "NOT met", "met"]
    assert evaluate_targets([], [])[0]["verdict"] == "not measured"
    env = {"gpu": "GPU", "compute_capability": "9.0", "torch": "2.11", "triton": "3.6"}
    text = markdown({"environment": env, "model": "m", "rows": rows, "targets": targets, "kernels": kernels,
                     "tolerance": {"max_abs": 0.02, "mean_abs": 0.002}, "seconds": 100.0})
    assert "| torch-cuda | 256 | 32x32 | 1.000 |" in text and "3.50x" in text
    assert "skipped: time budget" in text and "**NOT met**" in text and "| epilogue | 8x64x32x32 |" in text
