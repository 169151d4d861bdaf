"""The strip of frames in docs/video.md: gray film | per-frame colour | ``colorize video``, consecutive frames.

    python benchmarks/video_strip.py                         # writes docs/video_strip.jpg

A pan over ``examples/coffee.jpg`` (a bundled gray photo: public domain / CC0, ``examples/README.md``) is made
into a 24 fps gray film (``benchmarks/video_clips.py``), colorized by ``colorize video --per-frame`` and by
``colorize video`` (backend and precision auto, the defaults), and every ``--step``-th frame of each is laid side
by side: the per-frame row changes colour from frame to frame where the steady row keeps it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", default=str(REPO / "examples" / "coffee.jpg"))
    ap.add_argument("--size", default="256x170", help="frame size WxH (default: 256x170)")
    ap.add_argument("--frames", type=int, default=5, help="frames per row (default: 5)")
    ap.add_argument("--step", type=int, default=3, help="show every N-th frame (default: 3)")
    ap.add_argument("--out", default=str(REPO / "docs" / "video_strip.jpg"))
    args = ap.parse_args(argv)
    from PIL import Image, ImageDraw

    from colorize.benchmarks.video_clips import ClipSpec, write_clip
    from colorize.benchmarks.video_metrics import read_rgb
    from colorize.fsutil import atomic_path
    from colorize.video import colorize_video

    w, h = (int(v) for v in args.size.split("x"))
    spec = ClipSpec([args.photo], size=(w, h), frames_per_shot=args.frames * args.step + 2, speed=1.0)
    picked = [1 + i * args.step for i in range(args.frames)]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="video-strip-") as tmp:
        clip = write_clip(spec, Path(tmp) / "film.mp4", audio=False)
        rows["gray film"] = list(read_rgb(clip.path))
        for label, steady in (("per-frame colour", False), ("colorize video", True)):
            s = colorize_video(clip.path, Path(tmp) / label.split()[0], steady=steady)
            if s.exit_status:
                raise RuntimeError(f"colorize video failed: {s.errors}")
            rows[label] = list(read_rgb(Path(tmp) / label.split()[0] / "film.mp4"))
    label_w, gap = 120, 4
    sheet = Image.new("RGB", (label_w + args.frames * (w + gap), len(rows) * (h + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, frames) in enumerate(rows.items()):
        y = r * (h + gap)
        draw.text((6, y + h // 2 - 6), label, fill="black")
        for c, t in enumerate(picked):
            sheet.paste(Image.fromarray(np.asarray(frames[t])), (label_w + c * (w + gap), y))
    out = Path(args.out)
    with atomic_path(out, suffix=".jpg", mode=0o644) as tmp_path:
        sheet.save(tmp_path, "JPEG", quality=80)
    print(f"{out}: rows {', '.join(rows)}; frames {', '.join(str(t) for t in picked)} of a pan over "
          f"{Path(args.photo).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
