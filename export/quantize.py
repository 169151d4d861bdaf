"""Static INT8 quantization of an exported colorizer (ONNX Runtime QDQ), torch-free.

    from colorize.export.quantize import quantize_int8
    quantize_int8("model.onnx", "model.int8.onnx", calibration_l)   # l: float32 [N,1,H,W], model-normalized

The result is a QDQ ONNX model (QuantizeLinear/DequantizeLinear around convs: uint8 activations,
per-channel symmetric int8 weights), calibrated with min/max on the given L batches. Both ONNX
Runtime and OpenVINO run it with INT8 kernels (OpenVINO fuses the QDQ pairs into its own int8
convolutions).

Softmax stays in float, with what it feeds and the ops between it and the convolution that computes its
logits (``float_nodes``; an Exp counts as a softmax: the bins head writes its softmax as exp and a normalizing
conv): the ab-bins head (logits conv, /T, softmax over 484 bins, the annealed-mean 1x1 conv)
and the convex refinement (mask logits, softmax over 9 neighbours, the weighted sum). 8-bit logits move the
probabilities and 8-bit probabilities lose the small ones, and the QDQ pairs around these non-conv ops cost
more than they save. Measured on ``resnet18-unet-photos`` (OpenVINO, 2-core Xeon with AMX, batch 8 at 160x256):
quantizing them too put about 60 % of the time into reorders, converts and FakeQuantize outside any conv;
keeping them float runs the model 1.45x faster and 4x closer to FP32 (mean |delta ab| 0.06 against 0.25 Lab units
on 16 BSDS500 photos). Dynamic INT8 (``quantize_dynamic``) is deliberately not offered: measured 3-7x
slower than FP32 on this kind of CPU.

Calibration data ships with the package, so INT8 builds on any machine: ``calibration_l(n)`` cuts 32-pixel crops
of the bundled gray photos (``colorize.data.calibration``) for CIFAR-sized models, and ``photo_calibration_l``
128-pixel crops of them at the working size for photo models and imported ones. ``colorize export`` can instead
calibrate on the development datasets beside a clone (``--calibration cifar``: CIFAR-10 train,
``cifar_calibration_l``; ``--calibration photos``: crops of the photos' train split). Needs ``onnx`` and
``onnxruntime`` (``pip install ".[cpu]"``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from colorize.deps import require

#: calibration images used when building an INT8 artifact (CIFAR-10 train, first N after a fixed shuffle)
CALIBRATION_IMAGES = 256
CALIBRATION_BATCH = 32  # images of 32x32 per calibration batch; larger images get proportionally fewer
PHOTO_CALIBRATION_CROPS = 64
#: per-channel QuantizeLinear/DequantizeLinear (their ``axis``) exist from opset 13; older graphs are converted
QDQ_MIN_OPSET = 13


def calibration_l(n: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """``n`` 32x32 crops of the bundled gray photos reduced to a 64-pixel long side, as model-normalized L,
    float32 [n,1,32,32]: the engine's calibration for CIFAR-sized models, the same on every machine."""
    from colorize.data.calibration import calibration_crops

    return _model_l(calibration_crops(n, 32, working_size=64, seed=seed))


