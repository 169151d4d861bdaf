"""Export a user's own PyTorch colorizer (any convention) to an ONNX file the engine runs, parity-checked.

    colorize export --module mypkg.net:build --weights net.safetensors --io spec.json -o mine.onnx
    colorize export --module mypkg.net:build --weights net.safetensors \
        --io '{"input": "l:0..100", "output": "ab:lab"}' -o mine.onnx

    from colorize.export.module_export import export_module
    report = export_module("mypkg.net:build", "net.safetensors", "mine.onnx", io)

``build`` is called with no argument and returns the ``nn.Module``; its weights come only from a safetensors
file, or a ``.pt`` / ``.pth`` / ``.bin`` state dict read with ``torch.load(weights_only=True)`` (never a pickle
of code), loaded strictly (missing or unexpected keys fail, named). The module's forward takes one tensor in the
convention ``io`` describes (``engine/model_io.py``) and returns one. It is traced (legacy exporter, dynamic N,
and H, W unless static), ``onnx.checker``-ed, described by ``colorize.io``, then compared with eager FP32 through
ONNX Runtime on inputs made by the engine's own adapter from random L at several sizes:
max |delta| <= ``MODULE_PARITY_RTOL`` x (1 + max |eager output|), in the model's own output units (a model
may output ab in Lab units, about 100, or values near 1). The file is written atomically, only when it holds.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colorize.model_io import ModelIO

#: max |ONNX Runtime - eager| relative to (1 + the output's largest magnitude): FP32 summation order over a deep
#: network stays near 1e-6 relative; 1e-4 leaves margin and still catches a wrong op (errors of whole percents)
MODULE_PARITY_RTOL = 1e-4
#: parity batches (N, h, w), h and w in units of the stride (a static model runs its size at each N)
MODULE_PARITY_SIZES = ((1, 2, 2), (2, 4, 3), (3, 2, 5))
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


@dataclass
class ModuleExportReport:
    path: str
    module: str
    weights: str
    io: dict
    sizes: list[list[int]]
    max_abs: float
    tolerance: float
    metadata: dict = field(default_factory=dict)


def build_module(spec: str):
    """Call ``pkg.mod:build_fn`` and return its ``nn.Module``.

    Raises:
        ValueError: a spec not of that form, a module or function that is not there, or not an nn.Module.
    """
    from torch import nn

    mod_name, sep, fn_name = spec.partition(":")
    if not sep or not mod_name or not fn_name:
        raise ValueError(f"--module must be pkg.mod:build_fn, got {spec!r}")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"--module {spec!r}: cannot import {mod_name!r} ({e})") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise ValueError(f"--module {spec!r}: {mod_name} has no function {fn_name!r}")
    model = fn()
    if not isinstance(model, nn.Module):
        raise ValueError(f"--module {spec!r}: {fn_name}() returned {type(model).__name__}, not a torch.nn.Module")
    return model


def load_state(path: str | os.PathLike) -> dict:
    """A state dict from safetensors, or from torch.load(weights_only=True) (a dict, or one under 'state_dict')."""
    import torch

    p = Path(path)
    if p.suffix not in WEIGHT_SUFFIXES:
        raise ValueError(f"--weights {p}: expected one of {', '.join(WEIGHT_SUFFIXES)}")
    if not p.is_file():
        raise FileNotFoundError(f"--weights {p}: no such file")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(os.fspath(p))
    try:
        state = torch.load(os.fspath(p), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors: refused code, or not a torch file
        raise ValueError(f"--weights {p}: not a weights-only torch file ({e})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"--weights {p}: holds a {type(state).__name__}, not a state dict")
    return state


def _example(io: ModelIO, n: int, h: int, w: int, seed: int) -> np.ndarray:
    """A model input made by the engine's adapter from random L at h x w (the model's size when static)."""
    from colorize.image.color import DEFAULT_NORMALIZATION
    from colorize.model_adapter import ModelAdapter

    l = np.random.default_rng(seed).uniform(-1, 1, (n, 1, h, w)).astype(np.float32)
    return ModelAdapter(io, DEFAULT_NORMALIZATION).to_model(l)


def export_module(
    module: str,
    weights: str | os.PathLike | None,
    out: str | os.PathLike,
    io: ModelIO,
    *,
    opset: int = 17,
    name: str | None = None,
    sizes=MODULE_PARITY_SIZES,
    rtol: float = MODULE_PARITY_RTOL,
) -> ModuleExportReport:
    """Export ``module`` (``pkg.mod:build_fn``) with ``weights`` to ``out``; see the module docstring.

    Raises:
        ValueError: bad arguments, weights that do not fit the module (keys named), a description the graph
            contradicts (``ModelIOError``, naming the field).
        colorize.export.onnx_export.ExportError: the checker or the parity check failed.
    """
    import tempfile
    import warnings

    import onnx
    import onnxruntime as ort
    import torch

    from colorize.artifacts.onnx_io import check_onnx_io, probe_onnx_io
    from colorize.artifacts.onnx_metadata import FORMAT, OnnxMetadata
    from colorize.fsutil import atomic_write_bytes, sha256_file
    from colorize.image.color import DEFAULT_NORMALIZATION
    from colorize.export.onnx_export import ExportError, checked_bytes

    model = build_module(module)
    if weights is not None:
        result = model.load_state_dict(load_state(weights), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(f"--weights {weights} does not fit {module}: missing {result.missing_keys[:8]}, "
                             f"unexpected {result.unexpected_keys[:8]}")
    model.eval()
    io = dataclasses.replace(io, input_name=io.input_name or "input", output_name=io.output_name or "output")
    s = io.stride
    h_ax, w_ax = (2, 3) if io.layout == "nchw" else (1, 2)
    axes = {0: "N"} if io.size is not None else {0: "N", h_ax: "H", w_ax: "W"}
    x = torch.from_numpy(_example(io, 1, 2 * s, 2 * s, 0))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), os.fspath(path), dynamo=False, input_names=[io.input_name],
                              output_names=[io.output_name],
                              dynamic_axes={io.input_name: axes, io.output_name: dict(axes)},
                              opset_version=opset, do_constant_folding=True)
        proto = onnx.load(os.fspath(path))
        io = check_onnx_io(io, path)
    identity = sha256_file(weights) if weights is not None else "module-init-" + module
    meta = OnnxMetadata(name=name or Path(out).stem, arch="module:" + module,
                        normalization=DEFAULT_NORMALIZATION.to_dict(), weights_sha256=identity,
                        total_stride=io.pad_stride, weights_dtype="fp32", io=io.to_dict())
    meta.write_to(proto)
    blob = checked_bytes(proto)
    probe_onnx_io(io, blob)

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
    worst = 0.0
    for i, (n, h, w) in enumerate(sizes):
        xi = _example(io, n, h * s, w * s, i + 1)
        (got,) = sess.run([io.output_name], {io.input_name: xi})
        with torch.inference_mode():
            want = model(torch.from_numpy(xi)).float().numpy()
        if got.shape != want.shape:
            raise ExportError(f"ONNX output shape {list(got.shape)} != eager {list(want.shape)} for input "
                              f"{list(xi.shape)}")
        worst = max(worst, float(np.abs(got - want).max() / (1 + np.abs(want).max())))
    if worst > rtol:
        raise ExportError(f"parity failed: max |delta| / (1 + max |eager|) = {worst:.3g} > {rtol:g} "
                          "(ONNX Runtime vs eager FP32)")
    atomic_write_bytes(out, blob)
    return ModuleExportReport(path=os.fspath(out), module=module, weights=os.fspath(weights or ""), io=io.to_dict(),
                              sizes=[list(z) for z in sizes], max_abs=worst, tolerance=rtol,
                              metadata=dataclasses.asdict(meta) | {"format": FORMAT})
