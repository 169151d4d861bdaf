"""``colorize images --ray``: the embedded instance against the local run, and what is refused before Ray starts."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorize.cli import main

# Ray reads this once, at import: every Ray process of these tests listens on 127.0.0.1 only.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own, about its own settings
FAST = ["--model", "efficientnet_lite0-unet-photos", "--backend", "onnxruntime", "--precision", "fp32", "--working-size", "32",
        "--batch-size", "4", "-q"]
REPO = Path(__file__).resolve().parents[2]


def _gray(h, w, seed=0):
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(128 + 90 * np.sin(x / 4.0 + seed) * np.cos(y / 6.0), 0, 255).astype(np.uint8)


def _pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA" if im.mode in ("RGBA", "LA") else "RGB")).astype(np.int16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i in range(5):
        Image.fromarray(_gray(24 + 4 * i, 36, seed=i)).save(src / f"g{i}.png")
    Image.fromarray(np.stack([_gray(20, 30, 1), _gray(20, 30, 2)], -1), "LA").save(src / "alpha.png")
    Image.fromarray(_gray(30, 40, 3)).save(src / "photo.jpg", quality=90)
    Image.fromarray(_gray(17, 5)).save(src / "sub" / "small.bmp")
    return src


def test_embedded_ray_gives_the_files_of_the_local_run(folder, tmp_path, capsys):
    pytest.importorskip("ray.data")
    local, viaray = tmp_path / "local", tmp_path / "ray"
    assert main(["images", str(folder), "-o", str(local), "-r", *FAST]) == 0
    capsys.readouterr()
    # `--ray IN`: IN is an input, not a cluster address; the run is the embedded instance
    assert main(["images", "--ray", str(folder), "-o", str(viaray), "-r", *FAST, "--report", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err
    assert "embedded Ray on this machine: 1 node" in err and "pool: 1 actor x 1.5 CPU" in err
    assert "colorized 8 of 8 images" in err and "on 1 Ray node, 1 actor process" in err
    files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(viaray)) for p in viaray.rglob("*") if p.is_file())
    assert len(files) == 8
    for name in files:  # same model, backend and code per file: pixels equal to rounding
        a, b = _pixels(local / name), _pixels(viaray / name)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1, name
    assert (tmp_path / "r.html").read_text(encoding="utf-8").count("<figure>") == 8  # thumbnails made on the actor


def test_missing_ray_extra_is_named(folder, tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from colorize.cli import main; "
            f"sys.exit(main(['images', {str(folder)!r}, '-o', {str(tmp_path / 'o')!r}, '--ray', '-q']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2, r.stderr
    assert "Ray Data is not installed" in r.stderr and 'pip install ".[ray]"' in r.stderr
    assert not (tmp_path / "o").exists()


def test_dead_cluster_is_a_clear_error_not_a_hang(folder, tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray.data")
    port = _free_port()  # nothing listens there
    t = time.perf_counter()
    assert main(["images", str(folder), "-o", str(tmp_path / "o"), "--ray", f"127.0.0.1:{port}", *FAST]) == 2
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in capsys.readouterr().err
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    assert main(["images", str(folder), "-o", str(tmp_path / "o"), "--ray", "auto", *FAST]) == 2
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in capsys.readouterr().err
    assert time.perf_counter() - t < 20  # ray.init alone retries for many minutes
    assert main(["images", str(folder), "-o", str(tmp_path / "o"), "--ray", "ray://", *FAST]) == 2
    assert "expected host:port" in capsys.readouterr().err
    assert main(["images", str(folder), "-o", str(tmp_path / "o"), "--ray", "nohost", *FAST]) == 2
    assert "--ray 'nohost': neither a Ray address" in capsys.readouterr().err


def test_usage_errors_before_ray_starts(folder, tmp_path, capsys):
    out = str(tmp_path / "o")
    cases = [
        (["--ray-actors", "2"], "--ray-actors only apply with --ray"),
        (["--ray", "--ray-cpus-per-actor", "0"], "--ray-cpus-per-actor must be > 0, got 0.0"),
        (["--ray", "--ray-actors", "0"], "--ray-actors must be >= 1, got 0"),
        (["--ray", "--backend", "nope"], "unknown backend 'nope'"),
        (["--ray", "--precision", "fp8"], "unknown precision 'fp8'"),
        (["--ray", "--model", str(tmp_path / "missing.onnx")], "ONNX model not found"),
    ]
    for extra, message in cases:
        assert main(["images", str(folder), "-o", out, *FAST, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert main(["images", "s3://bucket/scans", "-o", out, "--ray", *FAST]) == 2
    assert "s3://bucket/scans: colorize images reads and writes through the filesystem" in capsys.readouterr().err
    assert not Path(out).exists()


def test_colorize_folder_on_ray_returns_the_outcomes_of_the_local_run(folder, tmp_path):
    pytest.importorskip("ray.data")
    from colorize import colorize_folder

    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # a PNG signature and nothing else
    options = dict(model="efficientnet_lite0-unet-photos", backend="onnxruntime", precision="fp32", working_size=32,
                   batch_size=4, recursive=True)
    local = colorize_folder(folder, tmp_path / "local", **options)
    seen = []
    viaray = colorize_folder(folder, tmp_path / "ray", ray="local", progress=lambda o, done, total: seen.append(done),
                             **options)

    def rows(summary, out):
        return sorted((str(o.output.relative_to(out)), o.ok, o.size, o.engine, o.error.split(":")[0])
                      for o in summary.outcomes)

    assert rows(viaray, tmp_path / "ray") == rows(local, tmp_path / "local")
    assert len(viaray.outcomes) == 9 and len(viaray.failed) == 1 and viaray.exit_status == local.exit_status == 1
    assert seen == list(range(1, 10)) and "on 1 Ray node, 1 actor process" in viaray.describe()
