"""``ModelAdapter``: the engine's pre- and post-processing around a model of any convention, in numpy.

    adapter = ModelAdapter(io, normalization)      # io: colorize.model_io.ModelIO
    ab = adapter.run(backend.run, l)               # our L' [N,1,h,w] -> our ab' [N,2,h,w], any h, w

What ``Engine.run`` promises stays the same for every model: model-normalized L in our convention
(``normalization``: L' = (L - 50) / 50) in, ab' = ab / 110 out, at the input's h x w. The adapter:

1. size: a dynamic model's input is edge-padded to its stride (``engine/image/padding.py``); a static model's
   L is resized to its H x W (bilinear, antialiased when reducing);
2. input: L* -> the model's kind (``l``: L*; ``gray_rgb`` / ``rgb``: the gray's sRGB in [0, 1], 3 channels),
   then ``* scale + offset`` per channel; NHWC models get their layout;
3. output: back to NCHW; the channel count checked against the output kind; ``(y - offset) / scale`` gives
   the natural quantity: ab (``ab``), L*ab (``lab``: its L is dropped) or sRGB (``rgb``: clipped to [0, 1] and
   converted to Lab, its ab kept: the chroma, as a caller keeping the original luminance takes it);
4. size back: cropped (dynamic; an output at another size than the input is resized to it first) or resized to
   h x w (static); then divided by our ab scale.

The luminance of a colorized image is never the model's: ``Colorizer.finish`` merges this ab with the input's
full-resolution L. For our own models (``ModelIO.native``) steps 2-4 are the identity and are skipped.
"""

from __future__ import annotations

import numpy as np

from colorize.image.color import Normalization, l_to_gray, rgb_to_lab
from colorize.image.padding import pad_nchw
from colorize.image.resize import resize_plane
from colorize.model_io import ModelIO, ModelIOError


def _resize_batch(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """float32 [N, C, h, w] -> [N, C, *shape], each plane resized bilinearly (antialiased when reducing)."""
    if x.shape[2:] == tuple(shape):
        return x
    return np.stack([np.stack([resize_plane(c, shape) for c in img]) for img in x])


class ModelAdapter:
    """Converts our L' to a model's input and its output to our ab' (see the module docstring)."""

    def __init__(self, io: ModelIO, normalization: Normalization):
        self.io = io
        self.norm = normalization
        self.native = io.is_native(normalization, io.stride)
        f32 = np.float32
        self._in_scale = np.asarray(io.input_scale, f32)[None, :, None, None]
        self._in_offset = np.asarray(io.input_offset, f32)[None, :, None, None]
        self._out_scale = np.asarray(io.output_scale, f32)[None, :, None, None]
        self._out_offset = np.asarray(io.output_offset, f32)[None, :, None, None]

    @property
    def stride(self) -> int:
        """What H and W of a dynamic model's input are padded to a multiple of (1 for a static model)."""
        return self.io.pad_stride

    def model_shape(self, h: int, w: int) -> tuple[int, int]:
        """The (H, W) the model runs for an h x w input."""
        if self.io.size is not None:
            return self.io.size
        s = self.io.stride
        return -(-h // s) * s, -(-w // s) * s

    def to_model(self, l: np.ndarray) -> np.ndarray:
        """Our L' float32 [N,1,h,w] -> the model's input tensor (its kind, scale, size and layout)."""
        l = np.ascontiguousarray(l, dtype=np.float32)
        io = self.io
        if self.native:
            return pad_nchw(l, io.stride)
        L = self.norm.denormalize_l(l).astype(np.float32, copy=False)
        L = pad_nchw(L, io.stride) if io.size is None else _resize_batch(L, io.size)
        x = L if io.input == "l" else l_to_gray(L)
        x = x * self._in_scale + self._in_offset  # broadcasts 1 -> 3 channels for the gray RGB kinds
        if io.layout == "nhwc":
            x = x.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x, dtype=np.float32)

    def from_model(self, y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """The model's output -> our ab' float32 [N,2,h,w] at ``shape`` = (h, w), the input's size.

        Raises:
            ModelIOError: the output is not 4-D or has the wrong channel count for the output kind.
        """
        io = self.io
        y = np.asarray(y)
        h, w = shape
        if self.native and y.ndim == 4 and y.shape[1] == 2:
            return np.ascontiguousarray(y[:, :, :h, :w], dtype=np.float32)
        c_axis = 1 if io.layout == "nchw" else 3
        if y.ndim != 4 or y.shape[c_axis] != io.out_channels:
            raise ModelIOError(
                f"model io field 'output': {io.output!r} needs {io.out_channels} channels at the "
                f"{io.layout.upper()} channel axis, but the model returned shape {list(y.shape)}")
        y = y.astype(np.float32, copy=False)
        if io.layout == "nhwc":
            y = y.transpose(0, 3, 1, 2)
        nat = (y - self._out_offset) / self._out_scale
        if io.output == "ab":
            ab = nat
        elif io.output == "lab":
            ab = nat[:, 1:]
        else:
            rgb = np.clip(nat, 0.0, 1.0).transpose(0, 2, 3, 1)
            ab = rgb_to_lab(rgb)[..., 1:].transpose(0, 3, 1, 2)
        if io.size is not None:
            ab = _resize_batch(np.ascontiguousarray(ab, dtype=np.float32), (h, w))
        else:
            ab = _resize_batch(np.ascontiguousarray(ab, dtype=np.float32), self.model_shape(h, w))[:, :, :h, :w]
        return np.ascontiguousarray(self.norm.normalize_ab(ab), dtype=np.float32)

    def run(self, model_run, l: np.ndarray) -> np.ndarray:
        """``model_run`` (model input -> model output) around our L' [N,1,h,w]: our ab' [N,2,h,w]."""
        h, w = l.shape[2:]
        return self.from_model(model_run(self.to_model(l)), (h, w))
