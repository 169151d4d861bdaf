"""Models of other conventions: the I/O description, ``colorize import``, and the engine's adaptation, checked
exactly on tiny ONNX graphs whose output is a known function of their input (``own_models.py``).

Tolerances: ADAPT_ATOL (Lab units) bounds float32 rounding between the engine's numpy conversions and the float64
formulas of the tests (L* -> gray sRGB -> the model's scale, and sRGB -> Lab for an RGB output).
"""

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from colorize.colorizer import Colorizer
from colorize.engine import Engine
from colorize.guard import GuardData
from colorize.image.color import DEFAULT_NORMALIZATION
from colorize.image.merge import lightness
from colorize.model_io import ModelIO, ModelIOError, parse_input, parse_output, parse_size

_spec = importlib.util.spec_from_file_location("own_models", Path(__file__).with_name("own_models.py"))
own = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(own)

ADAPT_ATOL = 2e-3  # Lab units
KINDS = list(own.SPECS)


def _import(kind: str, tmp: Path, **build_kw) -> Path:
    from colorize.cli.main import main

    src, dst = tmp / f"{kind}-src.onnx", tmp / f"{kind}.onnx"
    own.build(kind, src, **build_kw)
    inp, out, size, layout = own.SPECS[kind]
    rc = main(["import", str(src), "--input", inp, "--output", out, "--size", size, "--layout", layout,
               "-o", str(dst)])
    assert rc == 0
    return dst


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("own")
    return {k: _import(k, d) for k in KINDS}


def _model_shape(kind: str, h: int, w: int) -> tuple[int, int]:
    size = own.SPECS[kind][2]
    return (h, w) if size.startswith("dynamic") else parse_size(size)[0]


# -- the description -------------------------------------------------------------------------------------------------

def test_specs_parse_to_the_conventions_scale_and_offset():
    assert parse_input("l:-1..1") == ("l", (0.02,), (-1.0,))  # (L - 50) / 50
    assert parse_input("l:0..100") == ("l", (1.0,), (0.0,))
    kind, scale, offset = parse_input("rgb:imagenet")  # (x - mean) / std
    x = np.array([0.2, 0.5, 0.9])
    np.testing.assert_allclose(x * scale + offset, (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225])
    assert parse_output("ab:128") == ("ab", (1 / 128, 1 / 128), (0.0, 0.0))
    assert parse_output("ab:lab") == ("ab", (1.0, 1.0), (0.0, 0.0))
    assert parse_output("rgb:-1..1") == ("rgb", (2.0,) * 3, (-1.0,) * 3)
    assert parse_size("512x384") == ((512, 384), 1) and parse_size("dynamic:8") == (None, 8)


def test_native_description_is_ours_and_round_trips_through_json():
    io = ModelIO.native(DEFAULT_NORMALIZATION, 8)
    assert io.is_native(DEFAULT_NORMALIZATION, 8) and not io.is_native(DEFAULT_NORMALIZATION, 32)
    assert (io.input_scale, io.input_offset, io.output_scale) == ((0.02,), (-1.0,), (1 / 110, 1 / 110))
    assert ModelIO.from_json(io.to_json()) == io
    spec = ModelIO.from_dict({"input": "gray_rgb:0..1", "output": "ab:lab", "size": "512x512"})
    assert (spec.input, spec.input_scale, spec.output_scale, spec.size) == ("gray_rgb", (1.0,) * 3, (1.0, 1.0),
                                                                           (512, 512))
    assert ModelIO.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("bad, field", [
    ({"input": "grey"}, "'input'"),
    ({"output": "yuv"}, "'output'"),
    ({"layout": "chw"}, "'layout'"),
    ({"size": [0, 512]}, "'size'"),
    ({"stride": 0}, "'stride'"),
    ({"input": "l", "input_scale": [1, 2]}, "'input_scale'"),
    ({"output": "ab", "output_scale": [0]}, "'output_scale'"),
    ({"colour": "x"}, "unknown field"),
])
def test_bad_descriptions_name_the_field(bad, field):
    with pytest.raises(ModelIOError, match=field):
        ModelIO.from_dict(bad)


# -- the adaptation, exactly -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_adapts_each_convention_exactly(models, kind, backend):
    """At the model's own size (no resizing) the engine's ab is the model's known function of L, in our units."""
    h, w = _model_shape(kind, 24, 40)
    L = np.random.default_rng(0).uniform(0, 100, (2, 1, h, w)).astype(np.float32)
    with Engine.load(models[kind], backend=backend, precision="fp32") as eng:
        assert eng.normalization.ab_scale == 110 and not eng.adapter.native
        ab = eng.run((L - 50) / 50) * 110
    np.testing.assert_allclose(ab, own.expected_ab(kind, L), atol=ADAPT_ATOL * (1 + 100 * (backend == "openvino")))


