"""A ReLU-KAN layer ``y = R(x) Wᵀ + b`` whose matmuls compute the bases on their tiles as they load them (the
``triton`` impl of ``relu_kan``): the (N, (G+k)·d_in) basis tensor R(x) never goes to memory, forward or backward.

The math (kanbench/variants/relu_kan.py): for input coordinate i and basis j, with interval ends s_ij and e_ij,

    a = ReLU(e_ij − x_i),  b = ReLU(x_i − s_ij),  R_ij = r·(a·b)²,  r = 16·G⁴/(k+1)⁴

and feature column c = j·d_in + i (the paper's layout, basis index outer). Its derivatives, zero wherever a or b
is (so ReLU's zero subgradient at the kinks, as autograd takes it):

    ∂R/∂x = 2r·a·b·(a − b),   ∂R/∂s = −2r·a²·b,   ∂R/∂e = 2r·a·b²

Three kernels, each a matmul whose R tiles are computed from x, s and e as they are loaded:

    forward      Y  = R(X) · Wᵀ + b                  K loop over the (G+k)·d_in feature columns
    weights      dW = dYᵀ · R(X)                      K loop over the N rows
    inputs       G_j = dY · W[:, j·d_in + i]          for each basis j, K loop over d_out, then
                 dx_i = Σ_j G_j·∂R_j/∂x,  ds, de: per row block partial sums Σ_rows G_j·∂R_j/∂s|e
                 (summed over the row blocks afterwards: deterministic, no atomics)
    db = Σ_rows dY

Saved for backward: x, s, e (and W, b as parameters), never R. Bases are evaluated in fp32; the matmul operands
are rounded to the input's dtype (fp32 operands multiplied in IEEE fp32, not TF32) with fp32 accumulation.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kanbench.kernels.launch import check_launchable, needs_ieee_dot
from kanbench.kernels.triton_dot import dot

BLOCK_M, BLOCK_N, BLOCK_K = 32, 32, 32


@triton.jit
def _bases(x, s, e, r):
    """(a, b, R) of inputs ``x`` against interval ends ``s``, ``e`` (broadcast), all fp32."""
    a = tl.maximum(e - x, 0.0)
    b = tl.maximum(x - s, 0.0)
    ab = a * b
    return a, b, r * ab * ab


@triton.jit
def _basis_tile(x_ptr, s_ptr, e_ptr, rows, cols, row_ok, col_ok, d_in, n_bases, r):
    """R(X)[rows, cols] (fp32) for feature columns ``cols`` (c = j·d_in + i); zero outside the bounds."""
    i = cols % d_in
    j = cols // d_in
    x = tl.load(x_ptr + rows[:, None] * d_in + i[None, :], mask=row_ok[:, None] & col_ok[None, :], other=0.0)
    s = tl.load(s_ptr + i * n_bases + j, mask=col_ok, other=0.0)
    e = tl.load(e_ptr + i * n_bases + j, mask=col_ok, other=0.0)
    _, _, basis = _bases(x.to(tl.float32), s.to(tl.float32)[None, :], e.to(tl.float32)[None, :], r)
    return tl.where(row_ok[:, None] & col_ok[None, :], basis, 0.0)


@triton.jit
def _forward_kernel(x_ptr, s_ptr, e_ptr, w_ptr, bias_ptr, y_ptr, M, N, d_in, n_bases, r,
                    HAS_BIAS: tl.constexpr, IEEE: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """Y[M, N] = R(X) · Wᵀ + b, W of shape (N, K), K = n_bases·d_in."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    outs = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok, out_ok = rows < M, outs < N
    K = n_bases * d_in
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        col_ok = cols < K
        basis = _basis_tile(x_ptr, s_ptr, e_ptr, rows, cols, row_ok, col_ok, d_in, n_bases, r)
        w = tl.load(w_ptr + outs[None, :] * K + cols[:, None], mask=col_ok[:, None] & out_ok[None, :], other=0.0)
        acc += dot(basis.to(w.dtype), w, IEEE)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + outs, mask=out_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + rows[:, None] * N + outs[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=row_ok[:, None] & out_ok[None, :])


