"""Image files in and out for colorization: every Pillow mode, EXIF, bomb limit, atomic writes.

Reading (``load_image``) opens a file, refuses it when it has more pixels than
``max_pixels`` (decompression-bomb limit, checked from the header before any
pixel is decoded), takes the first frame of a multi-frame file (GIF, APNG,
TIFF, MPO), applies the EXIF orientation, and turns it into a ``Decoded``:

============  =====================================  ==============  ==========
Pillow mode   luminance source (``pixels``)          alpha kept      output mode
============  =====================================  ==============  ==========
1, L          uint8 H×W                              no              RGB
LA, La        uint8 H×W                              yes             RGBA
P, PA         uint8 H×W×3 (palette expanded)         if transparent  RGB / RGBA
RGB, RGBX     uint8 H×W×3                            no              RGB
RGBA, RGBa    uint8 H×W×3                            yes             RGBA
CMYK, YCbCr,  uint8 H×W×3 (Pillow's conversion)      no              RGB
LAB, HSV
I;16*         uint16 H×W (full 0..65535 range)       no              RGB (8-bit)
I             uint16 H×W (int32 values clipped to    no              RGB (8-bit)
              0..65535, as 16-bit PNGs decode)
F             float32 H×W (values clipped to [0,1])  no              RGB (8-bit)
============  =====================================  ==============  ==========

16-bit data is scaled by 1/65535 (not truncated to 8 bits as Pillow's own
``convert("L")`` does). Pixels are taken as sRGB; ICC profiles are not applied
and not written (the output is sRGB).

Writing (``save_image``) encodes to a temporary file in the destination folder
and renames it over the destination (``os.replace``), so a killed process
leaves either the complete old file, the complete new one, or nothing.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from colorize.fsutil import atomic_path

#: Default decompression-bomb limit: Pillow's own error threshold (2 x MAX_IMAGE_PIXELS, about 179 MP).
DEFAULT_MAX_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
#: Suffix of the temporary files written next to an output before the rename.
TMP_SUFFIX = ".colorize-tmp"
#: Formats that cannot hold an alpha channel: alpha is dropped when writing them.
NO_ALPHA_FORMATS = frozenset({"JPEG", "MPO", "PPM", "PCX", "EPS", "JPEG2000"})
#: Pillow modes converted to RGB by Pillow itself.
_TO_RGB = frozenset({"RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
_ORIENTATION = 0x0112
#: Formats whose EXIF is carried to the output (a TIFF's "EXIF" would be its own layout tags).
_EXIF_FORMATS = frozenset({"JPEG", "MPO", "WEBP", "PNG"})


class ImageReadError(ValueError):
    """A file could not be used as an image; ``str()`` names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class Decoded:
    """An image ready to colorize (see the module docstring for the mode table)."""

    pixels: np.ndarray  # H×W or H×W×3; uint8, uint16 or float32 in [0, 1]
    alpha: np.ndarray | None = None  # H×W uint8, or None
    mode: str = "L"  # Pillow mode of the (first frame of the) source
    format: str | None = None  # Pillow format name of the file, if read from one
    exif: bytes | None = None  # EXIF to write back (orientation already applied and removed)
    n_frames: int = 1
    info: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.pixels.shape[0], self.pixels.shape[1]


def from_pil(im: Image.Image) -> Decoded:
    """Decode an in-memory Pillow image (no EXIF handling; see ``load_image`` for files).

    Raises:
        ValueError: a mode this module does not handle.
    """
    mode = im.mode
    alpha = None
    if mode in ("1", "L"):
        pixels = np.asarray(im.convert("L"))
    elif mode in ("LA", "La"):
        la = np.asarray(im.convert("LA"))
        pixels, alpha = la[..., 0], la[..., 1]
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        rgb = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
        pixels, alpha = (rgb[..., :3], rgb[..., 3]) if has_alpha else (rgb, None)
    elif mode in ("RGBA", "RGBa"):
        rgba = np.asarray(im.convert("RGBA"))
        pixels, alpha = rgba[..., :3], rgba[..., 3]
    elif mode in _TO_RGB:
        pixels = np.asarray(im.convert("RGB"))
    elif mode.startswith("I;16"):
        pixels = np.asarray(im).astype(np.uint16)  # native byte order whatever the mode's order
    elif mode == "I":
        pixels = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    elif mode == "F":
        pixels = np.clip(np.nan_to_num(np.asarray(im, dtype=np.float32)), 0.0, 1.0)
    else:
        raise ValueError(f"unsupported Pillow mode {mode!r}")
    return Decoded(np.ascontiguousarray(pixels), None if alpha is None else np.ascontiguousarray(alpha), mode)


