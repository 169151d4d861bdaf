"""``colorize video --ray``: one Ray task per video on an embedded instance gives the local run's files."""

import os

import numpy as np
import pytest
from colorize.cli import main

# Ray reads this once, at import: every Ray process of these tests listens on 127.0.0.1 only.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
av = pytest.importorskip("av")


def _chroma(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]).astype(np.int16)


def test_embedded_ray_gives_the_videos_of_the_local_run(clips, tmp_path, capsys, fast_args):
    pytest.importorskip("ray.data")
    d = clips["dir"]
    inputs = [clips["silent"].path, clips["colour"].path, str(d / "text.mp4")]
    local, viaray = tmp_path / "local", tmp_path / "ray"
    lossless = ["--crf", "0"]  # x264's output otherwise depends on its thread count, which differs in a Ray worker
    assert main(["video", *inputs, "-o", str(local), *lossless, *fast_args]) == 1
    capsys.readouterr()
    assert main(["video", "--ray", *inputs, "-o", str(viaray), *lossless, *fast_args]) == 1
    err = capsys.readouterr().err
    assert "ray: embedded Ray on this machine: 1 node" in err and "one task per video" in err
    assert f"error: {d / 'text.mp4'}: not a video file FFmpeg can read" in err
    assert "colorized 2 of 3 videos" in err and "on 1 Ray node" in err and "Traceback" not in err
    assert sorted(p.name for p in viaray.iterdir()) == sorted(p.name for p in local.iterdir()) == \
        ["colour.mp4", "silent.mov"]
    for name in ("colour.mp4", "silent.mov"):  # the same code per video: the same pictures
        a, b = _chroma(local / name), _chroma(viaray / name)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1, name