def cifar_calibration_l(n: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """``n`` CIFAR-10 train images as model-normalized L, float32 [n,1,32,32] (``colorize export --calibration
    cifar``, on a clone with the dataset beside it).

    Raises:
        FileNotFoundError: CIFAR-10 is not there (the message names where it was looked for).
    """
    from colorize.data.cifar10 import load_cifar10

    images, _ = load_cifar10("train")
    idx = np.random.default_rng(seed).permutation(len(images))[:n]
    return _model_l(images[idx])


def _model_l(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [N, H, W, 3] or gray [N, H, W] -> model-normalized L, float32 [N, 1, H, W]."""
    from colorize.image.color import DEFAULT_NORMALIZATION, rgb_to_l

    if rgb.ndim == 3:
        rgb = np.repeat(rgb[..., None], 3, axis=-1)  # gray read as sRGB gray, as the pipeline reads a gray file
    l = rgb_to_l(rgb.astype(np.float32) / 255.0)
    return DEFAULT_NORMALIZATION.normalize_l(l)[:, None].astype(np.float32)


def fp32_initializers(proto) -> None:
    """Undo ``weights='fp16'`` storage in place: fp16 initializer + Cast(to float) -> fp32 initializer.

    The quantizer needs to see the float weights directly.
    """
    import onnx
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    drop_nodes, new_inits = [], []
    for node in proto.graph.node:
        if node.op_type != "Cast" or len(node.input) != 1 or node.input[0] not in inits:
            continue
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        src = inits[node.input[0]]
        if to != onnx.TensorProto.FLOAT or src.data_type != onnx.TensorProto.FLOAT16:
            continue
        arr = numpy_helper.to_array(src).astype(np.float32)
        new_inits.append(numpy_helper.from_array(arr, node.output[0]))
        drop_nodes.append(node)
    used = {n.input[0] for n in drop_nodes}
    kept = [i for i in proto.graph.initializer if i.name not in used] + new_inits
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    nodes = [n for n in proto.graph.node if all(n is not d for d in drop_nodes)]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


def photo_calibration_l(n: int = PHOTO_CALIBRATION_CROPS, crop: int = 128, working_size: int = 256,
                        seed: int = 0, split: str | None = None) -> np.ndarray:
    """``n`` random ``crop``-pixel crops of photos reduced to ``working_size`` (as the pipeline runs them), as
    model-normalized L, float32 [n,1,crop,crop]: the bundled gray photos (``split=None``, any machine), or the
    photos' ``split`` ("train") beside a clone.

    Raises:
        FileNotFoundError: ``split`` given and the photos are not there (the message names the folder).
    """
    if split is None:
        from colorize.data.calibration import calibration_crops

        return _model_l(calibration_crops(n, crop, working_size=working_size, seed=seed))
    from colorize.data.photos import load_at_working_size, photo_paths, random_crops

    paths = photo_paths(None, split)
    pick = np.sort(np.random.default_rng(seed).permutation(len(paths))[:n])
    return _model_l(random_crops([load_at_working_size(paths[i], working_size) for i in pick], crop, 1, seed))


def photos_available() -> bool:
    """Whether the photos' train split is on this machine (``photo_calibration_l`` can run)."""
    try:
        from colorize.data.photos import photo_paths

        photo_paths(None, "train")
    except (FileNotFoundError, ImportError, ValueError):
        return False
    return True


def float_nodes(graph) -> list[str]:
    """Names of the nodes ``quantize_int8`` keeps in float: every Softmax or Exp, every node downstream of one,
    and the nodes on its data input back to the nearest Conv (that Conv included: it computes the logits).

    A graph without Softmax or Exp (a regression head) gets an empty list: everything quantizable is quantized.
    """
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    keep: set[str] = set()
    for softmax in (n for n in graph.node if n.op_type in ("Softmax", "Exp")):
        stack, seen = [softmax], set()
        while stack:  # back along the data input (the first input) to the logits conv
            node = stack.pop()
            if node.name in seen:
                continue
            seen.add(node.name)
            keep.add(node.name)
            if node.op_type == "Conv" and node is not softmax:
                continue
            src = producer.get(node.input[0]) if node.input else None
            if src is not None and src.op_type != "Constant":
                stack.append(src)
        stack = [softmax]
        while stack:  # everything it feeds
            node = stack.pop()
            for out in node.output:
                for c in consumers.get(out, ()):
                    if c.name not in keep:
                        keep.add(c.name)
                        stack.append(c)
    return sorted(keep)


class _Reader:
    def __init__(self, l: np.ndarray, batch: int, input_name: str = "l", static_batch: int | None = None):
        batch = max(1, batch * 32 * 32 // (l[0].size))  # bound the calibrator's memory
        if static_batch is not None:  # a graph with a fixed N takes exactly that many: the last batch padded with
            batch = static_batch  # copies of its last image, which leave min and max as they are
            if len(l) % batch:
                l = np.concatenate([l, np.repeat(l[-1:], batch - len(l) % batch, axis=0)])
        self.batches = iter([{input_name: l[i : i + batch]} for i in range(0, len(l), batch)])

    def get_next(self):
        return next(self.batches, None)

    def rewind(self):  # not needed by MinMax, present for the interface
        pass


def _fixed_batch(graph, input_name: str) -> int | None:
    """The fixed N of the graph's input ``input_name``, None when it is symbolic."""
    for v in graph.input:
        if v.name == input_name and v.type.tensor_type.shape.dim:
            n = v.type.tensor_type.shape.dim[0]
            return n.dim_value if n.HasField("dim_value") and n.dim_value > 0 else None
    return None


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike, calibration: np.ndarray,
                  input_name: str = "l", batch: int | None = None) -> Path:
    """Write a static-INT8 QDQ version of ``src`` to ``dst`` (atomically); metadata is kept.

    Args:
        src: an ONNX file from ``colorize export`` or ``colorize import``.
        dst: where to write the QDQ model.
        calibration: the model's input, float32 [N,C,H,W] or [N,H,W,C]: for our own models model-normalized L
            [N,1,H,W] (H, W multiples of the stride); for another convention what
            ``colorize.model_adapter.ModelAdapter.to_model`` makes of it.
        input_name: the graph's input tensor.
        batch: a static batch: calibration batches of exactly this many images (None: the graph's fixed N when it
            has one, else any).
    """
    onnx = require("onnx", "cpu")
    require("onnxruntime", "cpu")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calibration = np.asarray(calibration, dtype=np.float32)
    if calibration.ndim != 4 or len(calibration) == 0:
        raise ValueError(f"calibration must be a float32 batch [N>=1,C,H,W] (or NHWC), got {list(calibration.shape)}")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    proto = onnx.load(os.fspath(src))
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), QDQ_MIN_OPSET)
    if opset < QDQ_MIN_OPSET:  # per-channel QDQ (an axis on DequantizeLinear) needs opset 13; e.g. opset-12 imports
        from onnx import version_converter

        props = list(proto.metadata_props)
        proto = version_converter.convert_version(proto, QDQ_MIN_OPSET)
        del proto.metadata_props[:]
        proto.metadata_props.extend(props)
    fp32_initializers(proto)
    for i, node in enumerate(proto.graph.node):  # nodes_to_exclude matches by name
        node.name = node.name or f"colorize_node_{i}"
    keep_float = float_nodes(proto.graph)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        plain = Path(tmp) / "fp32.onnx"
        onnx.save(proto, os.fspath(plain))
        out = Path(tmp) / "int8.onnx"
        quantize_static(
            os.fspath(plain),
            os.fspath(out),
            _Reader(calibration, CALIBRATION_BATCH, input_name, batch or _fixed_batch(proto.graph, input_name)),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=keep_float,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
        q = onnx.load(os.fspath(out))
        del q.metadata_props[:]
        q.metadata_props.extend(proto.metadata_props)
        entry = q.metadata_props.add()
        entry.key, entry.value = "colorize.quantization", "int8-static-qdq-minmax-float-softmax"
        tmp_out = Path(tmp) / "final.onnx"
        onnx.save(q, os.fspath(tmp_out))
        os.replace(tmp_out, dst)
    return dst
