"""``colorize.export.quantize``: which nodes the static INT8 model quantizes, and what it keeps in float.

A bins-head photo colorizer (softmax over ab bins, convex refinement with a softmax over 9 neighbours) keeps its
softmax paths in float; its trunk is quantized. Tolerance: INT8_REL as in tests/engine/test_backends_onnx.py
(8-bit activations through ~20 quantized convs), relative to the reference's max |ab|.
"""

import numpy as np
import pytest

INT8_REL = 0.10

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def bins_convex_onnx(tmp_path_factory):
    import torch

    from colorize.export.onnx_export import export_onnx
    from colorize.models import create_model
    from colorize.models.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("quantize")
    torch.manual_seed(0)
    kw = {"head": "bins", "refine": "convex", "refine_channels": 16}
    m = create_model("resnet18-unet-lite", **kw).eval()
    torch.nn.init.normal_(m.refine.mask[-1].weight, std=0.05)  # a refinement that is not the box filter
    torch.nn.init.normal_(m.head.conv.weight, std=0.05)
    ckpt = save_checkpoint(m, d / "m", arch="resnet18-unet-lite", arch_kwargs=kw)
    export_onnx(str(ckpt), d / "m.onnx", sizes=((1, 2, 3),))
    return d / "m.onnx"


def _consumers(graph):
    out = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def test_softmax_paths_stay_float_and_the_trunk_is_int8(bins_convex_onnx, tmp_path):
    from colorize.export.quantize import float_nodes, quantize_int8

    src = onnx.load(str(bins_convex_onnx))
    keep = set(float_nodes(src.graph))
    softmaxes = [n.name for n in src.graph.node if n.op_type in ("Softmax", "Exp")]
    assert len(softmaxes) == 2 and set(softmaxes) <= keep  # the bins head's (an Exp) and the refinement's
    convs = [n for n in src.graph.node if n.op_type == "Conv"]
    float_convs = sorted(n.name for n in convs if n.name in keep)
    # the bins logits, the annealed mean over the bins, the convex mask logits; not the mask's first conv
    assert float_convs == ["/head/Conv", "/head/conv/Conv", "/refine/mask/mask.2/Conv"], float_convs

    rng = np.random.default_rng(0)
    calib = rng.uniform(-1, 1, (8, 1, 64, 64)).astype(np.float32)
    dst = quantize_int8(bins_convex_onnx, tmp_path / "m.int8.onnx", calib)
    q = onnx.load(str(dst))
    producer = {o: n for n in q.graph.node for o in n.output}
    consumers = _consumers(q.graph)
    for sm in (n for n in q.graph.node if n.op_type in ("Softmax", "Exp")):
        assert producer[sm.input[0]].op_type != "DequantizeLinear", sm.name
        assert all(c.op_type != "QuantizeLinear" for c in consumers[sm.output[0]]), sm.name
    quantized = {n.name for n in q.graph.node if n.op_type == "Conv"
                 and n.input[1] in producer and producer[n.input[1]].op_type == "DequantizeLinear"}
    assert quantized == {n.name for n in convs} - set(float_convs)
    assert any(p.key == "colorize.quantization" for p in q.metadata_props)
    requantized = [n.name for n in q.graph.node if n.op_type == "QuantizeLinear"
                   and n.input[0] in producer and producer[n.input[0]].name in keep]
    assert requantized == []  # nothing computed in float is quantized again

    import onnxruntime as ort

    x = rng.uniform(-1, 1, (2, 1, 64, 96)).astype(np.float32)
    ref = ort.InferenceSession(str(bins_convex_onnx), providers=["CPUExecutionProvider"]).run(None, {"l": x})[0]
    got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"l": x})[0]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= INT8_REL * np.abs(ref).max()


def test_a_regression_head_keeps_nothing_in_float(tmp_path):
    import torch

    from colorize.export.onnx_export import export_onnx
    from colorize.export.quantize import float_nodes
    from colorize.models import create_model
    from colorize.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(create_model("resnet18-unet").eval(), tmp_path / "m", arch="resnet18-unet")
    export_onnx(str(ckpt), tmp_path / "m.onnx", sizes=((1, 4, 4),))
    assert float_nodes(onnx.load(str(tmp_path / "m.onnx")).graph) == []
