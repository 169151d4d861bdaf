"""What ``colorize video`` keeps: streams, frames and timestamps, luma, rotation, metadata; what it refuses."""

import numpy as np
import pytest
from colorize.video import colorize_video

av = pytest.importorskip("av")


def _streams(path):
    with av.open(str(path)) as c:
        return [(s.type, s.codec_context.name if s.codec_context else None) for s in c.streams]


def _packets(path, kind):
    with av.open(str(path)) as c:
        s = next(s for s in c.streams if s.type == kind)
        return [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(s) if p.size]


def _frame_times(path):
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def _planes(path):
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            a = f.to_ndarray(format="yuv420p")
            h = f.height
            yield a[:h], a[h:]


def test_streams_frames_timestamps_and_metadata_are_kept(clips, film_runs):
    src, out = clips["film"].path, film_runs["steady_path"]
    assert film_runs["steady"].exit_status == 0
    assert _streams(out) == [("video", "h264"), ("audio", "aac"), ("subtitle", "mov_text")]
    assert _packets(out, "audio") == _packets(src, "audio")  # copied, not re-encoded: same bytes, same times
    def texts(path):  # the MP4 muxer writes its own empty samples between mov_text cues
        return [(t, data) for t, data in _packets(path, "subtitle") if len(data) > 2]

    assert texts(out) == texts(src) and len(texts(src)) == 4
    t_in, t_out = _frame_times(src), _frame_times(out)
    assert len(t_out) == len(t_in) == clips["film"].n_frames
    assert t_out == pytest.approx(t_in, abs=1e-6)
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "A test film"
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (160, 96)


def _psnr(a, b):
    return 10 * np.log10(255.0**2 / max(1e-10, np.mean((a.astype(np.float64) - b) ** 2)))


def test_luma_is_the_input_one_and_chroma_is_new(clips, film_runs):
    psnrs, chroma = [], []
    for (y_in, _), (y_out, uv_out) in zip(_planes(clips["film"].path), _planes(film_runs["steady_path"])):
        psnrs.append(_psnr(y_in, y_out))
        chroma.append(np.abs(uv_out.astype(np.int16) - 128).mean())
    assert min(psnrs) > 36  # the encoder's loss at crf 18 on the decoded luma (crf 0 keeps it exactly: below)
    assert np.mean(chroma) > 2.0  # the gray film (chroma 128) came out coloured


def test_lossless_encoding_keeps_the_luma_bytes(clips, tmp_path, fast):
    s = colorize_video(clips["colour"].path, tmp_path, crf=0, **fast)  # x264 at crf 0: lossless 4:2:0
    assert s.exit_status == 0, s.errors
    pairs = list(zip(_planes(clips["colour"].path), _planes(tmp_path / "colour.mp4")))
    assert len(pairs) == clips["colour"].n_frames
    for (y_in, uv_in), (y_out, uv_out) in pairs:
        assert np.array_equal(y_in, y_out)
        assert not np.array_equal(uv_in, uv_out)


def test_variable_frame_rate_timestamps_are_kept(clips, tmp_path, fast):
    s = colorize_video(clips["vfr"].path, tmp_path, **fast)
    assert s.exit_status == 0, s.errors
    t_in, t_out = _frame_times(clips["vfr"].path), _frame_times(tmp_path / "vfr.mkv")
    steps = np.diff(t_out)
    assert len(set(np.round(steps, 3))) > 2  # still variable
    assert t_out == pytest.approx(t_in, abs=1e-6)
    assert _streams(tmp_path / "vfr.mkv") == _streams(clips["vfr"].path)
    assert [t for t, _ in _streams(tmp_path / "vfr.mkv")] == ["video", "audio", "subtitle"]


def test_rotation_kept_and_no_audio_added(clips, tmp_path, fast):
    s = colorize_video(clips["silent"].path, tmp_path, **fast)
    assert s.exit_status == 0, s.errors
    with av.open(str(tmp_path / "silent.mov")) as c:
        assert [st.type for st in c.streams] == ["video"]
        frames = list(c.decode(video=0))
    assert len(frames) == clips["silent"].n_frames and frames[0].rotation == 90
    assert (frames[0].width, frames[0].height) == (160, 96)  # stored as the input, shown turned


