"""Tiny ONNX colorizers of the conventions found in the wild, built with onnx.helper, whose output is a known
function of their input, and that function in numpy (``expected_ab``), for the tests of the engine's adaptation.

* ``ddcolor``: gray as RGB in [0, 1], NCHW, static 512x512; ab in Lab units (a 1x1 conv).
* ``zhang``: L* in [0, 100], NCHW, static 256x256; ab in Lab units (a 1x1 conv).
* ``tutorial``: L / 50 - 1, NHWC, dynamic (stride 8); ab / 128 (a MatMul over the channel axis).
* ``deoldify``: RGB normalized with ImageNet's mean and std, NCHW, dynamic; RGB normalized the same way (a shift
  per channel): the engine keeps the chroma of that RGB.
"""

from __future__ import annotations

import numpy as np

from colorize.image.color import l_to_gray, rgb_to_lab
from colorize.model_io import IMAGENET_STD

DDCOLOR_W = np.array([[30.0, 20.0, 10.0], [-10.0, -20.0, -10.0]], np.float32)  # a = 60 g - 30, b = 20 - 40 g
DDCOLOR_B = np.array([-30.0, 20.0], np.float32)
ZHANG_W = np.array([0.5, -0.3], np.float32)  # a = 0.5 L - 25, b = 15 - 0.3 L
ZHANG_B = np.array([-25.0, 15.0], np.float32)
TUTORIAL_W = np.array([[0.5, -0.25]], np.float32)  # a' = 0.5 x + 0.1, b' = -0.25 x - 0.05 (x = L / 50 - 1)
TUTORIAL_B = np.array([0.1, -0.05], np.float32)
DEOLDIFY_SHIFT = np.array([0.6, 0.0, -0.6], np.float32)  # in normalized units: warmer

#: ``colorize import`` arguments of each (input, output, size, layout)
SPECS = {
    "ddcolor": ("gray_rgb:0..1", "ab:lab", "512x512", "nchw"),
    "zhang": ("l:0..100", "ab:lab", "256x256", "nchw"),
    "tutorial": ("l:-1..1", "ab:128", "dynamic:8", "nhwc"),
    "deoldify": ("rgb:imagenet", "rgb:imagenet", "dynamic:1", "nchw"),
}


def _save(graph, path, opset: int = 12) -> None:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build(kind: str, path, *, out_channels: int | None = None, symbolic_channels: bool = False) -> None:
    """Write the tiny ``kind`` model to ``path``. ``out_channels``: a wrong count, for the error tests;
    ``symbolic_channels``: declare the output's channel axis without a size (the graph cannot tell)."""
    from onnx import TensorProto, helper, numpy_helper

    f = TensorProto.FLOAT
    if kind in ("ddcolor", "zhang"):
        size, cin = (512, 3) if kind == "ddcolor" else (256, 1)
        w = DDCOLOR_W if kind == "ddcolor" else ZHANG_W[:, None]
        b = DDCOLOR_B if kind == "ddcolor" else ZHANG_B
        if out_channels is not None:
            w, b = np.resize(w, (out_channels, cin)), np.resize(b, out_channels)
        cout = len(b)
        inits = [numpy_helper.from_array(w.reshape(cout, cin, 1, 1).astype(np.float32), "w"),
                 numpy_helper.from_array(b.astype(np.float32), "b")]
        node = helper.make_node("Conv", ["input", "w", "b"], ["output"], name="head")
        x = helper.make_tensor_value_info("input", f, ["N", cin, size, size])
        y = helper.make_tensor_value_info("output", f, ["N", "C" if symbolic_channels else cout, size, size])
        _save(helper.make_graph([node], kind, [x], [y], inits), path)
    elif kind == "tutorial":
        w, b = TUTORIAL_W, TUTORIAL_B
        if out_channels is not None:
            w, b = np.resize(w, (1, out_channels)), np.resize(b, out_channels)
        cout = len(b)
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
        nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"], name="matmul"),
                 helper.make_node("Add", ["xw", "b"], ["ab"], name="bias")]
        x = helper.make_tensor_value_info("x", f, ["N", "H", "W", 1])
        y = helper.make_tensor_value_info("ab", f, ["N", "H", "W", cout])
        _save(helper.make_graph(nodes, kind, [x], [y], inits), path)
    elif kind == "deoldify":
        shift = DEOLDIFY_SHIFT.reshape(1, 3, 1, 1)
        inits = [numpy_helper.from_array(shift, "shift")]
        node = helper.make_node("Add", ["image", "shift"], ["colour"], name="shift")
        x = helper.make_tensor_value_info("image", f, ["N", 3, "H", "W"])
        y = helper.make_tensor_value_info("colour", f, ["N", 3, "H", "W"])
        _save(helper.make_graph([node], kind, [x], [y], inits), path)
    else:
        raise ValueError(kind)


def expected_ab(kind: str, L: np.ndarray) -> np.ndarray:
    """ab in Lab units [N, 2, H, W] the ``kind`` model gives for L* [N, 1, H, W] (at the model's size)."""
    L = L.astype(np.float64)
    g = l_to_gray(L)
    if kind == "ddcolor":
        return np.concatenate([60 * g - 30, 20 - 40 * g], axis=1)
    if kind == "zhang":
        return np.concatenate([0.5 * L - 25, 15 - 0.3 * L], axis=1)
    if kind == "tutorial":
        x = L / 50 - 1
        return 128 * np.concatenate([0.5 * x + 0.1, -0.25 * x - 0.05], axis=1)
    if kind == "deoldify":
        std = np.asarray(IMAGENET_STD).reshape(1, 3, 1, 1)
        rgb = np.clip(np.repeat(g, 3, axis=1) + DEOLDIFY_SHIFT.reshape(1, 3, 1, 1) * std, 0, 1)
        return rgb_to_lab(rgb.transpose(0, 2, 3, 1))[..., 1:].transpose(0, 3, 1, 2)
    raise ValueError(kind)
