"""Export a colorizer to ONNX: BN folded, dynamic N/H/W, identity in the metadata, parity-checked.

    from colorize.export.onnx_export import export_onnx
    report = export_onnx("resnet18-unet", "model.onnx")        # a name, checkpoint path or ModelRef

What is exported is ``model.forward_padded`` (H, W multiples of ``total_stride``; the engine pads in
numpy by ``engine/image/padding.py``), after ``fold_bn``. The graph has one input ``l`` float32
[N, 1, H, W] and one output ``ab`` float32 [N, 2, H, W], with N, H, W dynamic.

``weights="fp16"`` stores float initializers as float16 followed by a Cast to float32 (half the file;
ONNX Runtime and OpenVINO fold the casts at load, so compute stays FP32). The parity check then
compares with eager FP32 on the same fp16-rounded weights, so it still tests the export, not the
rounding; the rounding's own effect is reported separately (``max_abs_vs_unrounded``).

The metadata states our convention as ``colorize.io`` (``colorize.model_io.ModelIO.native``), as every model
of another convention states its own (``colorize import``, ``colorize export --module``).

Parity: ONNX Runtime (CPU) against eager FP32 on several sizes, max |delta ab| <= ``PARITY_ATOL``
(normalized ab units); the export fails (nothing written) when it does not hold.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from colorize.artifacts.model_ref import ModelRef, resolve_model
from colorize.artifacts.onnx_metadata import FORMAT, OnnxMetadata
from colorize.fsutil import atomic_write_bytes
from colorize.model_io import ModelIO

#: max |delta ab| between ONNX Runtime and eager FP32 (normalized units). FP32 kernels differ only in
#: summation order; over ~20 conv layers that stays around 1e-6..1e-5, so 1e-4 leaves margin.
PARITY_ATOL = 1e-4
#: default parity sizes (N, H, W): several batch sizes and non-square shapes, in stride multiples.
PARITY_SIZES = ((1, 1, 1), (2, 4, 3), (3, 2, 5))  # in units of the model's stride
OPSET = 17


class ExportError(RuntimeError):
    """Export failed (bad model, checker error, or parity not met)."""


@dataclass
class ExportReport:
    path: str
    opset: int
    weights: str
    sizes: list[list[int]]
    max_abs: float  # ONNX Runtime vs eager on the same (possibly fp16-rounded) weights
    max_abs_vs_unrounded: float  # vs eager FP32 with the original weights
    tolerance: float = PARITY_ATOL
    metadata: dict = field(default_factory=dict)


def _load_eager(ref: ModelRef):
    from colorize.artifacts.eager import build_torch_model

    return build_torch_model(ref)


def model_identity(ref: ModelRef) -> str:
    """The weights' sha256, or for a random init a stable id of (arch, kwargs, seed 0, torch version)."""
    if ref.sha256:
        return ref.sha256
    import hashlib

    s = json.dumps({"random_init": ref.arch, "kwargs": ref.arch_kwargs, "seed": 0, "torch": torch.__version__})
    return "random-init-" + hashlib.sha256(s.encode()).hexdigest()


class PaddedForward(nn.Module):
    """``model.forward_padded`` as a module's forward: what is traced and parity-checked."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.m = model

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        return self.m.forward_padded(l)


def _inline_identity_initializers(proto) -> int:
    """Replace ``Identity(initializer)`` nodes (the legacy exporter's dedup of equal tensors, e.g.
    all-zero folded biases) by a copy of the initializer, so every Conv reads its weights and bias
    directly from an initializer (the INT8 quantizer needs that)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    keep, n = [], 0
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            arr = numpy_helper.to_array(inits[node.input[0]])
            proto.graph.initializer.append(numpy_helper.from_array(arr, node.output[0]))
            n += 1
        else:
            keep.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(keep)
    used = {i for node in proto.graph.node for i in node.input} | {o.name for o in proto.graph.output}
    unused = [i for i in proto.graph.initializer if i.name not in used]
    for i in unused:
        proto.graph.initializer.remove(i)
    return n


