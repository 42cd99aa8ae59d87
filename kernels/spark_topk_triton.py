"""Spark's statistical top-k as one fused Triton kernel per row, forward and backward (used by the ``triton`` impl
of ``spark_ffn``, the training path; see kernels/spark.py).

Forward, per row z of length d: mean μ, population std σ, θ = μ + σ·c with c = Q(1 - k/d), out = max(z - θ, 0):
one read of z, one write of out, no sort. Backward (autodiff through μ and σ, as the public code does), with
m = 1[z > θ], G = Σ g·m: ``dz = g·m - G·(1/d + c·(z - μ)/(d·σ))``: one read of z and g, one write of dz; μ and σ are
kept per row from the forward (8 bytes a row). Rows of any length (one block covers the row, masked), fp32 and
bf16 in, fp32 arithmetic, output in the input dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kanbench.kernels.launch import check_launchable
from kanbench.variants.spark_ffn import quantile_factor


@triton.jit
def row_mean_std(z, mask, d):
    """Mean and population std of the masked entries of a row held in registers (fp32, two-pass for accuracy)."""
    mean = tl.sum(z, axis=0) / d
    centred = tl.where(mask, z - mean, 0.0)
    return mean, tl.sqrt(tl.sum(centred * centred, axis=0) / d)


@triton.jit
def _topk_fwd_kernel(z_ptr, out_ptr, mean_ptr, std_ptr, d, c, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < d
    z = tl.load(z_ptr + row * d + cols, mask=mask, other=0.0).to(tl.float32)
    mean, std = row_mean_std(z, mask, d)
    out = tl.maximum(z - (mean + std * c), 0.0)
    tl.store(out_ptr + row * d + cols, out.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(mean_ptr + row, mean)
    tl.store(std_ptr + row, std)


@triton.jit
def _topk_bwd_kernel(z_ptr, g_ptr, mean_ptr, std_ptr, dz_ptr, d, c, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < d
    z = tl.load(z_ptr + row * d + cols, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + row * d + cols, mask=mask, other=0.0).to(tl.float32)
    mean = tl.load(mean_ptr + row)
    std = tl.load(std_ptr + row)
    kept = tl.where(mask & (z > mean + std * c), g, 0.0)
    total = tl.sum(kept, axis=0)
    dz = kept - total * (1.0 / d + c * (z - mean) / (d * std))
    tl.store(dz_ptr + row * d + cols, dz.to(dz_ptr.dtype.element_ty), mask=mask)


def row_warps(block: int) -> int:
    """Warps for a one-row-per-program kernel over ``block`` elements."""
    return max(1, min(16, block // 512))


class _StatTopK(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, k: int) -> torch.Tensor:  # type: ignore[override]
        check_launchable(z, "spark triton")
        d = z.shape[-1]
        z2 = z.reshape(-1, d).contiguous()
        rows = z2.shape[0]
        out = torch.empty_like(z2)
        mean = torch.empty(rows, device=z.device, dtype=torch.float32)
        std = torch.empty_like(mean)
        c = quantile_factor(k, d)
        block = triton.next_power_of_2(d)
        _topk_fwd_kernel[(rows,)](z2, out, mean, std, d, c, BLOCK=block, num_warps=row_warps(block))
        ctx.save_for_backward(z2, mean, std)
        ctx.c, ctx.shape = c, z.shape
        return out.reshape(z.shape)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        z2, mean, std = ctx.saved_tensors
        d = z2.shape[-1]
        g2 = g.reshape(-1, d).contiguous()
        dz = torch.empty_like(z2)
        block = triton.next_power_of_2(d)
        _topk_bwd_kernel[(z2.shape[0],)](z2, g2, mean, std, dz, d, ctx.c, BLOCK=block, num_warps=row_warps(block))
        return dz.reshape(ctx.shape), None


def statistical_topk_triton(z: torch.Tensor, k: int) -> torch.Tensor:
    """Soft threshold max(z - θ, 0) over the last dim with the fused kernels; differentiable in z."""
    return _StatTopK.apply(z, k)
