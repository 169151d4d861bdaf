"""FLOPs per image of a colorizer at an input size.

Counted: multiply-accumulates of Conv2d, ConvTranspose2d and Linear layers, at
2 FLOPs per MAC (BatchNorm, ReLU, adds, upsampling and padding are not
counted; they are a few percent at most and mostly memory-bound). The size
counted is the size the backend computes, i.e. H and W padded to the model's
stride.

Two counters: forward hooks on the eager torch model (``count_torch``), and
the ONNX graph after shape inference (``count_onnx``, for torch-free
machines). Results are cached in ``$COLORIZE_CACHE/bench-flops.json`` keyed by
the model's identity, so a torch-free run can reuse a count made earlier.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from colorize.artifacts.model_ref import ModelRef
from colorize.fsutil import atomic_write_text
from colorize.paths import cache_dir

METHOD = "2 x MACs of Conv2d/ConvTranspose2d/Linear (BN, activations, upsampling not counted)"


def _cache_path() -> Path:
    return cache_dir() / "bench-flops.json"


def _identity(ref: ModelRef) -> str:
    if ref.sha256:
        return f"{ref.arch}:{ref.sha256}"
    if ref.onnx is not None and ref.checkpoint is None:
        st = ref.onnx.stat()
        return f"onnx:{ref.onnx.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return f"{ref.arch}:{json.dumps(ref.arch_kwargs, sort_keys=True)}"


def count_torch(module, height: int, width: int) -> int:
    """FLOPs of one forward of ``module`` on a [1,1,H,W] input (forward hooks)."""
    import torch
    from torch import nn

    total = 0

    def hook(mod, inputs, output):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total += 2 * output.numel() * k
        elif isinstance(mod, nn.ConvTranspose2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.out_channels // mod.groups)
            total += 2 * inputs[0].numel() * k
        elif isinstance(mod, nn.Linear):
            total += 2 * inputs[0].numel() * mod.out_features

    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, kinds)]
    try:
        with torch.inference_mode():
            module(torch.zeros(1, 1, height, width))
    finally:
        for h in handles:
            h.remove()
    return total


def count_onnx(path: str | os.PathLike, height: int, width: int) -> int:
    """FLOPs of one [1,1,H,W] inference of an ONNX colorizer (Conv, ConvTranspose, Gemm, MatMul)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(os.fspath(path))
    graph = model.graph
    inp = graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    for d, v in zip(dims, (1, 1, height, width)):
        d.ClearField("dim_param")
        d.dim_value = v
    model = shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(numpy_helper.to_array(init).shape)
    total = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1) or 1
        w = shapes.get(node.input[1])
        if node.op_type == "Conv":
            out = shapes.get(node.output[0])
            if not out or not w:
                raise ValueError(f"{path}: no shape for Conv node {node.name!r}")
            total += 2 * int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type == "ConvTranspose":
            x = shapes.get(node.input[0])
            if not x or not w:
                raise ValueError(f"{path}: no shape for ConvTranspose node {node.name!r}")
            total += 2 * int(np.prod(x)) * int(np.prod(w[1:]))
        else:
            x, out = shapes.get(node.input[0]), shapes.get(node.output[0])
            if not x or not out:
                raise ValueError(f"{path}: no shape for {node.op_type} node {node.name!r}")
            total += 2 * int(np.prod(out)) * x[-1]
    return total


def _load_cache() -> dict:
    try:
        data = json.loads(_cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict) -> None:
    path = _cache_path()
    try:
        atomic_write_text(path, json.dumps(cache, indent=1, sort_keys=True))
    except OSError:
        pass  # the cache is an optimisation only


def gflop_per_image(ref: ModelRef, height: int, width: int) -> float:
    """GFLOP per image at (already padded) ``height`` x ``width``, cached.

    Uses the eager torch model when torch is installed, else the ONNX graph.

    Raises:
        RuntimeError: neither torch nor (an ONNX file and the onnx package) is available.
    """
    key = f"{_identity(ref)}@{height}x{width}"
    cache = _load_cache()
    if key in cache:
        return float(cache[key])
    try:
        import torch  # noqa: F401

        have_torch = ref.checkpoint is not None or ref.random_init
    except ImportError:
        have_torch = False
    if have_torch:
        import warnings

        from colorize.backends.torch_backend import build_torch_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flops = count_torch(build_torch_model(ref), height, width)
    elif ref.onnx is not None:
        try:
            flops = count_onnx(ref.onnx, height, width)
        except ImportError:
            raise RuntimeError('counting FLOPs needs torch or onnx (pip install ".[torch]")') from None
    else:
        raise RuntimeError(f"cannot count FLOPs of {ref.name!r}: no torch and no ONNX file")
    cache[key] = flops / 1e9
    _save_cache(cache)
    return flops / 1e9
