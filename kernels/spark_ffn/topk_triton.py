"""Spark's statistical top-k as one fused Triton kernel per row, forward and backward (used by the ``triton`` impl
of ``spark_ffn``, the training path; see kernels/spark_ffn/__init__.py).

Forward, per row z of length d: mean μ, population std σ, θ = μ + σ·c with c = Q(1 - k/d), out = max(z - θ, 0):
one read of z, one write of out, no sort. Backward (autodiff through μ and σ, as the public code does), with
m = 1[z > θ], G = Σ g·m: ``dz = g·m - G·(1/d + c·(z - μ)/(d·σ))``: one read of z and g, one write of dz; μ and σ are
kept per row from the forward (8 bytes a row). Rows of any length: up to ``MAX_ROW_BLOCK`` one program holds the
row in registers; longer rows are processed in chunks (two passes for the statistics). fp32, bf16 and fp16 in,
fp32 arithmetic, output in the input dtype.
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
def row_mean_std_chunked(z_ptr, start, d, BLOCK: tl.constexpr):
    """The same for a row too long for registers: two passes over it in chunks of BLOCK (mean, then the centred
    sum of squares, as in the one-block version)."""
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for c0 in range(0, d, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        acc += tl.load(z_ptr + start + cols, mask=cols < d, other=0.0).to(tl.float32)
    mean = tl.sum(acc, axis=0) / d
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for c0 in range(0, d, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        z = tl.load(z_ptr + start + cols, mask=cols < d, other=0.0).to(tl.float32)
        centred = tl.where(cols < d, z - mean, 0.0)
        acc += centred * centred
    return mean, tl.sqrt(tl.sum(acc, axis=0) / d)


@triton.jit
def _topk_fwd_kernel(
        # pointers: z (rows, d) in; max(z - θ, 0) out; each row's mean and std out (for the backward)
        z_ptr, out_ptr, mean_ptr, std_ptr,
        # sizes; c = Q(1 - k/d)
        d, c,
        # constexpr: the row block; whether the row is read in chunks
        BLOCK: tl.constexpr, CHUNKED: tl.constexpr):
    # -- one program per row: statistics, θ = mean + c·std, the soft threshold
    row = tl.program_id(0).to(tl.int64)
    start = row * d
    if CHUNKED:  # three passes over the row in chunks (statistics, then the threshold)
        mean, std = row_mean_std_chunked(z_ptr, start, d, BLOCK)
        for c0 in range(0, d, BLOCK):
            cols = c0 + tl.arange(0, BLOCK)
            z = tl.load(z_ptr + start + cols, mask=cols < d, other=0.0).to(tl.float32)
            out = tl.maximum(z - (mean + std * c), 0.0)
            tl.store(out_ptr + start + cols, out.to(out_ptr.dtype.element_ty), mask=cols < d)
    else:  # the row in registers: one read, one write
        cols = tl.arange(0, BLOCK)
        mask = cols < d
        z = tl.load(z_ptr + start + cols, mask=mask, other=0.0).to(tl.float32)
        mean, std = row_mean_std(z, mask, d)
        out = tl.maximum(z - (mean + std * c), 0.0)
        tl.store(out_ptr + start + cols, out.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(mean_ptr + row, mean)
    tl.store(std_ptr + row, std)


@triton.jit
def _topk_bwd_kernel(
        # pointers: z and the upstream gradient g (rows, d), the forward's mean and std in; dz out
        z_ptr, g_ptr, mean_ptr, std_ptr, dz_ptr,
        # sizes; c = Q(1 - k/d)
        d, c,
        # constexpr: the row block; whether the row is read in chunks
        BLOCK: tl.constexpr, CHUNKED: tl.constexpr):
    # -- one program per row: G = Σ g·m over the kept entries, then dz = g·m - G·(1/d + c·(z - μ)/(d·σ))
    row = tl.program_id(0).to(tl.int64)
    start = row * d
    mean = tl.load(mean_ptr + row)
    std = tl.load(std_ptr + row)
    theta = mean + std * c
    if CHUNKED:  # G = Σ g·m in a first pass, dz in a second
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for c0 in range(0, d, BLOCK):
            cols = c0 + tl.arange(0, BLOCK)
            z = tl.load(z_ptr + start + cols, mask=cols < d, other=0.0).to(tl.float32)
            g = tl.load(g_ptr + start + cols, mask=cols < d, other=0.0).to(tl.float32)
            acc += tl.where((cols < d) & (z > theta), g, 0.0)
        total = tl.sum(acc, axis=0)
        for c0 in range(0, d, BLOCK):
            cols = c0 + tl.arange(0, BLOCK)
            z = tl.load(z_ptr + start + cols, mask=cols < d, other=0.0).to(tl.float32)
            g = tl.load(g_ptr + start + cols, mask=cols < d, other=0.0).to(tl.float32)
            kept = tl.where((cols < d) & (z > theta), g, 0.0)
            dz = kept - total * (1.0 / d + c * (z - mean) / (d * std))
            tl.store(dz_ptr + start + cols, dz.to(dz_ptr.dtype.element_ty), mask=cols < d)
    else:
        cols = tl.arange(0, BLOCK)
        mask = cols < d
        z = tl.load(z_ptr + start + cols, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + start + cols, mask=mask, other=0.0).to(tl.float32)
        kept = tl.where(mask & (z > theta), g, 0.0)
        total = tl.sum(kept, axis=0)
        dz = kept - total * (1.0 / d + c * (z - mean) / (d * std))
        tl.store(dz_ptr + start + cols, dz.to(dz_ptr.dtype.element_ty), mask=mask)


# Rows up to this length are held in registers by one program (one read of z); longer ones are processed in chunks
# of this size (two or three reads). 16384 covers Gemma-2-2B's d_ff of 13824 in one block.
MAX_ROW_BLOCK = 16384


def row_block(d: int) -> tuple[int, bool]:
    """(BLOCK, CHUNKED) for rows of length d."""
    block = triton.next_power_of_2(d)
    return (block, False) if block <= MAX_ROW_BLOCK else (MAX_ROW_BLOCK, True)


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
        block, chunked = row_block(d)
        _topk_fwd_kernel[(rows,)](z2, out, mean, std, d, c, BLOCK=block, CHUNKED=chunked,
                                  num_warps=row_warps(block))
        ctx.save_for_backward(z2, mean, std)
        ctx.c, ctx.shape = c, z.shape
        return out.reshape(z.shape)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        z2, mean, std = ctx.saved_tensors
        d = z2.shape[-1]
        g2 = g.reshape(-1, d).contiguous()
        dz = torch.empty_like(z2)
        block, chunked = row_block(d)
        _topk_bwd_kernel[(z2.shape[0],)](z2, g2, mean, std, dz, d, ctx.c, BLOCK=block, CHUNKED=chunked,
                                         num_warps=row_warps(block))
        return dz.reshape(ctx.shape), None


def statistical_topk_triton(z: torch.Tensor, k: int) -> torch.Tensor:
    """Soft threshold max(z - θ, 0) over the last dim with the fused kernels; differentiable in z."""
    return _StatTopK.apply(z, k)
