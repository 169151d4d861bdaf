"""Video files in and out with PyAV: decode the picture as 4:2:0 planes, encode ours, copy every other stream.

* ``Reader`` opens a file, picks its first video stream (not cover art), and ``read()`` yields, in file order,
  ``("frame", frame)`` for each decoded picture (a ``av.VideoFrame`` in ``yuv420p``, or ``yuvj420p`` for
  full-range input, converted once by FFmpeg's swscale when the stream has another pixel format) and
  ``("packet", packet)`` for each packet of the audio and subtitle streams, which are never decoded.
* ``Writer`` encodes the video (H.264 by default: libx264 inside PyAV's wheel, ``crf``, ``preset``) with the
  input's time base, so each frame keeps its timestamp (variable frame rate included), and muxes the copied
  packets unchanged (``add_stream_from_template``). The display matrix (rotation, flips), the colour tags,
  the container's and the streams' metadata and the chapters are carried over.
* ``muxer_for`` names FFmpeg's container for an output extension: outputs are written under a temporary name
  (``colorize.fsutil.atomic_path``, the ``.colorize-tmp`` suffix that ``colorize.image.io.remove_stale_tmp``
  cleans), which hides the extension from FFmpeg's guess.

Only the chroma planes of a frame are ever changed (``chroma_planes``): the luma goes to the encoder as decoded.
PyAV and OpenCV are imported when first needed; their absence is a ``MissingDependency`` naming the extra.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

#: File extensions a folder is scanned for (a file named as an input is always tried).
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".wmv",
    ".asf", ".3gp", ".ogv", ".mxf", ".vob", ".dv", ".y4m",
})
#: FFmpeg's muxer for an output extension (the temporary name hides the extension from FFmpeg's guess).
MUXERS = {
    ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi",
    ".ts": "mpegts", ".mts": "mpegts", ".m2ts": "mpegts", ".flv": "flv", ".3gp": "3gp", ".mpg": "mpeg",
    ".mpeg": "mpeg", ".vob": "vob", ".wmv": "asf", ".asf": "asf", ".ogv": "ogg", ".mxf": "mxf", ".dv": "dv",
    ".y4m": "yuv4mpegpipe",
}
#: Encoder options for ``crf`` and ``preset``, by codec (others get neither).
_RATE_OPTIONS = {
    "libx264": lambda crf, preset: {"crf": str(crf), "preset": preset},
    "libx265": lambda crf, preset: {"crf": str(crf), "preset": preset, "x265-params": "log-level=error"},
    "libvpx-vp9": lambda crf, preset: {"crf": str(crf), "b": "0", "deadline": "good", "cpu-used": "4"},
    "libaom-av1": lambda crf, preset: {"crf": str(crf), "cpu-used": "6"},
    "libsvtav1": lambda crf, preset: {"crf": str(crf), "preset": "8"},
}
_KEPT_TYPES = ("audio", "subtitle")
#: A video whose decoded picture ends more than this (or 10% of it, for a short one; at least 2 frames) before
#: the end its header announces is truncated (the container's duration, when the stream has none, covers every
#: stream: audio may end a little later).
TRUNCATION_TOLERANCE_S = 1.0
_YUV420 = ("yuv420p", "yuvj420p")
_CONTAINER_KEYS_SET_BY_MUXER = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})


class MediaError(ValueError):
    """A file that cannot be used as a video, or a video that cannot be written; ``str()`` names the file."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


def require_av():
    """Import PyAV and OpenCV (the ``video`` extra).

    Raises:
        colorize.deps.MissingDependency: one of them is missing (the message names the extra).
    """
    from colorize.deps import MissingDependency, install_hint

    try:
        import av
        import cv2  # noqa: F401
    except ImportError as e:
        raise MissingDependency(f"video needs PyAV and OpenCV ({e}); install them with: {install_hint('video')}"
                                ) from None
    av.logging.set_level(av.logging.PANIC)  # our messages name the file and the reason; FFmpeg's lines are noise
    return av


