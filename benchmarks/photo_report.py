"""A photo colorizer on the evaluation split, per source, and its ten worst photos.

    python benchmarks/photo_report.py --model efficientnet_lite0-unet-photos --out results/photo_long/report

The protocol of ``colorize evaluate --photos`` (``colorize.training.photo_eval``): the evaluation split (BSDS500
val, McMaster, Set14), gray made with Pillow's ``convert("L")``, through ``colorize.Colorizer`` with the backend and
precision asked for (default ``auto``: what users get). For each source: PSNR of the model and of the gray input,
the gain, and the colourfulness ratio (the model's mean colourfulness over the originals'). The worst ten photos
are those with the smallest PSNR gain over their gray input; ``OUT-worst.jpg`` shows them as gray | ours | truth.
The cast is the model's mean a*, b* less the original's (Lab units; b* > 0 warm, b* < 0 cool): its mean per source,
and how often a warm cast lands on a photo whose own colour is neutral or cool (mean b* below ``NEUTRAL_B``).

Writes ``OUT.json`` (every photo's figures) and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


NEUTRAL_B = 5.0  # an original whose mean b* is below this is neutral or cool
WARM_CAST = 5.0  # a cast of more than this in b* is a warm cast


def cast_summary(per_image: list[dict]) -> dict:
    """How the model's casts fall: on all photos, and on those whose original is neutral or cool."""
    cool = [r for r in per_image if r["truth_b"] < NEUTRAL_B]
    return {"photos": len(per_image), "cast_b": sum(r["cast_b"] for r in per_image) / max(len(per_image), 1),
            "warm": sum(r["cast_b"] > WARM_CAST for r in per_image), "cool_originals": len(cool),
            "cool_cast_b": sum(r["cast_b"] for r in cool) / len(cool) if cool else float("nan"),
            "warm_on_cool": sum(r["cast_b"] > WARM_CAST for r in cool)}


def report(res: dict, worst: int = 10) -> tuple[list[str], list[dict]]:
    """(Markdown lines, the ``worst`` rows of ``res["per_image"]`` by PSNR gain, worst first)."""
    lines = ["| source | photos | PSNR model | PSNR gray | gain | colourfulness ratio | cast a*, b* |",
             "|---|---|---|---|---|---|---|"]
    for name, f in res["per_folder"].items():
        lines.append(f"| {name} | {f['n']} | {f['model']:.2f} | {f['gray']:.2f} | {f['model'] - f['gray']:+.2f} | "
                     f"{f['colorfulness_ratio']:.2f} | {f['cast_a']:+.1f}, {f['cast_b']:+.1f} |")
    m, g = res["model"], res["gray"]
    lines.append(f"| all | {res['n']} | {m['psnr']:.2f} | {g['psnr']:.2f} | {m['psnr'] - g['psnr']:+.2f} | "
                 f"{m['colorfulness_ratio']:.2f} | {m['cast_a']:+.1f}, {m['cast_b']:+.1f} |")
    c = cast_summary(res["per_image"])
    lines += ["", f"Casts: a warm cast (b* more than {WARM_CAST:g} above the original's) on {c['warm']} of "
                  f"{c['photos']} photos; {c['cool_originals']} originals are neutral or cool (mean b* under "
                  f"{NEUTRAL_B:g}), and on them the mean cast in b* is {c['cool_cast_b']:+.1f} with {c['warm_on_cool']} "
                  f"warm casts."]
    rows = sorted(res["per_image"], key=lambda r: r["psnr_model"] - r["psnr_gray"])[:worst]
    lines += ["", f"The {len(rows)} photos with the smallest gain over their gray input:", "",
              "| photo | gain | PSNR model | colourfulness, model / original | original a*, b* | cast a*, b* |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['psnr_model'] - r['psnr_gray']:+.2f} | {r['psnr_model']:.2f} | "
                     f"{r['colorfulness_model']:.1f} / {r['colorfulness_truth']:.1f} | "
                     f"{r['truth_a']:+.1f}, {r['truth_b']:+.1f} | {r['cast_a']:+.1f}, {r['cast_b']:+.1f} |")
    return lines, rows


def main() -> int:
    from colorize.colorizer import Colorizer
    from colorize.data.photos import default_photos_dir, photo_paths
    from colorize.training.photo_eval import contact_sheet, evaluate_photos

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0-unet-photos")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--photos", default=None, help="photos root (default ../shared/data/photos)")
    ap.add_argument("--worst", type=int, default=10)
    ap.add_argument("--out", default=str(REPO / "results" / "photo_report"))
    args = ap.parse_args()
    paths = photo_paths(args.photos, "eval")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with Colorizer.load(args.model, args.backend, args.precision) as col:
        res = evaluate_photos(col, paths, col.engine.normalization, per_image=True)
        lines, rows = report(res, args.worst)
        root = Path(args.photos) if args.photos else default_photos_dir()
        contact_sheet(col, [root / r["name"] for r in rows], str(out) + "-worst.jpg")
        engine = f"{col.engine.backend}/{col.engine.precision}"
    res["command"] = "python benchmarks/photo_report.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    res["engine"] = engine
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    head = [f"`{res['command']}`: {args.model} on {engine}, the evaluation split, Pillow gray.", ""]
    out.with_suffix(".md").write_text("\n".join(head + lines) + "\n")
    print("\n".join(head + lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
