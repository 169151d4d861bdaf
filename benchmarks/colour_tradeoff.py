"""PSNR against colourfulness: a bins-head colorizer at several annealed-mean temperatures, beside other models.

    python benchmarks/colour_tradeoff.py --model runs/photo-convex/model.json --temperatures 0.1,0.2,0.3,0.38,0.5 \
        --also models/weights/resnet18-unet-photos.json --out results/photo_convex/tradeoff

Every point is ``colorize evaluate --photos`` (``colorize.training.photo_eval``): the evaluation split (BSDS500 val, McMaster,
Set14), the gray input made with Pillow's ``convert("L")`` (``--gray`` for another), the gray baseline made the same
way, through ``colorize.Colorizer`` with torch FP32 at the working size. The temperature only changes the head's
decoding (``AbBinsHead.decode``), so one set of weights gives a curve: low T picks each pixel's likeliest colour
bin (colourful, and wrong more often), high T averages the bins (duller, safer in PSNR). ``--strengths`` adds the
other knob users have, the colour strength (``Colorizer(colour_strength=s)``: the predicted chroma times s, at the
model's own temperature), as a second curve of the same model. ``--also`` adds fixed points (other checkpoints at
their own temperature).

Writes ``OUT.json``, ``OUT.md`` (a table) and ``OUT.png`` (the curve). ``--merge A.json B.json ...`` draws the
points of earlier runs (one protocol) in one table and plot instead, without evaluating.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _evaluate(ckpt: Path, images: list[tuple[str, object]], gray: str, working_size: int,
              strength: float = 1.0) -> dict:
    from colorize.colorizer import Colorizer
    from colorize.training.photo_eval import evaluate_arrays

    with Colorizer.load(str(ckpt), "torch", "fp32", working_size=working_size, colour_strength=strength) as col:
        return evaluate_arrays(col, iter(images), len(images), col.engine.normalization, gray=gray)


def _point(label: str, temperature: float | None, res: dict, strength: float = 1.0) -> dict:
    m, g = res["model"], res["gray"]
    return {"label": label, "temperature": temperature, "strength": strength, "psnr": m["psnr"], "gray_psnr": g["psnr"],
            "delta_psnr": m["psnr"] - g["psnr"], "colorfulness_ratio": m["colorfulness_ratio"], "ssim": m["ssim"],
            "per_folder": res["per_folder"]}


def sweep(model: str, temperatures: list[float], also: list[str], images: list[tuple[str, object]],
          gray: str = "pillow", working_size: int = 256, label: str | None = None,
          strengths: list[float] = ()) -> list[dict]:
    """One point per temperature of ``model`` (a bins-head checkpoint), one per colour strength (label
    "LABEL strength", at the model's own temperature), then one per ``also`` checkpoint (``LABEL=PATH`` or a path,
    labelled by its file name)."""
    from colorize.models.checkpoint import load_checkpoint, normalization_of, save_checkpoint

    net, meta = load_checkpoint(model)
    if not hasattr(net.head, "temperature"):
        raise ValueError(f"{model}: the temperature sweep needs a bins head (arch_kwargs head='bins')")
    points = []
    extra = {k: meta[k] for k in ("inference",) if k in meta}
    with tempfile.TemporaryDirectory() as tmp:
        for t in temperatures:
            kwargs = {**meta.get("arch_kwargs", {}), "temperature": float(t)}
            net.head.temperature = float(t)
            ckpt = save_checkpoint(net, Path(tmp) / f"T{t}", arch=meta["arch"], arch_kwargs=kwargs,
                                   normalization=normalization_of(meta), extra=extra)
            points.append(_point(label or Path(model).stem, float(t), _evaluate(ckpt, images, gray, working_size)))
            print(f"T {t}: {points[-1]['delta_psnr']:+.2f} dB, colourfulness {points[-1]['colorfulness_ratio']:.3f}",
                  file=sys.stderr)
    own_t = read_temperature(model)
    for st in strengths:
        points.append(_point(f"{label or Path(model).stem} strength", own_t,
                             _evaluate(Path(model), images, gray, working_size, st), strength=float(st)))
        print(f"strength {st}: {points[-1]['delta_psnr']:+.2f} dB, colourfulness "
              f"{points[-1]['colorfulness_ratio']:.3f}", file=sys.stderr)
    for other in also:
        name, _, path = other.rpartition("=")
        points.append(_point(name or Path(path).stem, read_temperature(path),
                             _evaluate(Path(path), images, gray, working_size)))
    return points


def read_temperature(ckpt: str) -> float | None:
    from colorize.models.ab_bins import DEFAULT_TEMPERATURE
    from colorize.models.checkpoint import read_metadata

    kw = read_metadata(ckpt).get("arch_kwargs", {})
    return float(kw.get("temperature", DEFAULT_TEMPERATURE)) if kw.get("head") == "bins" else None


def write_table(points: list[dict], path: Path, header: str) -> None:
    rows = [header, "", "| model | T | colour strength | per-image PSNR | Δ vs gray | colourfulness ratio | SSIM |",
            "|---|---|---|---|---|---|---|"]
    for p in points:
        t = "–" if p["temperature"] is None else f"{p['temperature']:g}"
        rows.append(f"| {p['label']} | {t} | {p.get('strength', 1.0):g} | {p['psnr']:.2f} | {p['delta_psnr']:+.2f} | "
                    f"{p['colorfulness_ratio']:.3f} | {p['ssim']:.4f} |")
    path.write_text("\n".join(rows) + "\n")


def plot(points: list[dict], path: Path, title: str) -> Path:
    from colorize.benchmarks.plots import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label in dict.fromkeys(p["label"] for p in points):
        ps = [p for p in points if p["label"] == label]
        xs, ys = [p["colorfulness_ratio"] for p in ps], [p["delta_psnr"] for p in ps]
        ax.plot(xs, ys, "o-" if len(ps) > 1 else "s", label=label)
        for p in ps:
            if label.endswith(" strength"):
                ax.annotate(f"s {p['strength']:g}", (p["colorfulness_ratio"], p["delta_psnr"]), fontsize=7,
                            textcoords="offset points", xytext=(4, -9))
            elif p["temperature"] is not None:
                ax.annotate(f"T {p['temperature']:g}", (p["colorfulness_ratio"], p["delta_psnr"]), fontsize=7,
                            textcoords="offset points", xytext=(4, 3))
    ax.set_xlabel("colourfulness / truth's")
    ax.set_ylabel("per-image PSNR − gray input's (dB)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = _save(fig, path)
    plt.close(fig)
    return out


def merge(paths: list[str], out: Path) -> int:
    """One table and one plot of the points of several ``OUT.json`` files, which must share a protocol."""
    records = [json.loads(Path(p).read_text()) for p in paths]
    protocols = {json.dumps(r["protocol"], sort_keys=True) for r in records}
    if len(protocols) != 1:
        print(f"error: the files were measured under different protocols: {sorted(protocols)}", file=sys.stderr)
        return 2
    protocol = records[0]["protocol"]
    points = [p for r in records for p in r["points"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"Evaluation split ({protocol['n']} photos), gray input: {protocol['gray_input']}, "
              f"{protocol['backend']}, working size {protocol['working_size']}. Points of: "
              + "; ".join(f"`{r['command']}`" for r in records))
    write_table(points, out.with_suffix(".md"), header)
    plot(points, out.with_suffix(".png"), f"{protocol['n']} evaluation photos, {protocol['gray_input']} gray in")
    out.with_suffix(".json").write_text(json.dumps({"merged": [str(p) for p in paths], "protocol": protocol,
                                                    "points": points}, indent=2) + "\n")
    print(out.with_suffix(".md").read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="bins-head checkpoint (.json) to sweep")
    ap.add_argument("--merge", nargs="+", metavar="JSON", default=None,
                    help="instead of evaluating: draw the points of earlier runs' OUT.json files (one protocol) in "
                         "one table and one plot")
    ap.add_argument("--temperatures", default="0.1,0.2,0.3,0.38,0.5,0.7")
    ap.add_argument("--strengths", default="", help="comma-separated colour strengths of the model at its own "
                                                    "temperature (a second curve; e.g. 1,1.25,1.5,1.75)")
    ap.add_argument("--label", default=None, help="the swept model's name in the table (default: its file name)")
    ap.add_argument("--also", default="", help="comma-separated checkpoints shown as fixed points, each PATH or "
                                               "LABEL=PATH")
    ap.add_argument("--photos", default=None, help="photos root (default ../shared/data/photos)")
    ap.add_argument("--limit", type=int, default=None, help="first N evaluation photos only")
    ap.add_argument("--gray", default="pillow", choices=("pillow", "rec709", "mean", "lstar"))
    ap.add_argument("--working-size", type=int, default=256)
    ap.add_argument("--out", default="results/colour_tradeoff")
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, Path(args.out))
    if not args.model:
        ap.error("--model (or --merge) is required")
    from colorize.data.folder import load_rgb
    from colorize.data.photos import photo_paths, split_folder

    try:
        temps = [float(t) for t in args.temperatures.split(",") if t.strip()]
    except ValueError:
        ap.error(f"--temperatures: comma-separated numbers expected, got {args.temperatures!r}")
    if not temps or min(temps) <= 0:
        ap.error("--temperatures: at least one, all > 0")
    try:
        strengths = [float(t) for t in args.strengths.split(",") if t.strip()]
    except ValueError:
        ap.error(f"--strengths: comma-separated numbers expected, got {args.strengths!r}")
    paths = photo_paths(args.photos, "eval")[: args.limit]
    images = [(split_folder(p, "eval"), load_rgb(p)) for p in paths]
    also = [a for a in args.also.split(",") if a.strip()]
    points = sweep(args.model, temps, also, images, args.gray, args.working_size, args.label, strengths)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": "python benchmarks/colour_tradeoff.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
              "protocol": {"split": "eval", "n": len(images), "gray_input": args.gray, "backend": "torch fp32",
                           "working_size": args.working_size}, "points": points}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    header = (f"Evaluation split ({len(images)} photos), gray input: {args.gray}, torch FP32, working size "
              f"{args.working_size}. `{record['command']}`")
    write_table(points, out.with_suffix(".md"), header)
    plot(points, out.with_suffix(".png"), f"{len(images)} evaluation photos, {args.gray} gray in")
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
