"""The harness on fake backends with known timings (a fake clock): statistics are exact."""

import numpy as np
import pytest

from colorize.benchmarks.plan import BenchSettings


def _row(report, backend, precision, batch):
    (row,) = [r for r in report["results"]
              if (r["backend"], r["precision"], r["batch"]) == (backend, precision, batch)]
    return row


def test_statistics_match_the_scripted_timings(world, fake_report):
    for (backend, precision), eng in world.engines.items():
        for (n, h, w), durations in eng.log.items():
            row = _row(fake_report, backend, precision, n)
            assert row["status"] == "ok"
            first, warm, timed = durations[0], durations[1:3], durations[3:]
            assert row["first_call_s"] == pytest.approx(first)
            assert len(warm) == 2
            assert row["n"] == len(timed) == len(row["samples_ms"])
            ms = np.array(timed) * 1e3
            assert row["samples_ms"] == pytest.approx(list(ms))
            for q in (50, 90, 99):
                assert row["latency_ms"][f"p{q}"] == pytest.approx(np.percentile(ms, q))
            assert row["images_per_s"] == pytest.approx(n * len(timed) / sum(timed))
            assert row["load_s"] == pytest.approx(0.25)


def test_ratios_gflops_and_peak_share(fake_report):
    for batch in (1, 4):
        base = _row(fake_report, "torch", "fp32", batch)
        fast = _row(fake_report, "fast", "fp32", batch)
        assert base["baseline"] and not fast["baseline"]
        assert base["vs_baseline"] == {"latency": 1.0, "throughput": 1.0}
        assert fast["vs_baseline"]["latency"] == pytest.approx(base["latency_ms"]["p50"] / fast["latency_ms"]["p50"])
        assert fast["vs_baseline"]["throughput"] == pytest.approx(fast["images_per_s"] / base["images_per_s"])
        # fast: exactly 1 ms/image -> 1000 img/s, 2 GFLOP/image -> 2000 GFLOP/s = 50% of the 4000 peak
        assert fast["images_per_s"] == pytest.approx(1000.0)
        assert fast["gflops"] == pytest.approx(2000.0)
        assert fast["peak"] == "cpu/fp32" and fast["peak_share"] == pytest.approx(0.5)
        # baseline 4/4.4/4.8 ms per image -> a known throughput ratio
        assert fast["vs_baseline"]["throughput"] == pytest.approx(base["latency_ms"]["mean"] / batch, rel=1e-9)


def test_iteration_count_follows_target_and_bounds(world, fake_report):
    # fast at batch 1 takes 1 ms: target 0.05 s -> 50 calls, capped at max_iters=40, split over 3 rounds
    assert _row(fake_report, "fast", "fp32", 1)["n"] == 3 * 14
    # fast at batch 4 takes 4 ms -> ceil(0.05/0.004) = 13 -> 3 rounds of 5
    assert _row(fake_report, "fast", "fp32", 4)["n"] == 15


def test_unavailable_unsupported_and_failures_are_recorded(world):
    world.add("torch", ("fp32",))
    world.add("gpu-only", ("fp16",), reason="no CUDA device")
    world.add("broken", ("fp32",), load_error=RuntimeError("cannot build"))
    world.add("flaky", ("fp32",), fail_batch=4)
    report = world.run(precisions=("fp32", "fp16"))
    configs = {(c["backend"], c["precision"]): c for c in report["configs"]}
    assert configs[("gpu-only", "fp16")]["status"] == "skipped"
    assert configs[("gpu-only", "fp16")]["reason"] == "no CUDA device"
    assert configs[("torch", "fp16")]["reason"] == "torch does not run fp16"
    assert configs[("broken", "fp32")]["status"] == "error"
    assert "cannot build" in configs[("broken", "fp32")]["reason"]
    assert _row(report, "flaky", "fp32", 1)["status"] == "ok"
    bad = _row(report, "flaky", "fp32", 4)
    assert bad["status"] == "error" and "fake failure at batch 4" in bad["reason"]
    assert _row(report, "torch", "fp32", 4)["status"] == "ok"  # one failure does not stop the others
    assert all(e.closed for e in world.engines.values())


def test_first_shape_over_the_call_budget_is_skipped_by_flops(world):
    world.add("torch", ("fp32",))
    # nothing timed yet: 100 GFLOP/image at a 10 GFLOP/s peak -> 10 s/call > 3 s
    report = world.run(gflop=100.0, batch_sizes=(1,), peaks={"cpu/fp32": {"gflops": 10.0, "how": "fake"}})
    row = _row(report, "torch", "fp32", 1)
    assert row["status"] == "skipped"
    assert row["reason"] == "estimated 10.0 s/call (at the cpu fp32 matmul peak) > max_call_seconds=3"
    assert world.engines[("torch", "fp32")].log == {}  # never run


