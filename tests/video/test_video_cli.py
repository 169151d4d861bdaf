"""``colorize video``: folders mirrored, exit statuses, resume, a killed run, the missing extra; no traceback."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from colorize.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(clips, tmp_path):
    src = tmp_path / "in"
    (src / "reel2").mkdir(parents=True)
    shutil.copy(clips["silent"].path, src / "a.mov")
    shutil.copy(clips["colour"].path, src / "reel2" / "b.mp4")
    shutil.copy(clips["dir"] / "truncated.mkv", src / "reel2" / "broken.mkv")
    (src / "notes.txt").write_text("not a video, not picked from a folder")
    return src


def test_folder_is_mirrored_bad_file_reported_and_resumed(tree, tmp_path, capsys, fast_args):
    out = tmp_path / "out"
    assert main(["video", str(tree), "-o", str(out), "-r", *fast_args]) == 1
    err = capsys.readouterr().err
    assert f"error: {tree / 'reel2' / 'broken.mkv'}: corrupt or truncated video" in err
    assert "colorized 2 of 3 videos" in err and "1 failed" in err and "Traceback" not in err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["a.mov", "reel2", "reel2/b.mp4"]
    stamp = (out / "a.mov").stat().st_mtime_ns
    (out / "reel2" / "b.mp4").unlink()
    assert main(["video", str(tree), "-o", str(out), "-r", "--skip-existing", *fast_args]) == 1
    err = capsys.readouterr().err
    assert "colorized 1 of 3 videos" in err and "1 skipped (output exists)" in err
    assert (out / "a.mov").stat().st_mtime_ns == stamp and (out / "reel2" / "b.mp4").exists()


def test_format_changes_the_container(clips, tmp_path, capsys, fast_args):
    assert main(["video", clips["silent"].path, "-o", str(tmp_path), "--format", "mkv", "--per-frame",
                 *fast_args]) == 0
    assert "per-frame colour" in capsys.readouterr().err
    import av

    with av.open(str(tmp_path / "silent.mkv")) as c:
        assert c.format.name == "matroska,webm" and c.streams.video[0].codec_context.name == "h264"


@pytest.mark.parametrize("argv, message", [
    (["missing.mp4"], "input not found: missing.mp4"),
    (["{film}", "--crf", "99"], "--crf must be in 0..63"),
    (["{film}", "--steadiness", "1.5"], "--steadiness must be in 0..0.99"),
    (["{film}", "--format", "gif"], "format 'gif': not a video container"),
    (["{dir}/text.mp4", "--backend", "nope"], "unknown backend 'nope'"),
    (["{film}", "--codec", "nope"], "codec 'nope': not a video encoder here; try one of: "),
    (["{film}", "--codec", "aac"], "codec 'aac': not a video encoder here"),
    ([], "no INPUT given"),
])
def test_usage_errors_exit_2_without_traceback(clips, tmp_path, capsys, argv, message):
    argv = [a.format(film=clips["film"].path, dir=clips["dir"]) for a in argv]
    assert main(["video", *argv, "-o", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_missing_video_extra_is_named(clips, tmp_path):
    code = ("import sys; sys.modules['av'] = None; from colorize.cli import main; "
            f"sys.exit(main(['video', {str(clips['film'].path)!r}, '-o', {str(tmp_path / 'o')!r}, '-q']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert r.returncode == 2, r.stderr
    assert 'pip install ".[video]"' in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_killed_run_leaves_no_partial_output_and_resumes(tmp_path, capsys, fast_args):
    from colorize.benchmarks.video_clips import ClipSpec, write_clip

    photos = [REPO / "examples" / n for n in ("coffee.jpg", "rocket.jpg")]
    info = write_clip(ClipSpec(photos, size=(160, 96), frames_per_shot=60), tmp_path / "long.mp4")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "colorize", "video", info.path, "-o", str(out), *fast_args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if out.is_dir() and any(p.name.endswith(".colorize-tmp") for p in out.iterdir()):
            break
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if not killed:
        pytest.skip(f"the run ended before it could be killed (exit {proc.returncode}): the machine was too fast")
    assert not (out / "long.mp4").exists()  # only a temporary file, never a half-written output
    assert any(p.name.endswith(".colorize-tmp") for p in out.iterdir())
    assert main(["video", info.path, "-o", str(out), "--skip-existing", *fast_args]) == 0
    assert "colorized 1 of 1 video (120 frames)" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["long.mp4"]  # the temporary file of the killed run is gone
