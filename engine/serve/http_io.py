"""HTTP request and response helpers of the service: output-format
negotiation, bounded body reading (raw or multipart), recognising image bytes
by their signature, image decoding with the pixel limit checked on the header,
encoding.

Every refusal is an ``HTTPProblem`` carrying the status to answer with.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_FORMAT_ALIASES = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp"}
#: the values ``?format=`` takes
FORMAT_NAMES = tuple(_FORMAT_ALIASES)

#: (offset, signature, MIME type) of the image formats recognised from their first bytes
_SIGNATURES = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),  # after b"RIFF" + 4-byte size, checked below
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
)
#: the MIME types ``sniff_image_type`` can return
SNIFFED_TYPES = tuple(dict.fromkeys(mime for _, _, mime in _SIGNATURES))


class HTTPProblem(Exception):
    """An error answered as JSON with ``status`` (and optional headers)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


# -- request parsing ----------------------------------------------------------


def sniff_image_type(data: bytes) -> str | None:
    """The MIME type of the image format ``data`` starts with (PNG, JPEG, GIF, WebP, BMP, TIFF), else None.

    Only the signature is looked at: a truncated or corrupt file of a known format still sniffs as it.
    """
    for offset, signature, mime in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature and (offset == 0 or data[:4] == b"RIFF"):
            return mime
    return None


def choose_format(query: str | None, accept: str | None, default: str) -> str:
    """The output format from ``?format=`` (wins; exactly one of ``FORMAT_NAMES``) or the Accept header.

    Raises:
        HTTPProblem: 400 unknown ``format``; 406 Accept names no format we write.
    """
    if query is not None:
        fmt = _FORMAT_ALIASES.get(query)
        if fmt is None:
            raise HTTPProblem(400, f"format={query!r} is not supported; use one of {', '.join(FORMAT_NAMES)}")
        return fmt
    if not accept or not accept.strip():
        return default
    ranges = []
    for i, part in enumerate(accept.split(",")):
        mime, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if mime and q > 0:
            ranges.append((-q, i, mime.lower()))
    for _, _, mime in sorted(ranges):
        if mime in ("*/*", "image/*"):
            return default
        for fmt, m in MIME.items():
            if mime == m:
                return fmt
    raise HTTPProblem(406, f"Accept {accept!r} names no supported type; supported: {', '.join(MIME.values())}")


async def read_body(request: Any, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (413) without reading it all."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            n = int(length)
        except ValueError:
            raise HTTPProblem(400, f"bad Content-Length header {length!r}") from None
        if n > limit:
            raise HTTPProblem(413, f"body of {n} bytes is over the limit of {limit} bytes (max_upload_bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPProblem(413, f"body is over the limit of {limit} bytes (max_upload_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def image_bytes(request: Any, limit: int) -> bytes:
    """The uploaded image: the raw body, or the file part of a multipart form.

    A body that starts with an image signature (``sniff_image_type``) is the image, whatever the
    Content-Type says (``curl --data-binary`` sends ``application/x-www-form-urlencoded``). Otherwise a
    ``multipart/form-data`` body is parsed for its file part, and any other body is returned as it is, for
    ``decode_image`` to read or refuse.

    Raises:
        HTTPProblem: 400 bad Content-Length or multipart body; 413 over ``limit`` bytes.
    """
    body = await read_body(request, limit)
    if sniff_image_type(body) is not None:
        return body
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("multipart/form-data"):
        from starlette.formparsers import MultiPartException, MultiPartParser

        async def stream():
            yield body
            yield b""

        try:
            parser = MultiPartParser(request.headers, stream(), max_files=4, max_fields=16, max_part_size=limit)
            form = await parser.parse()
        except MultiPartException as e:
            raise HTTPProblem(400, f"bad multipart body: {e.message}") from None
        try:
            files = [(k, v) for k, v in form.multi_items() if hasattr(v, "read")]
            chosen = next((v for k, v in files if k in ("image", "file")), files[0][1] if files else None)
            if chosen is None:
                raise HTTPProblem(400, "multipart body has no file part (send the image as a part named 'image')")
            return await chosen.read()
        finally:
            await form.close()
    return body


def decode_image(data: bytes, max_pixels: int):
    """Decode image bytes to a PIL image, checking the size on the header first.

    Raises:
        HTTPProblem: 400 empty or corrupt; 413 over ``max_pixels``; 415 not an image Pillow reads.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise HTTPProblem(400, "empty body: send the image bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own max_pixels decides
            im = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:
        raise HTTPProblem(415, "unsupported media: not an image format this server can read") from None
    except Image.DecompressionBombError:
        raise HTTPProblem(413, f"image has too many pixels (max_pixels={max_pixels})") from None
    except Exception as e:  # a recognised format with a broken header
        raise HTTPProblem(400, f"corrupt image: {e}") from None
    w, h = im.size
    if w * h > max_pixels:
        raise HTTPProblem(413, f"image is {w}x{h} = {w * h} pixels, over max_pixels={max_pixels}")
    if w < 1 or h < 1:
        raise HTTPProblem(400, f"image has no pixels ({w}x{h})")
    try:
        im.load()
        im = ImageOps.exif_transpose(im)
    except Exception as e:  # truncated data, bad compressed stream, ...
        raise HTTPProblem(400, f"corrupt image ({im.format}): {e}") from None
    return im


def encode_image(image: Any, fmt: str, jpeg_quality: int = 90) -> bytes:
    """PIL image or uint8 HxWxC array -> PNG / JPEG / WebP bytes."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    if fmt == "jpeg":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(buf, format="JPEG", quality=jpeg_quality)
    elif fmt == "webp":
        image.save(buf, format="WEBP", quality=jpeg_quality)
    else:
        image.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
