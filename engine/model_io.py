"""``ModelIO``: how a colorizer wants its input and gives its output (its *convention*), torch-free.

Every value the engine exchanges with a model is a linear map of a *natural* quantity, per channel:

    model value = natural * scale + offset

    input  "l"         1 channel, natural = CIE L* in [0, 100]
           "gray_rgb"  3 channels, natural = the gray image's sRGB in [0, 1] (L* with a = b = 0, as RGB)
           "rgb"       3 channels, the same gray sRGB (a model that takes a colour photo gets its gray)
    output "ab"        2 channels, natural = CIE a, b (Lab units)
           "lab"       3 channels, natural = L*, a, b (L is ignored: the output's luminance is the input's)
           "rgb"       3 channels, natural = sRGB in [0, 1] (the engine keeps its chroma: ab of its Lab)

Size: ``size=None`` runs any H, W, edge-padded to a multiple of ``stride``; ``size=(H, W)`` is a static model
that the engine resizes to and back. ``batch``: a static batch (the graph's fixed N, as most exports in the wild
have: DDColor's is 1); the backends run larger batches in chunks of it and pad smaller ones
(``engine/backends/base.py``); None: any N. ``layout`` is "nchw" or "nhwc", for both tensors. ``input_name`` and
``output_name`` pick the tensors (None: the graph's first).

Stride: ``model_stride(ref)`` is the one rule for what a model's H and W are padded to a multiple of: its
description's (1 for a static size), else the ``colorize.total_stride`` its export recorded, else its
architecture's (``ARCH_STRIDES``: every registered colorizer, checked against the real networks by
``tests/engine/test_stride.py``; ``colorize.models.register_model`` refuses a colorizer missing from it).

Stored as JSON in the ONNX metadata key ``colorize.io`` (``to_dict`` / ``from_dict``); written from the command
line with ``parse_input`` / ``parse_output`` / ``parse_size`` (``colorize import``). Our own models speak
``ModelIO.native(normalization, stride)``: L' = (L - 50) / 50 in, ab / 110 out, dynamic with their stride.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass

from colorize.image.color import DEFAULT_NORMALIZATION, Normalization

INPUT_KINDS = {"l": 1, "gray_rgb": 3, "rgb": 3}  # kind -> channels
OUTPUT_KINDS = {"ab": 2, "lab": 3, "rgb": 3}
LAYOUTS = ("nchw", "nhwc")
#: ImageNet's per-channel mean and std of sRGB in [0, 1] (torchvision, fastai, DeOldify)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the natural range of each kind, for range specs ("l:-1..1" maps L* 0..100 onto -1..1)
_NATURAL_RANGE = {"l": (0.0, 100.0), "gray_rgb": (0.0, 1.0), "rgb": (0.0, 1.0)}


class ModelIOError(ValueError):
    """A model's I/O description is invalid or contradicts its graph; the message names the field."""