def _constant_value(proto, name: str):
    """The value of tensor ``name`` when it is computed from constants alone (an initializer, or a subgraph of
    Constant nodes and ops on them, as the legacy exporter writes the pads of ``F.pad``), else None."""
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    inits = {i.name: i for i in proto.graph.initializer}
    if name in inits:
        return numpy_helper.to_array(inits[name])
    producer = {o: n for n in proto.graph.node for o in n.output}
    nodes, todo, seen = [], [name], set()
    while todo:
        t = todo.pop()
        if t in seen or t == "" or t in inits:
            continue
        seen.add(t)
        node = producer.get(t)
        if node is None:  # a graph input: not a constant
            return None
        nodes.append(node)
        todo.extend(node.input)
    order = [n for n in proto.graph.node if any(n is m for m in nodes)]
    used_inits = [inits[i] for n in order for i in n.input if i in inits]
    graph = onnx.helper.make_graph(order, "const", [], [onnx.helper.make_tensor_value_info(name, 0, None)],
                                   initializer=used_inits)
    model = onnx.helper.make_model(graph, opset_imports=proto.opset_import)
    return ReferenceEvaluator(model).run(None, {})[0]


def _fold_pads_into_convs(proto) -> int:
    """Fold a zero-constant ``Pad`` of the two spatial axes into the ``pads`` of the Convs that alone read it
    (EfficientNet-Lite's TensorFlow "same" padding, asymmetric on stride-2 convs). One node fewer per conv, and the
    INT8 quantizer, which gives a Pad's output its own DequantizeLinear, otherwise writes two nodes of one name."""
    import onnx

    consumers: dict[str, list] = {}
    for node in proto.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    outputs = {o.name for o in proto.graph.output}
    removed = []
    for pad in [n for n in proto.graph.node if n.op_type == "Pad"]:
        mode = next((a.s.decode() for a in pad.attribute if a.name == "mode"), "constant")
        readers = consumers.get(pad.output[0], [])
        if mode != "constant" or pad.output[0] in outputs or not readers or any(r.op_type != "Conv" for r in readers):
            continue
        pads = _constant_value(proto, pad.input[1])
        value = _constant_value(proto, pad.input[2]) if len(pad.input) > 2 and pad.input[2] else 0.0
        if pads is None or value is None or len(pads) != 8 or float(value) != 0.0:
            continue
        pads = [int(p) for p in pads]
        if pads[0] or pads[1] or pads[4] or pads[5] or min(pads) < 0:  # batch or channel padding, or a crop
            continue
        for conv in readers:
            attrs = {a.name: a for a in conv.attribute}
            if "auto_pad" in attrs and attrs["auto_pad"].s not in (b"", b"NOTSET"):
                break
        else:
            for conv in readers:
                attrs = {a.name: a for a in conv.attribute}
                old = list(attrs["pads"].ints) if "pads" in attrs else [0, 0, 0, 0]
                new = [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]]
                if "pads" in attrs:
                    conv.attribute.remove(attrs["pads"])
                conv.attribute.append(onnx.helper.make_attribute("pads", new))
                conv.input[0] = pad.input[0]
            removed.append(pad)
    for pad in removed:
        proto.graph.node.remove(pad)
    if removed:  # the constant subgraphs that computed the pads are now dead
        _remove_dead_nodes(proto)
    return len(removed)


def _remove_dead_nodes(proto) -> None:
    live = {o.name for o in proto.graph.output}
    keep = []
    for node in reversed(list(proto.graph.node)):
        if any(o in live for o in node.output):
            keep.append(node)
            live.update(node.input)
    del proto.graph.node[:]
    proto.graph.node.extend(reversed(keep))


def _cast_initializers_to_fp16(proto) -> int:
    """Store float32 initializers as float16 + a Cast to float32; returns how many were converted."""
    import onnx
    from onnx import helper, numpy_helper

    graph = proto.graph
    keep, casts, n = [], [], 0
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or len(init.dims) == 0:
            keep.append(init)
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < 16:  # tiny constants (Resize scales, shapes): keep exact
            keep.append(init)
            continue
        half = numpy_helper.from_array(arr.astype(np.float16), init.name + "_fp16")
        keep.append(half)
        cast = helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT, name=init.name + "_cast")
        casts.append(cast)
        n += 1
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return n


def _round_params_fp16(model) -> None:
    with torch.no_grad():
        for p in list(model.parameters()) + list(model.buffers()):
            if p.is_floating_point() and p.numel() >= 16:
                p.copy_(p.half().float())


def checked_bytes(proto) -> bytes:
    """``proto`` serialized, once ``onnx.checker`` (full check) accepts it.

    Raises:
        ExportError: the checker rejected it.
    """
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"onnx.checker rejected the export: {e}") from None
    return proto.SerializeToString()


