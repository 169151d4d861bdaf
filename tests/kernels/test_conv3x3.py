"""Implicit-GEMM 3x3 conv + fused epilogue against F.conv2d (fresh random inputs)."""

import pytest
import torch

from colorize.kernels.conv3x3 import conv3x3_bias_act, conv3x3_bias_act_reference, pack_conv3x3_weight

# fp32: IEEE dot products, only the summation order differs from F.conv2d (K = 9*C_in <= 108 terms).
# fp16: products exact in the fp32 accumulator; the one output rounding is <= 2^-11 relative,
# plus F.conv2d's own order of summation.
TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float16: dict(atol=2e-3, rtol=2e-3)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("residual", [True, False])
def test_matches_conv2d(dtype, stride, layout, residual, device):
    g = torch.Generator().manual_seed(1000 * stride + 10 * residual + (layout == "nchw") + (dtype == torch.float16) * 7)
    # C_in = 12 < BLOCK_K and C_out = 20 < BLOCK_N: masked K and N tails; odd H, W: masked padding.
    n, c_in, c_out, h, w = 2, 12, 20, 7, 6
    x = torch.randn(n, c_in, h, w, generator=g)
    weight = torch.randn(c_out, c_in, 3, 3, generator=g) * (2.0 / (9 * c_in)) ** 0.5
    bias = torch.randn(c_out, generator=g)
    h_out, w_out = (h - 1) // stride + 1, (w - 1) // stride + 1
    r = torch.randn(n, c_out, h_out, w_out, generator=g) if residual else None
    x, weight, bias = (t.to(device=device, dtype=dtype) for t in (x, weight, bias))
    r = r.to(device=device, dtype=dtype) if r is not None else None
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    y = conv3x3_bias_act(x, pack_conv3x3_weight(weight), bias, r, relu=True, stride=stride)
    ref = conv3x3_bias_act_reference(x, weight, bias, r, relu=True, stride=stride)
    assert y.shape == (n, c_out, h_out, w_out)
    assert y.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")
    torch.testing.assert_close(y.float(), ref.float(), **TOL[dtype])
    assert (y > 0).any() and (y == 0).any()


def test_no_relu_no_bias(device):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 16, 5, 5, generator=g, device=device)
    weight = torch.randn(16, 16, 3, 3, generator=g, device=device) * 0.1
    y = conv3x3_bias_act(x, pack_conv3x3_weight(weight), None, None, relu=False)
    torch.testing.assert_close(y, conv3x3_bias_act_reference(x, weight, None, None, relu=False), **TOL[torch.float32])
    assert (y < 0).any()


def test_bad_inputs_are_named():
    x = torch.randn(1, 4, 5, 5)
    w = pack_conv3x3_weight(torch.randn(8, 4, 3, 3))
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        conv3x3_bias_act(x, w, stride=3)
    with pytest.raises(ValueError, match="w_packed must be"):
        conv3x3_bias_act(x, pack_conv3x3_weight(torch.randn(8, 5, 3, 3)))
    with pytest.raises(ValueError, match="bias must have shape \\[8\\]"):
        conv3x3_bias_act(x, w, torch.randn(4))
    with pytest.raises(ValueError, match="residual must be"):
        conv3x3_bias_act(x, w, None, torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match="3, 3"):
        pack_conv3x3_weight(torch.randn(8, 4, 1, 1))
