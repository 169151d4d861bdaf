"""``Colorizer``: colorize whole images of any size (the public Python API).

    from colorize import Colorizer
    col = Colorizer.load()                     # efficientnet_lite0-unet-photos, backend="auto", precision="auto"
    out = col.colorize("photo.jpg")            # path or PIL image -> PIL image
    arr = col.colorize(gray_uint8_hw)          # ndarray -> ndarray (H×W×3, same dtype)
    outs = col.colorize_batch([a, b, c])       # batched: same-shape working images share one engine.run

How an image is colorized:

1. ``prepare``: decode (files: first frame, EXIF orientation; every Pillow mode,
   see ``engine/image/io.py``), compute CIE L* and resize it to the *working
   size* (8-bit gray is reduced first, as bytes, then looked up) (long side ``working_size``, rounded to the model's
   stride; smaller images run at their own size, see ``engine/image/resize.py``, or are enlarged to the
   model's ``min_working_size`` when it has one: a model trained on small images enlarged) and
   normalize it for the model. A static-size model of another convention (``engine/model_io.py``) gets every
   image at its own H x W instead, so all images share one batch shape.
2. ``engine.run`` predicts ab at the working size (batched by ``Prepared.key``).
   Tiny images (long side at most ``small_max_side``) can go to another model instead, the *small-image
   model*, at their own size: by default the CIFAR-10 colorizer takes images of 32 px or less when the model is
   the default photo model (docs/quality.md, "Small images").
3. ``finish``: upsample ab bilinearly to full resolution and merge it with the
   input's own full-resolution luminance (``engine/image/merge.py``): the output's
   luminance equals the input's to rounding, whatever the working size. Colour
   inputs are accepted; their colour is replaced. Alpha is kept.

Thread-safe: the one state a ``Colorizer`` changes is the small-image model's
engine, loaded once under a lock; ``Engine`` serializes backend calls when the
backend needs it. Never imports torch unless the torch
backend is chosen.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from colorize.artifacts.model_ref import (DEFAULT_PHOTO_MODEL, MAX_COLOUR_STRENGTH, SMALL_IMAGE_MAX_SIDE,
                                        SMALL_IMAGE_MODEL, resolve_model)
from colorize.engine import Engine
from colorize.image.io import DEFAULT_MAX_PIXELS, Decoded, from_pil, load_image
from colorize.image import merge
from colorize.image.merge import compose, lightness
from colorize.image.resize import resize_plane, working_shape

#: Default long side of the working resolution, in pixels (see README "Colorize images" for the measurement).
DEFAULT_WORKING_SIZE = 256
_ARRAY_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


@dataclass(eq=False)
class Prepared:
    """One decoded image, ready for ``engine.run``.

    ``l`` is float32 [1, h, w], model-normalized L at the working size; ``key`` is
    the working (h, w) (a static-size model's own size); ``small`` says the small-image model runs it. Items with equal
    ``batch_key`` can share one batch (``Colorizer.run``).
    """

    l: np.ndarray
    key: tuple[int, int]
    decoded: Decoded
    kind: str  # "pil" (PIL or path input: PIL output) or "array"
    dtype: np.dtype  # output dtype for "array" inputs
    path: str | None = None
    small: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """Full-resolution (height, width)."""
        return self.decoded.size

    @property
    def batch_key(self) -> tuple[bool, int, int]:
        """Items with equal batch keys run in one ``Colorizer.run``: the same model and working shape."""
        return (self.small, *self.key)


def _decode_array(a: np.ndarray) -> Decoded:
    if a.dtype not in _ARRAY_DTYPES:
        raise TypeError(f"image array dtype must be uint8, uint16, float32 or float64, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        return Decoded(a, None, "array")
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return Decoded(a[..., :3], a[..., 3] if a.shape[2] == 4 else None, "array")
    raise ValueError(f"image array must be H×W, H×W×1, H×W×3 or H×W×4, got shape {list(a.shape)}")


class Colorizer:
    """Colorize images of any size with an ``Engine`` (see the module docstring)."""

    def __init__(
        self, engine: Engine, working_size: int = DEFAULT_WORKING_SIZE, max_pixels: int | None = DEFAULT_MAX_PIXELS,
        min_working_size: int | None = None, *,
        small_engine: Engine | Callable[[], Engine] | None = None, small_max_side: int = 0, small_name: str = "",
        colour_strength: float = 1.0,
    ):
        """``small_engine``: the small-image model's engine, or a function that loads it (called once, on the
        first image whose long side is at most ``small_max_side``); None or ``small_max_side`` 0: no such model.
        ``small_name``: its name, for messages before it is loaded. ``colour_strength``: see ``check_strength``."""
        if int(working_size) < 1:
            raise ValueError(f"working_size must be >= 1, got {working_size}")
        if min_working_size is None:  # the model's own (an engine-like object without a model ref: none)
            min_working_size = model_min_working_size(getattr(getattr(engine, "model", None), "metadata", None) or {})
        if int(min_working_size) < 0:
            raise ValueError(f"min_working_size must be >= 0, got {min_working_size}")
        if int(small_max_side) < 0:
            raise ValueError(f"small_max_side must be >= 0, got {small_max_side}")
        self.colour_strength = check_strength(colour_strength)
        self.engine = engine
        self.working_size = int(working_size)
        self.min_working_size = int(min_working_size)
        self.max_pixels = max_pixels
        self.small_name = small_name
        self.small_max_side = int(small_max_side) if small_engine is not None else 0
        loaded = small_engine is None or hasattr(small_engine, "run")  # an engine (or engine-like object)
        self._small_engine = small_engine if loaded else None
        self._small_loader = None if loaded else small_engine
        self._small_error = ""
        self._small_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model: str | os.PathLike = DEFAULT_PHOTO_MODEL,
        backend: str = "auto",
        precision: str = "auto",
        *,
        working_size: int = DEFAULT_WORKING_SIZE,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        min_working_size: int | None = None,
        small_model: str | os.PathLike | None = "auto",
        small_max_side: int = SMALL_IMAGE_MAX_SIDE,
        colour_strength: float = 1.0,
        **engine_options,
    ) -> "Colorizer":
        """Load ``model`` on ``backend`` at ``precision`` (as ``Engine.load``).

        Args:
            working_size: long side, in pixels, of the resolution the model runs at.
            max_pixels: files with more pixels are refused (decompression-bomb limit).
            min_working_size: images with a smaller long side are enlarged to it for the model (their output
                stays at their size); None = the model's own (``inference.min_working_size`` of its checkpoint), 0 = never.
            small_model: the model for images whose long side is at most ``small_max_side`` px, run at their
                size on the same backend and precision and loaded on the first such image; "auto" =
                ``SMALL_IMAGE_MODEL`` when ``model`` is the default photo model, else none; None = none.
            colour_strength: the chroma the model predicts is multiplied by this (``check_strength``).
        """
        small = resolve_small_model(model, small_model)
        loader = None
        if small is not None and small_max_side > 0:
            resolve_model(small)  # a wrong name or path fails now, not on the first small image
            small_options = {k: v for k, v in engine_options.items() if k != "io"}  # the main model's description
            loader = functools.partial(Engine.load, small, backend, precision, **small_options)
        return cls(Engine.load(model, backend, precision, **engine_options), working_size, max_pixels,
                   min_working_size, small_engine=loader, small_max_side=small_max_side,
                   small_name=os.fspath(small) if loader else "", colour_strength=colour_strength)

    @property
    def small_engine(self) -> Engine | None:
        """The small-image model's engine (loaded now if it was not yet), or None when there is none."""
        if self._small_engine is None and self._small_loader is not None:
            with self._small_lock:
                if self._small_engine is None and not self._small_error:
                    try:
                        self._small_engine = self._small_loader()
                    except Exception as e:  # kept: every small image names the reason, none retries the load
                        self._small_error = f"the small-image model did not load: {type(e).__name__}: {e}"
                if self._small_error:
                    raise RuntimeError(self._small_error)
        return self._small_engine

    def describe_small(self) -> str:
        """The small-image model and its engine, as "resnet18-unet (openvino/int8)"; "" when there is none, and
        only its name while it is not loaded (no image has needed it)."""
        if not self.small_max_side:
            return ""
        e = self._small_engine
        name = getattr(getattr(e, "model", None), "name", None) or self.small_name or "the small-image model"
        return name if e is None else f"{name} ({e.backend}/{e.precision})"

    def engine_for(self, prepared: Prepared) -> Engine:
        """The engine that runs ``prepared``: the small-image model's or the main one."""
        return self.small_engine if prepared.small else self.engine

    # -- the three steps -------------------------------------------------------------------------------------------

    def prepare(self, image) -> Prepared:
        """Decode ``image`` (path, PIL image or ndarray) and compute its model input.

        PIL images are used as they are (current frame, no EXIF transpose); paths are
        read with ``colorize.image.io.load_image`` (first frame, EXIF orientation applied).

        Raises:
            colorize.image.io.ImageReadError: a file that cannot be used (names the file and why).
            TypeError, ValueError: an unsupported input type, array dtype/shape or Pillow mode.
        """
        path = None
        if isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
            decoded, kind, dtype = load_image(path, self.max_pixels), "pil", np.dtype(np.uint8)
        elif isinstance(image, Image.Image):
            decoded, kind, dtype = from_pil(image), "pil", np.dtype(np.uint8)
        elif isinstance(image, np.ndarray):
            decoded, kind, dtype = _decode_array(image), "array", image.dtype
        else:
            raise TypeError(f"image must be a path, a PIL image or a numpy array, got {type(image).__name__}")
        h, w = decoded.size
        if h < 1 or w < 1:
            raise ValueError(f"image must be at least 1x1, got {w}x{h}" + (f" ({path})" if path else ""))
        if h * w >= merge.JIT_MIN_PIXELS:  # its merge will be the compiled one: load it while the model runs
            _warm_up_merge()
        small = runs_small((h, w), self.small_max_side)
        engine = self.small_engine if small else self.engine
        static = getattr(engine, "static_size", None)  # a static-size model: prepared at its size, batched as one
        key = static or working_shape(h, w, self.working_size, engine.stride, 0 if small else self.min_working_size)
        px = decoded.pixels
        # Enlarged (small images): bicubic, as the model saw them in training; reduced: bilinear, antialiased.
        resample = Image.BICUBIC if key[0] * key[1] > h * w else Image.BILINEAR
        if px.ndim == 2 and px.dtype == np.uint8 and key != (h, w):
            # 8-bit gray (the common case): resize the 1-byte image first (Pillow), then look up L*
            resized = Image.fromarray(px).resize((key[1], key[0]), resample, reducing_gap=2.0)
            L = lightness(np.asarray(resized))
        else:
            L = resize_plane(lightness(px), key, resample)
        l = engine.normalization.normalize_l(L).astype(np.float32, copy=False)[None]
        return Prepared(l, key, decoded, kind, dtype, path, small)

    def run(self, prepared: Sequence[Prepared]) -> np.ndarray:
        """ab (float32 [N, 2, h, w], model-normalized) for items of one ``batch_key``, in one ``engine.run``."""
        if not prepared:
            raise ValueError("run needs at least one prepared image")
        if len({p.batch_key for p in prepared}) != 1:
            raise ValueError("run takes items of one batch_key (one model, one working shape); group them first")
        return self.engine_for(prepared[0]).run(np.stack([p.l for p in prepared]))

    def finish(self, prepared: Prepared, ab: np.ndarray, colour_strength: float | None = None
               ) -> Image.Image | np.ndarray:
        """Merge ``ab`` (float32 [2, h, w], model-normalized, at the working size) with the full-resolution input.

        ``colour_strength``: this image's (``check_strength``); None = the Colorizer's.

        Returns what ``colorize`` returns: a PIL image (RGB, or RGBA when the input had alpha)
        for path/PIL inputs, an H×W×3 (or ×4) array of the input's dtype for array inputs.
        """
        ab = np.asarray(ab)
        if ab.shape != (2, *prepared.key):
            raise ValueError(f"ab must have shape [2, {prepared.key[0]}, {prepared.key[1]}], got {list(ab.shape)}")
        d = prepared.decoded
        h, w = d.pixels.shape[:2]
        if prepared.key[0] > h or prepared.key[1] > w:  # an enlarged small image: ab back to its size, antialiased
            ab = np.stack([resize_plane(c, (h, w)) for c in ab])
        out_dtype = prepared.dtype if prepared.kind == "array" else np.uint8
        strength = self.colour_strength if colour_strength is None else check_strength(colour_strength)
        scale = float(self.engine_for(prepared).normalization.denormalize_ab(1.0)) * strength
        rgb = compose(d.pixels, ab, out_dtype, ab_scale=scale)  # ab enlarged to full size on the fly
        if prepared.kind == "array":
            if d.alpha is None:
                return rgb
            return np.concatenate([rgb, d.alpha.astype(out_dtype, copy=False)[..., None]], axis=-1)
        out = Image.fromarray(rgb)
        if d.alpha is not None:
            out.putalpha(Image.fromarray(d.alpha))
        return out

    def colorize(self, image) -> Image.Image | np.ndarray:
        """Colorize one image (path, PIL image or ndarray); see ``finish`` for what comes back."""
        p = self.prepare(image)
        return self.finish(p, self.run([p])[0])

    def colorize_batch(self, images: Sequence, batch_size: int = 16) -> list:
        """Colorize several images; those with the same model and working shape run in one ``engine.run``."""
        prepared = [self.prepare(im) for im in images]
        out: list = [None] * len(prepared)
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(prepared):
            groups.setdefault(p.batch_key, []).append(i)
        for idx in groups.values():
            for s in range(0, len(idx), max(1, batch_size)):
                chunk = idx[s : s + batch_size]
                ab = self.run([prepared[i] for i in chunk])
                for j, i in enumerate(chunk):
                    out[i] = self.finish(prepared[i], ab[j])
        return out

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def close(self) -> None:
        self.engine.close()
        with self._small_lock:
            self._small_loader = None  # never loaded: nothing to close
            if self._small_engine is not None:
                self._small_engine.close()

    def __enter__(self) -> "Colorizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        small = f", small_max_side={self.small_max_side}" if self.small_max_side else ""
        return (f"Colorizer({self.engine!r}, working_size={self.working_size}, "
                f"min_working_size={self.min_working_size}{small})")


