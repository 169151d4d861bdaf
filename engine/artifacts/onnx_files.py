"""The ONNX files the ONNX backends run, found or built through the artifact cache.

* ``source_onnx(ref)``: the FP32-compute ONNX for a model. An ``.onnx`` path or a shipped ``.onnx``
  whose recorded weights sha256 matches the checkpoint is used as it is (no torch). Otherwise the
  model is exported on first use into the cache (``colorize.export.onnx_export``; needs torch, and without
  it a ``MissingDependency`` names the ``torch`` extra).
* ``int8_onnx(ref)``: static-INT8 QDQ version (``colorize.export.quantize``), calibrated on crops of the gray
  photos that ship with the package (``colorize.data.calibration``: no dataset needed; 32-pixel crops for our
  own models, 128-pixel crops at working size 256 for a model of another convention, fed to it through its
  adapter and in batches of its static batch when it has one), cached by the source ONNX's sha256, the
  quantizer and its version, and the calibration set.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from colorize.artifacts.cache import ArtifactCache, sha256_file
from colorize.artifacts.model_ref import ModelRef
from colorize.backends.base import MissingDependency, require

#: bump when the export recipe changes, so cached exports are rebuilt
EXPORT_RECIPE = "onnx-export/1"
QUANT_RECIPE = "ort-qdq-u8s8-perchannel-minmax-float-softmax/2"


def _usable_shipped_onnx(ref: ModelRef) -> Path | None:
    if ref.onnx is None:
        return None
    if ref.checkpoint is None:  # an .onnx path: it is the model
        return ref.onnx
    from colorize.artifacts.onnx_metadata import read_onnx_metadata

    try:
        meta = read_onnx_metadata(ref.onnx)
    except (ValueError, ImportError) as e:
        warnings.warn(f"{ref.onnx}: ignored ({e}); exporting from the checkpoint instead", stacklevel=4)
        return None
    recorded = meta.weights_sha256
    if recorded != ref.sha256:
        warnings.warn(
            f"{ref.onnx}: exported from weights {recorded[:12]}..., but {ref.checkpoint.name} holds "
            f"{(ref.sha256 or '?')[:12]}...; ignoring the stale ONNX and exporting from the checkpoint",
            stacklevel=4,
        )
        return None
    if meta.arch_kwargs != ref.arch_kwargs:  # same weights, another head setting (e.g. a bins temperature)
        warnings.warn(
            f"{ref.onnx}: exported with {meta.arch_kwargs}, but {ref.checkpoint.name} says {ref.arch_kwargs}; "
            "ignoring it and exporting from the checkpoint",
            stacklevel=4,
        )
        return None
    return ref.onnx


def source_onnx(ref: ModelRef, cache: ArtifactCache | None = None) -> Path:
    """Path of an FP32-compute ONNX model for ``ref``, exporting it into the cache when needed."""
    shipped = _usable_shipped_onnx(ref)
    if shipped is not None:
        return shipped
    try:
        torch = require("torch", "torch")
    except MissingDependency as e:
        raise MissingDependency(
            f"model {ref.name!r} has no ONNX file, and exporting it needs torch: {e}"
        ) from None
    from colorize.export.onnx_export import export_onnx, model_identity

    cache = cache or ArtifactCache()
    key = {
        "kind": "onnx",
        "model": model_identity(ref),
        "arch": ref.arch,
        "arch_kwargs": ref.arch_kwargs,
        "recipe": EXPORT_RECIPE,
        "profile": "dynamic N,H,W",
        "torch": torch.__version__,
    }

    def build(tmp: Path) -> dict:
        report = export_onnx(ref, tmp / "model.onnx", weights="fp32")
        return {"parity_max_abs": report.max_abs, "parity_sizes": report.sizes}

    return cache.get_or_build(key, build).path("model.onnx")


def shipped_int8(ref: ModelRef, src: Path) -> Path | None:
    """``<model>.int8.onnx`` next to the model's ONNX (``colorize export --int8``), when it was
    quantized from the same weights; used as it is, without calibrating again."""
    candidate = src.with_name(src.stem + ".int8.onnx")
    if not candidate.is_file():
        return None
    from colorize.artifacts.onnx_metadata import read_onnx_metadata, read_props

    try:
        same = read_onnx_metadata(candidate).weights_sha256 == read_onnx_metadata(src).weights_sha256
        quantized = "colorize.quantization" in read_props(candidate)
    except (ValueError, ImportError):
        return None
    return candidate if same and quantized else None


def int8_onnx(ref: ModelRef, cache: ArtifactCache | None = None, calibration=None, io=None) -> Path:
    """Path of the static-INT8 QDQ model for ``ref``: a shipped ``.int8.onnx`` of the same weights,
    else quantized into the cache when needed.

    Args:
        calibration: model-normalized L [N,1,H,W] in our convention (L' = (L - 50) / 50); default
            ``colorize.export.quantize.calibration_l()`` (32-pixel crops of the gray photos that ship with the
            package, ``colorize.data.calibration``), and for a model of another convention (``colorize.io``)
            128-pixel crops of them at working size 256 (``photo_calibration_l()``). Converted to the model's
            input by its ``ModelIO``. Its identity is part of the cache key.
        io: the model's ``ModelIO`` as the engine checked it (tensor names, a static batch); default: the file's.
    """
    cache = cache or ArtifactCache()
    src = source_onnx(ref, cache)
    if calibration is None and (shipped := shipped_int8(ref, src)) is not None:
        return shipped  # read without onnxruntime (engine/artifacts/onnx_props.py)
    ort = require("onnxruntime", "cpu")  # quantizing needs it
    from colorize.model_adapter import ModelAdapter
    from colorize.model_io import model_io
    from colorize.export import quantize

    io = io if io is not None else model_io(ref)
    adapter = ModelAdapter(io, ref.normalization)
    source = "cifar"
    if calibration is None:
        source = "cifar" if adapter.native else "photos"  # the bundled photos, cut to the model's kind of input
        calib_id = (f"bundled-photos-{quantize.PHOTO_CALIBRATION_CROPS}-crops-128-seed0" if source == "photos"
                    else f"bundled-photos-{quantize.CALIBRATION_IMAGES}-crops-32-seed0")
    else:
        import hashlib

        import numpy as np

        calibration = np.ascontiguousarray(calibration, dtype=np.float32)
        calib_id = "array-" + hashlib.sha256(calibration.tobytes()).hexdigest()[:16] + f"-{list(calibration.shape)}"
    key = {
        "kind": "int8",
        "source_sha256": sha256_file(src),
        "recipe": QUANT_RECIPE,
        "profile": "dynamic N,H,W",
        "onnxruntime": ort.__version__,
        "calibration": calib_id,
    }
    if not adapter.native:  # the same file under another description calibrates on other tensors
        key["io"] = io.to_dict()

    def build(tmp: Path) -> dict:
        if calibration is not None:
            data = calibration
        else:
            data = quantize.photo_calibration_l() if source == "photos" else quantize.calibration_l()
        x = adapter.to_model(data)
        quantize.quantize_int8(src, tmp / "model.int8.onnx", x, input_name=io.input_name or "l", batch=io.batch)
        return {"calibration_images": int(len(data))}

    return cache.get_or_build(key, build).path("model.int8.onnx")


def cpu_cores() -> int:
    """Cores this process may use (affinity-aware); threads are tuned from this, not left to defaults."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
