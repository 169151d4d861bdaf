"""Build a serialized TensorRT engine (plan) from an ONNX model, with the TensorRT 10 Python API.

    from colorize.export.tensorrt_build import build_plan
    result = build_plan("model.onnx", "model.plan", precision="fp16")
    result.rebuilt, result.reasons, result.info

Steps: parse the ONNX into a network (TensorRT 10 networks are always explicit-batch; parser
errors are reported with the failing node's index, name and operator), a builder config with the
workspace limit and the FP16 flag, one optimization profile (``colorize.export.trt_profile.resolve_profile``),
a timing cache loaded from and saved back to a file (so later builds skip tactic timing), then
``build_serialized_network``. The plan and its sidecar JSON (``model.plan.json``: TensorRT version,
GPU, compute capability, precision, profile, ONNX sha256) are written atomically; an existing plan
whose sidecar matches this GPU, TensorRT version, ONNX, precision and profile is reused, otherwise
it is rebuilt and the reasons are reported.

``tensorrt`` is imported lazily (``pip install ".[trt]"``). This module has not run against a
real TensorRT in this project (none can be installed here); its logic is tested with a fake
``tensorrt`` module that records the calls (``tests/export/test_trt_build.py``).
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from colorize.deps import require
from colorize.export.trt_plan import (
    PRECISIONS,
    BuildTarget,
    PlanInfo,
    atomic_write_bytes,
    default_timing_cache,
    plan_mismatches,
    read_plan_info,
    sha256_file,
    sidecar_path,
)
from colorize.export.trt_profile import Profile, onnx_inputs, onnx_stride, resolve_profile

DEFAULT_WORKSPACE = 4 << 30  # bytes of scratch memory tactics may use


class TensorRTBuildError(RuntimeError):
    """The ONNX could not be parsed or the engine could not be built."""


@dataclass
class BuildResult:
    plan_path: Path
    info: PlanInfo
    rebuilt: bool
    reasons: list[str] = field(default_factory=list)  # why an existing plan was rebuilt


def gpu_identity(device: int = 0) -> tuple[str, str]:
    """(name, "major.minor") of the CUDA device, through torch."""
    torch = require("torch", "torch")
    if not torch.cuda.is_available():
        raise TensorRTBuildError("no CUDA device: a TensorRT engine is built on the GPU it will run on")
    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"{major}.{minor}"


def build_target(
    onnx_path: str | os.PathLike,
    precision: str = "fp16",
    min_shapes=None,
    opt_shapes=None,
    max_shapes=None,
    tensorrt_version: str | None = None,
    gpu: tuple[str, str] | None = None,
) -> BuildTarget:
    """Everything a plan for ``onnx_path`` depends on (reads the ONNX; TensorRT and the GPU only when
    ``tensorrt_version``/``gpu`` are not given)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    inputs = onnx_inputs(onnx_path)
    stride = onnx_stride(onnx_path) or 8
    profile = resolve_profile(inputs, min_shapes, opt_shapes, max_shapes, stride=stride)
    if tensorrt_version is None:
        tensorrt_version = require("tensorrt", "trt").__version__
    name, cc = gpu if gpu is not None else gpu_identity()
    return BuildTarget(tensorrt_version, name, cc, precision, profile, sha256_file(onnx_path))


def _parser_errors(parser) -> str:
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node = err.node()
        name = err.node_name() if hasattr(err, "node_name") else ""
        op = err.node_operator() if hasattr(err, "node_operator") else ""
        where = f"node {node}" + (f" {name!r}" if name else "") + (f" ({op})" if op else "") if node >= 0 else "graph"
        lines.append(f"  {where}: {err.desc()} [code {err.code()}]")
    return "\n".join(lines)


def serialize_network(
    onnx_path: Path,
    profile: Profile,
    precision: str,
    workspace_bytes: int = DEFAULT_WORKSPACE,
    timing_cache: Path | None = None,
    verbose: bool = False,
) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine (the TensorRT calls).

    Raises:
        TensorRTBuildError: parse errors (with node names), profile/network mismatch, or a failed build.
    """
    trt = require("tensorrt", "trt")
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes(), str(onnx_path)):
        raise TensorRTBuildError(f"{onnx_path}: TensorRT's ONNX parser failed:\n{_parser_errors(parser)}")

    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if sorted(names) != sorted(profile.shapes):
        raise TensorRTBuildError(f"network inputs {names} do not match the profile's {sorted(profile.shapes)}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    for name, (lo, mid, hi) in profile.shapes.items():
        opt_profile.set_shape(name, lo, mid, hi)
    config.add_optimization_profile(opt_profile)

    if timing_cache is not None:
        blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise TensorRTBuildError(f"{onnx_path}: build_serialized_network failed (see the TensorRT log above)")
    if timing_cache is not None:
        atomic_write_bytes(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(plan))


def build_plan(
    onnx_path: str | os.PathLike,
    plan_path: str | os.PathLike,
    precision: str = "fp16",
    min_shapes=None,
    opt_shapes=None,
    max_shapes=None,
    workspace_bytes: int = DEFAULT_WORKSPACE,
    timing_cache: str | os.PathLike | None | bool = True,
    force: bool = False,
    verbose: bool = False,
    log: Callable[[str], None] = print,
) -> BuildResult:
    """Build ``plan_path`` (+ sidecar) from ``onnx_path`` unless an up-to-date plan is already there.

    Args:
        timing_cache: a path, True (the default per-TensorRT/GPU cache file), or False/None (none).
        force: rebuild even when the existing plan is up to date.

    Raises:
        FileNotFoundError, ValueError: bad ONNX path or shapes.
        MissingDependency: tensorrt or torch is not installed.
        TensorRTBuildError: the parse or the build failed.
    """
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    trt = require("tensorrt", "trt")
    target = build_target(onnx_path, precision, min_shapes, opt_shapes, max_shapes, tensorrt_version=trt.__version__)
    reasons: list[str] = []
    if plan_path.is_file():
        try:
            info = read_plan_info(plan_path)
            reasons = plan_mismatches(info, target, sha256_file(plan_path))
        except (FileNotFoundError, ValueError) as e:
            reasons = [str(e)]
        if not reasons and not force:
            return BuildResult(plan_path, info, rebuilt=False)
        if force and not reasons:
            reasons = ["--force"]
        log(f"rebuilding {plan_path}: " + "; ".join(reasons))

    if timing_cache is True:
        cache_path: Path | None = default_timing_cache(target.tensorrt_version, target.compute_capability)
    elif timing_cache:
        cache_path = Path(timing_cache)
    else:
        cache_path = None
    t0 = time.perf_counter()
    plan = serialize_network(onnx_path, target.profile, precision, workspace_bytes, cache_path, verbose)
    info = PlanInfo.for_target(
        target,
        plan_sha256=_sha256_bytes(plan),
        onnx_path=str(onnx_path),
        workspace_bytes=workspace_bytes,
        timing_cache=str(cache_path or ""),
        build_seconds=round(time.perf_counter() - t0, 3),
        built_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    # Plan first, sidecar last: a crash in between leaves a plan whose sidecar does not match it.
    atomic_write_bytes(plan_path, plan)
    atomic_write_bytes(sidecar_path(plan_path), info.to_json().encode())
    return BuildResult(plan_path, info, rebuilt=True, reasons=reasons)


def _sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
