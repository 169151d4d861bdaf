"""Small films made at test time (never committed): pans and zooms over the bundled photos with hard cuts, gray,
with an AAC sine and subtitles; a variable-frame-rate one; a rotated one without audio; a colour one; broken
files. And the film colorized once per session, with steady colour and per frame."""

from pathlib import Path

import pytest

pytest.importorskip("av", reason="the video extra is not installed (pip install \".[video]\")")
pytest.importorskip("cv2", reason="the video extra is not installed (pip install \".[video]\")")

from colorize.benchmarks.video_clips import ClipSpec, write_clip

REPO = Path(__file__).resolve().parents[2]
PHOTOS = [REPO / "examples" / n for n in ("coffee.jpg", "rocket.jpg", "astronaut.jpg", "chelsea.png")]
#: The engine's fastest start on a fresh cache (the shipped ONNX file on ONNX Runtime, no INT8 build) and a
#: small working size: for the tests of what is kept, where the colour's quality does not matter.
FAST = {"backend": "onnxruntime", "precision": "fp32", "working_size": 64}
FAST_ARGS = ["--backend", "onnxruntime", "--precision", "fp32", "--working-size", "64", "-q"]
#: What the quality tests run: the default working size.
QUALITY = {"backend": "onnxruntime", "precision": "fp32"}


def _tinted(paths):
    """The gray photos in sepia: a colour film whose true colour is known."""
    import numpy as np
    from PIL import Image

    tint = np.array([1.0, 0.82, 0.6], np.float32)
    return [np.clip(np.asarray(Image.open(p).convert("L"), np.float32)[..., None] * tint, 0, 255).astype(np.uint8)
            for p in paths]


@pytest.fixture
def fast():
    """``colorize_video`` keywords for the fastest start (``FAST``)."""
    return dict(FAST)


@pytest.fixture
def fast_args():
    """``colorize video`` flags for the fastest start, no progress bar."""
    return list(FAST_ARGS)


def film_spec(shots: int = 4, frames_per_shot: int = 10) -> ClipSpec:
    return ClipSpec(PHOTOS, size=(160, 96), frames_per_shot=frames_per_shot, shots=shots)


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    spec = film_spec()
    out = {
        "film": write_clip(spec, d / "film.mp4", subtitles=True, metadata={"title": "A test film"}),
        "vfr": write_clip(film_spec(2, 12), d / "vfr.mkv", vfr=True, subtitles=True),
        "silent": write_clip(film_spec(2, 8), d / "silent.mov", audio=False, rotation=90),
        "colour": write_clip(ClipSpec(_tinted(PHOTOS[:2]), size=(160, 96), frames_per_shot=8), d / "colour.mp4",
                             colour=True, audio=False),
    }
    data = Path(out["film"].path).read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])  # MP4: the index (at the end) is lost
    data = Path(out["vfr"].path).read_bytes()
    (d / "truncated.mkv").write_bytes(data[: len(data) // 2])  # Matroska: the first half still plays
    (d / "text.mp4").write_text("this is not a video\n")
    import av
    import numpy as np

    with av.open(str(d / "sound.m4a"), "w") as c:  # audio only: no video stream
        s = c.add_stream("aac", rate=48000, layout="mono")
        for i in range(10):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 48000, i * 1024
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return {"dir": d, "spec": spec, **out}


@pytest.fixture(scope="session")
def film_runs(clips, tmp_path_factory):
    """The film colorized with steady colour and per frame (one model load each)."""
    from colorize.video import colorize_video

    d = tmp_path_factory.mktemp("runs")
    steady = colorize_video(clips["film"].path, d / "steady", **QUALITY)
    per_frame = colorize_video(clips["film"].path, d / "per-frame", steady=False, **QUALITY)
    return {"steady": steady, "per_frame": per_frame, "steady_path": d / "steady" / "film.mp4",
            "per_frame_path": d / "per-frame" / "film.mp4"}
