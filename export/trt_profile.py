"""TensorRT optimization profiles, in plain Python (unit-tested; no TensorRT needed):

* ``onnx_inputs(path)``: graph inputs with static and dynamic dims (``onnx`` package, no weights read);
* ``parse_shapes("l:1x1x32x32")``: trtexec-style ``--min/--opt/--max`` specs;
* ``resolve_profile(inputs, ...)``: one optimization profile, defaults derived from the dynamic axes
  (axis 0 = batch, other dynamic axes = spatial, multiples of the model's stride), overrides validated.

The plan's sidecar, reuse checks and cache keys are in ``export/trt_plan.py``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Shape = tuple[int, ...]


@dataclass(frozen=True)
class DefaultRanges:
    """(min, opt, max) used for a dynamic axis when no shape is given."""

    # batch: opt 8 (a small serving batch); max 32 bounds the activation memory TensorRT
    # reserves for the max shape. Larger batches are run in chunks by the backend.
    batch: tuple[int, int, int] = (1, 8, 32)
    # H, W in units of the model's stride: 1 x stride (a 1-pixel image, padded) up to 64 x 8 = 512 px;
    # opt 256 px (32 x 8) is a typical photo side after resizing.
    spatial_strides: tuple[int, int, int] = (1, 32, 64)


@dataclass(frozen=True)
class InputSpec:
    name: str
    dims: tuple[int | str | None, ...]  # int: static; str: named dynamic axis; None: unnamed dynamic

    @property
    def dynamic_axes(self) -> list[int]:
        return [i for i, d in enumerate(self.dims) if not isinstance(d, int)]


def onnx_inputs(path: str | os.PathLike) -> list[InputSpec]:
    """The real inputs (initializers excluded) of an ONNX model, with their dims.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ONNX model, or an input that is not a tensor.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and others
        raise ValueError(f"{path}: not a readable ONNX model ({e})") from None
    initializers = {t.name for t in proto.graph.initializer}
    specs = []
    for inp in proto.graph.input:
        if inp.name in initializers:
            continue
        if not inp.type.HasField("tensor_type"):
            raise ValueError(f"{path}: input {inp.name!r} is not a tensor")
        dims: list[int | str | None] = []
        for d in inp.type.tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or None)
        specs.append(InputSpec(inp.name, tuple(dims)))
    if not specs:
        raise ValueError(f"{path}: the ONNX graph has no inputs")
    return specs


def onnx_stride(path: str | os.PathLike) -> int | None:
    """The stride of a model file from its colorize metadata (``colorize.model_io.stride_of``, the engine's rule:
    its ``colorize.io``, else ``colorize.total_stride``), or None when it records neither."""
    import json

    import onnx

    from colorize.model_io import stride_of

    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if props.get("colorize.total_stride") is None and not props.get("colorize.io"):
        return None
    try:
        io = json.loads(props.get("colorize.io") or "{}")
        return stride_of({"total_stride": props.get("colorize.total_stride"), "io": io})
    except ValueError as e:  # ModelIOError and a JSON error too
        raise ValueError(f"{path}: {e}") from None


_SHAPE = re.compile(r"^\d+(x\d+)*$")


def parse_shapes(spec: str | None, inputs: list[InputSpec] | None = None) -> dict[str, Shape]:
    """Parse ``"l:1x1x32x32,other:4x3"`` (trtexec syntax). With a single input the name may be
    left out (``"1x1x32x32"``).

    Raises:
        ValueError: malformed spec, unknown input name, or a name-less shape with several inputs.
    """
    if spec is None or not spec.strip():
        return {}
    names = [i.name for i in inputs] if inputs is not None else None
    out: dict[str, Shape] = {}
    for part in spec.split(","):
        part = part.strip()
        name, sep, dims = part.rpartition(":")
        if not sep:
            if names is None or len(names) != 1:
                raise ValueError(f"shape {part!r} has no input name; write NAME:DxDx... (inputs: {names})")
            name = names[0]
        if not _SHAPE.match(dims):
            raise ValueError(f"shape {part!r}: expected NAME:DxDx... with positive integers, e.g. l:1x1x32x32")
        if names is not None and name not in names:
            raise ValueError(f"shape {part!r}: no input named {name!r}; inputs: {', '.join(names)}")
        shape = tuple(int(d) for d in dims.split("x"))
        if min(shape) < 1:
            raise ValueError(f"shape {part!r}: dimensions must be >= 1")
        if name in out:
            raise ValueError(f"shape for input {name!r} given twice in {spec!r}")
        out[name] = shape
    return out