def _error_text(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return text.rstrip(".") if text else type(e).__name__


@dataclass
class VideoInfo:
    """What a video stream is, as read from the file's header and its first frame."""

    width: int
    height: int
    pix_fmt: str  # as coded ("yuv420p", "gray", "yuv422p10le", ...)
    time_base: Fraction
    rate: Fraction | None  # average frame rate (None when unknown)
    frames: int  # from the header; 0 when unknown
    duration_s: float  # 0 when unknown
    codec: str
    copied: list[str] = field(default_factory=list)  # the other streams copied: "audio aac", "subtitle srt"
    dropped: list[str] = field(default_factory=list)  # streams not carried over (data, other video streams)

    def estimated_frames(self) -> int:
        """Frame count from the header, else from the duration and frame rate; 0 when neither is known."""
        if self.frames:
            return self.frames
        if self.duration_s and self.rate:
            return max(1, round(self.duration_s * float(self.rate)))
        return 0


class Reader:
    """Demux and decode one video file (see the module docstring); a context manager.

    Raises (on open):
        MediaError: not a media file, no video stream, or a stream FFmpeg cannot decode.
    """

    def __init__(self, path: str | os.PathLike):
        av = require_av()
        self.path = os.fspath(path)
        try:
            self.container = av.open(self.path, "r")
        except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as e:
            raise MediaError(self.path, f"not a video file FFmpeg can read ({_error_text(e)}; not a media file, or "
                                        "corrupt or truncated)") from None
        try:
            videos = [s for s in self.container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
            if not videos:
                kinds = sorted({s.type for s in self.container.streams}) or ["no streams"]
                raise MediaError(self.path, f"no video stream (the file has: {', '.join(kinds)})")
            self.stream = videos[0]
            cc = self.stream.codec_context
            if cc is None or not cc.width or not cc.height:
                raise MediaError(self.path, "the video stream has no codec FFmpeg can decode or no picture size")
            if cc.format is None:
                raise MediaError(self.path, "unsupported pixel format (FFmpeg names none for this stream)")
            self.stream.thread_type = "AUTO"
            self.display: list[int] | None = None  # the display matrix, once the first frame is decoded
            self.corrupt_frames = 0  # frames the decoder flagged as damaged (concealed)
            self.kept = [s for s in self.container.streams if s.type in _KEPT_TYPES]
            dropped = [f"{s.type} stream #{s.index}" for s in self.container.streams
                       if s is not self.stream and s not in self.kept]
            duration = (float(self.stream.duration * self.stream.time_base) if self.stream.duration else
                        (self.container.duration or 0) / 1e6)
            self.info = VideoInfo(cc.width, cc.height, cc.format.name, self.stream.time_base,
                                  self.stream.average_rate or self.stream.guessed_rate, self.stream.frames or 0,
                                  duration, cc.name, [f"{s.type} {_codec_name(s)}" for s in self.kept], dropped)
        except BaseException:
            self.container.close()
            raise

    def read(self) -> Iterator[tuple[str, object]]:
        """``("frame", VideoFrame)`` for each picture, in display order, in 4:2:0 (see the module docstring),
        and ``("packet", Packet)`` for each packet of a copied stream, in file order.

        Raises:
            MediaError: a corrupt or truncated file (what was read before is still yielded), or a pixel format
                that cannot be converted to 4:2:0.
        """
        import av

        index = 0
        end = 0.0  # where the decoded picture ends, in seconds
        try:
            for packet in self.container.demux([self.stream, *self.kept]):
                if packet.stream is not self.stream:
                    if packet.dts is not None and packet.size:  # the demuxer's end-of-stream markers are empty
                        yield "packet", packet
                    continue
                for frame in packet.decode():
                    if getattr(frame, "is_corrupt", False):
                        self.corrupt_frames += 1
                    if frame.pts is not None:
                        end = max(end, float((frame.pts + (getattr(frame, "duration", 0) or 0)) * frame.time_base))
                    yield "frame", self._yuv420(frame, index)
                    index += 1
        except av.FFmpegError as e:
            where = f"after frame {index}" if index else "before the first frame"
            raise MediaError(self.path, f"corrupt or truncated video ({where}: {_error_text(e)})") from None
        if index == 0:
            raise MediaError(self.path, "the video stream has no frame that decodes (empty, truncated or corrupt)")
        expected = self.expected_end()
        frame_s = 1.0 / float(self.info.rate) if self.info.rate else 0.0
        tolerance = max(2 * frame_s, min(TRUNCATION_TOLERANCE_S, 0.1 * (expected or 0.0)))
        if expected is not None and end < expected - tolerance:
            raise MediaError(self.path, f"corrupt or truncated video: the picture stops at {end:.2f} s of the "
                                        f"{expected:.2f} s the file announces ({index} frames decoded)")

    def expected_end(self) -> float | None:
        """Where the header says the video stream ends, in seconds (None when it does not say)."""
        s = self.stream
        start = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
        if s.duration:
            return start + float(s.duration * s.time_base)
        tag = s.metadata.get("DURATION") or s.metadata.get("duration")  # Matroska's per-track tag, "H:MM:SS.ns"
        if tag:
            try:
                h, m, sec = tag.split(":")
                return start + int(h) * 3600 + int(m) * 60 + float(sec)
            except ValueError:
                pass
        if self.container.duration:  # the whole file's, which other streams can extend a little
            return (float(self.container.start_time or 0) + float(self.container.duration)) / 1e6
        return None

    def _yuv420(self, frame, index: int):
        name = frame.format.name
        if index == 0:
            self.display = display_matrix(frame)  # the stream's rotation and flips, as FFmpeg hands them to frames
        if name in _YUV420 and frame.width % 2 == 0 and frame.height % 2 == 0:
            return frame
        if frame.width % 2 or frame.height % 2:
            raise MediaError(self.path, f"odd picture size {frame.width}x{frame.height}: 4:2:0 video needs even "
                                        "sides")
        try:
            out = frame.reformat(format="yuvj420p" if name.startswith("yuvj") or frame.color_range == 2
                                 else "yuv420p")
        except Exception as e:  # swscale cannot convert this format (hardware or bitstream formats)
            raise MediaError(self.path, f"unsupported pixel format {name} (frame {index}: {_error_text(e)})"
                             ) from None
        out.pts, out.time_base = frame.pts, frame.time_base
        out.colorspace, out.color_primaries, out.color_trc = frame.colorspace, frame.color_primaries, frame.color_trc
        return out

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def av_version() -> str:
    import av

    return getattr(av, "__version__", "?")


def _codec_name(stream) -> str:
    cc = stream.codec_context
    return cc.name if cc is not None else (getattr(stream, "name", None) or "data")


def display_matrix(frame) -> list[int] | None:
    """The frame's display matrix (FFmpeg's 9 int32 values, rotation and flips), None when it has none."""
    from av.sidedata.sidedata import Type

    side = frame.side_data.get(Type.DISPLAYMATRIX)
    if side is None:
        return None
    return np.frombuffer(bytes(side), np.int32).tolist()


def rotation_of(matrix: list[int] | None) -> int:
    """The counter-clockwise rotation, in degrees (0, 90, 180 or 270), of a display matrix (None: 0)."""
    if matrix is None:
        return 0
    a, b = matrix[0] / 65536.0, matrix[1] / 65536.0  # as FFmpeg's av_display_rotation_get: -atan2(b, a)
    return round(-float(np.degrees(np.arctan2(b, a))) / 90.0) % 4 * 90


def planes(frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of a 4:2:0 frame's Y, U and V planes (uint8; writable after ``frame.make_writable()``)."""
    out = []
    for i, (h, w) in enumerate(((frame.height, frame.width), (frame.height // 2, frame.width // 2),
                                (frame.height // 2, frame.width // 2))):
        p = frame.planes[i]
        out.append(np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:h, :w])
    return out[0], out[1], out[2]


def set_chroma(frame, u: np.ndarray, v: np.ndarray) -> None:
    """Write new U and V planes into ``frame`` (its Y plane and timestamps are left as they are)."""
    frame.make_writable()
    _, pu, pv = planes(frame)
    pu[...] = u
    pv[...] = v


class Writer:
    """Encode the colorized video and mux the copied streams into ``path`` (format ``muxer``).

    Args:
        path: the file to write (a temporary name: ``colorize.fsutil.atomic_path``).
        muxer: FFmpeg's format name (``MUXERS``).
        reader: the input, for its streams, time base, tags, metadata and chapters.
        codec, crf, preset: the video encoder and its quality and speed (``_RATE_OPTIONS``).
        threads: encoder threads (0: FFmpeg's choice).

    Raises:
        MediaError: the codec is unknown, or the container cannot hold it.
    """

    def __init__(self, path: str | os.PathLike, muxer: str, reader: Reader, *, codec: str = "libx264",
                 crf: int = 18, preset: str = "medium", threads: int = 0):
        av = require_av()
        self.path = os.fspath(path)
        self.reader = reader
        self.container = av.open(self.path, "w", format=muxer)
        try:
            self._setup(av, codec, crf, preset, threads)
        except BaseException:
            self.container.close()
            raise
        self._started = False
        self.frames = 0
        self.notes: list[str] = []  # what could not be carried over, for the outcome

    def _setup(self, av, codec: str, crf: int, preset: str, threads: int) -> None:
        src = self.reader.stream
        out = self.container
        try:
            v = out.add_stream(codec, rate=self.reader.info.rate or 25)
        except (av.FFmpegError, ValueError) as e:
            raise MediaError(self.path, f"cannot encode {codec} into {out.format.name} ({_error_text(e)}); choose "
                                        "another --codec or --format") from None
        if v.type != "video":
            raise MediaError(self.path, f"--codec {codec} is not a video encoder")
        v.width, v.height = self.reader.info.width, self.reader.info.height
        v.time_base = src.time_base
        v.codec_context.time_base = src.time_base
        options = _RATE_OPTIONS.get(codec)
        v.options = options(crf, preset) if options else {}
        if threads:
            v.codec_context.thread_count = threads
        v.thread_type = "AUTO"
        if src.sample_aspect_ratio:
            v.sample_aspect_ratio = src.sample_aspect_ratio
        v.metadata.update({k: val for k, val in src.metadata.items() if k.lower() not in ("encoder", "duration")})
        self.video = v
        self._held: list = []  # copied packets that come before the first frame: muxed once the header is set
        self.copies = {}
        for s in self.reader.kept:
            try:
                self.copies[s.index] = out.add_stream_from_template(s)
            except (av.FFmpegError, ValueError) as e:
                raise MediaError(self.path, f"the {s.type} stream #{s.index} ({_codec_name(s)}) cannot be copied "
                                            f"into {out.format.name} ({_error_text(e)}); choose another --format"
                                 ) from None
        out.metadata.update({k: val for k, val in self.reader.container.metadata.items()
                             if k.lower() not in _CONTAINER_KEYS_SET_BY_MUXER})
        try:
            chapters = self.reader.container.chapters()
            if chapters:
                out.set_chapters(chapters)
        except (AttributeError, av.FFmpegError, ValueError):  # an older PyAV, or chapters the muxer refuses
            pass

    def _start(self, frame) -> None:
        """Tags from the first frame (pixel format, range, colour space, display matrix), set before encoding."""
        v = self.video
        v.pix_fmt = frame.format.name
        cc = v.codec_context
        cc.color_range = frame.color_range
        cc.colorspace = frame.colorspace
        cc.color_primaries = frame.color_primaries
        cc.color_trc = frame.color_trc
        matrix = display_matrix(frame) or getattr(self.reader, "display", None)
        if matrix is not None and hasattr(v, "set_display_matrix"):
            v.set_display_matrix(matrix)
        elif matrix is not None:  # PyAV before its display-matrix API (2026) cannot write one
            self.notes.append(f"the display rotation ({rotation_of(matrix)} degrees) is not kept: this PyAV "
                              f"{av_version()} cannot write a display matrix (a newer PyAV can)")
        self._started = True

    def write(self, frame) -> None:
        """Encode one frame (its ``pts`` is the input's)."""
        import av

        first = not self._started
        if first:
            self._start(frame)
        frame.pict_type = av.video.frame.PictureType.NONE  # the encoder chooses its own frame types
        try:
            for packet in self.video.encode(frame):
                self.container.mux(packet)
            if first:
                for packet in self._held:
                    self._mux_copy(packet)
                self._held = []
        except av.FFmpegError as e:
            raise MediaError(self.path, f"encoding frame {self.frames} failed ({_error_text(e)})") from None
        self.frames += 1

    def copy(self, packet) -> None:
        """Mux a packet of a copied stream, unchanged (held until the first frame has set the header)."""
        if not self._started:
            self._held.append(packet)
        else:
            self._mux_copy(packet)

    def _mux_copy(self, packet) -> None:
        packet.stream = self.copies[packet.stream_index]
        self.container.mux(packet)

    def close(self, complete: bool = True) -> None:
        """Flush the encoder (``complete``) and close the file."""
        import av

        try:
            if complete and self._started:
                for packet in self.video.encode(None):
                    self.container.mux(packet)
        except av.FFmpegError as e:
            raise MediaError(self.path, f"finishing the video failed ({_error_text(e)})") from None
        finally:
            self.container.close()


def check_encoder(codec: str) -> None:
    """Raises ``ValueError`` when FFmpeg (in PyAV's wheel) has no video encoder of that name."""
    av = require_av()
    try:
        found = av.codec.Codec(codec, "w")
    except ValueError:  # av's UnknownCodecError
        found = None
    if found is None or found.type != "video":
        video = sorted(c for c in ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1", "mpeg4", "ffv1")
                       if c in av.codecs_available)
        raise ValueError(f"codec {codec!r}: not a video encoder here; try one of: {', '.join(video)}")


def muxer_for(path: str | os.PathLike) -> str:
    """FFmpeg's format for an output file, by extension.

    Raises:
        ValueError: an extension with no known video container.
    """
    ext = Path(path).suffix.lower()
    if ext not in MUXERS:
        raise ValueError(f"{os.fspath(path)}: no video container for {ext or 'a name without extension'!r}; "
                         f"use one of: {', '.join(sorted(e.lstrip('.') for e in MUXERS))}")
    return MUXERS[ext]
