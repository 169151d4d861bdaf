"""Implicit-GEMM 3x3 convolution (padding 1, stride 1 or 2) with the residual
epilogue fused: ``out = relu(conv3x3(x, w) + bias[c] + residual)``.

The convolution is a GEMM of [M = N*H_out*W_out pixels] x [K = 9*C_in] by
[K] x [C_out]: each program computes a BLOCK_M x BLOCK_N tile of the output,
walking the 9 taps and C_in in BLOCK_K steps, gathering the input patch rows
on the fly (no im2col buffer). Zero padding is a load mask. The epilogue adds
the folded-BN bias and the residual and applies the ReLU before the only store,
so the block tail costs no extra pass over memory.

Layouts: any strides are accepted (the kernel takes them as arguments), but
channels-last (NHWC) is the fast one: the K dimension of a tile is then
contiguous. Weights are pre-packed once to a [9*C_in, C_out] matrix, row
``(kh*3 + kw)*C_in + c_in`` (``pack_conv3x3_weight``; 2-D, so a module's
``.to(memory_format=...)`` leaves it alone). Accumulation is float32; for float32 inputs the
dot runs in IEEE float32 (no TF32), so the float32 path is a reference-grade
result.

    kernel:     _conv3x3_bias_act_kernel
    wrapper:    conv3x3_bias_act(x, w_packed, bias, residual=None, relu=True, stride=1)
    reference:  conv3x3_bias_act_reference(x, weight, bias, residual, relu, stride)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl


@triton.jit
def _conv3x3_bias_act_kernel(
    x_ptr,
    w_ptr,
    bias_ptr,
    res_ptr,
    out_ptr,
    N,
    C_in,
    H,
    W,
    C_out,
    H_out,
    W_out,
    sxn,
    sxc,
    sxh,
    sxw,
    son,
    soc,
    soh,
    sow,
    srn,
    src,
    srh,
    srw,
    STRIDE: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
    RELU: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(axis=0)
    pid_n = tl.program_id(axis=1)
    offs_m = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)  # output pixels
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # output channels
    hw_out = H_out * W_out
    mask_m = offs_m < N * hw_out
    mask_n = offs_n < C_out
    n_idx = offs_m // hw_out
    rem = offs_m % hw_out
    ho = rem // W_out
    wo = rem % W_out

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kh in tl.static_range(3):
        for kw in tl.static_range(3):
            hi = ho * STRIDE - 1 + kh
            wi = wo * STRIDE - 1 + kw
            in_bounds = mask_m & (hi >= 0) & (hi < H) & (wi >= 0) & (wi < W)
            x_row = n_idx * sxn + hi * sxh + wi * sxw
            for k0 in range(0, C_in, BLOCK_K):
                offs_k = k0 + tl.arange(0, BLOCK_K)
                mask_k = offs_k < C_in
                a = tl.load(
                    x_ptr + x_row[:, None] + offs_k[None, :] * sxc,
                    mask=in_bounds[:, None] & mask_k[None, :],
                    other=0.0,
                )
                w_row = (kh * 3 + kw) * C_in + offs_k
                b = tl.load(
                    w_ptr + w_row[:, None] * C_out + offs_n[None, :],
                    mask=mask_k[:, None] & mask_n[None, :],
                    other=0.0,
                )
                acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)

    # Epilogue: folded-BN bias + residual + ReLU, then the only store.
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    mask = mask_m[:, None] & mask_n[None, :]
    if HAS_RESIDUAL:
        r_off = (n_idx * srn + ho * srh + wo * srw)[:, None] + offs_n[None, :] * src
        acc += tl.load(res_ptr + r_off, mask=mask, other=0.0).to(tl.float32)
    if RELU:
        acc = tl.maximum(acc, 0.0)
    o_off = (n_idx * son + ho * soh + wo * sow)[:, None] + offs_n[None, :] * soc
    tl.store(out_ptr + o_off, acc.to(out_ptr.dtype.element_ty), mask=mask)


def pack_conv3x3_weight(weight: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """[C_out, C_in, 3, 3] conv weight -> contiguous [9*C_in, C_out] (the kernel's K x N matrix)."""
    if weight.dim() != 4 or tuple(weight.shape[2:]) != (3, 3):
        raise ValueError(f"expected a [C_out, C_in, 3, 3] weight, got {list(weight.shape)}")
    c_out, c_in = weight.shape[:2]
    return weight.detach().permute(2, 3, 1, 0).reshape(9 * c_in, c_out).contiguous().to(dtype or weight.dtype)


def _blocks(c_in: int, c_out: int) -> tuple[int, int, int]:
    block_n = 64 if c_out >= 64 else max(16, triton.next_power_of_2(c_out))
    block_k = 32 if c_in >= 32 else 16
    return 64, block_n, block_k


def conv3x3_bias_act(
    x: torch.Tensor,
    w_packed: torch.Tensor,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    relu: bool = True,
    stride: int = 1,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``relu(conv2d(x, w, padding=1, stride) + bias + residual)`` in one kernel.

    Args:
        x: [N, C_in, H, W], float16/bfloat16/float32, any strides (channels-last is fastest).
        w_packed: [9*C_in, C_out] from ``pack_conv3x3_weight``, same dtype as x.
        bias: [C_out] or None.
        residual: [N, C_out, H_out, W_out] (same dtype as x) or None.
        relu: apply the ReLU.
        stride: 1 or 2.
        out: output buffer or None (allocated in x's memory format).

    Raises:
        ValueError: mismatched shapes, dtypes or devices, or an unsupported stride.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be [N, C_in, H, W], got {list(x.shape)}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    n, c_in, h, w = x.shape
    if w_packed.dim() != 2 or w_packed.shape[0] != 9 * c_in:
        raise ValueError(f"w_packed must be [9*{c_in}, C_out] (pack_conv3x3_weight), got {list(w_packed.shape)}")
    if w_packed.dtype != x.dtype or not w_packed.is_contiguous():
        raise ValueError(f"w_packed must be contiguous and {x.dtype}, got {w_packed.dtype} (contiguous={w_packed.is_contiguous()})")
    c_out = w_packed.shape[1]
    h_out, w_out = (h - 1) // stride + 1, (w - 1) // stride + 1
    shape = (n, c_out, h_out, w_out)
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"bias must have shape [{c_out}], got {list(bias.shape)}")
    if residual is not None and (tuple(residual.shape) != shape or residual.dtype != x.dtype):
        raise ValueError(f"residual must be {list(shape)} {x.dtype}, got {list(residual.shape)} {residual.dtype}")
    if out is None:
        fmt = torch.channels_last if (x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()) else torch.contiguous_format
        out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    elif tuple(out.shape) != shape or out.dtype != x.dtype:
        raise ValueError(f"out must be {list(shape)} {x.dtype}, got {list(out.shape)} {out.dtype}")
    for name, t in (("w_packed", w_packed), ("bias", bias), ("residual", residual), ("out", out)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} is on {t.device}, x is on {x.device}")
    if out.numel() == 0:
        return out
    block_m, block_n, block_k = _blocks(c_in, c_out)
    grid = (triton.cdiv(n * h_out * w_out, block_m), triton.cdiv(c_out, block_n))
    res = residual if residual is not None else out
    _conv3x3_bias_act_kernel[grid](
        x,
        w_packed,
        bias if bias is not None else w_packed,
        res,
        out,
        n,
        c_in,
        h,
        w,
        c_out,
        h_out,
        w_out,
        *x.stride(),
        *out.stride(),
        *res.stride(),
        STRIDE=stride,
        HAS_BIAS=bias is not None,
        HAS_RESIDUAL=residual is not None,
        RELU=relu,
        INPUT_PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
    )
    return out


def conv3x3_bias_act_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    relu: bool = True,
    stride: int = 1,
) -> torch.Tensor:
    """The same computation with ``F.conv2d`` in float32 (the test reference), returned in x's dtype."""
    y = F.conv2d(x.float(), weight.float(), None if bias is None else bias.float(), stride=stride, padding=1)
    if residual is not None:
        y = y + residual.float()
    if relu:
        y = torch.relu(y)
    return y.to(x.dtype)