@dataclass(frozen=True)
class Profile:
    """One TensorRT optimization profile: input name -> (min, opt, max) shapes."""

    shapes: dict[str, tuple[Shape, Shape, Shape]]

    def to_json(self) -> dict[str, dict[str, list[int]]]:
        return {n: {"min": list(a), "opt": list(b), "max": list(c)} for n, (a, b, c) in sorted(self.shapes.items())}

    @classmethod
    def from_json(cls, data: Any, source: str = "profile") -> "Profile":
        try:
            return cls(
                {n: tuple(tuple(int(d) for d in v[k]) for k in ("min", "opt", "max")) for n, v in data.items()}
            )
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{source}: malformed profile {data!r} ({e})") from None

    def check(self, name: str, shape: Shape) -> None:
        """Raise ValueError unless ``shape`` lies inside the profile of input ``name``."""
        if name not in self.shapes:
            raise ValueError(f"no input named {name!r} in the profile; inputs: {', '.join(self.shapes)}")
        lo, _, hi = self.shapes[name]
        if len(shape) != len(lo) or any(not (a <= s <= b) for s, a, b in zip(shape, lo, hi)):
            raise ValueError(
                f"input {name!r} shape {list(shape)} is outside the engine's profile "
                f"min {list(lo)} .. max {list(hi)}; rebuild with a wider --min/--max"
            )

    def max_batch(self, name: str) -> int:
        return self.shapes[name][2][0]


def _default_shapes(spec: InputSpec, stride: int, ranges: DefaultRanges) -> tuple[Shape, Shape, Shape]:
    shapes: list[list[int]] = [[], [], []]
    for axis, d in enumerate(spec.dims):
        if isinstance(d, int):
            values = (d, d, d)
        elif axis == 0:
            values = ranges.batch
        elif axis >= 2:
            values = tuple(stride * s for s in ranges.spatial_strides)
        else:
            raise ValueError(
                f"input {spec.name!r}: axis {axis} ({d or 'unnamed'}) is dynamic and is neither batch nor spatial; "
                "give its --min/--opt/--max shapes explicitly"
            )
        for k in range(3):
            shapes[k].append(values[k])
    return tuple(tuple(s) for s in shapes)  # type: ignore[return-value]


def resolve_profile(
    inputs: list[InputSpec],
    min_shapes: dict[str, Shape] | None = None,
    opt_shapes: dict[str, Shape] | None = None,
    max_shapes: dict[str, Shape] | None = None,
    stride: int = 8,
    ranges: DefaultRanges = DefaultRanges(),
) -> Profile:
    """The optimization profile: defaults from the dynamic axes, overridden by explicit shapes.

    Shapes not given are clamped to the given ones (``--max 4x1x64x64`` alone lowers opt to fit).

    Raises:
        ValueError: a shape whose rank or static dims disagree with the ONNX input, min > opt > max,
            or a dynamic H/W that is not a multiple of ``stride``.
    """
    min_shapes, opt_shapes, max_shapes = min_shapes or {}, opt_shapes or {}, max_shapes or {}
    known = {i.name for i in inputs}
    for kind, given in (("min", min_shapes), ("opt", opt_shapes), ("max", max_shapes)):
        for name in given:
            if name not in known:
                raise ValueError(f"--{kind}: no input named {name!r}; inputs: {', '.join(sorted(known))}")
    out: dict[str, tuple[Shape, Shape, Shape]] = {}
    for spec in inputs:
        given = {"min": min_shapes.get(spec.name), "opt": opt_shapes.get(spec.name), "max": max_shapes.get(spec.name)}
        for kind, shape in given.items():
            if shape is None:
                continue
            if len(shape) != len(spec.dims):
                raise ValueError(
                    f"--{kind} shape {list(shape)} for input {spec.name!r} has rank {len(shape)}, the ONNX input has "
                    f"rank {len(spec.dims)} (dims {list(spec.dims)})"
                )
            for axis, (s, d) in enumerate(zip(shape, spec.dims)):
                if isinstance(d, int) and s != d:
                    raise ValueError(f"--{kind} shape {list(shape)} for input {spec.name!r}: axis {axis} is static {d} in the ONNX")
        if all(v is not None for v in given.values()):
            lo, mid, hi = given["min"], given["opt"], given["max"]
        else:
            lo, mid, hi = _default_shapes(spec, stride, ranges)
            lo = given["min"] or lo
            hi = given["max"] or hi
            if given["opt"] is not None:
                mid = given["opt"]
            else:
                mid = tuple(min(max(m, a), b) for m, a, b in zip(mid, lo, hi))
            if given["min"] is None:
                lo = tuple(min(a, m) for a, m in zip(lo, mid))
            if given["max"] is None:
                hi = tuple(max(b, m) for b, m in zip(hi, mid))
        for axis, (a, m, b) in enumerate(zip(lo, mid, hi)):
            if not a <= m <= b:
                raise ValueError(
                    f"input {spec.name!r} axis {axis}: need min <= opt <= max, got {a} / {m} / {b} "
                    f"(min {list(lo)}, opt {list(mid)}, max {list(hi)})"
                )
        for axis in spec.dynamic_axes:
            if axis >= 2 and any(s[axis] % stride for s in (lo, mid, hi)):
                raise ValueError(
                    f"input {spec.name!r} axis {axis}: H and W must be multiples of the model's stride {stride}, "
                    f"got min {lo[axis]}, opt {mid[axis]}, max {hi[axis]}"
                )
        out[spec.name] = (tuple(lo), tuple(mid), tuple(hi))
    return Profile(out)
