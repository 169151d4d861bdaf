"""Synthetic film with known colour: pans and zooms over photos, hard cuts between shots, written with PyAV.

    spec = ClipSpec(photos=["examples/coffee.jpg", "examples/rocket.jpg"], size=(160, 96), frames_per_shot=12)
    info = write_clip(spec, "clip.mp4", audio=True)        # gray film, a sine on AAC, cuts at info.cuts
    for rgb in spec.frames(): ...                            # the true colour frames, regenerated (never stored)

    python benchmarks/video_clips.py examples/ film.mp4     # the same from the command line: a gray film of the samples

Each shot moves a window over one photo: a pan (constant sub-pixel translation), a zoom (scale about a point), or
a slow pan with a piece of the next photo crossing it fast (occlusions), so the motion between frames is known
and smooth, as a camera's is, and every cut changes the picture entirely.
A clip is made at test or benchmark time and never committed. The gray film is the frames' ITU-R 601 luma
(Pillow's ``convert("L")``) written as 4:2:0 with neutral chroma; ``colour=True`` writes the colour frames.
"""

from __future__ import annotations

import fractions
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

#: The shot kinds, cycled over the shots of a clip ("object": a slow pan with a piece of the next photo moving
#: across it fast, so that the background is hidden and uncovered: occlusions, where carried colour would ghost).
MOTIONS = ("pan", "zoom", "pan-down", "zoom-out", "object")


@dataclass
class ClipSpec:
    """What a clip shows: one shot per photo (cycled when ``shots`` is larger), each ``frames_per_shot`` long."""

    photos: Sequence[str | os.PathLike | np.ndarray]  # files or RGB uint8 arrays
    size: tuple[int, int] = (160, 96)  # (width, height)
    frames_per_shot: int = 12
    shots: int | None = None  # None: one per photo
    speed: float = 1.5  # pan speed, output pixels per frame
    fps: int = 24
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_shots(self) -> int:
        return self.shots if self.shots is not None else len(self.photos)

    @property
    def n_frames(self) -> int:
        return self.n_shots * self.frames_per_shot

    @property
    def cuts(self) -> list[int]:
        """Index of the first frame of each shot after the first."""
        return [s * self.frames_per_shot for s in range(1, self.n_shots)]

    def _photo(self, i: int) -> np.ndarray:
        """Photo ``i`` as float32 RGB, reduced (area) so that the output window covers about 70% of it."""
        import cv2

        key = i % len(self.photos)
        if key not in self._cache:
            src = self.photos[key]
            if isinstance(src, np.ndarray):
                rgb = src
            else:
                from PIL import Image

                with Image.open(src) as im:
                    rgb = np.asarray(im.convert("RGB"))
            w, h = self.size
            s = max(w / rgb.shape[1], h / rgb.shape[0]) / 0.7
            size = (max(w + 4, round(rgb.shape[1] * s)), max(h + 4, round(rgb.shape[0] * s)))
            interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
            self._cache[key] = cv2.resize(rgb, size, interpolation=interp).astype(np.float32)
        return self._cache[key]

    def frames(self) -> Iterator[np.ndarray]:
        """The true colour frames, RGB uint8 [h, w, 3], in order."""
        import cv2

        w, h = self.size
        n = self.frames_per_shot
        for s in range(self.n_shots):
            photo = self._photo(s)
            ph, pw = photo.shape[:2]
            kind = MOTIONS[s % len(MOTIONS)]
            for t in range(n):
                if kind.startswith("pan") or kind == "object":
                    span_x, span_y = pw - w - 1, ph - h - 1
                    dx = 0.35 * self.speed * t if kind == "pan-down" else self.speed * t
                    dy = self.speed * t if kind == "pan-down" else 0.35 * self.speed * t
                    x0 = min(dx, span_x)
                    y0 = min(dy, span_y)
                    m = np.float32([[1, 0, x0], [0, 1, y0]])
                else:  # zoom about the photo's centre: scale 1 -> 0.8 of the window (in) or back (out)
                    f = t / max(1, n - 1)
                    scale = 1.0 - 0.2 * (f if kind == "zoom" else 1.0 - f)
                    cx, cy = pw / 2, ph / 2
                    m = np.float32([[scale, 0, cx - scale * w / 2], [0, scale, cy - scale * h / 2]])
                frame = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                       borderMode=cv2.BORDER_REFLECT)
                if kind == "object":  # a third of the frame's size, from the next photo, crossing in one shot
                    other = self._photo(s + 1)
                    ow, oh = w // 3, h // 3
                    x = (w + ow) * t / max(1, n - 1) - ow
                    y = h / 2 - oh / 2 + 0.15 * h * np.sin(np.pi * t / max(1, n - 1))
                    oy, ox = (other.shape[0] - oh) // 2, (other.shape[1] - ow) // 2
                    mo = np.float32([[1, 0, x], [0, 1, y]])  # the photo's central piece, moved to (x, y)
                    piece = cv2.warpAffine(other[oy : oy + oh, ox : ox + ow], mo, (w, h), flags=cv2.INTER_LINEAR)
                    alpha = cv2.warpAffine(np.ones((oh, ow), np.float32), mo, (w, h), flags=cv2.INTER_LINEAR)
                    frame = piece + (1.0 - alpha[..., None]) * frame  # premultiplied: soft, sub-pixel edges
                yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of RGB uint8, as Pillow's ``convert("L")`` (uint8 [h, w])."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


