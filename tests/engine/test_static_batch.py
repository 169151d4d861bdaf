"""Graphs exported with a fixed batch (N = 1, as DDColor's ``export_onnx.py`` and most notebook exports write them):
``colorize import`` records it, and every caller that batches feeds them any N (``Backend.run`` chunks and pads):
``Engine.run``, ``colorize images``, ``colorize_folder``, the HTTP service's batcher, the Ray actor, ``colorize
bench``, INT8 calibration and the quality guard; on ONNX Runtime and OpenVINO, FP32 and INT8.

The graphs are ``own_models``' tiny conventions (a known function of their input) with N fixed: DDColor (gray RGB
in, ab out, static 512x512), Zhang (L* in, static 256x256), the tutorial U-Net (NHWC, dynamic), DeOldify (ImageNet
RGB in and out, dynamic); and the issue's case, a DDColor-like graph at 1x3x64x64 (and one at batch 2).
Tolerances: ADAPT_ATOL as in test_model_io.py (float32 against the float64 formulas; OpenVINO's FP32 kernels
within 100x that); INT8_ATOL Lab units, 8 bits over each convention's input range.
"""

import importlib.util
import io as _io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorize.cli.main import main
from colorize.colorizer import Colorizer
from colorize.engine import Engine
from colorize.guard import GuardData
from colorize.image.merge import lightness
from colorize.model_io import ModelIO, parse_size

_spec = importlib.util.spec_from_file_location("own_models", Path(__file__).with_name("own_models.py"))
own = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(own)

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

ADAPT_ATOL = 2e-3  # Lab units
INT8_ATOL = 1.5  # Lab units
KINDS = list(own.SPECS)  # ddcolor (512x512), zhang (256x256), tutorial, deoldify
BACKENDS = ["onnxruntime", "openvino"]


def fix_batch(path: Path, n: int, hw: tuple[int, int] | None = None) -> Path:
    """Rewrite the graph at ``path`` with its input's and output's N fixed to ``n`` (and, for the NCHW static
    graphs, H and W to ``hw``: a 1x1 conv runs at any size)."""
    import onnx

    proto = onnx.load(str(path))
    for v in (*proto.graph.input, *proto.graph.output):
        dims = v.type.tensor_type.shape.dim
        dims[0].dim_value = n
        if hw is not None:
            dims[2].dim_value, dims[3].dim_value = hw
    onnx.save(proto, str(path))
    return path


def import_static(kind: str, d: Path, name: str, n: int = 1, hw: tuple[int, int] | None = None) -> Path:
    src, dst = d / f"{name}-src.onnx", d / f"{name}.onnx"
    own.build(kind, src)
    fix_batch(src, n, hw)
    inp, out, size, layout = own.SPECS[kind]
    if hw is not None:
        size = f"{hw[0]}x{hw[1]}"
    assert main(["import", str(src), "--input", inp, "--output", out, "--size", size, "--layout", layout,
                 "-o", str(dst)]) == 0
    return dst


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("static")
    m = {k: import_static(k, d, k) for k in KINDS}
    m["ddcolor64"] = import_static("ddcolor", d, "ddcolor64", hw=(64, 64))  # the graph: 1x3x64x64
    m["ddcolor64-b2"] = import_static("ddcolor", d, "ddcolor64-b2", n=2, hw=(64, 64))
    return m


@pytest.fixture
def fast_int8(monkeypatch):
    """A few calibration images and 16 guard images (the bundled sets take longer; what is checked is the batching)."""
    from colorize import guard
    from colorize.export import quantize

    rng = np.random.default_rng(0)
    monkeypatch.setattr(quantize, "photo_calibration_l",
                        lambda *a, **k: rng.uniform(-1, 1, (5, 1, 64, 64)).astype(np.float32))
    with np.load(guard.BUNDLED) as z:
        images = z["images"][:16]
    monkeypatch.setattr(guard, "load_guard_data", lambda n=16: GuardData(images, "test-16"))


def model_hw(kind: str, h: int, w: int) -> tuple[int, int]:
    size = own.SPECS[kind][2] if kind in own.SPECS else "64x64"
    return (h, w) if size.startswith("dynamic") else parse_size(size)[0]


