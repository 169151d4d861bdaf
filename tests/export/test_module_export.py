"""``colorize export --module``: a user's own nn.Module in another convention, exported, parity-checked, and run
by the engine exactly as our own model runs.

The module is a wrapped copy of the shipped ``resnet18-unet`` in DDColor's convention (gray as sRGB in [0, 1] in,
ab in Lab units out), with its weights in a safetensors file. Its colorized output must equal the native path's
(the shipped ONNX in our convention) within NATIVE_AB_ATOL Lab units of ab and NATIVE_CODES codes of 8-bit RGB:
the two differ only by float32 rounding (the wrapper's sRGB -> L* in torch against the engine's L* -> sRGB in
numpy, about 1e-4 L*, and the order of sums in two differently traced graphs).
"""

import json
import textwrap

import numpy as np
import pytest

from colorize.colorizer import Colorizer
from colorize.engine import Engine

NATIVE_AB_ATOL = 0.02  # Lab units
NATIVE_CODES = 1  # 8-bit RGB

WRAPPER = textwrap.dedent('''
    """A user's colorizer: our resnet18-unet wrapped in DDColor's convention."""
    import torch
    from torch import nn

    from colorize.models import create_model


    class GrayRGBToLab(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = create_model("resnet18-unet")

        def forward(self, rgb):                       # [N, 3, H, W], gray sRGB in [0, 1]
            g = rgb[:, :1]
            lin = torch.where(g > 0.04045, ((g + 0.055) / 1.055) ** 2.4, g / 12.92)
            fy = torch.where(lin > 216 / 24389, lin.clamp_min(1e-12) ** (1 / 3), (24389 / 27 * lin + 16) / 116)
            L = 116 * fy - 16
            return self.inner.forward_padded((L - 50) / 50) * 110   # ab in Lab units


    def build():
        return GrayRGBToLab()
''')


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory):
    """(exported .onnx, its report) of the wrapped shipped weights."""
    import sys

    from safetensors.torch import save_file

    from colorize.artifacts.model_ref import resolve_model
    from colorize.model_io import ModelIO
    from colorize.export.module_export import export_module
    from colorize.models.checkpoint import load_checkpoint

    d = tmp_path_factory.mktemp("module")
    (d / "user_colorizer.py").write_text(WRAPPER)
    sys.path.insert(0, str(d))
    try:
        import user_colorizer

        model = user_colorizer.build()
        inner, _ = load_checkpoint(resolve_model("resnet18-unet").checkpoint)
        model.inner.load_state_dict(inner.state_dict())
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "weights.safetensors"))
        io = ModelIO.from_dict({"input": "gray_rgb:0..1", "output": "ab:lab", "size": "dynamic:8"})
        report = export_module("user_colorizer:build", d / "weights.safetensors", d / "mine.onnx", io)
    finally:
        sys.path.remove(str(d))
        sys.modules.pop("user_colorizer", None)
    return d / "mine.onnx", report


def test_export_writes_the_description_and_checks_parity(wrapped):
    path, report = wrapped
    from colorize.artifacts.onnx_metadata import read_props

    io = json.loads(read_props(path)["colorize.io"])
    assert (io["input"], io["output"], io["stride"], io["input_name"]) == ("gray_rgb", "ab", 8, "input")
    assert report.max_abs <= report.tolerance
    assert read_props(path)["colorize.arch"] == "module:user_colorizer:build"


def test_wrapped_model_colorizes_as_the_native_path(wrapped):
    path, _ = wrapped
    rng = np.random.default_rng(0)
    L = rng.uniform(0, 100, (3, 1, 24, 40)).astype(np.float32)
    with Engine.load("resnet18-unet", backend="onnxruntime", precision="fp32") as native, \
            Engine.load(path, backend="onnxruntime", precision="fp32") as mine:
        assert native.adapter.native and not mine.adapter.native
        delta = np.abs(mine.run((L - 50) / 50) - native.run((L - 50) / 50)).max() * 110
    print(f"wrapped vs native: max |dab| = {delta:.2e} Lab units")
    assert delta <= NATIVE_AB_ATOL, delta
    image = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    kw = dict(backend="onnxruntime", precision="fp32", small_model=None, min_working_size=0)
    with Colorizer.load("resnet18-unet", **kw) as a, Colorizer.load(path, **kw) as b:
        codes = np.abs(a.colorize(image).astype(int) - b.colorize(image).astype(int)).max()
    print(f"wrapped vs native: max |d RGB| = {codes} codes")
    assert codes <= NATIVE_CODES, codes


def test_cli_refuses_weights_that_do_not_fit(tmp_path, capfd, monkeypatch):
    from safetensors.torch import save_file
    import torch

    from colorize.cli.main import main

    (tmp_path / "tiny_user.py").write_text("from torch import nn\n\ndef build():\n    return nn.Conv2d(1, 2, 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    save_file({"weight": torch.zeros(2, 1, 1, 1)}, str(tmp_path / "w.safetensors"))  # no bias
    rc = main(["export", "--module", "tiny_user:build", "--weights", str(tmp_path / "w.safetensors"),
               "--io", '{"input": "l:0..100", "output": "ab:lab"}', "-o", str(tmp_path / "t.onnx")])
    assert rc == 2 and "missing ['bias']" in capfd.readouterr().err
    save_file({"weight": torch.ones(2, 1, 1, 1), "bias": torch.zeros(2)}, str(tmp_path / "w.safetensors"))
    rc = main(["export", "--module", "tiny_user:build", "--weights", str(tmp_path / "w.safetensors"),
               "--io", '{"input": "l:0..100", "output": "ab:lab"}', "-o", str(tmp_path / "t.onnx")])
    assert rc == 0
    L = np.full((1, 1, 3, 5), 40.0, np.float32)
    with Engine.load(tmp_path / "t.onnx", backend="onnxruntime", precision="fp32") as eng:
        np.testing.assert_allclose(eng.run((L - 50) / 50) * 110, np.full((1, 2, 3, 5), 40.0), atol=1e-3)
    rc = main(["export", "--module", "tiny_user:build", "--weights", "fp32", "-o", str(tmp_path / "u.onnx")])
    assert rc == 2 and "--weights fp32" in capfd.readouterr().err  # not a weights file
