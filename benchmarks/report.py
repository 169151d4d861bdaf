"""The benchmark report as JSON: its schema, validation, atomic write and load.

Schema ``colorize-bench/1`` (top level)::

    schema      "colorize-bench/1"
    created     UTC timestamp of the run
    command     the command line, when run from the CLI
    settings    BenchSettings as a dict
    machine     colorize.benchmarks.machine.describe_machine()
    peaks       {"cpu/fp32": {"gflops": float, "how": str}, ...}
    model       {"name", "arch", "random_init", "gflop_per_image": {"HxW": float|null}, "flops_counted"}
    baseline    {"backend": "torch", "precision": "fp32"}
    configs     one per backend x precision: backend, precision, device, baseline, status, reason, load_s,
                guard (the engine's quality-guard verdict for non-FP32 precisions, or null)
    results     one per loaded config x batch x size (fields in RESULT_FIELDS; status "ok" | "skipped" | "error")
    end_to_end  the folder pipeline (benchmarks/e2e.py), fields in E2E_FIELDS
    notes       free-text remarks (random-init warnings, FLOP counting failures)

Times: ``latency_ms`` holds p50/p90/p99/mean/min/max/std in milliseconds,
``samples_ms`` every timed call; ``vs_baseline`` = {"latency", "throughput"}
ratios (> 1 = faster than eager torch fp32).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from colorize.fsutil import atomic_write_text

SCHEMA = "colorize-bench/1"
STATUSES = ("ok", "skipped", "error")
_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))

TOP_FIELDS: dict[str, tuple] = {
    "schema": (str,),
    "created": _OPT_STR,
    "settings": (dict,),
    "machine": (dict,),
    "peaks": (dict,),
    "model": (dict,),
    "baseline": (dict,),
    "configs": (list,),
    "results": (list,),
    "end_to_end": (list,),
    "notes": (list,),
}
CONFIG_FIELDS: dict[str, tuple] = {
    "backend": (str,),
    "precision": (str,),
    "device": (str,),
    "baseline": (bool,),
    "status": (str,),
    "reason": _OPT_STR,
    "load_s": _OPT_NUM,
    "guard": _OPT_STR,
}
RESULT_FIELDS: dict[str, tuple] = {
    "backend": (str,),
    "precision": (str,),
    "device": (str,),
    "baseline": (bool,),
    "batch": (int,),
    "height": (int,),
    "width": (int,),
    "status": (str,),
    "reason": _OPT_STR,
    "load_s": _OPT_NUM,
    "first_call_s": _OPT_NUM,
    "n": (int,),
    "latency_ms": (dict, type(None)),
    "images_per_s": _OPT_NUM,
    "gflop_per_image": _OPT_NUM,
    "gflops": _OPT_NUM,
    "peak": _OPT_STR,
    "peak_share": _OPT_NUM,
    "vs_baseline": (dict, type(None)),
    "samples_ms": (list,),
}
LATENCY_KEYS = ("p50", "p90", "p99", "mean", "min", "max", "std")
E2E_FIELDS: dict[str, tuple] = {
    "backend": (str,),
    "precision": (str,),
    "batch": (int,),
    "height": (int,),
    "width": (int,),
    "images": (int,),
    "status": (str,),
    "reason": _OPT_STR,
    "wall_s": _OPT_NUM,
    "images_per_s": _OPT_NUM,
    "startup_s": _OPT_NUM,
    "steady_images_per_s": _OPT_NUM,
    "model_only_images_per_s": _OPT_NUM,
}


def _check_fields(obj: Any, fields: dict[str, tuple], where: str) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected an object, got {type(obj).__name__}")
    for name, types in fields.items():
        if name not in obj:
            raise ValueError(f"{where}.{name}: missing")
        value = obj[name]
        if isinstance(value, bool) and bool not in types:
            raise ValueError(f"{where}.{name}: expected {'/'.join(t.__name__ for t in types)}, got bool")
        if not isinstance(value, types):
            expected = "/".join(t.__name__ for t in types)
            raise ValueError(f"{where}.{name}: expected {expected}, got {type(value).__name__}")
    if "status" in fields and obj["status"] not in STATUSES:
        raise ValueError(f"{where}.status: expected one of {STATUSES}, got {obj['status']!r}")


def validate_report(report: Any) -> None:
    """Check ``report`` against schema ``colorize-bench/1``.

    Raises:
        ValueError: the first problem, naming the field (e.g. ``results[3].latency_ms.p50``).
    """
    _check_fields(report, TOP_FIELDS, "report")
    if report["schema"] != SCHEMA:
        raise ValueError(f"report.schema: expected {SCHEMA!r}, got {report['schema']!r}")
    for key, peak in report["peaks"].items():
        _check_fields(peak, {"gflops": _NUM, "how": (str,)}, f"peaks[{key!r}]")
    for i, c in enumerate(report["configs"]):
        _check_fields(c, CONFIG_FIELDS, f"configs[{i}]")
    for i, r in enumerate(report["results"]):
        where = f"results[{i}]"
        _check_fields(r, RESULT_FIELDS, where)
        if r["status"] == "ok":
            if r["latency_ms"] is None or r["images_per_s"] is None or r["n"] < 1:
                raise ValueError(f"{where}: status ok needs latency_ms, images_per_s and n >= 1")
            _check_fields(r["latency_ms"], {k: _NUM for k in LATENCY_KEYS}, f"{where}.latency_ms")
            if len(r["samples_ms"]) != r["n"]:
                raise ValueError(f"{where}.samples_ms: {len(r['samples_ms'])} samples but n = {r['n']}")
        elif not r["reason"]:
            raise ValueError(f"{where}.reason: status {r['status']!r} needs a reason")
        if r["vs_baseline"] is not None:
            _check_fields(r["vs_baseline"], {"latency": _OPT_NUM, "throughput": _OPT_NUM}, f"{where}.vs_baseline")
    for i, e in enumerate(report["end_to_end"]):
        _check_fields(e, E2E_FIELDS, f"end_to_end[{i}]")


def _finite(obj: Any) -> Any:
    """Non-finite floats (an infinite ratio from a zero time) become null: JSON has no inf."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(report: dict, path: str | os.PathLike) -> Path:
    """Validate and write ``report`` atomically (temp file + rename); inf/nan are written as null."""
    report = _finite(report)
    validate_report(report)
    return atomic_write_text(path, json.dumps(report, indent=1, allow_nan=False) + "\n")


def load_json(path: str | os.PathLike) -> dict:
    """Read and validate a report written by ``write_json``.

    Raises:
        ValueError: unreadable JSON or a schema problem (the message names the file and field).
    """
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: unreadable benchmark report ({e})") from None
    try:
        validate_report(report)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return report


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` atomically."""
    return atomic_write_text(path, text)
