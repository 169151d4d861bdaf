"""The benchmark harness: every backend x precision x batch x size, timed
interleaved with eager PyTorch FP32 in the same process.

Per input shape (batch, H, W), all loaded engines take turns:

  1. first call, timed alone (``first_call_s``: lazy compilation, shape
     specialisation, allocator warm-up);
  2. ``warmup`` untimed-for-stats calls, whose median estimates the call time
     and so the number of timed iterations (``target_seconds`` per
     configuration, clamped to [min_iters, max_iters]);
  3. ``rounds`` round-robin rounds; in each, every engine runs its share of
     iterations back to back, each call timed on its own. The order rotates
     every round. Slow drift of the machine (thermal, a neighbour's load) hits
     the baseline and every candidate alike, so their ratio is stable.

Ratios are against the baseline (``torch`` / ``fp32``) at the same shape:
latency = baseline p50 / candidate p50, throughput = candidate img/s /
baseline img/s. Achieved GFLOP/s = GFLOP per image x images/s, and its share
of the measured matmul peak at the matching precision (``benchmarks/peak.py``).

Shapes whose estimated call time at the device's fp32 peak exceeds
``max_call_seconds`` are skipped for every backend (recorded with the reason),
so one giant configuration cannot take the whole run.

Everything that talks to the outside (backend registry, engine loading, the
clock, FLOP counts, peaks) can be injected, so tests drive the harness with a
fake backend and a fake clock and check the statistics exactly.
"""

from __future__ import annotations

import functools
import math
import statistics
import sys
import time
import warnings
from dataclasses import asdict
from typing import Any, Callable, Mapping

import numpy as np

from colorize.benchmarks.flops import METHOD as FLOPS_METHOD
from colorize.benchmarks.peak import peak_key
from colorize.benchmarks.plan import BASELINE, BenchSettings, PlannedConfig, error_text, load_registry, plan_configs
from colorize.benchmarks.report import SCHEMA
from colorize.benchmarks.stats import speedup, summarize


def _engine_loader(guard: bool) -> Callable[[str, str, str], Any]:
    """``Engine.load`` (with its quality guard on non-FP32 precisions unless ``guard`` is False)."""

    def load(model: str, backend: str, precision: str):
        import inspect

        from colorize.engine import Engine

        kw = {} if guard or "guard" not in inspect.signature(Engine.load).parameters else {"guard": False}
        return Engine.load(model, backend=backend, precision=precision, **kw)

    return load


def _timed(clock: Callable[[], float], fn: Callable[[], object]) -> float:
    t0 = clock()
    fn()
    return clock() - t0


def _time_shape(active: list[PlannedConfig], l: np.ndarray, s: BenchSettings, clock) -> dict[tuple, dict]:
    """Interleaved timing of every active engine on one input; per config: samples or error."""
    out: dict[tuple, dict] = {c.key: {"samples": [], "first_call_s": None, "error": None} for c in active}
    alive = []
    for c in active:  # first calls, then warm-up
        call = functools.partial(c.engine.run, l)
        try:
            out[c.key]["first_call_s"] = _timed(clock, call)
            warm = [_timed(clock, call) for _ in range(s.warmup)]
        except Exception as e:
            out[c.key]["error"] = error_text(e)
            continue
        est = statistics.median(warm) if warm else out[c.key]["first_call_s"]
        n = s.max_iters if est <= 0 else math.ceil(s.target_seconds / est)
        alive.append((c, call, min(max(n, s.min_iters), s.max_iters)))
    if not alive:
        return out
    rounds = max(1, min(s.rounds, min(n for _, _, n in alive)))
    for r in range(rounds):
        k = r % len(alive)  # rotate who goes first
        for c, call, n in alive[k:] + alive[:k]:
            if out[c.key]["error"]:
                continue
            try:
                for _ in range(math.ceil(n / rounds)):
                    out[c.key]["samples"].append(_timed(clock, call))
            except Exception as e:
                out[c.key]["error"] = error_text(e)
    return out


