"""How steady and how right a colorized film is: warping error, CDC, colourfulness and PSNR, frame by frame.

    scores = score_clip(spec.frames(), {"per-frame": read_rgb("a.mp4"), "steady": read_rgb("b.mp4")}, spec.cuts)
    scores["steady"].flicker / scores["per-frame"].flicker

* **Flicker** (``flicker``): the warping error of CIE a*b* between consecutive frames, the measure of the video
  colorization literature (Lai et al. 2018; TCVC, BiSTNet, ColorMNet). The optical flow is computed on the TRUE
  frames (their gray, OpenCV DIS at its "medium" preset, full size), so it does not depend on the output; a
  pixel counts only where the forward and backward flows agree (Sundaram et al. 2010: occlusions and pixels
  that leave the frame are excluded). The error is the mean |ab_t(x) - ab_{t-1}(x + flow(x))| (Euclidean, in
  a*b* units) over those pixels, averaged over the frame pairs inside each shot (never across a cut).
* **CDC** (``cdc``): colour distribution consistency (NTIRE 2023 video colorization challenge): the
  Jensen-Shannon divergence (natural log) between the 256-bin histograms of each of R, G, B of frames t and
  t + d, averaged over channels and frames, for d = 1, 2 and 4, and the three averaged; inside shots only.
* **Colourfulness** (``colourfulness``): Hasler & Suesstrunk 2003 on 0..255 RGB, the mean over frames
  (``colorize.training.metrics`` has the same formula in torch).
* **PSNR** against the true frames (``psnr``: mean over frames; ``psnr_after_cuts``: the first three frames of
  every shot after the first).

Everything streams: one frame of each output and one flow in memory at a time.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

#: Frames after a cut whose PSNR is reported on its own (``psnr_after_cuts``).
AFTER_CUT = 3
#: CDC's frame distances.
CDC_DILATIONS = (1, 2, 4)


def read_rgb(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The frames of a video file as RGB uint8 [h, w, 3], as a player shows them: 4:2:0 chroma enlarged
    bilinearly (swscale's own conversion repeats each chroma sample over 2x2 pixels, which adds a flicker of its
    own at every moving edge), then the stream's Y'CbCr matrix and range (``colorize.video.chroma``)."""
    import av
    import cv2
    from colorize.video.chroma import full_range, matrix

    with av.open(os.fspath(path)) as c:
        for frame in c.decode(video=0):
            h, w = frame.height, frame.width
            full = full_range(frame)
            kr, kb = matrix(frame.colorspace, h)
            yuv = frame.to_ndarray(format="yuvj420p" if full else "yuv420p")
            y = yuv[:h].astype(np.float32)
            uv = yuv[h:].reshape(2, h // 2, w // 2).astype(np.float32) - 128.0
            u, v = (cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in uv)
            if not full:
                y = (y - 16.0) * (255.0 / 219.0)
                u *= 255.0 / 224.0
                v *= 255.0 / 224.0
            r = y + 2.0 * (1.0 - kr) * v
            b = y + 2.0 * (1.0 - kb) * u
            g = (y - kr * r - kb * b) / (1.0 - kr - kb)
            yield np.clip(np.stack([r, g, b], -1) + 0.5, 0, 255).astype(np.uint8)


def luma_601(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, uint8 (Pillow's ``convert("L")``)."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler-Suesstrunk colourfulness of one RGB uint8 image (0 for gray)."""
    x = rgb.reshape(-1, 3).astype(np.float64)
    rg = x[:, 0] - x[:, 1]
    yb = 0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]
    return float(np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (capped at 100 dB)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse <= 255.0**2 / 1e10 else 10.0 * np.log10(255.0**2 / mse)


def _ab(rgb: np.ndarray) -> np.ndarray:
    from colorize.image.color import rgb_to_lab

    return np.ascontiguousarray(rgb_to_lab(rgb.astype(np.float32) / 255.0)[..., 1:])


def _histograms(rgb: np.ndarray) -> np.ndarray:
    """[3, 256] normalized histograms of R, G, B."""
    h = np.stack([np.bincount(rgb[..., c].ravel(), minlength=256) for c in range(3)]).astype(np.float64)
    return h / h.sum(axis=1, keepdims=True)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (natural log) between the rows of ``p`` and ``q`` (normalized histograms)."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(a > 0, a * np.log(a / np.where(m > 0, m, 1.0)), 0.0)
        return t.sum(axis=-1)

    return 0.5 * kl(p) + 0.5 * kl(q)


class _Flow:
    """Backward flow and the mask of trusted pixels between consecutive true frames."""

    def __init__(self):
        import cv2

        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._grid = None

    def __call__(self, prev_gray: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import cv2

        h, w = gray.shape
        if self._grid is None or self._grid[0].shape != gray.shape:
            self._grid = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        gx, gy = self._grid
        back = self._dis.calc(gray, prev_gray, None)
        fwd = self._dis.calc(prev_gray, gray, None)
        mx, my = gx + back[..., 0], gy + back[..., 1]
        fwd_at = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mismatch = np.square(back + fwd_at).sum(-1)
        bound = 0.01 * (np.square(back).sum(-1) + np.square(fwd_at).sum(-1)) + 0.5
        mask = (mismatch <= bound) & (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        return mx, my, mask


@dataclass
class Scores:
    """One output's scores on one clip (see the module docstring); the lists are per frame or per pair."""

    warp: list[float] = field(default_factory=list)  # per frame pair inside a shot
    cdc_terms: dict[int, list[float]] = field(default_factory=lambda: {d: [] for d in CDC_DILATIONS})
    colour: list[float] = field(default_factory=list)  # per frame
    psnrs: list[float] = field(default_factory=list)  # per frame, against the truth
    psnrs_after_cut: list[float] = field(default_factory=list)

    @property
    def flicker(self) -> float:
        return float(np.mean(self.warp)) if self.warp else float("nan")

    @property
    def cdc(self) -> float:
        return float(np.mean([np.mean(v) for v in self.cdc_terms.values() if v])) if self.warp else float("nan")

    @property
    def colourfulness(self) -> float:
        return float(np.mean(self.colour))

    @property
    def psnr(self) -> float:
        return float(np.mean(self.psnrs))

    @property
    def psnr_after_cuts(self) -> float:
        return float(np.mean(self.psnrs_after_cut)) if self.psnrs_after_cut else float("nan")

    def merge(self, other: Scores) -> Scores:
        """The scores of two clips pooled (pairs and frames weigh equally)."""
        out = Scores(self.warp + other.warp, {d: self.cdc_terms[d] + other.cdc_terms[d] for d in CDC_DILATIONS},
                     self.colour + other.colour, self.psnrs + other.psnrs,
                     self.psnrs_after_cut + other.psnrs_after_cut)
        return out


def score_clip(truth: Iterable[np.ndarray], outputs: Mapping[str, Iterable[np.ndarray]], cuts: Iterable[int]
               ) -> dict[str, Scores]:
    """Score each output (RGB uint8 frames, in order) against the true frames; ``cuts``: first frame of each shot
    after the first.

    Raises:
        ValueError: an output with another frame count or frame size than the truth.
    """
    cuts = set(cuts)
    shot_starts = sorted(cuts | {0})
    flow = _Flow()
    iters = {name: iter(frames) for name, frames in outputs.items()}
    scores = {name: Scores() for name in outputs}
    prev_ab: dict[str, np.ndarray] = {}
    hists: dict[str, deque] = {name: deque(maxlen=max(CDC_DILATIONS)) for name in outputs}
    prev_gray = None
    shot_start = 0
    for t, true_rgb in enumerate(truth):
        if t in cuts:
            shot_start = t
            prev_gray = None
            for name in outputs:
                hists[name].clear()
        gray = luma_601(true_rgb)
        motion = flow(prev_gray, gray) if prev_gray is not None else None
        after_cut = t > 0 and any(s <= t < s + AFTER_CUT for s in shot_starts if s > 0)
        for name, it in iters.items():
            rgb = next(it, None)
            if rgb is None or rgb.shape != true_rgb.shape:
                got = "too few frames" if rgb is None else f"frame size {rgb.shape[1]}x{rgb.shape[0]}"
                raise ValueError(f"output {name!r} does not match the truth at frame {t}: {got}")
            s = scores[name]
            ab = _ab(rgb)
            if motion is not None:
                import cv2

                mx, my, mask = motion
                warped = cv2.remap(prev_ab[name], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                err = np.sqrt(np.square(ab - warped).sum(-1))
                if mask.any():
                    s.warp.append(float(err[mask].mean()))
            prev_ab[name] = ab
            h = _histograms(rgb)
            for d in CDC_DILATIONS:
                if len(hists[name]) >= d and t - d >= shot_start:
                    s.cdc_terms[d].append(float(js_divergence(hists[name][-d], h).mean()))
            hists[name].append(h)
            s.colour.append(colourfulness(rgb))
            p = psnr(rgb, true_rgb)
            s.psnrs.append(p)
            if after_cut:
                s.psnrs_after_cut.append(p)
        prev_gray = gray
    for name, it in iters.items():
        if next(it, None) is not None:
            raise ValueError(f"output {name!r} has more frames than the truth")
    return scores
