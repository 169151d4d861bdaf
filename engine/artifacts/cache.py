"""On-disk cache of built artifacts (exported ONNX, INT8 models, compiled blobs, guard and tuning results).

    cache = ArtifactCache()                                     # $COLORIZE_CACHE/artifacts by default
    entry = cache.get_or_build(key, build)                      # build(tmp_dir) writes the files
    entry.path("model.onnx"), entry.meta["guard"]

Key: a dict of everything the artifact depends on (model sha256, backend, backend version, precision,
shape profile, ...); its canonical JSON's sha256 names the entry's folder
``<root>/<kind>-<hash16>/``. Each entry holds its files and ``entry.json`` (the key, the sha256 of
every file, and free-form results such as the quality guard's).

* Stale or corrupt: on every lookup the key is compared and every file's sha256 is checked; a
  mismatch, a missing or unreadable ``entry.json``, or a missing file means the entry is rebuilt.
* Concurrency: builds happen in a private temp folder, then the folder is swapped in under an
  exclusive ``fcntl.flock`` on ``<entry>.lock`` (readers take the same lock), so concurrent
  processes never see a half-written entry and build at most once each. Windows (no fcntl) gets
  the atomic swap without the lock.

Root: ``cache_dir`` argument, else ``$COLORIZE_CACHE/artifacts``, else ``$XDG_CACHE_HOME/colorize/
artifacts``, else ``~/.cache/colorize/artifacts``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colorize.fsutil import atomic_write_text, sha256_file  # noqa: F401  (re-exported)
from colorize.paths import cache_dir

ENTRY_FILE = "entry.json"
FORMAT = "colorize-artifact/1"


def default_cache_root() -> Path:
    return cache_dir() / "artifacts"


def key_hash(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock on ``path`` (created if needed)."""
    try:
        import fcntl
    except ImportError:  # Windows: rely on the atomic folder swap only
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass
class Entry:
    dir: Path
    key: dict[str, Any]
    meta: dict[str, Any]  # free-form results stored with the artifact (guard, tuning, ...)
    built: bool  # True when this lookup built it

    def path(self, name: str) -> Path:
        return self.dir / name


class ArtifactCache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_root()

    def entry_dir(self, key: dict[str, Any]) -> Path:
        kind = str(key.get("kind", "artifact")).replace(os.sep, "_")
        return self.root / f"{kind}-{key_hash(key)[:16]}"

    def _valid(self, d: Path, key: dict[str, Any]) -> dict[str, Any] | None:
        """The entry's record when it is complete and matches ``key``, else None."""
        try:
            record = json.loads((d / ENTRY_FILE).read_text())
            if record.get("format") != FORMAT or record.get("key") != json.loads(json.dumps(key, default=str)):
                return None
            for name, digest in record["files"].items():
                if sha256_file(d / name) != digest:
                    return None
            return record
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def lookup(self, key: dict[str, Any]) -> Entry | None:
        d = self.entry_dir(key)
        with file_lock(d.with_name(d.name + ".lock")):
            record = self._valid(d, key)
        return Entry(d, key, record.get("meta", {}), False) if record else None

    def get_or_build(
        self, key: dict[str, Any], build: Callable[[Path], dict[str, Any] | None]
    ) -> Entry:
        """The valid entry for ``key``, building it with ``build(tmp_dir)`` when missing, stale or corrupt.

        ``build`` writes its files into ``tmp_dir`` and may return a dict stored as ``entry.meta``.
        """
        d = self.entry_dir(key)
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(d.with_name(d.name + ".lock")):
            record = self._valid(d, key)
            if record is not None:
                return Entry(d, key, record.get("meta", {}), False)
            tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{d.name}."))
            try:
                meta = build(tmp) or {}
                files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
                record = {"format": FORMAT, "key": key, "files": files, "meta": meta}
                (tmp / ENTRY_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
                if d.exists():  # stale or corrupt: move it aside, then swap the new one in
                    old = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{d.name}.old."))
                    os.replace(d, old / "x")
                    shutil.rmtree(old, ignore_errors=True)
                os.replace(tmp, d)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return Entry(d, key, meta, True)

    def update_meta(self, entry: Entry, **updates: Any) -> None:
        """Merge ``updates`` into the entry's stored results (atomically, under the lock)."""
        d = entry.dir
        with file_lock(d.with_name(d.name + ".lock")):
            path = d / ENTRY_FILE
            record = json.loads(path.read_text())
            record.setdefault("meta", {}).update(updates)
            atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str))
            entry.meta = record["meta"]
