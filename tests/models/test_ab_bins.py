"""The ab-bins head (models/ab_bins.py): grid, soft encoding, annealed mean, U-Net integration and ONNX export."""

import numpy as np
import pytest
import torch

from colorize.models import create_model
from colorize.models.ab_bins import AbBinsHead, bin_centres, bin_index, soft_encode
from colorize.training.losses import ab_bin_index


def test_grid_is_zhangs_10_ab_grid_under_the_default_normalization():
    c = bin_centres(22)
    assert c.shape == (2, 484)
    centres_ab = torch.unique(c[0] * 110).tolist()
    assert np.allclose(centres_ab, np.arange(-105, 106, 10), atol=1e-4)
    ab = torch.empty(4, 2, 8, 8).uniform_(-1.2, 1.2, generator=torch.Generator().manual_seed(0))
    # same index as the regression loss's rebalancing grid (real ab, 10-unit bins over [-110, 110])
    assert torch.equal(bin_index(ab, 22), ab_bin_index(ab * 110))
    # a centre lies in its own bin
    assert torch.equal(bin_index(c[:, :, None, None].permute(1, 0, 2, 3), 22).flatten(), torch.arange(484))


def test_soft_encoding_is_a_distribution_whose_mean_is_the_target():
    g = torch.Generator().manual_seed(1)
    n = 22
    inner = 1 - 1 / n  # the hull of the centres
    ab = torch.empty(3, 2, 5, 7).uniform_(-inner, inner, generator=g)
    idx, w = soft_encode(ab, n)
    assert idx.shape == w.shape == (3, 4, 5, 7) and idx.min() >= 0 and idx.max() < n * n
    assert (w >= 0).all() and torch.allclose(w.sum(1), torch.ones(3, 5, 7))
    c = bin_centres(n)
    mean = (c[:, idx] * w[None]).sum(2).permute(1, 0, 2, 3)
    torch.testing.assert_close(mean, ab, atol=1e-5, rtol=0)
    # outside the hull the mass goes to the edge centre
    idx, w = soft_encode(torch.full((1, 2, 1, 1), 5.0), n)
    assert float(w.max()) == 1.0 and int(idx.flatten()[w.flatten().argmax()]) == n * n - 1


def test_annealed_mean_moves_from_the_mean_to_the_mode():
    head = AbBinsHead(4, bins_per_axis=22)
    c = bin_centres(22)
    logits = torch.zeros(1, 484, 1, 1)
    assert head.decode(logits).abs().max() < 1e-6  # uniform over a symmetric grid: gray
    mode, other = 400, 30
    logits[0, mode], logits[0, other] = 3.0, 2.0
    outs = []
    for t in (1.0, 0.38, 0.05):
        head.temperature = t
        outs.append(head.decode(logits)[0, :, 0, 0])
    dist = [float((o - c[:, mode]).norm()) for o in outs]
    assert dist[0] > dist[1] > dist[2] and dist[2] < 1e-3


def test_unet_with_bins_head_shapes_state_dict_and_bad_args():
    m = create_model("resnet18-unet", head="bins", bins_per_axis=16, temperature=0.5).eval()
    keys = [k for k in m.state_dict() if k.startswith("head.")]
    assert keys == ["head.conv.weight", "head.conv.bias"]  # the centres are not weights
    assert m.head.conv.out_channels == 256
    with torch.no_grad():
        out = m(torch.randn(2, 1, 20, 13))
    assert out.shape == (2, 2, 20, 13) and out.abs().max() <= 1.0  # a convex combination of centres
    # the default stays the regression head, with its old keys
    assert "head.weight" in create_model("resnet18-unet").state_dict()
    with pytest.raises(ValueError, match="head"):
        create_model("resnet18-unet", head="softmax")
    with pytest.raises(ValueError, match="temperature"):
        create_model("resnet18-unet", head="bins", temperature=0)


def test_bins_model_exports_to_onnx_with_parity(tmp_path):
    import onnxruntime as ort

    from colorize.export.onnx_export import PARITY_ATOL, export_onnx
    from colorize.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = create_model("resnet18-unet", head="bins").eval()
    with torch.no_grad():
        model.head.conv.weight.normal_(0, 3.0)  # peaked, pixel-dependent distributions
        model.head.conv.bias.normal_(0, 2.0)
    save_checkpoint(model, tmp_path / "bins", arch="resnet18-unet", arch_kwargs={"head": "bins"})
    report = export_onnx(tmp_path / "bins.json", tmp_path / "bins.onnx")
    assert report.max_abs <= PARITY_ATOL
    sess = ort.InferenceSession(str(tmp_path / "bins.onnx"), providers=["CPUExecutionProvider"])
    l = np.random.default_rng(0).uniform(-1, 1, (2, 1, 24, 40)).astype(np.float32)
    (got,) = sess.run(None, {"l": l})
    with torch.no_grad():
        want = model(torch.from_numpy(l)).numpy()
    np.testing.assert_allclose(got, want, atol=PARITY_ATOL, rtol=0)
    assert np.abs(want).max() > 0.05  # the test compares real colour, not zeros
