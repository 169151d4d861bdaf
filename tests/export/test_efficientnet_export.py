"""The EfficientNet-Lite photo colorizer goes the way our ResNet U-Nets go: BN folded into its convs (named as the
pretrained checkpoint names them), ONNX with dynamic sizes at parity, INT8 with the softmax paths in float, and the
engine's ONNX backends against eager FP32.

Tolerances: PARITY_ATOL (colorize.export.onnx_export) for the FP32 file; INT8_REL of the reference's max |ab| for INT8, as in
tests/export/test_quantize.py (8-bit activations through ~50 quantized convs of a network with random weights).
"""

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

INT8_REL = 0.10
KW = {"head": "bins", "refine": "convex", "refine_channels": 32}


@pytest.fixture(scope="module")
def effnet(tmp_path_factory):
    from colorize.export.onnx_export import export_onnx
    from colorize.models import create_model
    from colorize.models.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("effnet")
    torch.manual_seed(0)
    m = create_model("efficientnet_lite0-unet", **KW).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):  # statistics that make folding matter
                mod.running_mean.normal_(0, 0.1, generator=g)
                mod.running_var.uniform_(0.5, 1.5, generator=g)
    torch.nn.init.normal_(m.refine.mask[-1].weight, std=0.05)
    torch.nn.init.normal_(m.head.conv.weight, std=0.05)
    ckpt = save_checkpoint(m, d / "m", arch="efficientnet_lite0-unet", arch_kwargs=KW)
    report = export_onnx(str(ckpt), d / "m.onnx", sizes=((1, 2, 3), (2, 1, 1)))
    return m, report, d / "m.onnx"


def test_every_batchnorm_folds_under_its_checkpoint_name():
    from colorize.export.fold_bn import count_batchnorms, fold_bn
    from colorize.models import create_model

    m = create_model("efficientnet_lite0-unet", **KW).eval()
    folded = fold_bn(m)
    assert count_batchnorms(m) > 40 and count_batchnorms(folded) == 0
    names = dict(folded.named_modules())
    assert names["encoder._blocks.3._depthwise_conv"].bias is not None
    assert isinstance(names["encoder._blocks.3._bn1"], torch.nn.Identity)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), m(x), atol=1e-4, rtol=1e-4)


def test_onnx_has_no_batchnorm_and_matches_eager_at_other_sizes(effnet):
    import onnxruntime as ort

    from colorize.export.onnx_export import PARITY_ATOL

    m, report, path = effnet
    assert report.max_abs <= PARITY_ATOL
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "BatchNormalization" not in ops and "Clip" in ops  # ReLU6
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    l = np.random.default_rng(2).uniform(-1, 1, (3, 1, 96, 64)).astype(np.float32)  # multiples of the stride
    (got,) = sess.run(None, {"l": l})
    with torch.no_grad():
        want = m(torch.from_numpy(l)).numpy()
    np.testing.assert_allclose(got, want, atol=PARITY_ATOL, rtol=0)


def test_quantized_file_loads_and_stays_close(effnet, tmp_path):
    """The static INT8 file itself (every Pad folded into a Conv, so no duplicate DequantizeLinear names)."""
    import onnxruntime as ort

    from colorize.export.quantize import quantize_int8

    m, _, path = effnet
    calib = np.random.default_rng(3).uniform(-1, 1, (8, 1, 64, 64)).astype(np.float32)
    int8 = quantize_int8(path, tmp_path / "m.int8.onnx", calib)
    assert "Pad" not in {n.op_type for n in onnx.load(str(int8)).graph.node if n.name.startswith("/encoder")}
    l = np.random.default_rng(4).uniform(-1, 1, (2, 1, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = m(torch.from_numpy(l)).numpy()
    (got,) = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).run(None, {"l": l})
    assert np.abs(got - want).max() <= INT8_REL * np.abs(want).max()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_and_fp32_on_the_onnx_backends(effnet, backend):
    """The engine's own INT8 (built from the FP32 file with its calibration) and FP32 against eager FP32."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    from colorize import Engine
    from colorize.export.onnx_export import PARITY_ATOL

    m, _, path = effnet
    l = np.random.default_rng(4).uniform(-1, 1, (2, 1, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = m(torch.from_numpy(l)).numpy()
    with Engine.load(str(path), backend=backend, precision="fp32") as eng:
        np.testing.assert_allclose(eng.run(l), want, atol=10 * PARITY_ATOL, rtol=0)
    with Engine.load(str(path), backend=backend, precision="int8") as eng:
        got = eng.run(l)
    assert np.abs(got - want).max() <= INT8_REL * np.abs(want).max()