def gray(h: int, w: int, seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(128 + 90 * np.sin(x / 5.0 + seed) * np.cos(y / 7.0), 0, 255).astype(np.uint8)


# -- colorize import ------------------------------------------------------------------------------------------------

def test_import_records_the_graphs_batch(models, tmp_path, capsys):
    from colorize.artifacts.onnx_metadata import read_props

    for name, n in (("ddcolor", 1), ("tutorial", 1), ("ddcolor64-b2", 2)):
        assert ModelIO.from_json(read_props(models[name])["colorize.io"]).batch == n
    src = tmp_path / "s.onnx"
    own.build("ddcolor", src)
    fix_batch(src, 1, (64, 64))
    rc = main(["import", str(src), "--input", "gray_rgb:0..1", "--output", "ab:lab", "--size", "64x64",
               "--batch", "4", "-o", str(tmp_path / "x.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and "model io field 'batch': 4" in err and "N = 1" in err and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()


# -- Engine.run: any N ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_engine_runs_any_batch_on_a_batch_1_graph(models, kind, backend):
    """N = 5 runs as five calls of 1, N = 1 as one: each image the model's known function of its own L."""
    h, w = model_hw(kind, 24, 40)
    L = np.random.default_rng(0).uniform(0, 100, (5, 1, h, w)).astype(np.float32)
    with Engine.load(models[kind], backend=backend, precision="fp32") as eng:
        assert eng.static_batch == 1
        ab = eng.run((L - 50) / 50) * 110
        one = eng.run((L[2:3] - 50) / 50) * 110
    atol = ADAPT_ATOL * (1 + 100 * (backend == "openvino"))
    np.testing.assert_allclose(ab, own.expected_ab(kind, L), atol=atol)
    np.testing.assert_allclose(one, ab[2:3], atol=atol)


@pytest.mark.parametrize("backend,mode", [("onnxruntime", None), ("openvino", "latency"), ("openvino", "throughput")])
def test_a_batch_2_graph_pads_the_last_chunk(models, backend, mode):
    """N = 1, 3 and 5 on a batch-2 graph: chunks of 2, the last padded; OpenVINO's throughput mode runs the chunks
    on its streams."""
    options = {"mode": mode} if mode else {}
    L = np.random.default_rng(1).uniform(0, 100, (5, 1, 64, 64)).astype(np.float32)
    with Engine.load(models["ddcolor64-b2"], backend=backend, precision="fp32", **options) as eng:
        assert eng.static_batch == 2
        for n in (1, 3, 5):
            ab = eng.run((L[:n] - 50) / 50) * 110
            np.testing.assert_allclose(ab, own.expected_ab("ddcolor", L[:n]),
                                       atol=ADAPT_ATOL * (1 + 100 * (backend == "openvino")))


# -- INT8: calibration, the quality guard, auto ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ddcolor", "zhang", "tutorial", "deoldify"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_of_a_batch_1_graph_is_calibrated_guarded_and_runs_any_batch(models, fast_int8, kind, backend):
    """Calibration feeds the graph batches of 1; the guard runs its images through it in batches of 64."""
    h, w = model_hw(kind, 16, 24)
    L = np.random.default_rng(2).uniform(0, 100, (3, 1, h, w)).astype(np.float32)
    with Engine.load(models[kind], backend=backend, precision="int8") as eng:
        assert eng.precision == "int8" and eng.static_batch == 1
        assert eng.guard_result is not None and eng.guard_result.images == 16, eng.guard_result
        ab = eng.run((L - 50) / 50) * 110
    if kind == "deoldify":  # RGB out, clipped to [0, 1]: its chroma, 8 bits on each channel
        assert np.isfinite(ab).all() and ab.shape == (3, 2, h, w)
    else:
        np.testing.assert_allclose(ab, own.expected_ab(kind, L), atol=INT8_ATOL)


def test_auto_builds_int8_for_a_batch_1_graph(models, fast_int8):
    """The issue: ``auto`` died inside INT8 calibration ("Got: 2 Expected: 1"); now it calibrates and picks it."""
    with Engine.load(models["ddcolor64"]) as eng:
        assert (eng.backend, eng.precision) == ("openvino", "int8"), eng.selection
        assert eng.guard_result.passed


# -- the callers: colorize images, colorize_folder, serve, the Ray actor, bench --------------------------------------

@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i, (h, w) in enumerate([(40, 70), (33, 20), (64, 64), (90, 45), (17, 30)]):
        Image.fromarray(gray(h, w, i)).save(src / f"g{i}.png")
    return src


@pytest.mark.parametrize("backend,precision", [("auto", "auto"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"),
                                               ("openvino", "fp32")])
def test_colorize_images_batches_a_batch_1_graph(models, fast_int8, folder, tmp_path, capsys, backend, precision):
    out = tmp_path / "out"
    rc = main(["images", str(folder), "-o", str(out), "--model", str(models["ddcolor64"]), "--backend", backend,
               "--precision", precision, "--batch-size", "4", "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "colorized 5 of 5 images" in err and "model size 64x64" in err and "working size" not in err
    for p in sorted(folder.iterdir()):
        g = np.asarray(Image.open(p))
        o = np.asarray(Image.open(out / p.name))
        assert o.shape == (*g.shape, 3) and np.abs(lightness(o) - lightness(g)).max() <= 0.5


@pytest.mark.parametrize("backend,precision", [("openvino", "int8"), ("onnxruntime", "fp32")])
def test_colorize_folder_batches_a_batch_1_graph(models, fast_int8, folder, tmp_path, backend, precision):
    from colorize import colorize_folder

    summary = colorize_folder(folder, tmp_path / "out", model=models["ddcolor"], backend=backend,
                              precision=precision, batch_size=3)
    assert summary.exit_status == 0 and len(summary.done) == 5, summary.errors
    assert "model size 512x512" in summary.describe()


def test_the_services_batcher_runs_a_batch_1_graph(models):
    """Concurrent requests are batched (several images per ``engine.run``), each fed to the graph one by one."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from colorize.serve.config import ServeConfig
    from colorize.serve.service import create_app

    sizes: list[int] = []
    lock = threading.Lock()

    def load():
        col = Colorizer.load(models["ddcolor64"], backend="onnxruntime", precision="fp32")
        run = col.engine.run

        def recording(l):
            with lock:
                sizes.append(len(l))
            return run(l)

        col.engine.run = recording
        return col

    grays = [gray(30 + i, 50, i) for i in range(8)]
    bodies = []
    for g in grays:
        buf = _io.BytesIO()
        Image.fromarray(g).save(buf, "PNG")
        bodies.append(buf.getvalue())
    app = create_app(load, ServeConfig(warmup=0, log_level="warning", max_batch_size=8, max_delay_ms=200))
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:  # the model loads in the background
            assert time.monotonic() < deadline, "service not ready"
            time.sleep(0.05)
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda b: client.post("/colorize", content=b,
                                                            headers={"content-type": "image/png"}), bodies))
    for g, r in zip(grays, responses):
        assert r.status_code == 200, r.text
        out = np.asarray(Image.open(_io.BytesIO(r.content)).convert("RGB"))
        assert out.shape == (*g.shape, 3) and np.abs(lightness(out) - lightness(g)).max() <= 0.5
    assert sum(sizes) == 8 and max(sizes) > 1, sizes


def test_the_ray_actor_batches_a_batch_1_graph(models, folder, tmp_path):
    """What each actor of ``colorize images --ray`` runs (``ColorizeBatch``), called here without Ray."""
    from colorize.ray.worker import ColorizeBatch

    names = sorted(p.name for p in folder.iterdir())
    batch = {"src": np.array([str(folder / n) for n in names], object),
             "dst": np.array([str(tmp_path / "ray" / n) for n in names], object),
             "index": np.arange(len(names))}
    rows = ColorizeBatch(str(models["ddcolor64"]), "openvino", "fp32", batch_size=4, threads=1)(batch)
    assert list(rows["ok"]) == [True] * len(names), list(rows["error"])
    assert all((tmp_path / "ray" / n).is_file() for n in names)


def test_bench_times_a_batch_1_graph_at_batch_8(models, fast_int8):
    from colorize.benchmarks.harness import BenchSettings, run_benchmark

    settings = BenchSettings.quick_run(model=str(models["ddcolor64"]), backends=("onnxruntime", "openvino"),
                                       precisions=("fp32", "int8"), batch_sizes=(1, 8), sizes=((32, 32),),
                                       baseline=False)
    report = run_benchmark(settings, peaks={}, gflop=lambda h, w: None, machine={}, log=lambda msg: None)
    rows = [r for r in report["results"] if r["status"] != "skipped"]
    assert {(r["backend"], r["precision"], r["batch"]) for r in rows} == {
        (b, p, n) for b in ("onnxruntime", "openvino") for p in ("fp32", "int8") for n in (1, 8)}
    assert all(r["status"] == "ok" for r in rows), [(r["backend"], r["reason"]) for r in rows]
    assert any("static batch of 1" in n and "64x64" in n for n in report["notes"]), report["notes"]


def test_the_io_json_takes_a_batch(tmp_path):
    """A graph whose N is symbolic but that only runs one image at a time is described with ``"batch": 1``."""
    spec = ModelIO.from_dict({"input": "gray_rgb:0..1", "output": "ab:lab", "size": "64x64", "batch": 1})
    assert spec.batch == 1 and json.loads(spec.to_json())["batch"] == 1
    assert "batch" not in ModelIO.from_dict({"input": "l:0..100", "output": "ab:lab"}).to_dict()
    src = tmp_path / "sym.onnx"
    own.build("ddcolor", src)
    with Engine.load(src, backend="onnxruntime", precision="fp32", io=spec.to_dict() | {"size": [512, 512]}) as eng:
        assert eng.static_batch == 1
        assert eng.run(np.zeros((3, 1, 8, 8), np.float32)).shape == (3, 2, 8, 8)
