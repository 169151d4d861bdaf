"""``colorize.colorize_folder`` / ``colorize.job``: the folder job called from Python (progress, cancel, errors, resume)."""

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorize import colorize_folder
from colorize.job import JobError

OPTIONS = dict(model="efficientnet_lite0-unet-photos", backend="onnxruntime", precision="fp32", working_size=32, jobs=2)


@pytest.fixture(autouse=True)
def _onnxruntime():
    pytest.importorskip("onnxruntime")


def _gray(h, w, seed=0):
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(128 + 90 * np.sin(x / 4.0 + seed) * np.cos(y / 6.0), 0, 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(_gray(40 + 4 * i, 48, seed=i)).save(src / f"g{i}.png")
    Image.fromarray(_gray(36, 44, seed=7)).save(src / "sub" / "deep.jpg", quality=90)
    (src / "empty.png").write_bytes(b"")
    (src / "notes.jpg").write_text("not an image at all")
    return src


def test_outcomes_progress_errors_and_report(folder, tmp_path):
    out, page = tmp_path / "out", tmp_path / "report.html"
    calls = []
    summary = colorize_folder(folder, out, recursive=True, report=page, batch_size=2,
                              progress=lambda o, done, total: calls.append((o, done, total)), **OPTIONS)
    assert [(done, total) for _, done, total in calls] == [(i, 6) for i in range(1, 7)]
    assert [o for o, _, _ in calls] == summary.outcomes
    assert sorted(str(o.output.relative_to(out)) for o in summary.done) == ["g0.png", "g1.png", "g2.png",
                                                                          "sub/deep.jpg"]
    reasons = {o.task.src.name: o.error for o in summary.failed}
    assert reasons["empty.png"] == "empty file (0 bytes)" and reasons["notes.jpg"].startswith("not an image")
    assert summary.exit_status == 1 and not summary.not_run and not summary.cancelled
    assert {o.size for o in summary.done} == {(48, 40), (48, 44), (48, 48), (44, 36)}
    assert {o.engine for o in summary.done} == {"onnxruntime/fp32"}
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["deep.jpg", "g0.png", "g1.png", "g2.png"]
    with Image.open(out / "g1.png") as im:
        assert im.size == (48, 44) and im.mode == "RGB"
    line = summary.describe()
    assert line.startswith("colorized 4 of 6 images") and "2 failed" in line and "onnxruntime/fp32" in line
    text = page.read_text(encoding="utf-8")
    assert text.count("<figure>") == 4 and "Errors (2)" in text and "notes.jpg" in text


def test_resume_with_skip_existing_redoes_only_missing_outputs(folder, tmp_path, monkeypatch):
    from colorize.image import merge
    from colorize.job import runner

    compiled_for = []  # jobs of COMPILED_MERGE_MIN_FILES files or more merge every image with the compiled merge
    monkeypatch.setattr(runner, "COMPILED_MERGE_MIN_FILES", 3)
    monkeypatch.setattr(merge, "use_compiled", lambda: compiled_for.append(True))
    out = tmp_path / "out"
    first = colorize_folder([folder / "g0.png", folder / "g1.png", folder / "g2.png"], out, **OPTIONS)
    assert first.exit_status == 0 and len(first.done) == 3
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "g1.png").unlink()
    again = colorize_folder([folder / "g0.png", folder / "g1.png", folder / "g2.png"], out, skip_existing=True,
                            **OPTIONS)
    assert (again.plan.found, again.plan.skipped) == (3, 2)
    assert [o.task.src.name for o in again.done] == ["g1.png"] and again.exit_status == 0
    assert "2 skipped (output exists)" in again.describe()
    assert compiled_for == [True]  # the 3-file job, not the 1-file rerun
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert set(after) == set(stamps) and after["g0.png"] == stamps["g0.png"] and after["g2.png"] == stamps["g2.png"]


def test_cancel_stops_after_the_files_in_flight_and_leaves_only_complete_outputs(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    n = 16
    for i in range(n):
        Image.fromarray(_gray(40, 48, seed=i)).save(src / f"f{i:02d}.png")
    cancel = threading.Event()

    def progress(outcome, done, total):
        cancel.set()  # after the first file

    summary = colorize_folder(src, out, batch_size=1, progress=progress, cancel=cancel, **{**OPTIONS, "jobs": 1})
    assert summary.cancelled and summary.stopped == "cancelled" and summary.exit_status == 1
    assert 1 <= len(summary.done) < n and not summary.failed
    assert len(summary.done) + len(summary.not_run) == n
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(o.output.name for o in summary.done)  # no temporary file, nothing half-written
    for name in written:
        with Image.open(out / name) as im:
            im.load()
            assert im.size == (48, 40)
    assert f"cancelled, {len(summary.not_run)} not run" in summary.describe()
    rest = colorize_folder(src, out, skip_existing=True, **OPTIONS)  # resume finishes the job
    assert len(rest.done) == len(summary.not_run) and len(list(out.iterdir())) == n


def test_a_job_that_cannot_start_raises_and_writes_nothing(folder, tmp_path):
    out = tmp_path / "out"
    cases = [
        (dict(inputs=tmp_path / "missing"), "input not found"),
        (dict(inputs=[]), "no input given"),
        (dict(format="nope"), "not a format Pillow can write"),
        (dict(batch_size=0), "batch_size must be an integer >= 1"),
        (dict(quality=101), "quality must be in 1..100"),
        (dict(colour_strength=-1), "colour_strength must be in"),
        (dict(inputs=folder / "g0.png", output=folder), "would overwrite the input"),
    ]
    for change, message in cases:
        kw = {"inputs": folder, "output": out, **OPTIONS, **change}
        with pytest.raises(JobError, match=message):
            colorize_folder(kw.pop("inputs"), kw.pop("output"), **kw)
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(JobError, match="no images found"):
        colorize_folder(empty, out, **OPTIONS)
    assert not out.exists()


def test_engine_exports_colorize_folder_lazily_and_job_and_ray_never_import_the_cli():
    code = ("import sys, colorize; f = colorize.colorize_folder; import colorize.job.plan, colorize.job.outcome, "
            "colorize.job.runner, colorize.folder, colorize.job.report, colorize.ray.driver, colorize.ray.worker, "
            "colorize.ray.pipeline; bad = [m for m in ('torch', 'ray', 'colorize.cli') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
