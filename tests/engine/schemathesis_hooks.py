"""Schemathesis hooks for ``test_serve_openapi.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

The document says a request body is an image (``format: binary`` under ``image/png``, ``image/bmp``, ...), which a
JSON Schema cannot constrain further; these strategies make the bytes schemathesis sends for those media types real
images: small, random pixels, in the modes each format stores. The same strategies fill the multipart ``image`` part
(schemathesis draws a part's bytes from the strategy of the content type it picks from the document's ``encoding``).
Every request media type the service declares (``colorize.serve.openapi.RAW_REQUEST_TYPES``) must have one here:
loading these hooks fails, naming it, when one is missing. Negative cases are still generated from the schema (bad
``format`` values, missing parts, undeclared content types, methods).
"""

import io

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image

from colorize.serve.openapi import RAW_REQUEST_TYPES

FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
    "application/octet-stream": "PNG",
}
MODES = {
    "PNG": ("L", "LA", "RGB", "RGBA", "P", "1", "I;16"),
    "JPEG": ("L", "RGB", "CMYK"),
    "GIF": ("P", "L"),
    "WEBP": ("RGB", "RGBA"),
    "BMP": ("L", "RGB", "P", "1"),
    "TIFF": ("L", "RGB", "RGBA", "CMYK", "I;16", "F"),
}


def _image(mode: str, w: int, h: int, seed: int) -> Image.Image:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    if mode == "I;16":
        return Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    if mode == "F":
        return Image.fromarray(rgb[..., 0].astype(np.float32) / 255)
    return Image.fromarray(rgb).convert(mode)


def image_bytes(fmt: str) -> st.SearchStrategy[bytes]:
    @st.composite
    def draw(d) -> bytes:
        w, h = d(st.integers(1, 48)), d(st.integers(1, 48))
        im = _image(d(st.sampled_from(MODES[fmt])), w, h, d(st.integers(0, 2**16)))
        buf = io.BytesIO()
        im.save(buf, format=fmt)
        return buf.getvalue()

    return draw()


_missing = [t for t in RAW_REQUEST_TYPES if t not in FORMATS]
if _missing:
    raise RuntimeError(f"schemathesis_hooks.py: no image strategy for the declared request type(s) {_missing}")

for _mime, _fmt in FORMATS.items():
    schemathesis.openapi.media_type(_mime, image_bytes(_fmt))
