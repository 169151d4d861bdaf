"""One video through the model: a decoding thread, batched inference with the temporal step, an encoding thread.

    decode thread    demux; decode to 4:2:0; luma -> gray -> ``Colorizer.prepare`` (the model's L at the working
                     size); the motion from the previous frame (``temporal.Motion``); copied packets pass through
    calling thread   ``Engine.run`` on ``batch_size`` frames at a time; ``temporal.Steadier.blend`` in order
    encode thread    ab -> U, V at the chroma size (``chroma.chroma_from_ab``), written into the decoded frame
                     (its Y plane untouched); encode; mux the copied packets in their order

The queues between the stages hold a few batches, so a film is never in memory, and the stages overlap: on a
2-core CPU the model's threads take most of the time and decoding, motion and encoding fill the gaps. An error
in any stage stops the others and is raised on the calling thread; ``cancel`` stops all three.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from colorize.video.chroma import COLOUR_LEVEL, chroma_from_ab, chroma_level, full_range, gray_table, matrix
from colorize.video.io import Reader, Writer, planes, rotation_of, set_chroma
from colorize.video.temporal import Motion, Steadier, Step, TemporalOptions

_END = object()
#: Seconds between checks of the stop flag while a queue is full or empty.
_POLL_S = 0.1


class Cancelled(Exception):
    """The caller's cancel event was set while a video was being colorized."""


@dataclass
class VideoResult:
    """What one video's run did."""

    frames: int = 0  # frames written
    colour_frames: int = 0  # frames whose input chroma was not neutral (colorized from their luma)
    cuts: int = 0  # shots started after the first frame (the temporal step reset there)
    rotation: int = 0  # the display rotation the model saw the frames upright with (degrees, counter-clockwise)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Frame:
    frame: object  # av.VideoFrame, 4:2:0
    l: np.ndarray  # float32 [1, h, w]: the model's input (upright)
    step: Step | None  # motion from the previous frame; None without the temporal step


class _Stop:
    """The stages' shared stop flag and first error."""

    def __init__(self, cancel=None):
        self.event = threading.Event()
        self.error: BaseException | None = None
        self.cancel = cancel

    def fail(self, e: BaseException) -> None:
        if self.error is None:
            self.error = e
        self.event.set()

    def is_set(self) -> bool:
        if self.cancel is not None and self.cancel.is_set() and not self.event.is_set():
            self.fail(Cancelled())
        return self.event.is_set()

    def put(self, q: queue.Queue, item) -> bool:
        """Put ``item`` unless the run stops first; False when it stopped."""
        while not self.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                pass
        return False

    def get(self, q: queue.Queue):
        """The next item, or ``_END`` when the run stops first."""
        while not self.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                pass
        return _END


