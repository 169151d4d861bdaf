"""Resolve what a user passes as ``model`` (a shipped model's name or a path)
into a ``ModelRef``, without importing torch.

Accepted:
  * a shipped model's name (``resnet18-unet``): ``models/weights/<name>.json``
    (+ ``.safetensors``, and ``.onnx`` when shipped);
  * a checkpoint path (``.json`` or ``.safetensors`` of the checkpoint format);
  * an ONNX file exported by ``colorize export`` (``.onnx``): name, normalization, weights
    sha256 and stride come from its metadata (``engine/artifacts/onnx_metadata.py``).
A registered architecture name with no shipped weights resolves to a
random-init model (``random_init=True``), for benchmarking and tests.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorize.deps import install_hint
from colorize.image.color import DEFAULT_NORMALIZATION, Normalization

WEIGHTS_DIR = Path(__file__).resolve().parent.parent.parent / "models" / "weights"
#: ``Engine.load``'s default: the CIFAR-10 colorizer (the name stays valid; a documented contract).
DEFAULT_MODEL = "resnet18-unet"
#: The default of everything that colorizes photos (``Colorizer.load``, ``colorize images``, ``colorize serve``):
#: ``efficientnet_lite0-unet`` (3.8 GFLOP at 256x256), its encoder pretrained on ImageNet, trained on photo crops
#: from users' kinds of gray (docs/models-and-training.md, docs/quality.md).
DEFAULT_PHOTO_MODEL = "efficientnet_lite0-unet-photos"
#: The default photo model's small-image model and the long side, in px, up to which it takes images at their
#: size (``Colorizer.load(small_model="auto")``): on CIFAR-10 test images it beats the photo model by 0.6 dB, and
#: on photos reduced to 32 px it is about as good; larger, the photo model is better (docs/quality.md).
SMALL_IMAGE_MODEL = DEFAULT_MODEL
SMALL_IMAGE_MAX_SIDE = 32
#: The largest colour strength (``colorize.colorizer.check_strength``: the predicted chroma times it).
MAX_COLOUR_STRENGTH = 4.0


@dataclass
class ModelRef:
    name: str  # registry architecture or shipped-model name
    arch: str  # registry architecture name
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    normalization: Normalization = DEFAULT_NORMALIZATION
    checkpoint: Path | None = None  # checkpoint .json, when there are weights
    onnx: Path | None = None  # exported ONNX, when there is one
    sha256: str | None = None  # weights sha256 (identity for caches)
    random_init: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


def _from_checkpoint_json(json_path: Path, name: str | None = None) -> ModelRef:
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{json_path}: unreadable checkpoint metadata ({e})") from None
    if not isinstance(meta, dict) or "arch" not in meta or "weights" not in meta:
        raise ValueError(f"{json_path}: not a colorize checkpoint (needs 'arch' and 'weights')")
    norm = meta.get("normalization")
    onnx = json_path.with_suffix(".onnx")
    return ModelRef(
        name=name or meta.get("name") or meta["arch"],
        arch=meta["arch"],
        arch_kwargs=dict(meta.get("arch_kwargs") or {}),
        normalization=Normalization.from_dict(norm) if norm else DEFAULT_NORMALIZATION,
        checkpoint=json_path,
        onnx=onnx if onnx.is_file() else None,
        sha256=meta["weights"].get("sha256"),
        metadata=meta,
    )


def _from_onnx(path: Path) -> ModelRef:
    """An exported ONNX file: identity, normalization and stride from its metadata."""
    from colorize.artifacts.onnx_metadata import read_onnx_metadata

    meta = read_onnx_metadata(path)
    try:
        norm = Normalization.from_dict(meta.normalization)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: metadata 'colorize.normalization' is invalid ({e})") from None
    return ModelRef(
        name=meta.name,
        arch=meta.arch,
        arch_kwargs=meta.arch_kwargs,
        normalization=norm,
        onnx=path,
        sha256=meta.weights_sha256,
        metadata={"total_stride": meta.total_stride, "weights_dtype": meta.weights_dtype, "random_init": meta.random_init,
                  "inference": {"min_working_size": meta.min_working_size}} | ({"io": meta.io} if meta.io else {}),
    )


def onnx_ref(path: str | os.PathLike) -> ModelRef:
    """An ONNX file as a model, with or without colorize metadata (without: its I/O convention must be given,
    ``Engine.load(path, io=...)``; named after the file, identified by its sha256)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ONNX model not found: {p}")
    from colorize.artifacts.onnx_metadata import PREFIX, read_props

    if PREFIX + "format" in read_props(p):
        return _from_onnx(p)
    from colorize.artifacts.cache import sha256_file

    return ModelRef(name=p.stem, arch="onnx", onnx=p, sha256=sha256_file(p), metadata={"total_stride": 1})


def shipped_models() -> list[str]:
    """Names of the models shipped with weights in ``models/weights/``."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.json"))


def resolve_model(model: str | os.PathLike) -> ModelRef:
    """Turn a model name or path into a ``ModelRef``.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: an unknown name (the message lists shipped models) or a bad file.
    """
    s = os.fspath(model)
    p = Path(s)
    if p.suffix == ".onnx":
        if not p.is_file():
            raise FileNotFoundError(f"ONNX model not found: {p}")
        return _from_onnx(p)
    if p.suffix in (".json", ".safetensors"):
        json_path = p.with_suffix(".json")
        if not json_path.is_file():
            raise FileNotFoundError(f"checkpoint metadata not found: {json_path}")
        return _from_checkpoint_json(json_path)
    shipped = WEIGHTS_DIR / f"{s}.json"
    if shipped.is_file():
        return _from_checkpoint_json(shipped, name=s)
    if os.sep in s or p.exists():
        raise FileNotFoundError(f"model path {s!r}: expected an existing .onnx, .json or .safetensors file")
    # An architecture without shipped weights: random init (needs torch to build, and to list the architectures).
    try:
        from colorize.models import list_models, model_kind
    except ImportError:  # no torch: a name that is not shipped is unknown here
        raise ValueError(
            f"unknown model {s!r}; shipped models: {', '.join(shipped_models()) or 'none'}{_did_you_mean(s)}; "
            f"or pass a .onnx/.json path (an architecture name with random weights needs torch: "
            f"{install_hint('torch')})"
        ) from None
    if s not in list_models():
        raise ValueError(
            f"unknown model {s!r}; shipped models: {', '.join(shipped_models()) or 'none'}{_did_you_mean(s)}; "
            f"architectures: {', '.join(list_models('colorizer'))}; or pass a .onnx/.json path"
        )
    if model_kind(s) != "colorizer":
        raise ValueError(f"model {s!r} is a classifier, not a colorizer")
    return ModelRef(name=s, arch=s, random_init=True)


def _did_you_mean(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, shipped_models(), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
