"""What a serialized TensorRT plan was built for, and whether it can be reused here (plain Python):

* ``BuildTarget``: everything a plan depends on (TensorRT version, GPU name and compute capability,
  precision, profile, ONNX sha256);
* ``PlanInfo``: the sidecar JSON written next to a plan (``model.plan.json``);
* ``plan_mismatches(info, target)``: why a plan cannot be reused (another GPU, TensorRT version, ONNX,
  precision or profile, or modified bytes), which is what triggers a rebuild;
* ``plan_cache_key(...)``: the artifact-cache key of a plan; ``default_timing_cache(...)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from colorize.fsutil import atomic_write_bytes, sha256_file  # noqa: F401  (re-exported)
from colorize.export.trt_profile import Profile

#: bump when the build recipe changes so cached plans are rebuilt
TRT_RECIPE = "trt-build/1"
PLAN_FORMAT = "colorize-trt-plan/1"
PRECISIONS = ("fp16", "fp32")


@dataclass
class BuildTarget:
    """What a plan must have been built for to be reused here."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"
    precision: str
    profile: Profile
    onnx_sha256: str


@dataclass
class PlanInfo:
    """The sidecar JSON of a serialized plan (``<plan>.json``)."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: dict[str, dict[str, list[int]]]
    onnx_sha256: str
    plan_sha256: str
    onnx_path: str = ""
    workspace_bytes: int = 0
    timing_cache: str = ""
    build_seconds: float = 0.0
    built_at: str = ""
    recipe: str = TRT_RECIPE
    format: str = PLAN_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    REQUIRED = ("tensorrt_version", "gpu_name", "compute_capability", "precision", "profile", "onnx_sha256", "plan_sha256")

    @classmethod
    def for_target(cls, target: BuildTarget, plan_sha256: str, **kw: Any) -> "PlanInfo":
        return cls(
            tensorrt_version=target.tensorrt_version,
            gpu_name=target.gpu_name,
            compute_capability=target.compute_capability,
            precision=target.precision,
            profile=target.profile.to_json(),
            onnx_sha256=target.onnx_sha256,
            plan_sha256=plan_sha256,
            **kw,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "plan sidecar") -> "PlanInfo":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}: not JSON ({e})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        if data.get("format") != PLAN_FORMAT:
            raise ValueError(f"{source}: field 'format' is {data.get('format')!r}, expected {PLAN_FORMAT!r}")
        missing = [k for k in cls.REQUIRED if k not in data]
        if missing:
            raise ValueError(f"{source}: missing field(s) {', '.join(missing)}")
        Profile.from_json(data["profile"], f"{source}: field 'profile'")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def sidecar_path(plan_path: str | os.PathLike) -> Path:
    p = Path(plan_path)
    return p.with_name(p.name + ".json")


def read_plan_info(plan_path: str | os.PathLike) -> PlanInfo:
    """The sidecar of ``plan_path``. Raises FileNotFoundError or ValueError (naming the file and field)."""
    side = sidecar_path(plan_path)
    if not side.is_file():
        raise FileNotFoundError(f"plan sidecar not found: {side}")
    return PlanInfo.from_json(side.read_text(), source=str(side))


def plan_mismatches(info: PlanInfo, target: BuildTarget, plan_sha256: str | None = None) -> list[str]:
    """Reasons the plan described by ``info`` cannot be used for ``target`` (empty: reusable)."""
    reasons = []
    if info.recipe != TRT_RECIPE:
        reasons.append(f"build recipe {info.recipe!r} != {TRT_RECIPE!r}")
    if info.tensorrt_version != target.tensorrt_version:
        reasons.append(f"built with TensorRT {info.tensorrt_version}, this is TensorRT {target.tensorrt_version}")
    if info.compute_capability != target.compute_capability:
        reasons.append(
            f"built for compute capability {info.compute_capability} ({info.gpu_name}), "
            f"this GPU is {target.compute_capability} ({target.gpu_name})"
        )
    elif info.gpu_name != target.gpu_name:
        reasons.append(f"built on {info.gpu_name}, this GPU is {target.gpu_name} (tactics were timed on another GPU)")
    if info.precision != target.precision:
        reasons.append(f"precision {info.precision}, wanted {target.precision}")
    if info.onnx_sha256 != target.onnx_sha256:
        reasons.append(f"built from ONNX {info.onnx_sha256[:12]}..., this ONNX is {target.onnx_sha256[:12]}...")
    if info.profile != target.profile.to_json():
        reasons.append(f"profile {info.profile} != wanted {target.profile.to_json()}")
    if plan_sha256 is not None and info.plan_sha256 != plan_sha256:
        reasons.append("the plan file does not match the sha256 in its sidecar (modified or truncated)")
    return reasons


def plan_cache_key(target: BuildTarget, workspace_bytes: int) -> dict[str, Any]:
    """Artifact-cache key of a plan: a new GPU, TensorRT version, ONNX, precision or profile is a new entry."""
    return {
        "kind": "tensorrt",
        "recipe": TRT_RECIPE,
        "tensorrt": target.tensorrt_version,
        "gpu": target.gpu_name,
        "compute_capability": target.compute_capability,
        "precision": target.precision,
        "profile": target.profile.to_json(),
        "onnx_sha256": target.onnx_sha256,
        "workspace_bytes": workspace_bytes,
    }


def default_timing_cache(tensorrt_version: str, compute_capability: str) -> Path:
    """One timing cache per TensorRT version and GPU architecture, shared by every build."""
    from colorize.paths import cache_dir

    cc = compute_capability.replace(".", "")
    return cache_dir() / "tensorrt" / f"timing-trt{tensorrt_version}-sm{cc}.cache"


