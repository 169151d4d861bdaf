"""TensorRT backend: the parts that are not TensorRT calls. The backend itself never ran here."""

import importlib.util
import types

import pytest

from colorize.backends import backend_class
from colorize.backends.base import BackendError
from colorize.backends.tensorrt_backend import TOLERANCES, TRT_TO_TORCH, TensorRTBackend, probe_shape, torch_dtype
from colorize.export.trt_profile import Profile

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_registered_and_unavailable_here_with_a_reason():
    assert backend_class("tensorrt") is TensorRTBackend
    reason = TensorRTBackend.available()
    if not HAS_TRT:
        assert 'pip install ".[trt]"' in reason
        with pytest.raises(BackendError, match="tensorrt backend unavailable: tensorrt is not installed"):
            TensorRTBackend(None)


def test_dtype_mapping():
    torch = pytest.importorskip("torch")
    # tensorrt.DataType members print as "DataType.HALF" and have .name "HALF"
    assert torch_dtype(types.SimpleNamespace(name="HALF")) is torch.float16
    assert torch_dtype("DataType.FLOAT") is torch.float32
    assert set(TRT_TO_TORCH) >= {"FLOAT", "HALF", "INT8", "INT32", "BOOL"}
    with pytest.raises(BackendError, match="unsupported TensorRT I/O dtype FP8"):
        torch_dtype(types.SimpleNamespace(name="FP8"))


def test_probe_shape_lies_inside_the_profile():
    default = Profile({"l": ((1, 1, 8, 8), (8, 1, 256, 256), (32, 1, 512, 512))})
    assert probe_shape(default, "l", 8) == (2, 1, 32, 32)
    tiny = Profile({"l": ((1, 1, 8, 8), (1, 1, 16, 16), (1, 1, 16, 24))})
    assert probe_shape(tiny, "l", 8) == (1, 1, 16, 24)
    big = Profile({"l": ((4, 1, 64, 64), (4, 1, 64, 64), (8, 1, 128, 128))})
    shape = probe_shape(big, "l", 16)
    assert shape == (4, 1, 64, 64)
    big.check("l", shape)


@pytest.mark.gpu
@pytest.mark.skipif(TensorRTBackend.available() is not None, reason=f"needs TensorRT and a GPU: {TensorRTBackend.available()}")
def test_fp16_plan_matches_onnx_fp32(tmp_path):
    from colorize.artifacts.model_ref import resolve_model

    with TensorRTBackend(resolve_model("resnet18-unet"), "fp16", cache_dir=str(tmp_path)) as be:
        assert be.parity["max_abs"] <= TOLERANCES["fp16"].max_abs