def _floats(field: str, values, n: int) -> tuple[float, ...]:
    if isinstance(values, (int, float)):
        values = [values]
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ModelIOError(f"model io field {field!r}: expected numbers, got {values!r}") from None
    if len(out) == 1:
        out = out * n
    if len(out) != n:
        raise ModelIOError(f"model io field {field!r}: expected 1 or {n} values, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ModelIOError(f"model io field {field!r}: values must be finite, got {list(out)}")
    return out


@dataclass(frozen=True)
class ModelIO:
    """A colorizer's I/O convention (see the module docstring)."""

    input: str = "l"
    input_scale: tuple[float, ...] = (0.02,)  # L* 0..100 -> -1..1: (L - 50) / 50
    input_offset: tuple[float, ...] = (-1.0,)
    output: str = "ab"
    output_scale: tuple[float, ...] = (1 / 110, 1 / 110)  # ab / 110
    output_offset: tuple[float, ...] = (0.0, 0.0)
    size: tuple[int, int] | None = None  # static (H, W); None: dynamic
    stride: int = 1  # dynamic models: H and W are padded to a multiple of this
    layout: str = "nchw"
    input_name: str | None = None  # None: the graph's first input
    output_name: str | None = None  # None: the graph's first output
    batch: int | None = None  # a static batch (the graph's fixed N); None: any

    def __post_init__(self):
        if self.input not in INPUT_KINDS:
            raise ModelIOError(f"model io field 'input': unknown kind {self.input!r}; valid: {', '.join(INPUT_KINDS)}")
        if self.output not in OUTPUT_KINDS:
            raise ModelIOError(
                f"model io field 'output': unknown kind {self.output!r}; valid: {', '.join(OUTPUT_KINDS)}")
        if self.layout not in LAYOUTS:
            raise ModelIOError(f"model io field 'layout': unknown layout {self.layout!r}; valid: {', '.join(LAYOUTS)}")
        set_ = object.__setattr__  # frozen: normalize the fields once, here
        for name, n in (("input_scale", self.in_channels), ("input_offset", self.in_channels),
                        ("output_scale", self.out_channels), ("output_offset", self.out_channels)):
            set_(self, name, _floats(name, getattr(self, name), n))
        for name in ("input_scale", "output_scale"):
            if any(v == 0 for v in getattr(self, name)):
                raise ModelIOError(f"model io field {name!r}: a scale of 0 loses the signal")
        if self.size is not None:
            try:
                h, w = (int(v) for v in self.size)
            except (TypeError, ValueError):
                raise ModelIOError(f"model io field 'size': expected [H, W] or null, got {self.size!r}") from None
            if h < 1 or w < 1:
                raise ModelIOError(f"model io field 'size': H and W must be >= 1, got {h}x{w}")
            set_(self, "size", (h, w))
        if not isinstance(self.stride, int) or isinstance(self.stride, bool) or self.stride < 1:
            raise ModelIOError(f"model io field 'stride': expected an integer >= 1, got {self.stride!r}")
        if self.batch is not None and (not isinstance(self.batch, int) or isinstance(self.batch, bool)
                                       or self.batch < 1):
            raise ModelIOError(f"model io field 'batch': expected an integer >= 1 or null, got {self.batch!r}")

    @property
    def in_channels(self) -> int:
        return INPUT_KINDS[self.input]

    @property
    def out_channels(self) -> int:
        return OUTPUT_KINDS[self.output]

    @property
    def pad_stride(self) -> int:
        """What the engine pads H and W to a multiple of: ``stride`` for a dynamic model, 1 for a static one
        (resized to its size instead)."""
        return 1 if self.size is not None else self.stride

    @classmethod
    def native(cls, norm: Normalization = DEFAULT_NORMALIZATION, stride: int = 8) -> "ModelIO":
        """Our own models' convention: L' = (L - l_center) / l_scale in, ab / ab_scale out, tensors "l" and "ab"."""
        return cls("l", (1 / norm.l_scale,), (-norm.l_center / norm.l_scale,), "ab",
                   (1 / norm.ab_scale,) * 2, (0.0, 0.0), None, int(stride), "nchw", "l", "ab")

    def is_native(self, norm: Normalization, stride: int) -> bool:
        """Whether this is ``native(norm, stride)`` (tensor names aside): the engine then adapts nothing."""
        n = ModelIO.native(norm, stride)
        return (self.input, self.output, self.size, self.stride, self.layout) == (
            "l", "ab", None, n.stride, "nchw") and all(
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
            for a, b in zip(self.input_scale + self.input_offset + self.output_scale + self.output_offset,
                            n.input_scale + n.input_offset + n.output_scale + n.output_offset))

    # -- JSON ------------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("input_scale", "input_offset", "output_scale", "output_offset"):
            d[k] = list(d[k])
        d["size"] = list(self.size) if self.size else None
        if d["batch"] is None:  # any batch: left out, so descriptions written before the field read the same
            del d["batch"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelIO":
        """From ``to_dict``'s form; ``input`` / ``output`` may also be specs ("gray_rgb:0..1", "ab:lab") and
        ``size`` a spec ("512x512", "dynamic:8"), as on the command line. Raises ModelIOError naming the field."""
        if not isinstance(d, dict):
            raise ModelIOError(f"model io: expected a JSON object, got {type(d).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelIOError(f"model io: unknown field(s) {unknown}; valid: {', '.join(sorted(known))}")
        kw = dict(d)
        if isinstance(kw.get("input"), str) and ":" in kw["input"]:
            kind, scale, offset = parse_input(kw["input"])
            kw.update(input=kind, input_scale=scale, input_offset=offset)
        if isinstance(kw.get("output"), str) and ":" in kw["output"]:
            kind, scale, offset = parse_output(kw["output"])
            kw.update(output=kind, output_scale=scale, output_offset=offset)
        if isinstance(kw.get("size"), str):
            kw["size"], stride = parse_size(kw["size"])
            kw.setdefault("stride", stride)
        if "input" in kw and "input_scale" not in kw:  # a bare kind: its natural range
            kw["input_scale"], kw["input_offset"] = (1.0,), (0.0,)
        if "output" in kw and "output_scale" not in kw:
            kw["output_scale"], kw["output_offset"] = (1.0,), (0.0,)
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str, source: str = "model io") -> "ModelIO":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelIOError(f"{source}: not JSON ({e})") from None
        try:
            return cls.from_dict(d)
        except ModelIOError as e:
            raise ModelIOError(f"{source}: {e}") from None

    def describe(self) -> str:
        size = f"{self.size[0]}x{self.size[1]}" if self.size else f"dynamic:{self.stride}"
        batch = f", batch {self.batch}" if self.batch is not None else ""
        return f"{self.input} -> {self.output}, {size}{batch}, {self.layout}"


# -- command-line specs ----------------------------------------------------------------------------------------------

def _range(field: str, text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(".."))
    except ValueError:
        raise ModelIOError(f"model io field {field!r}: expected a range LO..HI, got {text!r}") from None
    if lo == hi:
        raise ModelIOError(f"model io field {field!r}: empty range {text!r}")
    return lo, hi


def _mean_std(field: str, text: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if text == "imagenet":
        return IMAGENET_MEAN, IMAGENET_STD
    parts = dict(p.split("=", 1) for p in text.split("/") if "=" in p)
    if set(parts) != {"mean", "std"}:
        raise ModelIOError(f"model io field {field!r}: expected imagenet or mean=M,M,M/std=S,S,S, got {text!r}")
    return _floats(field, parts["mean"].split(","), 3), _floats(field, parts["std"].split(","), 3)


def parse_input(spec: str) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """"KIND[:LO..HI | :imagenet | :mean=../std=..]" -> (kind, scale, offset).

    A range maps the kind's natural range onto LO..HI (``l:-1..1`` is (L - 50) / 50; ``l:0..100`` is L* as is;
    ``gray_rgb:0..1`` is sRGB as is); mean/std apply to sRGB in [0, 1]: (x - mean) / std. No range: natural.
    """
    kind, _, arg = spec.partition(":")
    if kind not in INPUT_KINDS:
        raise ModelIOError(f"model io field 'input': unknown kind {kind!r}; valid: {', '.join(INPUT_KINDS)}")
    n = INPUT_KINDS[kind]
    if not arg:
        return kind, (1.0,) * n, (0.0,) * n
    if ".." in arg:
        lo, hi = _range("input", arg)
        n0, n1 = _NATURAL_RANGE[kind]
        scale = (hi - lo) / (n1 - n0)
        return kind, (scale,) * n, (lo - n0 * scale,) * n
    if kind == "l":
        raise ModelIOError(f"model io field 'input': 'l' takes a range LO..HI, got {arg!r}")
    mean, std = _mean_std("input", arg)
    return kind, tuple(1 / s for s in std), tuple(-m / s for m, s in zip(mean, std))


def parse_output(spec: str) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """"ab:lab" (Lab units), "ab:110" (ab / 110), "lab:lab", "lab:128"; "rgb:LO..HI" (sRGB 0..1 onto LO..HI),
    "rgb:imagenet" or "rgb:mean=../std=.." ((rgb - mean) / std) -> (kind, scale, offset)."""
    kind, _, arg = spec.partition(":")
    if kind not in OUTPUT_KINDS:
        raise ModelIOError(f"model io field 'output': unknown kind {kind!r}; valid: {', '.join(OUTPUT_KINDS)}")
    n = OUTPUT_KINDS[kind]
    if not arg or arg == "lab" and kind != "rgb":
        return kind, (1.0,) * n, (0.0,) * n
    if kind in ("ab", "lab"):
        try:
            div = float(arg)
        except ValueError:
            raise ModelIOError(
                f"model io field 'output': {kind!r} takes 'lab' (Lab units) or a divisor (110: ab / 110), "
                f"got {arg!r}") from None
        if div == 0 or not math.isfinite(div):
            raise ModelIOError(f"model io field 'output': divisor must be finite and non-zero, got {arg!r}")
        return kind, (1 / div,) * n, (0.0,) * n
    if ".." in arg:
        lo, hi = _range("output", arg)
        return kind, (hi - lo,) * n, (lo,) * n
    mean, std = _mean_std("output", arg)
    return kind, tuple(1 / s for s in std), tuple(-m / s for m, s in zip(mean, std))


def parse_size(spec: str) -> tuple[tuple[int, int] | None, int]:
    """"HxW" (static) or "dynamic[:STRIDE]" -> (size or None, stride)."""
    if spec.startswith("dynamic"):
        _, _, stride = spec.partition(":")
        try:
            return None, int(stride or 1)
        except ValueError:
            raise ModelIOError(f"model io field 'size': expected dynamic:STRIDE, got {spec!r}") from None
    try:
        h, w = (int(v) for v in spec.lower().split("x"))
    except ValueError:
        raise ModelIOError(f"model io field 'size': expected HxW (512x512) or dynamic[:STRIDE], got {spec!r}") from None
    return (h, w), 1


def read_io_file(path: str | os.PathLike) -> ModelIO:
    """A JSON description (``--io spec.json``)."""
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        raise ModelIOError(f"{path}: cannot read the model io description ({e.strerror})") from None
    return ModelIO.from_json(text, source=os.fspath(path))


def model_io(ref) -> ModelIO:
    """The convention of a resolved model (``ModelRef``): its ``colorize.io`` metadata, else our own (from its
    normalization and stride)."""
    d = ref.metadata.get("io")
    if d:
        return d if isinstance(d, ModelIO) else ModelIO.from_dict(d)
    return ModelIO.native(ref.normalization, model_stride(ref))


# -- the stride ------------------------------------------------------------------------------------------------------

_STEM_STRIDES = {"cifar": 8, "imagenet": 32}  # a ResNet encoder's: 3 stride-2 stages, +4 for the 7x7/2 + max-pool


def _resnet_stem(default: str):
    def stride(kw: dict) -> int:
        stem = kw.get("stem", default)
        if stem not in _STEM_STRIDES:
            raise ValueError(f"unknown stem {stem!r}; valid: {', '.join(_STEM_STRIDES)}")
        return _STEM_STRIDES[stem]

    return stride


#: total stride of every registered colorizer architecture (``colorize.models``), from its keyword arguments:
#: how much its encoder downsamples, so what H and W must be multiples of. Torch-free, for the engine; the
#: registry refuses a colorizer that is not here, and ``tests/engine/test_stride.py`` checks each against its network.
ARCH_STRIDES = {
    "resnet18-unet": _resnet_stem("cifar"),
    "resnet34-unet": _resnet_stem("cifar"),
    "resnet50-unet": _resnet_stem("cifar"),
    "resnet18-unet-lite": _resnet_stem("imagenet"),
    "resnet34-unet-lite": _resnet_stem("imagenet"),
    "efficientnet_lite0-unet": lambda kw: 32,
    "efficientnet_lite1-unet": lambda kw: 32,
    "efficientnet_lite2-unet": lambda kw: 32,
    "seed-unet": lambda kw: 2 ** (len(kw.get("widths", (64, 128, 256, 512, 1024))) - 1),
}


def arch_stride(arch: str, arch_kwargs: dict | None = None) -> int:
    """The total stride of a registered colorizer architecture built with ``arch_kwargs``.

    Raises:
        ValueError: an architecture ``ARCH_STRIDES`` does not know (the message lists those it knows).
    """
    if arch not in ARCH_STRIDES:
        raise ValueError(f"no stride known for architecture {arch!r} (and its file records none); "
                         f"known: {', '.join(ARCH_STRIDES)}")
    return int(ARCH_STRIDES[arch](dict(arch_kwargs or {})))


def stride_of(metadata: dict, arch: str = "", arch_kwargs: dict | None = None) -> int:
    """The one stride rule, from what a model file says (``model_stride`` for a ``ModelRef``): its I/O
    description's ``pad_stride``, else the recorded ``total_stride``, else ``arch_stride(arch, arch_kwargs)``.

    Raises:
        ModelIOError: the description is invalid; ValueError: a recorded stride that is not an integer >= 1, or
            nothing recorded and an architecture without a known stride.
    """
    d = metadata.get("io")
    if d:
        return (d if isinstance(d, ModelIO) else ModelIO.from_dict(d)).pad_stride
    if metadata.get("total_stride") is not None:
        value = metadata["total_stride"]
        try:
            stride = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"metadata 'colorize.total_stride' is not an integer: {value!r}") from None
        if stride < 1:
            raise ValueError(f"metadata 'colorize.total_stride' must be >= 1, got {stride}")
        return stride
    return arch_stride(arch, arch_kwargs)


def model_stride(ref) -> int:
    """What a resolved model's (``ModelRef``) H and W are padded to a multiple of (``stride_of``)."""
    return stride_of(ref.metadata, ref.arch, ref.arch_kwargs)