@dataclass
class ClipInfo:
    """A written clip: its file, frame count, timestamps (stream time base) and cuts."""

    path: str
    n_frames: int
    pts: list[int]
    time_base: fractions.Fraction
    cuts: list[int]


def vfr_steps(n: int) -> list[int]:
    """Frame durations, in milliseconds, of a variable-frame-rate clip: 33, 50, 42, 33, 67, ... (a fixed cycle)."""
    cycle = (33, 50, 42, 33, 67, 41)
    return [cycle[i % len(cycle)] for i in range(n)]


def write_clip(
    spec: ClipSpec,
    path: str | os.PathLike,
    *,
    colour: bool = False,
    audio: bool = True,
    subtitles: bool = False,
    vfr: bool = False,
    rotation: int = 0,
    codec: str = "libx264",
    crf: int = 12,
    preset: str = "veryfast",
    metadata: dict | None = None,
) -> ClipInfo:
    """Encode ``spec`` to ``path`` (format by extension): gray (or ``colour``) 4:2:0 video, with a 440 Hz sine
    on AAC (``audio``), a subtitle line per shot (``subtitles``: SubRip in Matroska, mov_text in MP4),
    variable frame timing (``vfr``: millisecond timestamps from ``vfr_steps``), a display rotation in degrees
    (counter-clockwise, ``rotation``) and container ``metadata``; ``codec``, ``crf`` and ``preset`` are the
    encoder's (x264 crf 12 by default: close to the frames, as a good master would be)."""
    import av

    path = os.fspath(path)
    out = av.open(path, "w")
    w, h = spec.size
    v = out.add_stream(codec, rate=spec.fps)
    v.width, v.height, v.pix_fmt = w, h, "yuv420p"
    v.options = {"crf": str(crf), "preset": preset} if codec in ("libx264", "libx265") else {}
    tb = fractions.Fraction(1, 1000) if vfr else fractions.Fraction(1, spec.fps)
    v.time_base = tb
    v.codec_context.time_base = tb
    if rotation:
        v.set_display_rotation(rotation)
    out.metadata.update(metadata or {})
    a = out.add_stream("aac", rate=48000, layout="mono") if audio else None
    sub = None
    sub_codec = "mov_text" if path.endswith((".mp4", ".mov", ".m4v")) else "subrip"
    if subtitles:
        sub = out.add_mux_stream(sub_codec)
        sub.time_base = fractions.Fraction(1, 1000)
    pts_list: list[int] = []
    pts = 0
    steps = vfr_steps(spec.n_frames) if vfr else [1] * spec.n_frames
    for i, rgb in enumerate(spec.frames()):
        frame = av.VideoFrame.from_ndarray(rgb if colour else gray(rgb), format="rgb24" if colour else "gray")
        frame.pts = pts
        pts_list.append(pts)
        for packet in v.encode(frame):
            out.mux(packet)
        if sub is not None and i % spec.frames_per_shot == 0:
            ms = int(pts * tb * 1000)
            text = f"shot {i // spec.frames_per_shot + 1}".encode()
            if sub_codec == "mov_text":  # a 16-bit length, then the text
                text = len(text).to_bytes(2, "big") + text
            packet = av.Packet(text)
            packet.stream = sub
            packet.pts = packet.dts = ms
            packet.duration = 500
            packet.time_base = sub.time_base
            out.mux(packet)
        pts += steps[i]
    for packet in v.encode():
        out.mux(packet)
    if a is not None:
        seconds = float(pts * tb)
        rate = 48000
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.25 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        for s0 in range(0, len(samples), 1024):
            chunk = samples[s0 : s0 + 1024][None]
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
            af.sample_rate = rate
            af.pts = s0
            for packet in a.encode(af):
                out.mux(packet)
        for packet in a.encode():
            out.mux(packet)
    out.close()
    return ClipInfo(path, spec.n_frames, pts_list, tb, spec.cuts)


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/video_clips.py PHOTO_OR_FOLDER... OUT.mp4``: a gray film of the photos, one shot each."""
    import argparse
    import sys
    from pathlib import Path

    ap = argparse.ArgumentParser(description="Write a gray film of photos: one shot per photo (pans, zooms, a "
                                             "crossing object), hard cuts, a 440 Hz sine on AAC.")
    ap.add_argument("photos", nargs="+", help="photo files and/or folders (their .jpg, .png, .tif files)")
    ap.add_argument("out", help="the film to write (.mp4, .mkv, .mov, ...)")
    ap.add_argument("--size", default="384x256", help="frame size WxH, even numbers (default: 384x256)")
    ap.add_argument("--frames-per-shot", type=int, default=48, help="frames per shot, at 24 fps (default: 48)")
    ap.add_argument("--colour", action="store_true", help="the colour frames instead of their gray")
    ap.add_argument("--no-audio", action="store_true")
    args = ap.parse_args(argv)
    paths = []
    for p in map(Path, args.photos):
        paths += sorted(f for f in p.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff")
                        ) if p.is_dir() else [p]
    if not paths:
        ap.error("no photos found")
    w, h = (int(v) for v in args.size.lower().split("x"))
    spec = ClipSpec(paths, size=(w, h), frames_per_shot=args.frames_per_shot)
    info = write_clip(spec, args.out, colour=args.colour, audio=not args.no_audio)
    print(f"{info.path}: {info.n_frames} frames at {w}x{h}, {spec.n_shots} shots (cuts at frames "
          f"{', '.join(map(str, info.cuts)) or 'none'})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
