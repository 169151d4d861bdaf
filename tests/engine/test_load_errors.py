"""A model that cannot be loaded, built or calibrated: ``colorize images``, ``colorize import`` and ``colorize serve``
say so in one message naming the model, the backend and the cause, exit with status 2, and print no traceback;
``Engine.load`` raises a ``BackendError`` with that message instead of a runtime's own exception.

The unloadable model is a tiny imported colorizer whose one node is changed to an op no runtime has (its colorize
metadata stays, so it looks like any imported model until a backend builds it). The calibration failure is an
exception of a type of its own raised from the quantizer, as ONNX Runtime's are (not a RuntimeError).
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorize.backends.base import BackendError
from colorize.cli.main import main
from colorize.engine import Engine

_spec = importlib.util.spec_from_file_location("own_models", Path(__file__).with_name("own_models.py"))
own = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(own)

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")


class QuantizerFailure(Exception):
    """Stands for onnxruntime's own exception types, which derive from Exception only."""


def _import(src: Path, dst: Path) -> Path:
    assert main(["import", str(src), "--input", "l:0..100", "--output", "ab:lab", "--size", "256x256",
                 "-o", str(dst)]) == 0
    return dst


def _unknown_op(path: Path) -> Path:
    """The model at ``path`` with its node's op replaced by one that no runtime implements."""
    import onnx
    from onnx import helper

    proto = onnx.load(str(path))
    proto.graph.node[0].op_type, proto.graph.node[0].domain = "Mystery", "com.example.colorize"
    proto.opset_import.append(helper.make_opsetid("com.example.colorize", 1))
    onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("load-errors")
    own.build("zhang", d / "src.onnx")
    good = _import(d / "src.onnx", d / "good.onnx")
    broken = _unknown_op(_import(d / "src.onnx", d / "broken.onnx"))
    plain = _unknown_op(d / "src.onnx")  # no colorize metadata: for colorize import
    return {"good": good, "broken": broken, "plain": plain}


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((20, 30), 90, np.uint8)).save(src / "a.png")
    return src


@pytest.fixture
def failing_quantizer(monkeypatch):
    from colorize.export import quantize

    def fail(*a, **k):
        raise QuantizerFailure("calibration input has 2 images, the graph takes 1")

    monkeypatch.setattr(quantize, "quantize_int8", fail)


def _one_message(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# -- Engine.load ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_engine_load_names_model_backend_and_cause(models, backend):
    with pytest.raises(BackendError) as e:
        Engine.load(models["broken"], backend=backend, precision="fp32")
    msg = str(e.value)
    assert "model 'broken'" in msg and str(models["broken"]) in msg and f"on {backend} fp32" in msg
    assert "Mystery" in msg and "\n" not in msg


def test_a_failed_calibration_is_a_backend_error_naming_the_model(models, failing_quantizer):
    with pytest.raises(BackendError, match=r"model 'good' \(.*good\.onnx\) on onnxruntime int8: QuantizerFailure: "
                                           r"calibration input has 2 images"):
        Engine.load(models["good"], backend="onnxruntime", precision="int8")
    with pytest.raises(BackendError) as e:  # auto: every candidate's reason, and no INT8 picked
        Engine.load(models["good"], precision="int8")
    assert "openvino int8: failed to load: QuantizerFailure" in str(e.value)
    assert "onnxruntime int8: failed to load: QuantizerFailure" in str(e.value)


# -- colorize images ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend,precision", [("onnxruntime", "fp32"), ("openvino", "fp32")])
def test_colorize_images_a_model_that_cannot_load(models, folder, tmp_path, capsys, backend, precision):
    rc = main(["images", str(folder), "-o", str(tmp_path / "out"), "--model", str(models["broken"]),
               "--backend", backend, "--precision", precision, "-q"])
    line = _one_message(capsys.readouterr().err)
    assert rc == 2
    assert line.startswith("colorize images: error: model 'broken'") and f"on {backend} {precision}" in line
    assert "Mystery" in line
    assert not (tmp_path / "out" / "a.png").exists()


def test_colorize_images_auto_lists_each_backends_reason(models, folder, tmp_path, capsys):
    rc = main(["images", str(folder), "-o", str(tmp_path / "out"), "--model", str(models["broken"]), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "colorize images: error: no backend could run model 'broken'" in err
    for b, p in (("openvino", "int8"), ("onnxruntime", "fp32"), ("openvino", "fp32")):
        assert f"  {b} {p}: failed to load: " in err


def test_colorize_images_a_failed_calibration(models, folder, tmp_path, capsys, failing_quantizer):
    rc = main(["images", str(folder), "-o", str(tmp_path / "out"), "--model", str(models["good"]),
               "--backend", "openvino", "--precision", "int8", "-q"])
    line = _one_message(capsys.readouterr().err)
    assert rc == 2 and "model 'good'" in line and "on openvino int8" in line
    assert "QuantizerFailure: calibration input has 2 images" in line


def test_colorize_images_in_a_process_of_its_own(models, folder, tmp_path):
    r = subprocess.run([sys.executable, "-m", "colorize", "images", str(folder), "-o", str(tmp_path / "out"),
                        "--model", str(models["broken"]), "--backend", "onnxruntime", "--precision", "fp32", "-q"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    line = _one_message(r.stderr)
    assert "model 'broken'" in line and "on onnxruntime fp32" in line and "Mystery" in line


# -- colorize import ------------------------------------------------------------------------------------------------

def test_colorize_import_a_model_onnx_runtime_cannot_load(models, tmp_path, capsys):
    rc = main(["import", str(models["plain"]), "--input", "l:0..100", "--output", "ab:lab", "--size", "256x256",
               "-o", str(tmp_path / "x.onnx")])
    line = _one_message(capsys.readouterr().err)
    assert rc == 2 and line.startswith(f"colorize import: {models['plain']}: ONNX Runtime cannot load the model")
    assert "Mystery" in line and not (tmp_path / "x.onnx").exists()


def test_colorize_import_not_a_model(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not a model at all")
    r = subprocess.run([sys.executable, "-m", "colorize", "import", str(bad), "--input", "l:0..100", "--output",
                        "ab:lab", "-o", str(tmp_path / "x.onnx")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    line = _one_message(r.stderr)
    assert str(bad) in line and "not a loadable ONNX model" in line


# -- colorize serve -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend,precision", [("onnxruntime", "fp32"), ("auto", "auto")])
def test_colorize_serve_a_model_that_cannot_load(models, capsys, backend, precision):
    pytest.importorskip("uvicorn")
    rc = main(["serve", "--model", str(models["broken"]), "--backend", backend, "--precision", precision,
               "--port", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"colorize serve: cannot load model {str(models['broken'])!r}: " in err and "Mystery" in err
    if backend != "auto":
        assert f"on {backend} {precision}" in _one_message(err)


def test_colorize_serve_a_failed_calibration(models, capsys, failing_quantizer):
    pytest.importorskip("uvicorn")
    rc = main(["serve", "--model", str(models["good"]), "--backend", "onnxruntime", "--precision", "int8",
               "--port", "0"])
    line = _one_message(capsys.readouterr().err)
    assert rc == 2 and "on onnxruntime int8" in line and "QuantizerFailure" in line