def run_benchmark(
    settings: BenchSettings,
    *,
    registry: Mapping[str, type | Exception] | None = None,
    load: Callable[[str, str, str], Any] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    peaks: Mapping[str, Mapping[str, Any]] | None = None,
    gflop: Callable[[int, int], float] | None = None,
    machine: dict | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the benchmark and return the report (see ``benchmarks/report.py`` for its schema).

    Args:
        settings: what to run.
        registry: backend name -> class (default: ``colorize.backends.BACKENDS``).
        load: ``(model, backend, precision) -> engine`` with ``.run(l)`` and ``.close()``
            (default: ``engine.Engine.load``).
        clock: seconds, monotonic (default ``time.perf_counter``).
        peaks: ``{"cpu/fp32": {"gflops": .., "how": ..}, ...}`` (default: measured now).
        gflop: ``(padded H, padded W) -> GFLOP per image`` (default: counted on the model).
        machine: machine description (default: ``describe_machine()``).
        log: progress lines (default: stderr).
    """
    settings.validate()
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    registry = load_registry() if registry is None else registry
    notes: list[str] = []
    if load is None:
        load = _engine_loader(guard=not settings.quick)
        if settings.quick:
            notes.append("quality guard not run at load (--quick); the full run records its verdicts")
    configs = plan_configs(settings, registry)

    if machine is None:
        from colorize.benchmarks.machine import describe_machine

        machine = describe_machine()
    probe = peaks is None  # measured now, and again at the end: the better of the two is kept
    if probe:
        peaks = _probe_peaks(settings.quick, {}, log)

    model_info: dict[str, Any] = {"name": settings.model, "gflop_per_image": {}}
    stride = 1
    for c in configs:
        if c.status != "ok":
            log(f"{c.backend}/{c.precision}: {c.status}: {c.reason}")
            continue
        log(f"loading {settings.model} on {c.backend}/{c.precision} ...")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = clock()
            try:
                c.engine = load(settings.model, c.backend, c.precision)
                c.load_s = clock() - t0
            except Exception as e:
                c.status, c.reason = "error", f"load failed: {error_text(e)}"
                log(f"  {c.reason}")
        for w in caught:
            msg = f"{c.backend}/{c.precision}: {w.message}"
            if str(w.message) not in " ".join(notes):
                notes.append(msg)
        if c.engine is not None:
            guard = getattr(c.engine, "guard_result", None)
            c.guard = guard.describe() if guard is not None and hasattr(guard, "describe") else None
            stride = max(stride, int(getattr(c.engine, "stride", 1) or 1))
            static = _static_note(c.engine)
            if static and static not in notes:
                notes.append(static)
            ref = getattr(c.engine, "model", None)
            if ref is not None and "arch" not in model_info:
                model_info.update(arch=ref.arch, random_init=bool(ref.random_init), sha256=ref.sha256)

    if gflop is None:
        gflop = _model_gflop(settings.model, notes)
    model_info["flops_counted"] = FLOPS_METHOD

    results: list[dict] = []
    try:
        measured: dict[tuple, tuple] = {}  # config key -> (batch, H, W, GFLOP/image, s/image) last timed
        for h, w in sorted(set(settings.sizes), key=lambda hw: hw[0] * hw[1]):
            ph, pw = -(-h // stride) * stride, -(-w // stride) * stride
            g = _safe(gflop, ph, pw)
            model_info["gflop_per_image"][f"{h}x{w}"] = g
            for b in sorted(set(settings.batch_sizes)):
                results += _bench_shape(configs, settings, int(b), int(h), int(w), g, peaks, clock, log, measured)
    finally:
        for c in configs:
            if c.engine is not None:
                try:
                    c.engine.close()
                except Exception:
                    pass
    if probe:
        peaks = _probe_peaks(settings.quick, peaks, log)
        _rescale_peak_shares(results, peaks)
    if "load_avg_start" in machine:
        from colorize.benchmarks.machine import load_average

        machine["load_avg_end"] = load_average()
    return {
        "schema": SCHEMA,
        "created": machine.get("date_utc"),
        "settings": _settings_dict(settings),
        "machine": machine,
        "peaks": dict(peaks),
        "model": model_info,
        "baseline": {"backend": BASELINE[0], "precision": BASELINE[1]},
        "configs": [
            {"backend": c.backend, "precision": c.precision, "device": c.device, "baseline": c.baseline,
             "status": c.status, "reason": c.reason, "load_s": c.load_s, "guard": c.guard}
            for c in configs
        ],
        "results": results,
        "end_to_end": [],
        "notes": notes,
    }


def _static_note(engine) -> str | None:
    """What a row's size and batch mean for a model of static size or batch (``Engine.static_size`` and
    ``static_batch``), None for a dynamic one."""
    size, batch = getattr(engine, "static_size", None), getattr(engine, "static_batch", None)
    parts = ([f"every input is resized to its static {size[0]}x{size[1]} (the size column is the input's)"]
             if size else [])
    parts += [f"its graph runs a static batch of {batch}: a larger batch runs in chunks of {batch}, a smaller "
              "one padded to it"] if batch else []
    return f"the model: {'; '.join(parts)}" if parts else None


def _estimate_call_s(c: PlannedConfig, b: int, h: int, w: int, g: float | None, peaks, measured) -> tuple:
    """(estimated seconds per call, how) from this config's last timing, else FLOPs at the fp32 peak."""
    last = measured.get(c.key)
    if last is not None:
        lb, lh, lw, lg, per_image = last
        if g and lg:
            return per_image * g / lg * b, f"from its batch {lb} {lh}x{lw} timing"
        if (lh, lw) == (h, w):
            return per_image * b, f"from its batch {lb} timing"
    peak = (peaks.get(f"{c.device}/fp32") or peaks.get("cpu/fp32") or {}).get("gflops")
    if g and peak:
        return g * b / peak, f"at the {c.device} fp32 matmul peak"
    return None, ""


