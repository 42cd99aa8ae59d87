"""The KAN layer of kernels/kan_linear_triton.py with its matmuls left to torch (cuBLAS on a GPU): a Triton kernel
writes the feature tensor Φ(X), torch multiplies, and the input gradient's feature sum is the fused layer's dx
kernel reading G = dY·W from memory. The same function, the same families and column order (c = j·d_in + i):

    forward    Φ  = Φ(X)               one Triton pass, (N, K) in the input's dtype, K = n_features·d_in
               Y  = Φ·Wᵀ + b           torch
    backward   Φ  = Φ(X) again         recomputed, not kept between the passes (saved for backward: x alone)
               dW = dYᵀ·Φ              torch, then Φ is freed
               G  = dY·W               torch, (N, K) in the input's dtype
               dx_i = Σ_j G_j·∂Φ_j/∂x  and (RELU) the interval gradients: _input_grad_kernel with G_GIVEN

Why both impls: the fused layer never writes Φ or G, but runs its matmuls in Triton with the features' arithmetic
in every tile's prologue; this one writes each once (transient: N·K elements, 0.45 GB for the second layer of the
768 → 3072 block at 8192 tokens in bf16) and hands the matmuls to the vendor's library. Which costs less on a GPU is
for the two impls' rows, side by side in one run, to say. With 16-bit inputs G is rounded to the input's dtype
before the slopes multiply it (the fused layer keeps it in fp32): one more rounding per term, within the gate's
allowance for the dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kanbench.kernels.kan_linear_triton import _feature_tile, input_gradients, operands

BLOCK_M, BLOCK_K = 32, 64  # the feature pass's tile: rows × feature columns (elementwise, no tensor cores)


@triton.jit
def _features_kernel(x_ptr, s_ptr, e_ptr, phi_ptr, M, d_in, n_features, r, t0, h,
                     FAMILY: tl.constexpr, ORDER: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """Φ(X)[rows, cols] written in Φ's dtype (evaluated in fp32)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    K = n_features * d_in
    row_ok, col_ok = rows < M, cols < K
    phi = _feature_tile(x_ptr, s_ptr, e_ptr, rows, cols, row_ok, col_ok, d_in, n_features, r, t0, h, FAMILY, ORDER)
    tl.store(phi_ptr + rows[:, None] * K + cols[None, :], phi.to(phi_ptr.dtype.element_ty),
             mask=row_ok[:, None] & col_ok[None, :])


def _features(x2: torch.Tensor, start: torch.Tensor, end: torch.Tensor, family: int, n_features: int,
              scalars: tuple[float, float, float], order: int) -> torch.Tensor:
    M, d_in = x2.shape
    K = n_features * d_in
    phi = torch.empty(M, K, device=x2.device, dtype=x2.dtype)
    _features_kernel[(triton.cdiv(M, BLOCK_M), triton.cdiv(K, BLOCK_K))](
        x2, start, end, phi, M, d_in, n_features, *scalars, FAMILY=family, ORDER=order, BLOCK_M=BLOCK_M,
        BLOCK_K=BLOCK_K)
    return phi


class KANLinearUnfused(torch.autograd.Function):
    """``y = Φ(x)·Wᵀ + b`` with Φ written by a Triton kernel and the matmuls torch's; the arguments are
    :class:`~kanbench.kernels.kan_linear_triton.KANLinear`'s."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, start: torch.Tensor | None, end: torch.Tensor | None, weight: torch.Tensor,
                bias: torch.Tensor | None, family: int, n_features: int, r: float, t0: float, h: float,
                order: int) -> torch.Tensor:
        lead = x.shape[:-1]
        x2, start, end, weight = operands(x, start, end, weight, "KAN linear (triton_unfused)")
        scalars = (r, t0, h)
        phi = _features(x2, start, end, family, n_features, scalars, order)
        y = torch.nn.functional.linear(phi, weight, bias.to(x.dtype) if bias is not None else None)
        ctx.save_for_backward(x2, start, end, weight)
        ctx.meta = (lead, bias is not None, family, n_features, scalars, order)
        return y.reshape(*lead, weight.shape[0])

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x2, start, end, weight = ctx.saved_tensors
        lead, has_bias, family, n_features, scalars, order = ctx.meta
        M, d_in = x2.shape
        N = weight.shape[0]
        dy = dy.reshape(M, N).to(x2.dtype).contiguous()
        phi = _features(x2, start, end, family, n_features, scalars, order)
        dw = dy.t() @ phi
        del phi  # before G: the two (N, K) tensors are never alive together
        g = dy @ weight
        dx, ds, de = input_gradients(x2, start, end, weight, dy, g, family, n_features, scalars, order)
        db = dy.float().sum(0).to(weight.dtype) if has_bias else None
        return dx.reshape(*lead, d_in), ds, de, dw.to(weight.dtype), db, None, None, None, None, None, None
