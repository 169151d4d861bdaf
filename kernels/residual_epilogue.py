"""Fused residual epilogue: ``out = relu(x + bias[c] + residual)`` in one pass.

The tail of a BN-folded ResNet block is conv -> (+ folded-BN bias) -> (+ identity)
-> ReLU. Eager PyTorch runs the last three as separate element-wise kernels, each
reading and writing the whole activation; this kernel reads ``x`` and
``residual`` once and writes ``out`` once (3 tensor passes instead of 7).

Layouts: NCHW-contiguous or channels-last (NHWC in memory) tensors, all three
in the same layout. Each program handles a 2-D tile of a row-major view (NCHW:
planes x H*W, channels-last: pixels x C), so the channel of each element comes
from its row or column index without a per-element division. dtypes: float16, bfloat16, float32
(accumulation in float32). ``out`` may alias ``x`` (in place).

On a CPU the kernel runs under ``TRITON_INTERPRET=1`` (set before triton is
imported), which is how the tests check it.

    kernel:     _bias_residual_relu_kernel
    wrapper:    bias_residual_relu(x, bias, residual=None, relu=True, out=None)
    reference:  bias_residual_relu_reference(...)
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _bias_residual_relu_kernel(
    x_ptr,
    bias_ptr,
    res_ptr,
    out_ptr,
    R,
    K,
    C,
    CHANNEL_ON_ROWS: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
    RELU: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # The tensor is viewed as an R x K row-major matrix:
    #   NCHW:          R = N*C planes, K = H*W; the channel of row r is r % C  (CHANNEL_ON_ROWS)
    #   channels-last: R = N*H*W pixels, K = C; the channel of column k is k
    # so the channel index costs BLOCK_R or BLOCK_K operations per tile, not one per element.
    pid_r = tl.program_id(axis=0)
    pid_k = tl.program_id(axis=1)
    rows = pid_r.to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    row_mask = rows < R
    col_mask = cols < K
    mask = row_mask[:, None] & col_mask[None, :]
    offsets = rows[:, None] * K + cols[None, :]
    if CHANNEL_ON_ROWS:
        bias = tl.load(bias_ptr + rows % C, mask=row_mask).to(tl.float32)[:, None]
    else:
        bias = tl.load(bias_ptr + cols, mask=col_mask).to(tl.float32)[None, :]
    y = tl.load(x_ptr + offsets, mask=mask).to(tl.float32) + bias
    if HAS_RESIDUAL:
        y += tl.load(res_ptr + offsets, mask=mask).to(tl.float32)
    if RELU:
        y = tl.maximum(y, 0.0)
    tl.store(out_ptr + offsets, y.to(out_ptr.dtype.element_ty), mask=mask)


def tile_shape(rows: int, cols: int, tile: int) -> tuple[int, int]:
    """(BLOCK_R, BLOCK_K): whole (power-of-two padded) rows when they fit in ``tile`` elements."""
    block_k = min(triton.next_power_of_2(cols), tile)
    block_r = max(1, min(tile // block_k, triton.next_power_of_2(rows)))
    return block_r, block_k


DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def tensor_layout(t: torch.Tensor) -> str:
    """"nchw" or "channels_last" for a dense 4-D tensor; raises ValueError otherwise."""
    if t.dim() != 4:
        raise ValueError(f"expected a 4-D NCHW tensor, got shape {list(t.shape)}")
    if t.is_contiguous():
        return "nchw"
    if t.is_contiguous(memory_format=torch.channels_last):
        return "channels_last"
    raise ValueError(f"tensor with shape {list(t.shape)} and strides {t.stride()} is neither NCHW-contiguous nor channels-last")


def bias_residual_relu(
    x: torch.Tensor,
    bias: torch.Tensor,
    residual: torch.Tensor | None = None,
    relu: bool = True,
    out: torch.Tensor | None = None,
    tile: int = 4096,
) -> torch.Tensor:
    """``relu(x + bias.view(1, C, 1, 1) + residual)`` in one kernel.

    Args:
        x: [N, C, H, W], NCHW-contiguous or channels-last, float16/bfloat16/float32.
        bias: [C] (any float dtype; read as float32).
        residual: same shape, dtype and layout as ``x``, or None.
        relu: apply the ReLU.
        out: output buffer (same shape/dtype/layout as ``x``; may be ``x`` itself), or None to allocate.
        tile: elements per program (a power of two).

    Raises:
        ValueError: mismatched shapes, dtypes, layouts or devices.
    """
    layout = tensor_layout(x)
    if x.dtype not in DTYPES:
        raise ValueError(f"x dtype must be one of {DTYPES}, got {x.dtype}")
    n, c, h, w = x.shape
    if bias.shape != (c,):
        raise ValueError(f"bias must have shape [{c}] (channels of x), got {list(bias.shape)}")
    tensors = {"bias": bias}
    if residual is not None:
        if residual.shape != x.shape or residual.dtype != x.dtype or tensor_layout(residual) != layout:
            raise ValueError(
                f"residual must match x (shape {list(x.shape)}, {x.dtype}, {layout}); got shape "
                f"{list(residual.shape)}, {residual.dtype}, {tensor_layout(residual)}"
            )
        tensors["residual"] = residual
    if out is None:
        out = torch.empty_like(x)  # empty_like preserves the memory format
    elif out.shape != x.shape or out.dtype != x.dtype or tensor_layout(out) != layout:
        raise ValueError(f"out must match x (shape {list(x.shape)}, {x.dtype}, {layout})")
    tensors["out"] = out
    for name, t in tensors.items():
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device}, x is on {x.device}")
    if tile < 1 or tile & (tile - 1):
        raise ValueError(f"tile must be a power of two, got {tile}")
    if x.numel() == 0:
        return out
    channel_on_rows = layout == "nchw"
    rows, cols = (n * c, h * w) if channel_on_rows else (n * h * w, c)
    block_r, block_k = tile_shape(rows, cols, tile)
    grid = (triton.cdiv(rows, block_r), triton.cdiv(cols, block_k))
    _bias_residual_relu_kernel[grid](
        x,
        bias.contiguous(),
        residual if residual is not None else x,  # unused when HAS_RESIDUAL is False
        out,
        rows,
        cols,
        c,
        CHANNEL_ON_ROWS=channel_on_rows,
        HAS_RESIDUAL=residual is not None,
        RELU=relu,
        BLOCK_R=block_r,
        BLOCK_K=block_k,
        num_warps=8 if block_r * block_k >= 4096 else 4,
    )
    return out


def bias_residual_relu_reference(
    x: torch.Tensor, bias: torch.Tensor, residual: torch.Tensor | None = None, relu: bool = True
) -> torch.Tensor:
    """The same computation in float32 torch ops (the test reference), returned in x's dtype."""
    y = x.float() + bias.float().view(1, -1, 1, 1)
    if residual is not None:
        y = y + residual.float()
    if relu:
        y = torch.relu(y)
    return y.to(x.dtype)


def bias_residual_relu_unfused(
    x: torch.Tensor, bias: torch.Tensor, residual: torch.Tensor | None = None, relu: bool = True
) -> torch.Tensor:
    """What eager PyTorch runs for the block tail (three kernels): the benchmark baseline."""
    y = x + bias.view(1, -1, 1, 1)
    if residual is not None:
        y += residual
    if relu:
        y = torch.relu_(y)
    return y
