"""What a data pack (``python -m colorize.training.pack``) costs in quality, against the original photos.

    python benchmarks/pack_quality.py --pack packs/photos-256 --out results/gpu_pack/pack_quality

* **Training crops**: the same crops (``colorize.data.photos.PhotoCrops``, one seed: the windows are drawn relative to
  each photo, so crop k shows the same place) cut from the originals as training reads them (reduced to a long
  side of working size x scale-max) and from the packed photos; PSNR of the packed crops against the original ones,
  split into what the smaller long side costs (the original reduced to the pack's long side, not re-encoded) and
  what the JPEG adds, and the mean chroma (sqrt(a*^2 + b*^2)) of each, the quantity the model learns. Every
  ``--every``-th training photo.
* **Evaluation**: the gray baseline (Pillow gray) and ``--model`` through ``colorize.Colorizer`` (torch FP32, as
  ``colorize evaluate --photos``) on the original and on the packed ``eval`` split.

Writes ``OUT.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


def _chroma(crops: np.ndarray) -> float:
    import torch

    from colorize.training.lab import rgb_to_lab

    lab = rgb_to_lab(torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0)
    return float(lab[:, 1:].pow(2).sum(1).sqrt().mean())


def crop_cost(pack: Path, src: Path | None, working_size: int, crop: int, scale: tuple[float, float], every: int,
              long_side: int) -> dict:
    from colorize.data.folder import load_rgb
    from colorize.data.photos import PhotoCrops, load_at_working_size, photo_paths

    orig_paths = photo_paths(src, "train")[::every]
    packed_paths = photo_paths(pack, "train")[::every]
    keep = max(working_size, round(working_size * scale[1]))
    crops = {}
    for name, photos in (("original", [load_at_working_size(p, keep) for p in orig_paths]),
                         ("reduced", [load_at_working_size(p, long_side) for p in orig_paths]),
                         ("packed", [load_rgb(p) for p in packed_paths])):
        crops[name] = PhotoCrops(photos, working_size, crop, 2, scale, seed=1).for_epoch(0)
    return {"photos": len(orig_paths), "crops": len(crops["original"]), "crop": crop, "scale": list(scale),
            "original_long_side": keep, "packed_long_side": long_side,
            "psnr_packed_vs_original": float(_psnr(crops["packed"], crops["original"]).mean()),
            "psnr_reduced_vs_original": float(_psnr(crops["reduced"], crops["original"]).mean()),
            "psnr_packed_vs_reduced (JPEG alone)": float(_psnr(crops["packed"], crops["reduced"]).mean()),
            "mean_chroma": {k: _chroma(v) for k, v in crops.items()}}


def eval_cost(pack: Path, src: Path | None, model: str, working_size: int) -> dict:
    from colorize import Colorizer
    from colorize.training.photo_eval import evaluate_photos
    from colorize.data.photos import photo_paths

    colorizer = Colorizer.load(model, "torch", "fp32", working_size=working_size, small_model=None)
    out = {}
    with colorizer:
        for name, root in (("original", src), ("packed", pack)):
            res = evaluate_photos(colorizer, photo_paths(root, "eval"), colorizer.engine.model.normalization)
            out[name] = {"n": res["n"], "model_psnr": res["model"]["psnr"], "gray_psnr": res["gray"]["psnr"],
                         "model_minus_gray": res["model"]["psnr"] - res["gray"]["psnr"],
                         "model_colorfulness_ratio": res["model"]["colorfulness_ratio"]}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pack", required=True)
    p.add_argument("--photos", default=None, help="the original photos (default ../shared/data/photos)")
    p.add_argument("--model", default="efficientnet_lite0-unet-photos")
    p.add_argument("--working-size", type=int, default=256)
    p.add_argument("--crop", type=int, default=160)
    p.add_argument("--every", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="OUT.json is written")
    a = p.parse_args()
    import torch

    from colorize.training.pack import verify

    torch.set_num_threads(a.threads)
    pack = Path(a.pack)
    manifest = verify(pack)
    src = Path(a.photos) if a.photos else None
    res = {"command": "python benchmarks/pack_quality.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
           "pack": {"reduced": manifest["reduced"], "total_bytes": manifest["total_bytes"]},
           "train_crops": crop_cost(pack, src, a.working_size, a.crop, (0.85, 1.4), a.every, manifest["long_side"]),
           "eval": eval_cost(pack, src, a.model, a.working_size)}
    out = Path(a.out + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
