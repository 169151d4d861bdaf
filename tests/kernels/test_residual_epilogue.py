"""Fused bias + residual + ReLU epilogue against its torch reference (fresh random inputs)."""

import zlib

import pytest
import torch

from colorize.kernels.residual_epilogue import (
    bias_residual_relu,
    bias_residual_relu_reference,
    bias_residual_relu_unfused,
    tile_shape,
)

# Kernel and reference both sum in float32 and round once, so they agree to the
# last bit; the tolerance allows one rounding step of the output dtype.
TOL = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}
# Eager PyTorch rounds after each of its three ops (x+b, +r, relu) in fp16:
# up to ~2 extra half-precision roundings of values |y| < ~8 -> 2 * 2^-8.
UNFUSED_FP16_ATOL = 1e-2


def _inputs(shape, dtype, layout, device, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(device=device, dtype=dtype)
    r = torch.randn(shape, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(shape[1], generator=g).to(device=device, dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
        r = r.contiguous(memory_format=torch.channels_last)
    return x, b, r


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("residual,relu", [(True, True), (False, True), (True, False)])
def test_matches_reference(dtype, layout, residual, relu, device):
    # 64-element tiles over 3*5=15 planes of 7*6=42 (NCHW) or 126 pixels of 5 channels (channels-last): masked tails.
    x, b, r = _inputs((3, 5, 7, 6), dtype, layout, device, seed=zlib.crc32(repr((dtype, layout, residual, relu)).encode()))
    r = r if residual else None
    y = bias_residual_relu(x, b, r, relu=relu, tile=64)
    ref = bias_residual_relu_reference(x, b, r, relu=relu)
    assert y.dtype == dtype and y.shape == x.shape
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    assert y.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(y.float(), ref.float(), atol=TOL[dtype], rtol=TOL[dtype])
    if relu:
        assert (y >= 0).all() and (y == 0).any() and (y > 0).any()


def test_channel_indexing_is_per_layout(device):
    # A bias that differs per channel exposes a wrong channel formula in either layout.
    x = torch.zeros(2, 4, 3, 5, device=device)
    b = torch.tensor([1.0, 2.0, 3.0, 4.0], device=device)
    for fmt in (torch.contiguous_format, torch.channels_last):
        y = bias_residual_relu(x.contiguous(memory_format=fmt), b, None, tile=16)
        assert torch.equal(y, b.view(1, 4, 1, 1).expand_as(x))


def test_in_place_and_unfused_baseline(device):
    x, b, r = _inputs((2, 8, 4, 4), torch.float16, "channels_last", device, seed=1)
    expected = bias_residual_relu_reference(x, b, r)
    unfused = bias_residual_relu_unfused(x.clone(), b, r)
    out = bias_residual_relu(x, b, r, out=x)
    assert out.data_ptr() == x.data_ptr()
    torch.testing.assert_close(out.float(), expected.float(), atol=TOL[torch.float16], rtol=TOL[torch.float16])
    torch.testing.assert_close(unfused.float(), expected.float(), atol=UNFUSED_FP16_ATOL, rtol=0)


def test_bad_inputs_are_named():
    x = torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match="bias must have shape \\[4\\]"):
        bias_residual_relu(x, torch.randn(3))
    with pytest.raises(ValueError, match="residual must match x"):
        bias_residual_relu(x, torch.randn(4), torch.randn(2, 4, 3, 3).contiguous(memory_format=torch.channels_last))
    with pytest.raises(ValueError, match="residual must match x"):
        bias_residual_relu(x, torch.randn(4), torch.randn(2, 4, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="4-D"):
        bias_residual_relu(torch.randn(4, 3), torch.randn(3))
    with pytest.raises(ValueError, match="neither NCHW-contiguous nor channels-last"):
        bias_residual_relu(x.transpose(2, 3), torch.randn(4))
    with pytest.raises(ValueError, match="dtype"):
        bias_residual_relu(x.double(), torch.randn(4))


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_rows_longer_than_a_tile(layout, device):
    # 81-pixel planes (NCHW) and 20 channels (channels-last) both exceed a 16-element tile: several column programs.
    x, b, r = _inputs((2, 20, 9, 9), torch.float32, layout, device, seed=11)
    assert tile_shape(40, 81, 16) == (1, 16) and tile_shape(162, 20, 16) == (1, 16)
    y = bias_residual_relu(x, b, r, tile=16)
    torch.testing.assert_close(y, bias_residual_relu_reference(x, b, r), atol=TOL[torch.float32], rtol=TOL[torch.float32])


def test_tile_shape():
    assert tile_shape(256 * 64, 1024, 4096) == (4, 1024)  # NCHW 32x32 planes: 4 planes per program
    assert tile_shape(256 * 512, 16, 4096) == (256, 16)  # NCHW 4x4 planes
    assert tile_shape(8 * 65536, 64, 4096) == (64, 64)  # channels-last, 64 channels
    assert tile_shape(3, 8, 4096) == (4, 8)  # never more rows than the (padded) tensor has