def check_strength(value) -> float:
    """A colour strength: the factor on the predicted chroma (a and b), 1 = the model's own, 0 = gray, above 1 =
    more saturated (out-of-gamut colours are clipped as usual). The output's luminance is the input's whatever it is.

    Raises:
        ValueError: not a number in [0, ``MAX_COLOUR_STRENGTH``].
    """
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"colour_strength must be a number, got {value!r}") from None
    if not 0.0 <= s <= MAX_COLOUR_STRENGTH:  # NaN fails too
        raise ValueError(f"colour_strength must be in [0, {MAX_COLOUR_STRENGTH:g}], got {value!r}")
    return s


def _warm_up_merge() -> None:
    """Load the compiled merge (``colorize.image.merge.warm_up``) on a daemon thread, once per process."""
    merge._warm_up_in_background()


def runs_small(size: tuple[int, int], small_max_side: int) -> bool:
    """Whether an image of ``size`` (either order; (0, 0): none) goes to the small-image model."""
    return 0 < max(size) <= small_max_side


def resolve_small_model(model, small_model) -> str | os.PathLike | None:
    """What ``Colorizer.load``'s ``small_model`` means for ``model``: "auto" is ``SMALL_IMAGE_MODEL`` for the
    default photo model (by name) and none for any other model."""
    if isinstance(small_model, str) and small_model == "auto":
        return SMALL_IMAGE_MODEL if os.fspath(model) == DEFAULT_PHOTO_MODEL else None
    if isinstance(small_model, str) and small_model.lower() == "none":
        return None
    return small_model


def model_min_working_size(metadata: dict) -> int:
    """The model's own minimum working size: ``inference.min_working_size`` of its checkpoint metadata, else 0."""
    value = (metadata.get("inference") or {}).get("min_working_size", 0)
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        raise ValueError(f"model metadata 'inference.min_working_size' is not an integer: {value!r}") from None

