"""Steady colour against per-frame colour: flicker, CDC, colourfulness and PSNR on films with known colour.

    python benchmarks/video_quality.py                      # 640x360, every 3rd evaluation photo, 24-frame shots
    python benchmarks/video_quality.py --every 1            # all 127 evaluation photos
    python benchmarks/video_quality.py --size 320x180 --every 6 --out results/video/quality_quick.json

The films are made from the evaluation photos of ``../shared/data/photos`` (BSDS500 val, McMaster, Set14; the
split ``colorize evaluate --photos`` uses; ``examples/`` when that folder is absent: gray photos, so PSNR and
colourfulness then say nothing): each photo is one shot of ``--frames-per-shot`` frames, a pan, a zoom or a
piece of the next photo crossing a slow pan (``benchmarks/video_clips.py``), ``--shots`` shots per clip with
hard cuts between them. The gray film (the true frames' ITU-R 601 luma, x264 crf 12) is colorized twice with the
same model, backend and encoder: ``colorize video`` (steady colour) and ``colorize video --per-frame``; the true
colour frames go through the same encoder as the third row, the codec's floor. Every output is scored against
the true frames with ``benchmarks/video_metrics.py`` (flicker: the a*b* warping error along the true frames' flow;
CDC; Hasler-Suesstrunk colourfulness; PSNR, and PSNR on the three frames after each cut).

Writes ``--out`` (JSON) and the same name with ``.md`` (the table), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from colorize.benchmarks.machine import describe_machine, load_average, machine_summary  # noqa: E402
from colorize.benchmarks.video_clips import ClipSpec, write_clip  # noqa: E402
from colorize.benchmarks.video_metrics import Scores, read_rgb, score_clip  # noqa: E402

ROWS = ("per-frame", "steady", "true colour")


def photos(every: int) -> tuple[list[Path], str]:
    """Every ``every``-th evaluation photo, and where they came from."""
    from colorize.data.photos import photo_paths

    try:
        paths = photo_paths(None, "eval")
        source = f"{len(paths[::every])} of the {len(paths)} evaluation photos (BSDS500 val, McMaster, Set14)"
    except FileNotFoundError:
        paths = sorted(p for p in (REPO / "examples").iterdir() if p.suffix in (".jpg", ".png"))
        source = f"the {len(paths[::every])} gray photos of examples/ (../shared/data/photos absent)"
    return paths[::every], source


def run(args: argparse.Namespace) -> dict:
    from colorize.video import colorize_video

    paths, source = photos(args.every)
    w, h = (int(v) for v in args.size.split("x"))
    pooled = {name: Scores() for name in ROWS}
    seconds = {"steady": 0.0, "per-frame": 0.0}
    clips = [paths[i : i + args.shots] for i in range(0, len(paths), args.shots)]
    with tempfile.TemporaryDirectory(prefix="video-quality-") as tmp:
        tmp = Path(tmp)
        for k, chunk in enumerate(clips):
            spec = ClipSpec(chunk, size=(w, h), frames_per_shot=args.frames_per_shot)
            gray = write_clip(spec, tmp / f"clip{k}.mp4", audio=False)
            write_clip(spec, tmp / f"true{k}.mp4", colour=True, audio=False, crf=args.crf, preset=args.preset)
            options = dict(backend=args.backend, precision=args.precision, crf=args.crf, preset=args.preset)
            for name, steady in (("steady", True), ("per-frame", False)):
                t0 = time.perf_counter()
                s = colorize_video(gray.path, tmp / name, steady=steady, **options)
                seconds[name] += time.perf_counter() - t0
                if s.exit_status:
                    raise RuntimeError(f"colorize video failed on clip {k}: {s.errors}")
            engine = s.engines
            scores = score_clip(spec.frames(), {"per-frame": read_rgb(tmp / "per-frame" / f"clip{k}.mp4"),
                                                "steady": read_rgb(tmp / "steady" / f"clip{k}.mp4"),
                                                "true colour": read_rgb(tmp / f"true{k}.mp4")}, spec.cuts)
            for name in ROWS:
                pooled[name] = pooled[name].merge(scores[name])
            print(f"clip {k + 1}/{len(clips)}: {spec.n_frames} frames, flicker steady/per-frame "
                  f"{scores['steady'].flicker / scores['per-frame'].flicker:.2f}", file=sys.stderr)
    base = pooled["per-frame"]
    rows = []
    for name in ROWS:
        s = pooled[name]
        rows.append({"output": name, "flicker": s.flicker, "flicker_ratio": s.flicker / base.flicker,
                     "cdc": s.cdc, "cdc_ratio": s.cdc / base.cdc, "colourfulness": s.colourfulness,
                     "colourfulness_ratio": s.colourfulness / base.colourfulness, "psnr": s.psnr,
                     "psnr_delta": s.psnr - base.psnr, "psnr_after_cuts": s.psnr_after_cuts,
                     "psnr_after_cuts_delta": s.psnr_after_cuts - base.psnr_after_cuts,
                     "frame_pairs": len(s.warp), "frames": len(s.psnrs)})
    return {"command": "python benchmarks/video_quality.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "source": source, "size": args.size, "clips": len(clips), "shots": len(paths),
            "frames_per_shot": args.frames_per_shot, "engine": engine,
            "encoder": f"libx264 crf {args.crf} {args.preset}", "seconds": seconds, "rows": rows}


def to_markdown(report: dict) -> str:
    lines = [f"# Steady colour against per-frame colour ({report['size']})", "",
             f"`{report['command']}`", "",
             f"{report['source']}; {report['shots']} shots of {report['frames_per_shot']} frames in "
             f"{report['clips']} clips with hard cuts; {report['engine']}, {report['encoder']}. "
             f"Machine: {report['machine_summary']}.", "",
             "| output | flicker (a*b* warping error) | vs per-frame | CDC | vs per-frame | colourfulness | "
             "vs per-frame | PSNR dB | vs per-frame | PSNR, 3 frames after each cut | vs per-frame |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['output']} | {r['flicker']:.3f} | {r['flicker_ratio']:.2f}x | {r['cdc']:.5f} | "
                     f"{r['cdc_ratio']:.2f}x | {r['colourfulness']:.2f} | {r['colourfulness_ratio']:.2f}x | "
                     f"{r['psnr']:.2f} | {r['psnr_delta']:+.2f} | {r['psnr_after_cuts']:.2f} | "
                     f"{r['psnr_after_cuts_delta']:+.2f} |")
    lines += ["", "Flicker: mean |ab_t - ab_{t-1} warped along the true frames' flow| over the pixels where the "
              "forward and backward flows agree, inside shots (benchmarks/video_metrics.py). \"true colour\" is the "
              "true frames through the same encoder: what 4:2:0 and the encoder alone leave."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="640x360", help="frame size WxH (default: 640x360)")
    ap.add_argument("--every", type=int, default=3, help="every N-th evaluation photo (default: 3)")
    ap.add_argument("--shots", type=int, default=10, help="shots per clip (default: 10)")
    ap.add_argument("--frames-per-shot", type=int, default=24)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--out", default="results/video/quality.json")
    args = ap.parse_args(argv)
    machine = describe_machine(with_gpu=False)
    report = run(args)
    machine["load_avg_end"] = load_average()
    report["machine"] = machine
    report["machine_summary"] = machine_summary(machine)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from colorize.fsutil import atomic_write_text

    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    md = to_markdown(report)
    atomic_write_text(out.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