def _exif_without_orientation(im: Image.Image) -> bytes | None:
    try:
        exif = im.getexif()
        if not exif:
            return None
        exif.pop(_ORIENTATION, None)
        return exif.tobytes()
    except Exception:  # malformed EXIF is not worth failing the image for
        return None


def load_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Decoded:
    """Read an image file: first frame, EXIF orientation applied, mode handled as in the module table.

    Args:
        path: the file.
        max_pixels: refuse images with more pixels than this (None: no limit beyond Pillow's own).

    Raises:
        ImageReadError: empty, not an image, truncated/corrupt, unsupported mode, or too large;
            the message names the file and the reason.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(path, "empty file (0 bytes)")
    except OSError as e:
        raise ImageReadError(path, f"cannot read ({e.strerror or e})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
            im = Image.open(path)
    except Image.DecompressionBombError as e:
        raise ImageReadError(path, f"too large ({e})") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image (or a format Pillow cannot read)") from None
    except OSError as e:
        raise ImageReadError(path, f"cannot open ({e})") from None
    with im:
        w, h = im.size
        if max_pixels is not None and w * h > max_pixels:
            raise ImageReadError(path, f"too large: {w}x{h} = {w * h:,} pixels > limit {max_pixels:,} (--max-pixels)")
        fmt = im.format
        n_frames = int(getattr(im, "n_frames", 1) or 1)
        try:
            im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im)
            exif = _exif_without_orientation(im) if fmt in _EXIF_FORMATS else None
            decoded = from_pil(im)
        except ValueError as e:
            raise ImageReadError(path, str(e)) from None
        except (OSError, SyntaxError, EOFError) as e:
            raise ImageReadError(path, f"truncated or corrupt image data ({e})") from None
    decoded.format, decoded.exif, decoded.n_frames = fmt, exif, n_frames
    return decoded


def format_for(path: str | os.PathLike) -> str:
    """Pillow format name that writes ``path``'s extension.

    Raises:
        ValueError: unknown extension, or a format Pillow can read but not write.
    """
    ext = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ValueError(f"{path}: unknown image extension {ext!r}")
    if fmt not in Image.SAVE:
        raise ValueError(f"{path}: Pillow cannot write {fmt} files; choose another output format (--format)")
    return fmt


def image_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) that Pillow can open."""
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def save_image(
    im: Image.Image,
    path: str | os.PathLike,
    format: str | None = None,
    *,
    quality: int = 95,
    exif: bytes | None = None,
) -> None:
    """Write ``im`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``).

    ``format`` defaults to the one ``path``'s extension names. Alpha is dropped for
    formats that cannot hold it (JPEG, PPM, ...); GIF is palette-quantized, with pixels whose
    alpha is below 128 made transparent.
    """
    path = Path(path)
    format = (format or format_for(path)).upper()
    if format in NO_ALPHA_FORMATS and im.mode != "RGB":
        im = im.convert("RGB")
    params: dict = {}
    if format in ("JPEG", "MPO", "WEBP"):
        params["quality"] = quality
    if exif and format in ("JPEG", "MPO", "WEBP", "PNG", "TIFF"):
        params["exif"] = exif
    if format == "GIF" and im.mode == "RGBA":  # 1-bit transparency: palette index 255 where alpha < 128
        transparent = im.getchannel("A").point(lambda v: 255 if v < 128 else 0)
        im = im.convert("RGB").quantize(255)
        im.paste(255, mask=transparent)
        params["transparency"] = 255
    if format == "MPO":
        format = "JPEG"
    with atomic_path(path, suffix=TMP_SUFFIX) as tmp:
        im.save(tmp, format=format, **params)


def remove_stale_tmp(folder: str | os.PathLike, names: set[str] | None = None) -> int:
    """Delete temporary files that ``save_image`` left in ``folder`` (a killed run); returns how many.

    With ``names``, only those for these output file names are removed.
    """
    n = 0
    for p in Path(folder).glob(f".*{TMP_SUFFIX}"):
        target = p.name[1 : -len(TMP_SUFFIX)].rsplit(".", 1)[0]  # ".NAME.xxxxxxxx.colorize-tmp" -> NAME
        if names is not None and target not in names:
            continue
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    return n
