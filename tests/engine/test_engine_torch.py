"""Engine with the eager torch backend: the reference path."""

import numpy as np
import pytest
import torch

from colorize import Engine
from colorize.models import create_model


def test_engine_torch_matches_model_any_size():
    with pytest.warns(UserWarning, match="random init"):
        eng = Engine.load("resnet34-unet", backend="torch", precision="fp32")
    assert (eng.backend, eng.precision) == ("torch", "fp32")
    torch.manual_seed(0)
    ref = create_model("resnet34-unet").eval()
    l = np.random.default_rng(0).uniform(-1, 1, (2, 1, 19, 27)).astype(np.float32)
    ab = eng.run(l)
    assert ab.shape == (2, 2, 19, 27) and ab.dtype == np.float32
    with torch.no_grad():
        np.testing.assert_allclose(ab, ref(torch.from_numpy(l)).numpy(), atol=1e-5)
    eng.close()


def test_engine_rejects_bad_input_and_names():
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        Engine.load("resnet34-unet", backend="nope")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        Engine.load("resnet34-unet", backend="torch", precision="fp8")
    with pytest.raises(ValueError, match="unknown model 'nomodel'"):
        Engine.load("nomodel")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        Engine.load("missing.onnx")
    with pytest.warns(UserWarning):
        eng = Engine.load("resnet34-unet", backend="torch")
    with pytest.raises(ValueError, match=r"\[N>=1, 1, H>=1, W>=1\]"):
        eng.run(np.zeros((1, 3, 8, 8), np.float32))
