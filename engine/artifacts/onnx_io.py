"""Check a ``ModelIO`` against an ONNX graph's declared tensors, torch-free (needs ``onnx``).

    io = check_onnx_io(io, "model.onnx")     # names filled in; ModelIOError naming the field when they disagree

Checked where the graph declares it: the named tensors exist; both are rank 4; the input's channel count is the
input kind's (1 for ``l``, 3 for ``gray_rgb`` / ``rgb``) and the output's the output kind's (2 for ``ab``, 3 for
``lab`` / ``rgb``), at the layout's channel axis; a graph with fixed H, W needs ``size`` = those (static), and a
static ``size`` must match fixed dims; a fixed N is the description's ``batch`` (filled in, or checked when given).
Symbolic dims are not checked here; the engine checks every output it gets.

``colorize import`` keeps a static batch as it is (the graph is not rewritten: a graph may bake its N into reshapes,
so a dynamic N could change what it computes): the backends feed such a graph chunks of its batch
(``engine/backends/base.py``).
"""

from __future__ import annotations

import dataclasses
import os

from colorize.deps import require
from colorize.model_io import ModelIO, ModelIOError


def _dims(value_info) -> list[int | str]:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def graph_tensors(path: str | os.PathLike) -> tuple[dict[str, list], dict[str, list]]:
    """({input name: dims}, {output name: dims}) in graph order; initializers listed as inputs are left out."""
    onnx = require("onnx", "cpu")
    try:
        proto = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and others
        raise ModelIOError(f"{path}: not a loadable ONNX model ({e})") from None
    inits = {i.name for i in proto.graph.initializer}
    inputs = {v.name: _dims(v) for v in proto.graph.input if v.name not in inits}
    outputs = {v.name: _dims(v) for v in proto.graph.output}
    return inputs, outputs


def check_onnx_io(io: ModelIO, path: str | os.PathLike) -> ModelIO:
    """``io`` with its tensor names filled in from the graph, after checking it against the graph.

    Raises:
        ModelIOError: a field the graph contradicts (the message names it and the graph's shape).
    """
    inputs, outputs = graph_tensors(path)
    if not inputs or not outputs:
        raise ModelIOError(f"{path}: the graph has no input or no output")
    in_name = io.input_name or next(iter(inputs))
    out_name = io.output_name or next(iter(outputs))
    if in_name not in inputs:
        raise ModelIOError(f"{path}: model io field 'input_name': no input {in_name!r}; the graph has {list(inputs)}")
    if out_name not in outputs:
        raise ModelIOError(
            f"{path}: model io field 'output_name': no output {out_name!r}; the graph has {list(outputs)}")
    if len(inputs) > 1:
        raise ModelIOError(f"{path}: the graph has {len(inputs)} inputs {list(inputs)}; a colorizer takes one")
    c_axis, hw_axes = (1, (2, 3)) if io.layout == "nchw" else (3, (1, 2))
    for field, name, dims, want in (("input", in_name, inputs[in_name], io.in_channels),
                                    ("output", out_name, outputs[out_name], io.out_channels)):
        if not dims:
            continue
        if len(dims) != 4:
            raise ModelIOError(f"{path}: {field} {name!r} has shape {dims}; a colorizer's tensors are 4-D "
                               f"({io.layout.upper()})")
        c = dims[c_axis]
        if isinstance(c, int) and c != want:
            raise ModelIOError(
                f"{path}: model io field '{field}': {getattr(io, field)!r} has {want} channel(s), but {name!r} "
                f"has shape {dims} ({c} at the {io.layout.upper()} channel axis)")
    hw = [inputs[in_name][a] for a in hw_axes] if inputs[in_name] else []
    fixed = [d for d in hw if isinstance(d, int) and d > 0]
    if io.size is None and fixed:
        raise ModelIOError(f"{path}: model io field 'size': the graph's input {in_name!r} has fixed H, W "
                           f"{inputs[in_name]}; describe it as static ('--size HxW')")
    if io.size is not None:
        for got, want, axis in zip(hw, io.size, "HW"):
            if isinstance(got, int) and got > 0 and got != want:
                raise ModelIOError(f"{path}: model io field 'size': {io.size[0]}x{io.size[1]}, but the graph's "
                                   f"input {in_name!r} has shape {inputs[in_name]} ({axis} = {got})")
    n = inputs[in_name][0] if inputs[in_name] else None
    batch = io.batch
    if isinstance(n, int) and n > 0:
        if batch is not None and batch != n:
            raise ModelIOError(f"{path}: model io field 'batch': {batch}, but the graph's input {in_name!r} has "
                               f"shape {inputs[in_name]} (N = {n})")
        batch = n
    return dataclasses.replace(io, input_name=in_name, output_name=out_name, batch=batch)


def probe_onnx_io(io: ModelIO, model: bytes | str | os.PathLike) -> None:
    """Run one small input through the model with ONNX Runtime and check its output against ``io`` (the channel
    count where the graph leaves it symbolic).

    Raises:
        ModelIOError: the output does not fit the description (names the field).
    """
    import numpy as np

    from colorize.image.color import DEFAULT_NORMALIZATION
    from colorize.model_adapter import ModelAdapter

    ort = require("onnxruntime", "cpu")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    src = model if isinstance(model, bytes) else os.fspath(model)
    try:
        sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own errors: an op it lacks, a graph it cannot build
        raise ModelIOError(f"ONNX Runtime cannot load the model: {type(e).__name__}: {' '.join(str(e).split())}"
                           ) from None
    adapter = ModelAdapter(io, DEFAULT_NORMALIZATION)
    s = adapter.stride
    try:
        adapter.run(lambda x: sess.run([io.output_name], {io.input_name: x})[0],
                    np.zeros((io.batch or 1, 1, s, s), np.float32))
    except ModelIOError:
        raise
    except Exception as e:  # onnxruntime's own errors: the input did not fit the graph
        raise ModelIOError(f"the model did not run on a {io.describe()} input: {' '.join(str(e).split())}"
                           ) from None


def import_onnx(src: str | os.PathLike, dst: str | os.PathLike, io: ModelIO, name: str | None = None) -> ModelIO:
    """Write ``src`` to ``dst`` (atomically) with colorize metadata and ``io`` as ``colorize.io``, after checking
    ``io`` against the graph and one run; returns ``io`` with its tensor names filled in.

    Raises:
        ModelIOError: a description the model contradicts (names the field).
    """
    from pathlib import Path

    from colorize.artifacts.onnx_metadata import OnnxMetadata
    from colorize.fsutil import atomic_write_bytes, sha256_file
    from colorize.image.color import DEFAULT_NORMALIZATION

    onnx = require("onnx", "cpu")
    io = check_onnx_io(io, src)
    proto = onnx.load(os.fspath(src))
    meta = OnnxMetadata(
        name=name or Path(dst).stem,
        arch="onnx",
        normalization=DEFAULT_NORMALIZATION.to_dict(),
        weights_sha256=sha256_file(src),
        total_stride=io.pad_stride,
        weights_dtype="fp32",
        io=io.to_dict(),
    )
    meta.write_to(proto)
    blob = proto.SerializeToString()
    try:
        probe_onnx_io(io, blob)
    except ModelIOError as e:
        raise ModelIOError(f"{src}: {e}") from None
    atomic_write_bytes(dst, blob)
    return io