def test_later_shapes_are_skipped_from_measured_times(world):
    # "slow": 0.5 s per image at 8x8, proportional to pixels (and to GFLOP); "torch": 1 ms per image
    world.add("torch", ("fp32",), duration=lambda i, n, t, px: 1e-3 * n)
    world.add("slow", ("fp32",), duration=lambda i, n, t, px: 0.5 * n * px / 64)
    report = world.run(
        gflop=lambda h, w: h * w / 64, sizes=((16, 16), (8, 8), (32, 32)), batch_sizes=(8, 1),
        warmup=0, min_iters=1, max_iters=1, rounds=1, target_seconds=0,
    )
    rows = {(r["backend"], r["batch"], r["height"]): r for r in report["results"]}
    assert rows[("slow", 1, 8)]["status"] == "ok"  # sizes and batches run smallest first
    assert rows[("slow", 8, 8)]["reason"] == "estimated 4.0 s/call (from its batch 1 8x8 timing) > max_call_seconds=3"
    assert rows[("slow", 1, 16)]["status"] == "ok"  # 4x the GFLOP of 8x8: estimated 2 s
    assert rows[("slow", 8, 16)]["status"] == "skipped"
    assert rows[("slow", 1, 32)]["reason"] == (
        "estimated 8.0 s/call (from its batch 1 16x16 timing) > max_call_seconds=3"
    )
    assert all(rows[("torch", b, s)]["status"] == "ok" for b in (1, 8) for s in (8, 16, 32))
    assert rows[("torch", 8, 32)]["vs_baseline"] == {"latency": 1.0, "throughput": 1.0}


def test_baseline_added_when_not_selected(world):
    world.add("torch", ("fp32", "bf16"))
    world.add("fast", ("fp32",))
    report = world.run(backends=("fast",))
    keys = {(c["backend"], c["precision"]) for c in report["configs"]}
    assert keys == {("torch", "fp32"), ("fast", "fp32")}
    assert _row(report, "fast", "fp32", 1)["vs_baseline"] is not None
    report = world.run(backends=("fast",), baseline=False)
    assert _row(report, "fast", "fp32", 1)["vs_baseline"] is None


def test_unknown_backend_is_a_usage_error(world):
    world.add("torch", ("fp32",))
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        world.run(backends=("nope",))


def _drifting(rate):
    # every call costs 1 ms * batch, times a machine slowdown that grows with (fake) elapsed time
    return lambda i, n, t, px: 1e-3 * n * (1 + rate * t)


def test_interleaving_cancels_drift(world):
    world.add("torch", ("fp32",), duration=_drifting(5.0))
    world.add("twin", ("fp32",), duration=_drifting(5.0))  # identical speed
    kw = dict(batch_sizes=(1,), min_iters=30, max_iters=30)
    inter = _row(world.run(rounds=10, **kw), "twin", "fp32", 1)["vs_baseline"]["throughput"]
    seq = _row(world.run(rounds=1, **kw), "twin", "fp32", 1)["vs_baseline"]["throughput"]
    assert abs(inter - 1) < 0.05
    assert abs(seq - 1) > 3 * abs(inter - 1)


def test_settings_validation():
    with pytest.raises(ValueError, match="batch_sizes"):
        BenchSettings(batch_sizes=(0,)).validate()
    with pytest.raises(ValueError, match="sizes"):
        BenchSettings(sizes=((0, 8),)).validate()
    with pytest.raises(ValueError, match="min_iters"):
        BenchSettings(min_iters=5, max_iters=2).validate()
    quick = BenchSettings.quick_run(batch_sizes=(2,))
    assert quick.quick and quick.batch_sizes == (2,) and quick.sizes == ((32, 32),)


def test_each_row_is_held_against_the_peak_of_its_own_precision(world):
    world.add("torch", ("fp32", "bf16"))
    world.add("fast", ("fp32", "int8"))
    float_peaks = {"cpu/fp32": {"gflops": 4000.0, "how": "fake"}, "cpu/bf16": {"gflops": 8000.0, "how": "fake"}}
    report = world.run(peaks=float_peaks)
    assert _row(report, "torch", "bf16", 1)["peak"] == "cpu/bf16"
    int8 = _row(report, "fast", "int8", 1)
    assert int8["peak"] is None and int8["peak_share"] is None  # no int8 peak: no share, never the bf16 one
    report = world.run(peaks={**float_peaks, "cpu/int8": {"gflops": 16000.0, "how": "fake"}})
    int8 = _row(report, "fast", "int8", 1)
    assert int8["peak"] == "cpu/int8" and int8["peak_share"] == pytest.approx(2000.0 / 16000.0)


def test_int8_peak_probe_runs_matmul_integer():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from colorize.benchmarks.peak import _onnxruntime_int8, peak_key

    peak = _onnxruntime_int8(64, 1)
    assert peak.gflops > 0 and "MatMulInteger" in peak.how
    assert peak_key("cpu", "int8", {"cpu/int8": peak}) == "cpu/int8"
    assert peak_key("cpu", "int8", {"cpu/bf16": peak}) is None and peak_key("cuda", "fp16", {}) is None
