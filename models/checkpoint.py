"""Checkpoint format: ``NAME.safetensors`` (weights) + ``NAME.json`` (metadata).

The JSON records what is needed to rebuild and trust the model:

    {
      "format": "colorize-checkpoint/1",
      "arch": "resnet18-unet",            # registry name
      "arch_kwargs": {"stem": "cifar"},    # create_model(arch, **arch_kwargs)
      "kind": "colorizer",                 # or "classifier"
      "normalization": {...},              # colorize.image.color.Normalization (colorizers)
      "data": {...},                       # what it was trained on
      "metrics": {...},                    # what it scored
      "weights": {"file": "NAME.safetensors", "sha256": "...", "dtype": "float32"}
    }

Loading checks the sha256 of the weights file before reading it and never
unpickles anything (safetensors + JSON only).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorize.fsutil import atomic_write_bytes, sha256_file  # noqa: F401  (sha256_file re-exported)
from colorize.image.color import DEFAULT_NORMALIZATION, Normalization
from colorize.models._registry import create_model, model_kind

FORMAT = "colorize-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed or does not match its recorded sha256."""


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(json_path, safetensors_path) for ``path`` given as the .json, the
    .safetensors or the common stem."""
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".json"), p.with_name(p.name + ".safetensors")


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    arch: str,
    arch_kwargs: dict[str, Any] | None = None,
    normalization: Normalization | None = None,
    data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``path.safetensors`` and ``path.json`` (each atomically); returns the JSON path.

    ``dtype`` (e.g. torch.float16) stores floating tensors at that precision to
    save space; they are cast back to the model's dtype at load.
    """
    from safetensors.torch import save

    json_path, st_path = checkpoint_paths(path)
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        state[k] = v.contiguous()
    blob = save(state, metadata={"format": FORMAT, "arch": arch})
    atomic_write_bytes(st_path, blob)
    kind = model_kind(arch)
    meta = {
        "format": FORMAT,
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs or {}),
        "kind": kind,
        **({"total_stride": int(model.total_stride)} if kind == "colorizer" and hasattr(model, "total_stride") else {}),
        "normalization": (normalization or DEFAULT_NORMALIZATION).to_dict() if kind == "colorizer" else None,
        "data": data or {},
        "metrics": metrics or {},
        "weights": {
            "file": st_path.name,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "dtype": str(dtype or "float32").replace("torch.", ""),
        },
    }
    if extra:
        meta.update(extra)
    atomic_write_bytes(json_path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return json_path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's JSON metadata, validated (the weights are not read)."""
    json_path, _ = checkpoint_paths(path)
    if not json_path.is_file():
        raise CheckpointError(f"{json_path}: checkpoint metadata not found")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{json_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{json_path}: field 'format' must be {FORMAT!r}")
    for field in ("arch", "weights"):
        if field not in meta:
            raise CheckpointError(f"{json_path}: missing field {field!r}")
    return meta


def load_checkpoint(
    path: str | os.PathLike, *, map_location: str = "cpu", strict: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model recorded in a checkpoint and load its weights.

    Returns:
        (model in eval mode, float32; metadata dict)
    Raises:
        CheckpointError: missing files, bad metadata, sha256 mismatch, or weights
            that do not fit the architecture.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    meta = read_metadata(path)
    json_path, _ = checkpoint_paths(path)
    st_path = json_path.with_name(meta["weights"]["file"])
    if not st_path.is_file():
        raise CheckpointError(f"{st_path}: weights file not found (named in {json_path.name})")
    blob = st_path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != meta["weights"].get("sha256"):
        raise CheckpointError(
            f"{st_path}: sha256 {digest} does not match {meta['weights'].get('sha256')} recorded in "
            f"{json_path.name} (file corrupted or tampered with)"
        )
    try:
        state = load(blob)
    except SafetensorError as e:
        raise CheckpointError(f"{st_path}: not a valid safetensors file ({e})") from None
    try:
        model = create_model(meta["arch"], **meta.get("arch_kwargs", {}))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{json_path}: cannot build arch {meta['arch']!r}: {e}") from None
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise CheckpointError(f"{st_path}: weights do not fit {meta['arch']!r}: {e}") from None
    return model.to(map_location).eval(), meta


def load_weights_into(model: nn.Module, path: str | os.PathLike, *, arch: str,
                      arch_kwargs: dict[str, Any] | None = None, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load the weights of checkpoint ``path`` into ``model`` (a fresh ``arch``, to train on); returns the metadata.

    ``skip``: key prefixes left as they are in ``model`` (e.g. ``("head.",)`` to fine-tune a new head on a
    trained body); every other key must match in name and shape.

    Raises:
        ValueError: the checkpoint is of another architecture, differs in one of ``arch_kwargs`` when given,
            or its weights (outside ``skip``) do not fit ``model``.
        CheckpointError: as ``load_checkpoint``.
    """
    start, meta = load_checkpoint(path)
    want = dict(arch_kwargs or {})
    got = {k: (meta.get("arch_kwargs") or {}).get(k) for k in want}
    if meta["arch"] != arch or got != want:
        got_s, want_s = (f" {got}", f" {want}") if want else ("", "")
        raise ValueError(f"a {meta['arch']}{got_s} checkpoint, but this run is {arch}{want_s}")
    state = {k: v for k, v in start.state_dict().items() if not k.startswith(skip)}
    try:
        result = model.load_state_dict(state, strict=not skip)  # shapes are checked either way
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit: {e}") from None
    missing = [k for k in result.missing_keys if not k.startswith(skip)]
    if missing or result.unexpected_keys:
        raise ValueError(f"{path}: weights do not fit (missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")
    return meta


def normalization_of(meta: dict[str, Any]) -> Normalization:
    n = meta.get("normalization")
    return Normalization.from_dict(n) if n else DEFAULT_NORMALIZATION