def test_colour_input_is_colorized_from_its_luma(clips, tmp_path, fast):
    s = colorize_video(clips["colour"].path, tmp_path, **fast)
    assert s.exit_status == 0 and s.done[0].colour_frames == clips["colour"].n_frames
    assert "1 colour input colorized from its luma" in s.describe()
    uv_in = np.concatenate([uv for _, uv in _planes(clips["colour"].path)])
    uv_out = np.concatenate([uv for _, uv in _planes(tmp_path / "colour.mp4")])
    assert np.abs(uv_in.astype(np.int16) - uv_out).mean() > 2.0  # its colour was replaced


def test_files_that_are_not_usable_videos_are_named_with_a_reason(clips, tmp_path, fast):
    d = clips["dir"]
    s = colorize_video([d / "truncated.mp4", d / "truncated.mkv", d / "text.mp4", d / "sound.m4a",
                        clips["colour"].path], tmp_path, **fast)
    errors = dict(s.errors)
    assert s.exit_status == 1 and len(s.done) == 1
    assert "not a video file FFmpeg can read" in errors[str(d / "truncated.mp4")]
    assert "corrupt or truncated video: the picture stops at" in errors[str(d / "truncated.mkv")]
    assert "not a video file FFmpeg can read" in errors[str(d / "text.mp4")]
    assert "no video stream (the file has: audio)" in errors[str(d / "sound.m4a")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["colour.mp4"]  # nothing half-written, no temporaries


def test_progress_and_cancel(clips, tmp_path, fast):
    import threading

    stop = threading.Event()
    seen, frames = [], []

    def progress(outcome, done, total):
        seen.append((outcome.task.src.name, done, total))
        stop.set()  # after the first video: the second never starts

    s = colorize_video([clips["colour"].path, clips["silent"].path], tmp_path, progress=progress,
                       frame_progress=lambda task, n, _: frames.append(n), cancel=stop, **fast)
    assert seen == [("colour.mp4", 1, 2)] and frames[-1] == clips["colour"].n_frames
    assert s.cancelled and [t.src.name for t in s.not_run] == ["silent.mov"] and s.exit_status == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["colour.mp4"]


def test_cancel_mid_video_leaves_no_file(clips, tmp_path, fast):
    import threading

    stop = threading.Event()
    s = colorize_video(clips["film"].path, tmp_path, frame_progress=lambda task, n, _: stop.set(), cancel=stop,
                       **fast)
    assert s.cancelled and len(s.not_run) == 1 and not s.done
    assert list(tmp_path.iterdir()) == []


def _ffv1(path, w, h, pix_fmt):
    """A short lossless FFV1 clip in another pixel format (Matroska)."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("ffv1", rate=24)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        y, x = np.mgrid[0:h, 0:w]
        for i in range(6):
            g = ((x * 3 + y * 2 + i * 5) % 256).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(g, format="gray").reformat(format=pix_fmt)
            f.pts = i
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode():
            c.mux(p)


def test_other_pixel_formats_are_converted_and_odd_sizes_refused(tmp_path, fast):
    _ffv1(tmp_path / "gray.mkv", 64, 48, "gray")
    _ffv1(tmp_path / "yuv444.mkv", 64, 48, "yuv444p")
    _ffv1(tmp_path / "odd.mkv", 63, 47, "gray")
    s = colorize_video([tmp_path / n for n in ("gray.mkv", "yuv444.mkv", "odd.mkv")], tmp_path / "out", **fast)
    assert sorted(o.task.src.name for o in s.done) == ["gray.mkv", "yuv444.mkv"]
    assert "odd picture size 63x47: 4:2:0 video needs even sides" in dict(s.errors)[str(tmp_path / "odd.mkv")]
    with av.open(str(tmp_path / "out" / "gray.mkv")) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 6 and frames[0].format.name == "yuv420p"
