"""Which model for small images: colorizers side by side on the evaluation photos reduced to small sizes.

    python benchmarks/small_images.py --models resnet18-unet,efficientnet_lite0-unet-photos --sides 32,64,96,128,160

Each of the 127 evaluation photos (BSDS500 val, McMaster, Set14) is reduced (bicubic, antialiased) to each long
side, made gray with Pillow's ``convert("L")`` and colorized through ``colorize.Colorizer`` with backend and
precision ``auto``, as ``colorize images`` would (the photo model enlarges them to its minimum working size), but
each model alone (``small_model=None``: no hand-over to a small-image model); the
figures are ``colorize.training.photo_eval``'s, against the gray input made the same way. It asks whether small *photos*
should go to another model than large ones (CIFAR-10 images are not typical small photos: their chroma is
smoothed, see ``../shared/data/cifar10/README.md``).

Writes ``--out`` (JSON) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def shrink(rgb: np.ndarray, side: int) -> np.ndarray:
    im = Image.fromarray(rgb)
    s = side / max(im.size)
    size = (max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s)))
    return np.asarray(im.resize(size, Image.BICUBIC, reducing_gap=2.0))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet18-unet,efficientnet_lite0-unet-photos")
    ap.add_argument("--sides", default="32,64,96,128,160")
    ap.add_argument("--photos", default=None, help="photos root (default ../shared/data/photos)")
    ap.add_argument("--limit", type=int, default=0, help="the first N evaluation photos only (0 = all)")
    ap.add_argument("--backend", default="auto", help="inference backend (default: auto, as colorize images)")
    ap.add_argument("--precision", default="auto", help="inference precision (default: auto)")
    ap.add_argument("--out", default="results/small_images.json")
    args = ap.parse_args(argv)
    from colorize.colorizer import Colorizer
    from colorize.data.folder import load_rgb
    from colorize.training.photo_eval import evaluate_arrays
    from colorize.data.photos import photo_paths

    paths = photo_paths(args.photos, "eval")
    photos = [load_rgb(p) for p in paths[: args.limit or None]]
    sides = [int(s) for s in args.sides.split(",")]
    small = {side: [("eval", shrink(a, side)) for a in photos] for side in sides}
    rows = []
    for model in args.models.split(","):
        with Colorizer.load(model, args.backend, args.precision, small_model=None) as col:
            for side, items in small.items():
                r = evaluate_arrays(col, iter(items), len(items), col.engine.normalization)
                rows.append({"model": model, "side": side, "backend": f"{col.engine.backend}/{col.engine.precision}",
                             "psnr": r["model"]["psnr"], "gray_psnr": r["gray"]["psnr"],
                             "delta_psnr": r["model"]["psnr"] - r["gray"]["psnr"],
                             "colorfulness_ratio": r["model"]["colorfulness_ratio"]})
    record = {"command": "python benchmarks/small_images.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
              "protocol": f"{len(photos)} evaluation photos reduced to each long side, Pillow gray in, "
                          f"backend {args.backend}/{args.precision}",
              "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print("| long side | " + " | ".join(f"{m}: Δ dB / colour" for m in args.models.split(",")) + " |")
    print("|---" * (1 + len(args.models.split(","))) + "|")
    for side in sides:
        cells = [f"{r['delta_psnr']:+.2f} / {r['colorfulness_ratio']:.3f}" for r in rows if r["side"] == side]
        print(f"| {side} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
