"""Wav-KAN's wavelet sum as Triton kernels that evaluate every edge's wavelet on their tiles: the (N, d_out, d_in)
tensors of the reference (u, ψ and their products, kept by autograd for the backward) are never written.

For x of shape (N, d_in) and per-edge translation t, scale s and weight w of shape (d_out, d_in)
(kanbench/variants/wav_kan.py):

    u_moi = (x_mi − t_oi) / s_oi,   ψ(u) = (u² − 1)·exp(−u²/2),   W_mo = Σ_i w_oi·ψ(u_moi)
    ψ'(u) = u·(3 − u²)·exp(−u²/2)

and, for the output gradient G = ∂L/∂W,

    ∂L/∂x_mi = Σ_o G_mo·w_oi·ψ'(u_moi) / s_oi
    ∂L/∂w_oi = Σ_m G_mo·ψ(u_moi)
    ∂L/∂t_oi = −(w_oi / s_oi)·Σ_m G_mo·ψ'(u_moi)
    ∂L/∂s_oi = −(w_oi / s_oi)·Σ_m G_mo·ψ'(u_moi)·u_moi

Kernels, each a contraction over one index of a (rows × outputs × inputs) tile computed in registers:

    forward   W[rows, outs]      loop over input chunks, sum over i
    inputs    dx[rows, ins]      loop over output chunks, sum over o
    edges     dw, dt, ds[outs, ins]   loop over row chunks, sum over m (one program per edge tile: a fixed
              order, deterministic, no atomics)

There is no matmul to put on the tensor cores: every (token, edge) pair costs an exp and about ten flops, while
the memory traffic is that of the inputs and parameters alone (so, untimed as yet, it should be bound by
arithmetic). Saved for backward: x, t, s, w. Everything is computed in fp32 from inputs of
any float dtype; the edge gradients are accumulated in fp32 and rounded to the parameters' dtype once.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kanbench.kernels.launch import check_launchable

BLOCK_M, BLOCK_N, BLOCK_I = 32, 32, 8  # rows × outputs × inputs per tile (8192 edge evaluations)


@triton.jit
def _load_edges(t_ptr, s_ptr, w_ptr, outs, ins, d_in, out_ok, in_ok):
    """t, s, w of the edges outs × ins (fp32); outside the bounds s = 1 and w = 0, so they add nothing."""
    offsets = outs[:, None] * d_in + ins[None, :]
    ok = out_ok[:, None] & in_ok[None, :]
    t = tl.load(t_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    s = tl.load(s_ptr + offsets, mask=ok, other=1.0).to(tl.float32)
    w = tl.load(w_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    return t, s, w


@triton.jit
def _load_rows(ptr, rows, cols, width, row_ok, col_ok):
    """ptr[rows, cols] of a row-major (·, width) tensor in fp32, zero outside the bounds."""
    mask = row_ok[:, None] & col_ok[None, :]
    return tl.load(ptr + rows[:, None] * width + cols[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _wavelet(x, t, s):
    """(u, ψ(u), ψ'(u)) on the (rows, outs, ins) tile of inputs ``x`` (rows, ins) against edges ``t``, ``s``."""
    u = (x[:, None, :] - t[None, :, :]) / s[None, :, :]
    u2 = u * u
    bell = tl.exp(-0.5 * u2)
    return u, (u2 - 1.0) * bell, u * (3.0 - u2) * bell


@triton.jit
def _forward_kernel(x_ptr, t_ptr, s_ptr, w_ptr, y_ptr, M, N, d_in,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_I: tl.constexpr):
    """W[rows, outs] = Σ_i w·ψ(u) for this program's tile of rows × outputs."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    outs = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok, out_ok = rows < M, outs < N
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for i0 in range(0, d_in, BLOCK_I):
        ins = i0 + tl.arange(0, BLOCK_I)
        in_ok = ins < d_in
        x = _load_rows(x_ptr, rows, ins, d_in, row_ok, in_ok)
        t, s, w = _load_edges(t_ptr, s_ptr, w_ptr, outs, ins, d_in, out_ok, in_ok)
        _, psi, _ = _wavelet(x, t, s)
        acc += tl.sum(psi * w[None, :, :], axis=2)
    tl.store(y_ptr + rows[:, None] * N + outs[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=row_ok[:, None] & out_ok[None, :])


@triton.jit
def _input_grad_kernel(x_ptr, t_ptr, s_ptr, w_ptr, dy_ptr, dx_ptr, M, N, d_in,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_I: tl.constexpr):
    """dx[rows, ins] = Σ_o G·w·ψ'(u)/s for this program's tile of rows × inputs."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    ins = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    row_ok, in_ok = rows < M, ins < d_in
    x = _load_rows(x_ptr, rows, ins, d_in, row_ok, in_ok)
    acc = tl.zeros([BLOCK_M, BLOCK_I], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        outs = n0 + tl.arange(0, BLOCK_N)
        out_ok = outs < N
        g = _load_rows(dy_ptr, rows, outs, N, row_ok, out_ok)
        t, s, w = _load_edges(t_ptr, s_ptr, w_ptr, outs, ins, d_in, out_ok, in_ok)
        _, _, slope = _wavelet(x, t, s)
        acc += tl.sum(g[:, :, None] * slope * (w / s)[None, :, :], axis=1)
    tl.store(dx_ptr + rows[:, None] * d_in + ins[None, :], acc.to(dx_ptr.dtype.element_ty),
             mask=row_ok[:, None] & in_ok[None, :])


@triton.jit
def _edge_grad_kernel(x_ptr, t_ptr, s_ptr, w_ptr, dy_ptr, dt_ptr, ds_ptr, dw_ptr, M, N, d_in,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_I: tl.constexpr):
    """dw, dt, ds[outs, ins] (fp32) for this program's tile of edges, summed over every row in order."""
    outs = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    ins = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    out_ok, in_ok = outs < N, ins < d_in
    t, s, w = _load_edges(t_ptr, s_ptr, w_ptr, outs, ins, d_in, out_ok, in_ok)
    sum_psi = tl.zeros([BLOCK_N, BLOCK_I], dtype=tl.float32)
    sum_slope = tl.zeros([BLOCK_N, BLOCK_I], dtype=tl.float32)
    sum_slope_u = tl.zeros([BLOCK_N, BLOCK_I], dtype=tl.float32)
    for m0 in range(0, M, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < M
        x = _load_rows(x_ptr, rows, ins, d_in, row_ok, in_ok)
        g = _load_rows(dy_ptr, rows, outs, N, row_ok, out_ok)[:, :, None]  # rows outside: G = 0
        u, psi, slope = _wavelet(x, t, s)
        sum_psi += tl.sum(g * psi, axis=0)
        g_slope = g * slope
        sum_slope += tl.sum(g_slope, axis=0)
        sum_slope_u += tl.sum(g_slope * u, axis=0)
    offsets = outs[:, None] * d_in + ins[None, :]
    ok = out_ok[:, None] & in_ok[None, :]
    ratio = w / s
    tl.store(dw_ptr + offsets, sum_psi, mask=ok)
    tl.store(dt_ptr + offsets, -ratio * sum_slope, mask=ok)
    tl.store(ds_ptr + offsets, -ratio * sum_slope_u, mask=ok)


class WaveletSum(torch.autograd.Function):
    """``W = Σ_i w·ψ((x_i − t)/s)`` (module docstring) with every edge evaluated on the tiles, forward and backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, translation: torch.Tensor, scale: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        check_launchable(x, "Wav-KAN wavelet sum (triton)")
        M, d_in = x.shape
        N = weights.shape[0]
        x = x.contiguous()
        edges = [p.contiguous() for p in (translation, scale, weights)]
        y = torch.empty(M, N, device=x.device, dtype=x.dtype)
        _forward_kernel[(triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N))](
            x, *edges, y, M, N, d_in, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_I=BLOCK_I)
        ctx.save_for_backward(x, *edges)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, translation, scale, weights = ctx.saved_tensors
        M, d_in = x.shape
        N = weights.shape[0]
        dy = dy.contiguous()
        dx = torch.empty_like(x)
        _input_grad_kernel[(triton.cdiv(M, BLOCK_M), triton.cdiv(d_in, BLOCK_I))](
            x, translation, scale, weights, dy, dx, M, N, d_in, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_I=BLOCK_I)
        dt, ds, dw = (torch.empty(N, d_in, device=x.device, dtype=torch.float32) for _ in range(3))
        _edge_grad_kernel[(triton.cdiv(N, BLOCK_N), triton.cdiv(d_in, BLOCK_I))](
            x, translation, scale, weights, dy, dt, ds, dw, M, N, d_in,
            BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_I=BLOCK_I)
        return dx, dt.to(translation.dtype), ds.to(scale.dtype), dw.to(weights.dtype)


def wavelet_sum(x: torch.Tensor, translation: torch.Tensor, scale: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
    """(N, d_in) → (N, d_out): ``Σ_i w_oi·ψ((x_i − t_oi)/s_oi)``; ``translation``, ``scale``, ``weights`` are
    (d_out, d_in) on the same device as ``x``."""
    return WaveletSum.apply(x, translation, scale, weights)
