"""``colorize images``: tree mirroring, formats and modes, errors, resume, SIGKILL + rerun, odd paths."""

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorize.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:model .* random init")
FAST = ["--backend", "torch", "--working-size", "32", "-q", "--jobs", "2", "--batch-size", "4"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny images: threads only add contention on a shared machine
    yield
    torch.set_num_threads(n)


def _gray(h, w, seed=0):
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(128 + 90 * np.sin(x / 4.0 + seed) * np.cos(y / 6.0), 0, 255).astype(np.uint8)


def _l_of(rgb8):
    from colorize.image.color import rgb_to_l

    return rgb_to_l(np.asarray(rgb8, dtype=np.float64)[..., :3] / 255.0)


@pytest.fixture
def tree(tmp_path):
    """A folder with one image per interesting mode, a subfolder and a non-image file."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    g = _gray(24, 36)
    a = _gray(24, 36, seed=2)
    Image.fromarray(g).save(src / "gray.png")
    Image.fromarray(np.stack([g, a], -1), "LA").save(src / "la.png")
    Image.fromarray(np.dstack([np.repeat(g[..., None], 3, -1), a])).save(src / "rgba.png")
    Image.fromarray(g).save(src / "photo.jpg", quality=95)
    Image.fromarray(g.astype(np.uint16) * 257).save(src / "g16.png")
    Image.fromarray(g).convert("CMYK").save(src / "cmyk.tif")
    Image.fromarray(g).convert("P").save(src / "pal.gif")
    Image.fromarray(g > 128).save(src / "bilevel.png")
    Image.fromarray(_gray(17, 5)).save(src / "sub" / "small.bmp")
    (src / "notes.txt").write_text("not an image, and not picked from a folder")
    return src


def test_folder_mirrors_tree_formats_and_modes(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["images", str(tree), "-o", str(out), "-r", *FAST]) == 0
    got = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    want = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file() and p.suffix != ".txt")
    assert got == want
    modes = {n: Image.open(out / n).mode for n in want}
    assert modes["la.png"] == "RGBA" and modes["rgba.png"] == "RGBA" and modes["gray.png"] == "RGB"
    assert modes["photo.jpg"] == "RGB" and modes["cmyk.tif"] == "RGB" and modes["g16.png"] == "RGB"
    assert Image.open(out / "pal.gif").format == "GIF" and Image.open(out / "sub/small.bmp").size == (5, 17)
    # alpha kept exactly, luminance kept to 8-bit rounding (lossless formats)
    la_in = np.asarray(Image.open(tree / "la.png"))
    rgba_out = np.asarray(Image.open(out / "la.png"))
    np.testing.assert_array_equal(rgba_out[..., 3], la_in[..., 1])
    l_in = _l_of(np.repeat(la_in[..., :1], 3, -1))
    assert np.abs(_l_of(rgba_out) - l_in).max() <= 0.5
    g16 = np.asarray(Image.open(tree / "g16.png")).astype(np.float64) / 65535  # 16-bit scaled, not clipped
    from colorize.image.color import rgb_to_l

    assert np.abs(_l_of(np.asarray(Image.open(out / "g16.png"))) - rgb_to_l(np.repeat(g16[..., None], 3, -1))).max() <= 0.5
    assert "colorized 9 of 9 images" in capsys.readouterr().err


def test_not_recursive_format_option_and_file_inputs(tree, tmp_path):
    out = tmp_path / "out"
    assert main(["images", str(tree), str(tree / "sub" / "small.bmp"), "-o", str(out), "--format", "webp", *FAST]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([p.stem + ".webp" for p in tree.iterdir() if p.is_file() and p.suffix != ".txt"]
                           + ["small.webp"])
    assert all(Image.open(out / n).format == "WEBP" for n in names)
    assert Image.open(out / "rgba.webp").mode == "RGBA"


def test_bad_files_exit_1_and_the_rest_is_done(tree, tmp_path, capsys):
    (tree / "zero.png").write_bytes(b"")
    (tree / "text.jpg").write_text("this is not a JPEG")
    Image.fromarray(_gray(64, 64)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tree / "truncated.png").write_bytes(data[: len(data) // 2])
    Image.fromarray(_gray(200, 200)).save(tree / "huge.png")
    out = tmp_path / "out"
    assert main(["images", str(tree), "-o", str(out), "--max-pixels", "10000", *FAST]) == 1
    err = capsys.readouterr().err
    for name, reason in [("zero.png", "empty file"), ("text.jpg", "not an image"),
                         ("truncated.png", "truncated"), ("huge.png", "too large")]:
        assert f"{name}: {reason}" in err
        assert not (out / name).exists()
    assert "colorized 8 of 12 images" in err and "4 failed" in err
    assert len(list(out.glob("*"))) == 8
    assert not list(out.glob(".*"))  # no temporary files left


def test_skip_existing_resumes(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["images", str(tree), "-o", str(out), *FAST]) == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "gray.png").unlink()
    capsys.readouterr()
    assert main(["images", str(tree), "-o", str(out), "--skip-existing", *FAST]) == 0
    err = capsys.readouterr().err
    assert "colorized 1 of 8 images" in err and "7 skipped" in err
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert set(after) == set(stamps)
    assert all(after[n] == stamps[n] for n in stamps if n != "gray.png")


def test_skip_existing_summary(tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["images", str(tree / "gray.png"), str(tree / "la.png"), "-o", str(out), *FAST]) == 0
    capsys.readouterr()
    assert main(["images", str(tree), "-o", str(out), "--skip-existing", *FAST]) == 0
    err = capsys.readouterr().err
    assert "colorized 6 of 8 images" in err and "2 skipped (output exists)" in err


def test_usage_errors_exit_2_and_inputs_never_overwritten(tree, tmp_path, capsys):
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    assert main(["images", str(tree), "-o", str(tree), *FAST]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert main(["images", str(tmp_path / "missing"), "-o", str(tmp_path / "o"), *FAST]) == 2
    assert "input not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["images", str(tmp_path / "empty"), "-o", str(tmp_path / "o"), *FAST]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["images", str(tree), "-o", str(tmp_path / "o"), "--format", "nope", *FAST]) == 2
    assert "--format 'nope'" in capsys.readouterr().err
    assert main(["images", str(tree), "-o", str(tmp_path / "o"), *FAST, "--backend", "nope"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err
    if importlib.util.find_spec("tensorrt") is None:  # a backend whose extra is missing: a message, no traceback
        assert main(["images", str(tree), "-o", str(tmp_path / "o"), *FAST, "--backend", "tensorrt"]) == 2
        assert "colorize images: error: no backend could run" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before


def test_output_inside_input_is_not_read_back(tree, tmp_path):
    out = tree / "colorized"
    assert main(["images", str(tree), "-o", str(out), "-r", *FAST]) == 0
    n = len(list(out.rglob("*.*")))
    assert main(["images", str(tree), "-o", str(out), "-r", *FAST]) == 0
    assert len(list(out.rglob("*.*"))) == n == 9


def test_unicode_and_spaces_in_paths_and_report(tmp_path):
    src = tmp_path / "vieux clichés ✓" / "été 1936"
    src.mkdir(parents=True)
    for name in ("grand-mère à la plage.png", "日本 写真.jpg", "a b.gif"):
        Image.fromarray(_gray(20, 30)).save(src / name)
    out = tmp_path / "sortie colorée"
    report = tmp_path / "rapport é.html"
    assert main(["images", str(src.parent), "-o", str(out), "-r", "--report", str(report), *FAST]) == 0
    assert sorted(p.name for p in (out / "été 1936").iterdir()) == sorted(p.name for p in src.iterdir())
    page = report.read_text(encoding="utf-8")
    assert page.count("<figure>") == 3 and "grand-mère à la plage.png" in page and "data:image/jpeg;base64," in page
    # every output is linked twice (thumbnail and caption), relative to the page, percent-encoded
    import re
    from urllib.parse import unquote

    hrefs = re.findall(r"<a href='([^']+)'>", page)
    assert len(hrefs) == 6 and all("%20" in h and not h.startswith("/") for h in hrefs)
    linked = {(report.parent / unquote(h)).resolve() for h in hrefs}
    assert linked == {p.resolve() for p in (out / "été 1936").iterdir()}


def test_report_lists_outputs_without_thumbnails_as_links(tmp_path):
    from colorize.job.report import Entry, render

    page = render([Entry("in/a b.png", str(tmp_path / "out" / "a b.png"))], [], "done", page_dir=tmp_path)
    assert "<li>in/a b.png → <a href='out/a%20b.png'>" in page


def test_images_help_lists_backends_and_precisions():
    from colorize.backends import BACKENDS
    from colorize.cli import build_parser
    from colorize.engine import PRECISIONS

    parser = build_parser()
    images = parser._subparsers._group_actions[0].choices["images"]
    text = " ".join(images.format_help().split()).replace("- ", "-")  # argparse wraps lines, also at hyphens
    for name in [*BACKENDS, *PRECISIONS, "auto"]:
        assert name in text, name


def test_run_with_nothing_written_does_not_name_an_output_folder(tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    out = tmp_path / "o3"
    assert main(["images", str(tmp_path / "bad.png"), "-o", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "colorized 0 of 1 images" in err and "nothing written" in err and "output in" not in err
    assert not out.exists()


def test_killed_run_leaves_no_corrupt_output_and_rerun_completes(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    n = 40
    for i in range(n):  # noisy images: slow enough to encode that the kill lands mid-run
        Image.fromarray(rng.integers(0, 256, (192, 256), dtype=np.uint8)).save(src / f"img{i:02d}.png")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "colorize", "images", str(src), "-o", str(out), "--backend", "torch",
           "--working-size", "32", "-q", "--batch-size", "2", "--jobs", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if out.is_dir() and len(list(out.glob("*.png"))) >= 3:
            break
        time.sleep(0.01)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(out.glob("*.png"))
    assert killed and 3 <= len(done) < n, (len(done), proc.stderr.read().decode()[-2000:])
    for p in done:  # every output under its final name is complete
        with Image.open(p) as im:
            im.load()
            assert im.size == (256, 192)
    r = subprocess.run(cmd + ["--skip-existing"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"{len(done)} skipped" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in src.iterdir())  # no temporary files
    for p in out.iterdir():
        with Image.open(p) as im:
            im.load()


def test_progress_bar_only_on_a_terminal():
    import io

    from colorize.cli.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        p = Progress(4, stream=stream)
        for _ in range(4):
            p.update()
        p.close()
    assert pipe.getvalue() == ""
    text = tty.getvalue()
    assert "4/4" in text and "img/s" in text and "ETA" in text and text.endswith("\n")


def test_summary_names_small_images_run_enlarged(tmp_path, capsys):
    """A model with a minimum working size (a photo model trained on small images enlarged) runs small inputs
    enlarged, writes them at their own size, and the summary line says how many."""
    import torch

    from colorize.models import create_model
    from colorize.models.checkpoint import save_checkpoint
    from colorize.training.ship import ship

    torch.manual_seed(0)
    src = save_checkpoint(create_model("resnet18-unet-lite"), tmp_path / "run" / "m", arch="resnet18-unet-lite")
    model = ship(str(src), str(tmp_path / "w" / "lite"), min_working_size=64)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_gray(20, 30)).save(folder / "small.png")
    Image.fromarray(_gray(80, 100)).save(folder / "big.png")
    out = tmp_path / "out"
    assert main(["images", str(folder), "-o", str(out), "--model", str(model), "--backend", "torch",
                 "--working-size", "96", "-q"]) == 0
    err = capsys.readouterr().err
    assert "1 small image (long side < 64 px) enlarged to 64 px for the model" in err
    with Image.open(out / "small.png") as im:
        assert im.size == (30, 20)


def test_summary_names_images_run_on_the_small_image_model(tmp_path, capsys):
    """The default model hands images of long side <= --small-max-side to the CIFAR-10 model at their size; the
    summary says how many and on what; --small-model none keeps every image on the photo model."""
    pytest.importorskip("onnxruntime")
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_gray(32, 32)).save(folder / "tiny.png")
    Image.fromarray(_gray(24, 40)).save(folder / "small.png")
    Image.fromarray(_gray(120, 90)).save(folder / "big.png")
    fast = ["--backend", "onnxruntime", "--precision", "fp32", "--working-size", "96", "-q"]
    assert main(["images", str(folder), "-o", str(tmp_path / "a"), *fast]) == 0
    err = capsys.readouterr().err
    assert "1 image of long side <= 32 px ran on resnet18-unet (onnxruntime/fp32) at its size" in err
    assert "1 small image (long side < 96 px) enlarged to 96 px for the model" in err
    assert main(["images", str(folder), "-o", str(tmp_path / "b"), *fast, "--small-max-side", "40"]) == 0
    assert "2 images of long side <= 40 px ran on resnet18-unet" in capsys.readouterr().err
    assert main(["images", str(folder), "-o", str(tmp_path / "c"), *fast, "--small-model", "none"]) == 0
    err = capsys.readouterr().err
    assert "ran on" not in err and "2 small images (long side < 96 px) enlarged" in err
    for name in ("tiny.png", "small.png", "big.png"):
        with Image.open(tmp_path / "a" / name) as a, Image.open(tmp_path / "c" / name) as c:
            assert a.size == c.size
            assert (np.asarray(a) != np.asarray(c)).any() == (name == "tiny.png")  # only the tiny one differs
    assert main(["images", str(folder), "-o", str(tmp_path / "d"), *fast, "--small-max-side", "-1"]) == 2
    assert "--small-max-side must be >= 0" in capsys.readouterr().err


def test_colour_strength_option(tmp_path, capsys):
    """--colour-strength 0 writes gray (R = G = B up to rounding), 2 more chroma than 1; out of 0..4 is a usage
    error naming the option."""
    pytest.importorskip("onnxruntime")
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_gray(64, 80)).save(folder / "a.png")
    fast = ["--backend", "onnxruntime", "--precision", "fp32", "--working-size", "64", "-q"]
    spread = {}
    for s in ("0", "1", "2"):
        assert main(["images", str(folder), "-o", str(tmp_path / s), *fast, "--colour-strength", s]) == 0
        with Image.open(tmp_path / s / "a.png") as im:
            rgb = np.asarray(im.convert("RGB"), np.int16)
        spread[s] = float((rgb.max(-1) - rgb.min(-1)).mean())
    assert spread["0"] <= 1.0 and spread["2"] > 1.5 * spread["1"] > 0
    assert main(["images", str(folder), "-o", str(tmp_path / "x"), *fast, "--colour-strength", "4.5"]) == 2
    assert "--colour-strength must be in 0..4" in capsys.readouterr().err