@triton.jit
def _weight_grad_kernel(x_ptr, s_ptr, e_ptr, dy_ptr, dw_ptr, M, N, d_in, n_bases, r, IEEE: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """dW[N, K] = dYᵀ · R(X): this program's (outputs × feature columns) tile, the loop over row tiles."""
    outs = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    K = n_bases * d_in
    out_ok, col_ok = outs < N, cols < K
    acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    for m0 in range(0, M, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < M
        basis = _basis_tile(x_ptr, s_ptr, e_ptr, rows, cols, row_ok, col_ok, d_in, n_bases, r)
        dy_t = tl.load(dy_ptr + rows[None, :] * N + outs[:, None], mask=out_ok[:, None] & row_ok[None, :], other=0.0)
        acc += dot(dy_t, basis.to(dy_t.dtype), IEEE)
    tl.store(dw_ptr + outs[:, None] * K + cols[None, :], acc.to(dw_ptr.dtype.element_ty),
             mask=out_ok[:, None] & col_ok[None, :])


@triton.jit
def _input_grad_kernel(x_ptr, s_ptr, e_ptr, w_ptr, dy_ptr, dx_ptr, ds_part_ptr, de_part_ptr,
                       M, N, d_in, n_bases, r, IEEE: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_I: tl.constexpr):
    """dx[rows, i] and this row block's partial ds, de[i, :] for a tile of rows × input coordinates."""
    pid_m = tl.program_id(0)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    ins = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    row_ok, in_ok = rows < M, ins < d_in
    both = row_ok[:, None] & in_ok[None, :]
    K = n_bases * d_in
    x = tl.load(x_ptr + rows[:, None] * d_in + ins[None, :], mask=both, other=0.0).to(tl.float32)
    dx = tl.zeros([BLOCK_M, BLOCK_I], dtype=tl.float32)
    for j in range(0, n_bases):
        cols = j * d_in + ins
        g = tl.zeros([BLOCK_M, BLOCK_I], dtype=tl.float32)  # G_j = dY · W[:, cols]
        for n0 in range(0, N, BLOCK_N):
            outs = n0 + tl.arange(0, BLOCK_N)
            out_ok = outs < N
            dy = tl.load(dy_ptr + rows[:, None] * N + outs[None, :], mask=row_ok[:, None] & out_ok[None, :],
                         other=0.0)
            w = tl.load(w_ptr + outs[:, None] * K + cols[None, :], mask=out_ok[:, None] & in_ok[None, :], other=0.0)
            g += dot(dy, w, IEEE)
        s = tl.load(s_ptr + ins * n_bases + j, mask=in_ok, other=0.0).to(tl.float32)[None, :]
        e = tl.load(e_ptr + ins * n_bases + j, mask=in_ok, other=0.0).to(tl.float32)[None, :]
        a, b, _ = _bases(x, s, e, r)
        g = tl.where(both, g * (2.0 * r) * a * b, 0.0)  # 2r·a·b·G, shared by the three derivatives
        dx += g * (a - b)
        tl.store(ds_part_ptr + (pid_m * d_in + ins) * n_bases + j, tl.sum(-g * a, axis=0), mask=in_ok)
        tl.store(de_part_ptr + (pid_m * d_in + ins) * n_bases + j, tl.sum(g * b, axis=0), mask=in_ok)
    tl.store(dx_ptr + rows[:, None] * d_in + ins[None, :], dx.to(dx_ptr.dtype.element_ty), mask=both)


def _grid(*sizes: tuple[int, int]) -> tuple[int, ...]:
    return tuple(triton.cdiv(n, block) for n, block in sizes)


class ReLUKANLinear(torch.autograd.Function):
    """``y = R(x)·Wᵀ + b`` with the bases computed inside the matmuls, forward and backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, start: torch.Tensor, end: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None, r: float) -> torch.Tensor:
        check_launchable(x, "relu_kan triton")
        lead, d_in = x.shape[:-1], x.shape[-1]
        x2 = x.reshape(-1, d_in).contiguous()
        weight = weight.to(x.dtype).contiguous()
        start, end = start.contiguous(), end.contiguous()
        M, N, n_bases = x2.shape[0], weight.shape[0], start.shape[1]
        y = torch.empty(M, N, device=x.device, dtype=x.dtype)
        _forward_kernel[_grid((M, BLOCK_M), (N, BLOCK_N))](
            x2, start, end, weight, bias if bias is not None else y, y, M, N, d_in, n_bases, r,
            HAS_BIAS=bias is not None, IEEE=needs_ieee_dot(x.dtype),
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K)
        ctx.save_for_backward(x2, start, end, weight)
        ctx.r, ctx.lead, ctx.has_bias, ctx.param_dtype = r, lead, bias is not None, (start.dtype, weight.dtype)
        return y.reshape(*lead, N)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x2, start, end, weight = ctx.saved_tensors
        M, d_in = x2.shape
        N, n_bases = weight.shape[0], start.shape[1]
        dy = dy.reshape(M, N).to(x2.dtype).contiguous()
        ieee = needs_ieee_dot(x2.dtype)
        dw = torch.empty(N, n_bases * d_in, device=x2.device, dtype=torch.float32)
        _weight_grad_kernel[_grid((N, BLOCK_N), (n_bases * d_in, BLOCK_K))](
            x2, start, end, dy, dw, M, N, d_in, n_bases, ctx.r, IEEE=ieee,
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K)
        row_blocks = triton.cdiv(M, BLOCK_M)
        dx = torch.empty_like(x2)
        ds_part = torch.empty(row_blocks, d_in, n_bases, device=x2.device, dtype=torch.float32)
        de_part = torch.empty_like(ds_part)
        _input_grad_kernel[_grid((M, BLOCK_M), (d_in, BLOCK_K))](
            x2, start, end, weight, dy, dx, ds_part, de_part, M, N, d_in, n_bases, ctx.r, IEEE=ieee,
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_I=BLOCK_K)
        ds, de = ds_part.sum(0).to(start.dtype), de_part.sum(0).to(end.dtype)  # row blocks in a fixed order
        db = dy.float().sum(0).to(weight.dtype) if ctx.has_bias else None
        return dx.reshape(*ctx.lead, d_in), ds, de, dw.to(weight.dtype), db, None


def relu_kan_linear(x: torch.Tensor, start: torch.Tensor, end: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor | None, r: float) -> torch.Tensor:
    """ReLU-KAN layer forward with autograd through the fused kernels (see the module docstring)."""
    return ReLUKANLinear.apply(x, start, end, weight, bias, r)