def _bench_shape(configs, s, b, h, w, g, peaks, clock, log, measured) -> list[dict]:
    active = [c for c in configs if c.status == "ok"]
    rows = {c.key: _row(c, b, h, w, g) for c in active}
    for c in active:
        est, how = _estimate_call_s(c, b, h, w, g, peaks, measured)
        if s.max_call_seconds > 0 and est is not None and est > s.max_call_seconds:
            reason = f"estimated {est:.1f} s/call ({how}) > max_call_seconds={s.max_call_seconds:g}"
            rows[c.key].update(status="skipped", reason=reason)
    run = [c for c in active if rows[c.key]["status"] == "ok"]
    if not run:
        return list(rows.values())
    log(f"batch {b}, {h}x{w}: timing {', '.join(f'{c.backend}/{c.precision}' for c in run)}")
    l = np.random.default_rng(s.seed).uniform(-1, 1, (b, 1, h, w)).astype(np.float32)
    timed = _time_shape(run, l, s, clock)
    base = None
    for c in run:
        row, t = rows[c.key], timed[c.key]
        row["first_call_s"] = t["first_call_s"]
        if t["error"]:
            row.update(status="error", reason=f"run failed: {t['error']}")
            continue
        st = summarize(t["samples"], b)
        row["latency_ms"] = {k: getattr(st, f"{k}_ms") for k in ("p50", "p90", "p99", "mean", "min", "max", "std")}
        row["n"] = st.n
        row["images_per_s"] = st.images_per_s
        row["samples_ms"] = [round(x * 1e3, 6) for x in t["samples"]]
        row["_stats"] = st
        measured[c.key] = (b, h, w, g, st.p50_ms / 1e3 / b)
        if g is not None:
            row["gflops"] = g * st.images_per_s
            key = peak_key(c.device, c.precision, peaks)
            if key:
                row["peak"] = key
                row["peak_share"] = row["gflops"] / peaks[key]["gflops"]
        if c.baseline:
            base = st
    for row in rows.values():
        st = row.pop("_stats", None)
        if st is not None and base is not None:
            row["vs_baseline"] = speedup(base, st)
        if row["status"] == "ok":
            lat = row["latency_ms"]
            log(f"  {row['backend']}/{row['precision']}: p50 {lat['p50']:.2f} ms, {row['images_per_s']:.1f} img/s")
        else:
            log(f"  {row['backend']}/{row['precision']}: {row['status']}: {row['reason']}")
    return list(rows.values())


def _probe_peaks(quick: bool, best: dict, log) -> dict:
    from colorize.benchmarks.peak import probe_peaks

    log("measuring matmul peak ...")
    out = dict(best)
    for k, p in probe_peaks(quick=quick).items():
        if k not in out or p.gflops > out[k]["gflops"]:
            out[k] = p.to_dict()
    return out


def _rescale_peak_shares(results: list[dict], peaks: dict) -> None:
    for r in results:
        if r.get("peak") and r.get("gflops") is not None:
            r["peak_share"] = r["gflops"] / peaks[r["peak"]]["gflops"]


def _row(c: PlannedConfig, b: int, h: int, w: int, g: float | None) -> dict:
    return {
        "backend": c.backend, "precision": c.precision, "device": c.device, "baseline": c.baseline,
        "batch": b, "height": h, "width": w, "status": "ok", "reason": None,
        "load_s": c.load_s, "first_call_s": None, "n": 0, "latency_ms": None, "images_per_s": None,
        "gflop_per_image": g, "gflops": None, "peak": None, "peak_share": None, "vs_baseline": None,
        "samples_ms": [],
    }


def _safe(fn, *args):
    try:
        return fn(*args)
    except Exception:
        return None


def _model_gflop(model: str, notes: list[str]) -> Callable[[int, int], float | None]:
    from colorize.benchmarks.flops import gflop_per_image
    from colorize.artifacts.model_ref import resolve_model

    try:
        ref = resolve_model(model)
    except Exception as e:
        notes.append(f"FLOPs not counted: {error_text(e)}")
        return lambda h, w: None

    def count(h: int, w: int) -> float | None:
        try:
            return gflop_per_image(ref, h, w)
        except Exception as e:
            notes.append(f"FLOPs not counted at {h}x{w}: {error_text(e)}")
            return None

    return count


def _settings_dict(s: BenchSettings) -> dict:
    d = asdict(s)
    d["sizes"] = [list(x) for x in s.sizes]
    d["batch_sizes"] = list(s.batch_sizes)
    for k in ("backends", "precisions"):
        d[k] = list(d[k]) if d[k] else None
    return d
