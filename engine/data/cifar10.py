"""CIFAR-10 from the shared JPEG zips (``train.zip`` / ``test.zip``, see
``../shared/data/cifar10/README.md``), decoded once and cached as ``.npz``.

Where the data is looked for, first hit wins:
  1. the ``data_dir`` argument (``--data`` on the command line),
  2. the ``COLORIZE_CIFAR10`` environment variable,
  3. ``../shared/data/cifar10`` next to this repository.
The decoded cache lives under ``cache_dir()`` (``COLORIZE_CACHE`` or
``~/.cache/colorize``), keyed by the zip's size and mtime.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from colorize.paths import cache_dir, repo_root

ENV_VAR = "COLORIZE_CIFAR10"
SPLITS = ("train", "test")


def default_data_dir() -> Path:
    return repo_root().parent / "shared" / "data" / "cifar10"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding ``train.zip`` / ``test.zip``."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else default_data_dir()


def read_classes(data_dir: str | os.PathLike | None = None) -> list[str]:
    path = resolve_data_dir(data_dir) / "classes.txt"
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 class list not found: {path} (set --data or ${ENV_VAR})")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _members(zf: zipfile.ZipFile, zip_path: Path, split: str, index: dict[str, int]) -> list[str]:
    """The split's image entries, in the order of the decoded arrays (sorted names)."""
    names = []
    for name in sorted(zf.namelist()):
        parts = name.split("/")
        if name.endswith("/") or len(parts) != 3 or parts[0] != split:
            continue
        if parts[1] not in index:
            raise ValueError(f"{zip_path}: entry {name!r} is in unknown class folder {parts[1]!r}")
        names.append(name)
    if not names:
        raise ValueError(f"{zip_path}: no images under {split}/<class>/")
    return names


def _decode(zf: zipfile.ZipFile, names: list[str], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    images = []
    for name in names:
        with Image.open(io.BytesIO(zf.read(name))) as im:
            images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    return np.stack(images), np.asarray([index[n.split("/")[1]] for n in names], dtype=np.int64)


def _decode_zip(zip_path: Path, split: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    index = {c: i for i, c in enumerate(classes)}
    with zipfile.ZipFile(zip_path) as zf:
        return _decode(zf, _members(zf, zip_path, split, index), index)


def sample_cifar10(split: str, n: int, seed: int = 0, data_dir: str | os.PathLike | None = None) -> np.ndarray:
    """``n`` images of ``split`` (uint8 [n, 32, 32, 3]): ``load_cifar10(split)[0][idx]`` with ``idx`` the first
    ``n`` of a seeded permutation, sorted; decodes only those when the split is not decoded and cached yet
    (256 test images: ~0.1 s, where the whole split takes seconds).

    Raises:
        FileNotFoundError, ValueError: as ``load_cifar10``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = resolve_data_dir(data_dir)
    zip_path = root / f"{split}.zip"
    if not zip_path.is_file():
        raise FileNotFoundError(f"CIFAR-10 {split} split not found: {zip_path} does not exist "
                                f"(pass --data DIR or set ${ENV_VAR} to the folder holding {split}.zip)")
    st = zip_path.stat()
    if (cache_dir() / "cifar10" / f"{split}-{st.st_size}-{int(st.st_mtime)}.npz").is_file():
        images, _ = load_cifar10(split, root)
        return images[np.sort(np.random.default_rng(seed).permutation(len(images))[:n])]
    index = {c: i for i, c in enumerate(read_classes(root))}
    with zipfile.ZipFile(zip_path) as zf:
        names = _members(zf, zip_path, split, index)
        idx = np.sort(np.random.default_rng(seed).permutation(len(names))[:n])
        return _decode(zf, [names[i] for i in idx], index)[0]


def load_cifar10(
    split: str, data_dir: str | os.PathLike | None = None, *, use_cache: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 ``split`` as (uint8 images [N, 32, 32, 3] RGB, int64 labels [N]).

    Raises:
        ValueError: unknown split.
        FileNotFoundError: the zip is missing (the message names the path looked at).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = resolve_data_dir(data_dir)
    zip_path = root / f"{split}.zip"
    if not zip_path.is_file():
        raise FileNotFoundError(
            f"CIFAR-10 {split} split not found: {zip_path} does not exist "
            f"(pass --data DIR or set ${ENV_VAR} to the folder holding {split}.zip)"
        )
    st = zip_path.stat()
    cache = cache_dir() / "cifar10" / f"{split}-{st.st_size}-{int(st.st_mtime)}.npz"
    if use_cache and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                return z["images"], z["labels"]
        except (OSError, ValueError, KeyError):
            pass  # corrupt cache: decode again below
    images, labels = _decode_zip(zip_path, split, read_classes(root))
    if use_cache:
        from colorize.fsutil import atomic_path

        with atomic_path(cache, suffix=".npz") as tmp:
            np.savez(tmp, images=images, labels=labels)
    return images, labels