def colorize_stream(
    col,
    reader: Reader,
    writer: Writer,
    *,
    batch_size: int = 4,
    temporal: TemporalOptions | None = None,
    colour_strength: float | None = None,
    on_frames: Callable[[int], object] | None = None,
    cancel=None,
) -> VideoResult:
    """Colorize every frame of ``reader`` into ``writer`` with ``col`` (a ``colorize.Colorizer``).

    Args:
        batch_size: frames per ``Engine.run``.
        temporal: the temporal step's options; None colours every frame on its own.
        colour_strength: the chroma's factor (None: the Colorizer's).
        on_frames: called on this thread with the number of frames written so far, after each batch.
        cancel: anything with ``is_set()``; once set, the run stops and raises ``Cancelled``.

    Raises:
        colorize.video.io.MediaError: a file that cannot be decoded or written (named, with the reason).
        Cancelled: ``cancel`` was set.
    """
    stop = _Stop(cancel)
    result = VideoResult()
    to_model: queue.Queue = queue.Queue(maxsize=2 * batch_size + 8)
    to_encoder: queue.Queue = queue.Queue(maxsize=2 * batch_size + 8)
    strength = col.colour_strength if colour_strength is None else colour_strength
    ab_scale = float(col.engine.normalization.denormalize_ab(1.0)) * strength
    start = time.perf_counter()

    def decode() -> None:
        motion = Motion(temporal) if temporal is not None else None
        table = turn = None
        try:
            for kind, item in reader.read():
                if kind == "packet":
                    if not stop.put(to_model, item):
                        return
                    continue
                frame = item
                y, u, v = planes(frame)
                if table is None:
                    table = gray_table(full_range(frame))
                    turn = rotation_of(reader.display) // 90
                    result.rotation = turn * 90
                if chroma_level(u, v) > COLOUR_LEVEL:
                    result.colour_frames += 1
                prepared = col.prepare(table.take(y))
                l = prepared.l
                step = None
                if motion is not None:
                    gray = np.clip((l[0] + 1.0) * 127.5, 0, 255).astype(np.uint8)  # L' in [-1, 1] -> 0..255
                    step = motion.estimate(gray)
                    if step.cut and step.reason != "first":
                        result.cuts += 1
                if turn:
                    l = np.ascontiguousarray(np.rot90(l, turn, axes=(1, 2)))
                if not stop.put(to_model, _Frame(frame, l, step)):
                    return
            stop.put(to_model, _END)
        except BaseException as e:
            stop.fail(e)

    def encode() -> None:
        import cv2

        table = kr_kb = full = None
        try:
            while True:
                item = stop.get(to_encoder)
                if item is _END:
                    return
                if not isinstance(item, tuple):
                    writer.copy(item)
                    continue
                frame, ab = item
                y = planes(frame)[0]
                if table is None:
                    full = full_range(frame)
                    table = gray_table(full)
                    kr_kb = matrix(frame.colorspace, frame.height)
                small = cv2.resize(y, (frame.width // 2, frame.height // 2), interpolation=cv2.INTER_AREA)
                u, v = chroma_from_ab(table.take(small), ab, ab_scale, kr_kb, full)
                set_chroma(frame, u, v)
                writer.write(frame)
        except BaseException as e:
            stop.fail(e)

    threads = [threading.Thread(target=decode, name="colorize-video-decode", daemon=True),
               threading.Thread(target=encode, name="colorize-video-encode", daemon=True)]
    for t in threads:
        t.start()
    steadier = Steadier(temporal) if temporal is not None else None
    try:
        pending: list = []
        n_frames = 0
        done = False
        while not done:
            item = stop.get(to_model)
            if item is _END:
                done = True
            else:
                pending.append(item)
                if isinstance(item, _Frame):
                    n_frames += 1
            if (n_frames >= batch_size or done) and pending:
                _run_batch(col, pending, steadier, result, stop, to_encoder)
                pending, n_frames = [], 0
                if on_frames is not None:
                    on_frames(writer.frames)
        if not stop.is_set():
            stop.put(to_encoder, _END)
    except BaseException as e:
        stop.fail(e)
    for t in threads:
        t.join()
    if stop.error is not None:
        raise stop.error
    result.frames = writer.frames
    result.seconds = time.perf_counter() - start
    if on_frames is not None:
        on_frames(writer.frames)
    return result


def _run_batch(col, items: list, steadier: Steadier | None, result: VideoResult, stop: _Stop,
               to_encoder: queue.Queue) -> None:
    frames = [it for it in items if isinstance(it, _Frame)]
    ab = col.engine.run(np.stack([f.l for f in frames])) if frames else None
    j = 0
    for it in items:
        if not isinstance(it, _Frame):
            if not stop.put(to_encoder, it):
                return
            continue
        pred = ab[j]
        j += 1
        turn = result.rotation // 90
        if turn:
            pred = np.rot90(pred, -turn, axes=(1, 2))
        out = steadier.blend(pred, it.step) if steadier is not None else pred
        if not stop.put(to_encoder, (it.frame, np.ascontiguousarray(out, dtype=np.float32))):
            return
