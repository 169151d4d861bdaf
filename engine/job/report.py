"""A self-contained HTML before/after gallery of a folder job (``colorize images --report``, ``colorize_folder``).

Thumbnails are small JPEGs embedded as data URIs, so the page is one file
that can be moved or mailed. Only the first ``limit`` images get thumbnails;
the rest are listed by name. Each output's name (and its thumbnail) links to
the file, relative to the page, so the links hold while the page and the
outputs move together. Errors are listed with their reasons.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image

from colorize.image.io import Decoded

THUMB_SIDE = 192


def _to_pil(d: Decoded) -> Image.Image:
    px = d.pixels
    if px.dtype == np.uint16:
        px = (px >> 8).astype(np.uint8)
    elif px.dtype != np.uint8:
        px = np.round(np.clip(px, 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(px)


def thumbnail_uri(image: Image.Image | Decoded, side: int = THUMB_SIDE) -> str:
    """A ``data:image/jpeg;base64,...`` thumbnail whose long side is at most ``side``."""
    im = _to_pil(image) if isinstance(image, Decoded) else image
    im = im.convert("RGB") if im.mode != "L" else im
    im = im.copy() if im.size[0] <= side and im.size[1] <= side else im.resize(_fit(im.size, side), Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    w, h = size
    s = side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


@dataclass
class Entry:
    """One processed file: source and output paths (as shown), thumbnails (may be None)."""

    source: str
    output: str
    before: str | None = None
    after: str | None = None
    size: tuple[int, int] | None = None  # (width, height)


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa}
.grid{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;background:#fff;padding:8px;border:1px solid #ddd;border-radius:6px}
figure img{max-width:192px;max-height:192px;display:inline-block;vertical-align:top}
figcaption{font-size:12px;max-width:392px;word-break:break-all;color:#333}
.err{color:#a00}"""


def href(output: str | os.PathLike, page_dir: str | os.PathLike | None) -> str:
    """The link from a page in ``page_dir`` to ``output``: relative, ``/``-separated, percent-encoded."""
    path = Path(os.path.abspath(output))
    rel = os.path.relpath(path, os.path.abspath(page_dir)) if page_dir is not None else str(path)
    return quote(Path(rel).as_posix())


def render(entries: list[Entry], errors: list[tuple[str, str]], summary: str, title: str = "colorize images",
           page_dir: str | os.PathLike | None = None) -> str:
    """The report page as a string; links to the outputs are relative to ``page_dir`` (default: absolute)."""
    e = html.escape

    def link(en: Entry, inner: str) -> str:
        return f"<a href='{e(href(en.output, page_dir))}'>{inner}</a>"

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_CSS}</style>"
             f"</head><body><h1>{e(title)}</h1><p>{e(summary)}</p><div class='grid'>"]
    listed = []
    for en in entries:
        if en.before is None or en.after is None:
            listed.append(en)
            continue
        dims = f" ({en.size[0]}×{en.size[1]})" if en.size else ""
        after = link(en, f"<img src='{en.after}' alt='after'>")
        parts.append(f"<figure><img src='{en.before}' alt='before'> {after}"
                     f"<figcaption>{e(en.source)} → {link(en, e(en.output))}{dims}</figcaption></figure>")
    parts.append("</div>")
    if listed:
        parts.append(f"<h2>Also done ({len(listed)}, no thumbnail)</h2><ul>")
        parts += [f"<li>{e(en.source)} → {link(en, e(en.output))}</li>" for en in listed]
        parts.append("</ul>")
    if errors:
        parts.append(f"<h2 class='err'>Errors ({len(errors)})</h2><ul>")
        parts += [f"<li class='err'>{e(src)}: {e(reason)}</li>" for src, reason in errors]
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(path: str | os.PathLike, entries: list[Entry], errors: list[tuple[str, str]], summary: str) -> None:
    """Write the page atomically (``colorize.fsutil``)."""
    from colorize.fsutil import atomic_write_text

    path = Path(path)
    atomic_write_text(path, render(entries, errors, summary, page_dir=path.parent))
