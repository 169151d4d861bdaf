"""The any-size padding rule (engine/image/padding.py) and the models that follow it."""

import numpy as np
import pytest
import torch

from colorize.image.padding import pad_nchw, padded_size
from colorize.models import create_model


@pytest.mark.parametrize(
    "h,w,stride,expected",
    [(1, 1, 8, (8, 8)), (32, 32, 8, (32, 32)), (33, 31, 8, (40, 32)), (3000, 4000, 32, (3008, 4000)),
     (4000, 3000, 16, (4000, 3008)), (7, 13, 1, (7, 13))],
)
def test_padded_size(h, w, stride, expected):
    assert padded_size(h, w, stride) == expected


def test_padded_size_rejects_empty():
    with pytest.raises(ValueError, match="0x5"):
        padded_size(0, 5, 8)


def test_pad_nchw_replicates_bottom_right():
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    y = pad_nchw(x, 4)
    assert y.shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(y[..., :2, :3], x)
    np.testing.assert_array_equal(y[0, 0, 3], [3, 4, 5, 5])
    np.testing.assert_array_equal(y[0, 0, :, 3], [2, 5, 5, 5])


@pytest.mark.parametrize("name,kw", [("resnet18-unet", {}), ("resnet18-unet", {"stem": "imagenet"}), ("seed-unet", {})])
@pytest.mark.parametrize("size", [(1, 1), (1, 17), (13, 7), (31, 37)])
def test_colorizer_any_size(name, kw, size):
    m = create_model(name, **kw).eval()
    with torch.no_grad():
        y = m(torch.randn(1, 1, *size))
    assert y.shape == (1, 2, *size)
    assert torch.isfinite(y).all()


def test_padding_rule_equals_explicit_pad_then_crop():
    torch.manual_seed(0)
    m = create_model("resnet18-unet").eval()
    x = torch.randn(1, 1, 13, 21)
    padded = torch.from_numpy(pad_nchw(x.numpy(), m.total_stride))
    with torch.no_grad():
        torch.testing.assert_close(m(x), m.forward_padded(padded)[..., :13, :21])


def test_total_stride_of_models():
    assert create_model("resnet18-unet").total_stride == 8
    assert create_model("resnet18-unet", stem="imagenet").total_stride == 32
    assert create_model("seed-unet").total_stride == 16