def check_parity(onnx_bytes: bytes, eager, sizes, stride: int, seed: int = 0) -> float:
    """max |ONNX Runtime - eager| over random L batches of ``sizes`` (N, h, w in stride units)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for n, h, w in sizes:
        l = rng.uniform(-1, 1, (n, 1, h * stride, w * stride)).astype(np.float32)
        (got,) = sess.run(None, {"l": l})
        with torch.inference_mode():
            want = eager(torch.from_numpy(l)).numpy()
        if got.shape != want.shape:
            raise ExportError(f"ONNX output shape {got.shape} != eager {want.shape} for input {l.shape}")
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def _export(model: nn.Module, x: torch.Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(
        PaddedForward(model).eval(),
        (x,),
        str(path),
        dynamo=False,
        input_names=["l"],
        output_names=["ab"],
        dynamic_axes={"l": {0: "N", 2: "H", 3: "W"}, "ab": {0: "N", 2: "H", 3: "W"}},
        opset_version=opset,
        do_constant_folding=True,
    )


def export_onnx(
    model: str | os.PathLike | ModelRef,
    out: str | os.PathLike,
    *,
    weights: str = "auto",
    opset: int = OPSET,
    sizes=PARITY_SIZES,
    atol: float = PARITY_ATOL,
) -> ExportReport:
    """Export ``model`` to ``out`` (written atomically, only when the checks pass).

    Args:
        model: a shipped model's name, an architecture name (random init), a checkpoint path or a ModelRef.
        out: the .onnx path to write.
        weights: "fp32", "fp16" (fp16 initializers + Cast) or "auto" (fp16 when the checkpoint stores fp16).
        opset: ONNX opset (>= 17).
        sizes: parity batch shapes (N, h, w), h and w in units of the model's stride.
        atol: max |delta ab| allowed between ONNX Runtime and eager.
    Raises:
        ExportError: the checker or the parity check failed.
        ValueError: bad arguments.
    """
    import onnx

    from colorize.export.fold_bn import count_batchnorms, fold_bn

    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    ref = model if isinstance(model, ModelRef) else resolve_model(model)
    if ref.checkpoint is None and not ref.random_init:
        raise ValueError(f"{ref.onnx}: already an ONNX model; export needs a checkpoint or an architecture name")
    if weights == "auto":
        weights = "fp16" if (ref.metadata.get("weights") or {}).get("dtype") == "float16" else "fp32"
    if weights not in ("fp32", "fp16"):
        raise ValueError(f"weights must be 'fp32', 'fp16' or 'auto', got {weights!r}")

    eager = _load_eager(ref).eval()
    folded = fold_bn(eager)
    if count_batchnorms(folded):
        raise ExportError(f"{count_batchnorms(folded)} BatchNorm layers left after folding")
    if weights == "fp16":
        folded_ref = copy.deepcopy(folded)
        _round_params_fp16(folded_ref)
    else:
        folded_ref = folded
    stride = int(folded.total_stride)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        x = torch.zeros(1, 1, 2 * stride, 2 * stride)
        with warnings.catch_warnings():
            # the 3x3 neighbour slices of ConvexRefine have dynamic ends: nothing to fold, and the parity check
            # below is what says the graph is right
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            _export(folded, x, tmp_path, opset)
        proto = onnx.load(str(tmp_path))
    _inline_identity_initializers(proto)
    _fold_pads_into_convs(proto)
    if weights == "fp16":
        _cast_initializers_to_fp16(proto)
    meta = OnnxMetadata(
        name=ref.name,
        arch=ref.arch,
        arch_kwargs=ref.arch_kwargs,
        normalization=ref.normalization.to_dict(),
        weights_sha256=model_identity(ref),
        total_stride=stride,
        weights_dtype=weights,
        random_init=ref.random_init,
        min_working_size=int((ref.metadata.get("inference") or {}).get("min_working_size", 0)),
        io=ModelIO.native(ref.normalization, stride).to_dict(),  # our convention, stated like any model's
    )
    meta.write_to(proto)
    blob = checked_bytes(proto)

    max_abs = check_parity(blob, PaddedForward(folded_ref).eval(), sizes, stride)
    if max_abs > atol:
        raise ExportError(f"parity failed: max |delta ab| = {max_abs:.3g} > {atol:g} (ONNX Runtime vs eager FP32)")
    vs_unrounded = check_parity(blob, PaddedForward(eager).eval(), sizes, stride) if weights == "fp16" else max_abs
    out = Path(out)
    atomic_write_bytes(out, blob)
    return ExportReport(
        path=str(out),
        opset=opset,
        weights=weights,
        sizes=[list(s) for s in sizes],
        max_abs=max_abs,
        max_abs_vs_unrounded=vs_unrounded,
        tolerance=atol,
        metadata=asdict(meta) | {"format": FORMAT},
    )
