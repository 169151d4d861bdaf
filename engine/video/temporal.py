"""Steady colour: carry chroma along the motion between frames and blend it with each frame's prediction.

A colorizer run on each frame alone flickers: the same wall turns from beige to gray to beige as grain, noise
and small shifts move the prediction. Here, at the model's working size:

1. **Motion** (``Motion.estimate``, from the gray frames only, so it runs beside the model): DIS optical
   flow (OpenCV) from frame t back to frame t-1 and forward from t-1 to t. A pixel's **confidence** falls
   where the flow is not to be trusted: where the two flows disagree (forward-backward consistency: occlusions,
   objects that appear), where the luma carried along the flow differs from the frame's own (a failed match,
   a change of light), and where the flow points out of the picture; at and above ``full_trust`` the motion
   is trusted fully.
2. **Cuts**: a frame whose luma histogram is far from the previous one's (total variation above
   ``cut_distance``) or whose motion is trusted over too little of the picture (mean confidence below
   ``cut_confidence``) starts a new shot, and its colour is the model's prediction alone.
3. **Blend** (``Steadier.blend``): the previous output's ab, warped along the flow, is averaged with this
   frame's prediction, weight ``weight`` x confidence for the carried colour: an exponential moving average
   along the motion. The prediction always keeps at least ``1 - weight`` of the weight, so an error carried
   in decays by that factor each frame (no drift), and where the motion fails the prediction takes over (no
   ghosts).

Everything runs on [h, w] planes of a few tens of thousands of pixels (the working size), so it costs a few
milliseconds a frame whatever the video's size; the chroma is enlarged to the output only at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TemporalOptions:
    """How the colour is carried from frame to frame (defaults measured on panned photos with cuts,
    docs/video.md)."""

    weight: float = 0.85  # the carried colour's weight where the motion is trusted (0: every frame on its own)
    luma_tolerance: float = 32.0  # gray levels of warped-luma error at which the confidence falls to 1/e
    flow_tolerance: float = 3.0  # px (working size) of forward-backward mismatch at which it falls to 1/e
    full_trust: float = 0.7  # a confidence at or above this gets the full weight (below: in proportion)
    cut_distance: float = 0.45  # luma-histogram total variation (0..1) above which a frame starts a shot
    cut_confidence: float = 0.3  # mean confidence below which a frame starts a shot

    def check(self) -> None:
        """Raises ``ValueError`` naming the first bad value."""
        if not 0.0 <= self.weight < 1.0:
            raise ValueError(f"temporal weight must be in [0, 1), got {self.weight!r}")
        for name in ("luma_tolerance", "flow_tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.full_trust <= 1:
            raise ValueError(f"full_trust must be in (0, 1], got {self.full_trust!r}")
        for name in ("cut_distance", "cut_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")


@dataclass
class Step:
    """The motion from the previous frame to this one, at the working size."""

    map_x: np.ndarray | None  # float32 [h, w]: where each pixel was in the previous frame (None: a new shot)
    map_y: np.ndarray | None
    confidence: np.ndarray | None  # float32 [h, w] in [0, 1]
    cut: bool  # this frame starts a shot (first frame, histogram jump, or motion trusted too little)
    reason: str = ""  # "first", "histogram", "motion", "size"


def _histogram(gray: np.ndarray) -> np.ndarray:
    h = np.bincount((gray >> 3).ravel(), minlength=32).astype(np.float32)
    return h / max(1.0, float(h.sum()))


class Motion:
    """Per-video motion estimator: ``estimate(gray)`` for each frame in order (gray: uint8 [h, w], working size)."""

    def __init__(self, options: TemporalOptions | None = None):
        import cv2

        self.options = options or TemporalOptions()
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._prev: np.ndarray | None = None
        self._prev_hist: np.ndarray | None = None
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    def estimate(self, gray: np.ndarray) -> Step:
        import cv2

        o = self.options
        prev, self._prev = self._prev, gray
        hist = _histogram(gray)
        prev_hist, self._prev_hist = self._prev_hist, hist
        if prev is None:
            return Step(None, None, None, True, "first")
        if prev.shape != gray.shape:
            return Step(None, None, None, True, "size")
        if 0.5 * float(np.abs(hist - prev_hist).sum()) > o.cut_distance:
            return Step(None, None, None, True, "histogram")
        h, w = gray.shape
        if self._grid is None or self._grid[0].shape != gray.shape:
            self._grid = tuple(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
        gx, gy = self._grid
        back = self._dis.calc(gray, prev, None)  # t -> t-1
        fwd = self._dis.calc(prev, gray, None)  # t-1 -> t
        bx, by = cv2.split(back)  # planes: 2-channel reductions in numpy are slow
        map_x = gx + bx
        map_y = gy + by
        fx, fy = cv2.split(cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        ex, ey = bx + fx, by + fy
        mismatch = ex * ex + ey * ey
        # tolerance grows with the motion (large motions are matched less exactly), as in Sundaram et al. 2010
        tol = bx * bx + by * by + fx * fx + fy * fy
        tol *= np.float32(0.01)
        tol += np.float32(o.flow_tolerance**2)
        warped = cv2.remap(prev, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        dl = cv2.absdiff(warped, gray).astype(np.float32)
        dl *= np.float32(1.0 / o.luma_tolerance)
        conf = np.exp(-(mismatch / tol) - dl * dl)
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        conf *= inside
        conf = cv2.erode(conf, np.ones((3, 3), np.uint8))  # occlusion edges: trust neither side of them
        if float(conf.mean()) < o.cut_confidence:
            return Step(None, None, None, True, "motion")
        conf *= np.float32(1.0 / o.full_trust)  # at and above full_trust: the full weight
        np.minimum(conf, np.float32(1.0), out=conf)
        return Step(map_x, map_y, conf.astype(np.float32, copy=False), False)


class Steadier:
    """Per-video blend: ``blend(pred, step)`` for each frame in order; pred: float32 [2, h, w] (model ab)."""

    def __init__(self, options: TemporalOptions | None = None):
        self.options = options or TemporalOptions()
        self._prev: np.ndarray | None = None  # the previous output, [h, w, 2]
        self._age = 0  # frames of the shot before this one

    def blend(self, pred: np.ndarray, step: Step) -> np.ndarray:
        import cv2

        p = np.ascontiguousarray(np.moveaxis(pred, 0, -1), dtype=np.float32)  # [h, w, 2]
        if step.cut or self._prev is None or self._prev.shape != p.shape or self.options.weight == 0:
            out = p
            self._age = 1
        else:
            carried = cv2.remap(self._prev, step.map_x, step.map_y, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
            # a shot's first frames weigh equally (a running mean: 1/2, 2/3, ...) until the weight caps it
            weight = min(self.options.weight, self._age / (self._age + 1.0))
            w = (np.float32(weight) * step.confidence)[..., None]
            out = p + w * (carried - p)
            self._age += 1
        self._prev = out
        return np.moveaxis(out, -1, 0)
