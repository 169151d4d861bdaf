"""File helpers shared by every package (torch-free): sha256 of a file and the one atomic write (a temporary
name in the same folder, then ``os.replace``), so a reader or a killed process never sees a half-written file.

    atomic_write_text("out/report.json", text)
    with atomic_path("out/plot.png", suffix=".png") as tmp:    # for writers that take a path
        fig.savefig(tmp)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", mode: int | None = None) -> Iterator[Path]:
    """A temporary name beside ``path`` (``.NAME.<random><suffix>``) to write to; renamed over ``path`` when the
    block ends, removed when it raises. Parent folders are created. The writer creates the file, so it gets the
    usual permissions; ``mode`` sets others. ``suffix`` keeps writers that read it happy (``.npz``, ``.png``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{suffix}")
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically, creating parent folders; ``mode``: the file's permissions."""
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, mode: int = 0o644) -> Path:
    """``atomic_write_bytes`` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode)