@pytest.mark.parametrize("kind", ["ddcolor", "tutorial"])
def test_any_size_runs_static_and_dynamic(models, kind):
    """A uniform image at any size: static models are resized to their size and back, dynamic ones padded to
    their stride and cropped; either way the ab is the function of that L, at the input's size."""
    with Engine.load(models[kind], backend="onnxruntime", precision="fp32") as eng:
        for h, w in ((1, 1), (13, 7), (33, 70)):
            L = np.full((3, 1, h, w), 37.0, np.float32)
            ab = eng.run((L - 50) / 50) * 110
            assert ab.shape == (3, 2, h, w)
            np.testing.assert_allclose(ab, own.expected_ab(kind, L), atol=ADAPT_ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_colorizer_keeps_the_inputs_luminance(models, kind):
    """Whatever the model's output (ab, or RGB whose luminance is its own), the picture's L* is the input's."""
    gray = np.random.default_rng(1).integers(0, 256, (45, 61), dtype=np.uint8)
    with Colorizer.load(models[kind], backend="onnxruntime", precision="fp32") as col:
        out = col.colorize(gray)
        assert out.shape == (45, 61, 3)
        assert np.abs(lightness(out) - lightness(gray)).max() <= 0.5
        assert np.ptp(out.astype(int), axis=-1).max() > 0  # it has colour


def test_static_model_batches_every_image_at_its_size(models):
    with Colorizer.load(models["zhang"], backend="onnxruntime", precision="fp32") as col:
        keys = {col.prepare(np.zeros(s, np.uint8)).batch_key for s in ((10, 20), (300, 200), (256, 256))}
        assert keys == {(False, 256, 256)}
        outs = col.colorize_batch([np.full((10, 20), 128, np.uint8), np.full((300, 200), 128, np.uint8)])
    want = own.expected_ab("zhang", np.full((1, 1, 1, 1), lightness(np.full((1, 1), 128, np.uint8))[0, 0]))
    for out in outs:  # a uniform gray: the predicted colour, everywhere
        from colorize.image.color import rgb_to_lab

        np.testing.assert_allclose(rgb_to_lab(out.astype(np.float32) / 255)[..., 1:].mean((0, 1)),
                                   want.ravel(), atol=1.0)


# -- import and load errors ------------------------------------------------------------------------------------------

def test_import_writes_the_description_and_the_engine_reads_it(models):
    from colorize.artifacts.onnx_metadata import read_props

    props = read_props(models["ddcolor"])
    io = ModelIO.from_json(props["colorize.io"])
    assert (io.input, io.output, io.size, io.input_name, io.output_name) == ("gray_rgb", "ab", (512, 512),
                                                                             "input", "output")
    assert props["colorize.total_stride"] == "1"


def test_api_takes_a_description_for_a_file_without_one(tmp_path):
    src = tmp_path / "plain.onnx"
    own.build("tutorial", src)
    io = {"input": "l:-1..1", "output": "ab:128", "size": "dynamic:8", "layout": "nhwc"}
    L = np.full((1, 1, 5, 9), 70.0, np.float32)
    with Engine.load(src, backend="onnxruntime", precision="fp32", io=io) as eng:
        np.testing.assert_allclose(eng.run((L - 50) / 50) * 110, own.expected_ab("tutorial", L), atol=ADAPT_ATOL)
    with Colorizer.load(src, backend="onnxruntime", precision="fp32", io=io) as col:
        assert col.colorize(np.full((9, 7), 180, np.uint8)).shape == (9, 7, 3)
    with pytest.raises(ValueError, match="colorize.format"):
        Engine.load(src, backend="onnxruntime", precision="fp32")  # no description: not a colorize model


def test_io_json_file(tmp_path):
    from colorize.cli.main import main

    src = tmp_path / "z.onnx"
    own.build("zhang", src)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"input": "l:0..100", "output": "ab:lab", "size": "256x256"}))
    assert main(["import", str(src), "--io", str(spec), "-o", str(tmp_path / "z2.onnx")]) == 0
    with Engine.load(tmp_path / "z2.onnx", backend="onnxruntime", precision="fp32") as eng:
        assert eng.static_size == (256, 256)


@pytest.mark.parametrize("kind, args, field", [
    ("ddcolor", ["--input", "gray_rgb:0..1", "--output", "ab:lab", "--size", "256x256"], "'size'"),
    ("ddcolor", ["--input", "gray_rgb:0..1", "--output", "ab:lab"], "'size'"),  # fixed 512 graph, said dynamic
    ("ddcolor", ["--input", "l:0..100", "--output", "ab:lab", "--size", "512x512"], "'input'"),
    ("deoldify", ["--input", "rgb:imagenet", "--output", "ab:lab"], "'output'"),
    ("deoldify", ["--input", "rgb:imagenet", "--output", "rgb:0..1", "--input-name", "x"], "'input_name'"),
    ("deoldify", ["--input", "hsv:0..1", "--output", "rgb:0..1"], "'input'"),
])
def test_import_refuses_a_description_the_graph_contradicts(tmp_path, capfd, kind, args, field):
    from colorize.cli.main import main

    src = tmp_path / "m.onnx"
    own.build(kind, src)
    assert main(["import", str(src), *args, "-o", str(tmp_path / "out.onnx")]) == 2
    assert field in capfd.readouterr().err
    assert not (tmp_path / "out.onnx").exists()


def test_wrong_output_channels_fail_at_load(tmp_path):
    """A graph that leaves its channel count symbolic is checked by one run at load."""
    src = tmp_path / "three.onnx"
    own.build("zhang", src, out_channels=3, symbolic_channels=True)
    io = {"input": "l:0..100", "output": "ab:lab", "size": "256x256"}
    with pytest.raises(ModelIOError, match="'output'.*2 channels"):
        Engine.load(src, backend="onnxruntime", precision="fp32", io=io)
    own.build("zhang", src, out_channels=3)  # declared: refused before any run
    with pytest.raises(ModelIOError, match="'output'"):
        Engine.load(src, backend="openvino", precision="fp32", io=io)


# -- INT8 and the quality guard --------------------------------------------------------------------------------------

@pytest.fixture
def _tiny_data(monkeypatch):
    from colorize import guard
    from colorize.export import quantize

    rng = np.random.default_rng(0)
    monkeypatch.setattr(quantize, "photos_available", lambda: True)
    monkeypatch.setattr(quantize, "photo_calibration_l",
                        lambda *a, **k: rng.uniform(-1, 1, (4, 1, 64, 64)).astype(np.float32))
    with np.load(guard.BUNDLED) as z:
        images = z["images"][:16]
    monkeypatch.setattr(guard, "load_guard_data", lambda n=16: GuardData(images, "test-16"))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_of_an_imported_model_is_calibrated_and_guarded(models, tmp_path, _tiny_data, backend):
    with Engine.load(models["zhang"], backend=backend, precision="int8", cache_dir=tmp_path) as eng:
        assert eng.guard_result is not None and eng.guard_result.passed, eng.guard_result
        L = np.random.default_rng(2).uniform(0, 100, (1, 1, 256, 256)).astype(np.float32)
        ab = eng.run((L - 50) / 50) * 110
    np.testing.assert_allclose(ab, own.expected_ab("zhang", L), atol=1.0)  # 8 bits over L* 0..100: < 0.5 ab


def test_onnx_path_of_an_imported_model_never_imports_torch(models):
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch blocked")
        sys.meta_path.insert(0, Block())
        import numpy as np
        from colorize import Colorizer
        col = Colorizer.load({str(models['deoldify'])!r}, backend="openvino", precision="fp32")
        out = col.colorize(np.full((20, 30), 100, np.uint8))
        assert out.shape == (20, 30, 3) and "torch" not in sys.modules
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_colorize_images_runs_an_imported_model(models, tmp_path):
    from PIL import Image

    from colorize.cli.main import main

    (tmp_path / "in").mkdir()
    gray = np.random.default_rng(3).integers(0, 256, (40, 70), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "in" / "a.png")
    Image.fromarray(gray[:25]).save(tmp_path / "in" / "b.png")
    rc = main(["images", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(models["ddcolor"]),
               "--backend", "onnxruntime", "--precision", "fp32"])
    assert rc == 0
    out = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert out.shape == (40, 70, 3) and np.abs(lightness(out) - lightness(gray)).max() <= 0.5


def test_our_convention_is_the_identity():
    from colorize.model_adapter import ModelAdapter

    adapter = ModelAdapter(ModelIO.native(DEFAULT_NORMALIZATION, 8), DEFAULT_NORMALIZATION)
    l = np.random.default_rng(4).uniform(-1, 1, (2, 1, 16, 24)).astype(np.float32)
    assert adapter.native and adapter.to_model(l) is l  # no copy, no conversion
    y = np.random.default_rng(5).uniform(-1, 1, (2, 2, 16, 24)).astype(np.float32)
    np.testing.assert_array_equal(adapter.from_model(y, (13, 20)), y[:, :, :13, :20])


def test_a_bad_description_in_the_file_fails_at_load_naming_file_and_field(models, tmp_path):
    import onnx

    proto = onnx.load(str(models["zhang"]))
    for p in proto.metadata_props:
        if p.key == "colorize.io":
            d = json.loads(p.value)
            p.value = json.dumps(d | {"output": "yuv"})
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    with pytest.raises(ModelIOError, match=r"bad\.onnx: metadata 'colorize.io': .*'output': unknown kind 'yuv'"):
        Engine.load(tmp_path / "bad.onnx", backend="onnxruntime", precision="fp32")


def test_serve_runs_an_imported_model(models):
    import io as _io
    import time

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from PIL import Image

    from colorize.serve.config import ServeConfig
    from colorize.serve.service import create_app

    gray = np.random.default_rng(6).integers(0, 256, (30, 50), dtype=np.uint8)
    buf = _io.BytesIO()
    Image.fromarray(gray).save(buf, "PNG")
    app = create_app(lambda: Colorizer.load(models["deoldify"], backend="onnxruntime", precision="fp32"),
                     ServeConfig(warmup=0, log_level="warning"))
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "service not ready"
            time.sleep(0.05)
        r = client.post("/colorize", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    out = np.asarray(Image.open(_io.BytesIO(r.content)).convert("RGB"))
    assert out.shape == (30, 50, 3) and np.abs(lightness(out) - lightness(gray)).max() <= 0.5
