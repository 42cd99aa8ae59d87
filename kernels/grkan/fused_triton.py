"""A GR-KAN layer ``y = F(x) Wᵀ + b`` whose matmul applies the group-rational F to its tiles as it loads them
(the ``triton_fused`` impl of ``grkan``): the activated tensor F(x) is never written to memory, forward or backward.

One Triton matmul kernel, ``C = F(A) · B (+ bias)``, with F applied to the A tiles as loaded, its channels along
A's columns (the forward: C = F(X) · Wᵀ) or along A's rows (the weight gradient, computed transposed as
dWᵀ = F(X)ᵀ · dY and stored through dW's strides). The backward recomputes F(x) inside that second matmul instead
of saving it:

    dF = dY · W              (cuBLAS; the rational's input gradient needs dF, F itself is not needed)
    dx, da, db = rational backward of (dF, x)   (kernels/grkan/rational_triton.py: one pass, deterministic
                                                 two-stage coefficient sums)
    dWᵀ = F(X)ᵀ · dY         (this kernel, F on the A tiles' rows)
    dbias = Σ_rows dY

Why dWᵀ = F(X)ᵀ·dY and not dW = dYᵀ·F(X) with F on the B tiles: compiled for sm_90 (``python -m
kanbench.kernels.aot --all-configs``, triton 3.9), the F-on-B form spilled in every fp32 tile shape of the
autotuning space (1.4-89 KB), the F-on-A-rows form in none below 128×128.

F is evaluated in fp32 (kernels/grkan/rational_triton.py has the formula), rounded to the operand dtype and fed to
the tensor cores with fp32 accumulation; fp32 operands multiply in IEEE fp32 (not TF32), as torch does by default.

The price of fusing: every program recomputes F for its A tiles, so F is evaluated N / BLOCK_N times per element
of x instead of once (20 FLOPs each, on the CUDA cores). Whether that beats one write and one read of F(x) depends
on the dtype and shape; `kanbench run --preset ffn-768` puts this impl's block beside ``triton`` and ``reference``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kanbench.kernels.grkan.rational_triton import (
    check_rational_inputs,
    coefficient_vectors,
    kernel_coefficients,
    rational_backward,
    rational_of,
    rational_with,
)
from kanbench.kernels.launch import dots_on_tensor_cores, interpreted, needs_ieee_dot
from kanbench.kernels.triton_dot import dot

ON_A = 1  # F on the A tiles, channels along A's columns (the reduction dimension): the forward F(X) · Wᵀ
ON_A_ROWS = 2  # F on the A tiles, channels along A's rows (C's rows): the weight gradient as (F(X)ᵀ · dY)ᵀ


@triton.jit
def _fused_matmul_kernel(
        # pointers: C (M × N) = F(A) (M × K) · B (K × N) + bias (N); the rational's numerator and denominator
        a_ptr, b_ptr, c_ptr, bias_ptr, num_ptr, den_ptr,
        # sizes
        M, N, K,
        # strides (elements) of A, B and C, so that transposes are views, not copies
        stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
        # channels per rational group; numerator stride between groups (0 when one numerator is shared)
        group_width, num_stride_group,
        # constexpr: where F applies (ON_A or ON_A_ROWS), whether to add the bias, IEEE fp32 dots, tile shape
        RATIONAL_ON: tl.constexpr, HAS_BIAS: tl.constexpr, IEEE: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    # -- this program's C tile, in grouped order: GROUP_M row blocks share each column block of B while in L2
    pid = tl.program_id(0)
    n_m, n_n = tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * n_n
    first_m = (pid // per_group) * GROUP_M
    rows_in_group = tl.minimum(n_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % rows_in_group
    pid_n = (pid % per_group) // rows_in_group

    # -- its rows and columns, and the fp32 accumulator
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok, n_ok = rm < M, rn < N
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    if RATIONAL_ON == 2:  # the channels are this program's output rows: load their coefficients once, as columns
        a0, a1, a2, a3, a4, a5, b0, b1, b2, b3 = coefficient_vectors(num_ptr, den_ptr, rm, m_ok, group_width,
                                                                     num_stride_group)
        a0, a1, a2, a3, a4, a5 = a0[:, None], a1[:, None], a2[:, None], a3[:, None], a4[:, None], a5[:, None]
        b0, b1, b2, b3 = b0[:, None], b1[:, None], b2[:, None], b3[:, None]
    # -- the K loop: load a tile of A and of B, apply F to A's tile, accumulate the product
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        k_ok = rk < K
        a_mask = m_ok[:, None] & k_ok[None, :]
        b_mask = k_ok[:, None] & n_ok[None, :]
        a = tl.load(a_ptr + rm[:, None].to(tl.int64) * stride_am + rk[None, :].to(tl.int64) * stride_ak,
                    mask=a_mask, other=0.0)
        b = tl.load(b_ptr + rk[:, None].to(tl.int64) * stride_bk + rn[None, :].to(tl.int64) * stride_bn,
                    mask=b_mask, other=0.0)
        # Padding past K becomes F(0) = a0 != 0 in the transformed operand, but the other operand is 0 there
        # (Q >= 1 keeps F finite), so it adds nothing; padded rows of A or columns of B are never stored.
        if RATIONAL_ON == 1:
            a = rational_of(a.to(tl.float32), num_ptr, den_ptr, rk, k_ok, group_width, num_stride_group).to(b.dtype)
        else:
            a = rational_with(a.to(tl.float32), a0, a1, a2, a3, a4, a5, b0, b1, b2, b3).to(b.dtype)
        acc += dot(a, b, IEEE)
    # -- add the bias in fp32, round once, store the tile
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    c = c_ptr + rm[:, None].to(tl.int64) * stride_cm + rn[None, :].to(tl.int64) * stride_cn
    tl.store(c, acc.to(c_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


# (BLOCK_M, BLOCK_N, BLOCK_K, num_stages, num_warps). The Triton matmul tutorial's tile shapes for recent NVIDIA GPUs;
# the autotuner drops those that do not fit.
TENSOR_CORE_SHAPES = [(128, 256, 64, 3, 8), (64, 256, 32, 4, 4), (128, 128, 32, 4, 4), (128, 64, 32, 4, 4),
                      (64, 128, 32, 4, 4), (128, 32, 32, 4, 4), (64, 64, 32, 4, 4), (64, 32, 32, 5, 2),
                      (32, 64, 32, 5, 2)]
# Where Triton's tl.dot has no tensor cores (kernels/launch.py: sm_75 and older) it multiplies 16-bit operands as
# FMAs from registers: compiled for sm_75, every shape above spills there (1-67 KB a thread, both kernels), these
# none. Not yet measured on such a GPU: the autotuner times them.
CUDA_CORE_SHAPES = [(32, 32, 32, 3, 4), (32, 32, 16, 3, 4), (64, 32, 16, 3, 4), (32, 64, 16, 3, 4),
                    (64, 64, 16, 3, 8), (64, 64, 32, 3, 8)]


def _configs(tensor_cores: bool = True) -> list[triton.Config]:
    """The autotuner's space where tl.dot does / does not use tensor cores."""
    shapes = TENSOR_CORE_SHAPES if tensor_cores else CUDA_CORE_SHAPES
    return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8}, num_stages=stages,
                          num_warps=warps) for bm, bn, bk, stages, warps in shapes]


_KEY = ["M", "N", "K", "RATIONAL_ON", "IEEE"]
_TUNED = {cores: triton.autotune(configs=_configs(cores), key=_KEY)(_fused_matmul_kernel) for cores in (True, False)}
INTERPRETER_BLOCKS = {"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 16, "GROUP_M": 2}  # small: the emulator is slow


def fused_matmul(a: torch.Tensor, b: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,
                 rational_on: int, bias: torch.Tensor | None = None, out: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """``F(a) @ b + bias`` with F's channels along a's columns (rational_on=ON_A) or a's rows (ON_A_ROWS); a, b and
    ``out`` may be strided views (transposes cost nothing). Returns ``out`` (allocated in a's dtype if None)."""
    M, K = a.shape
    N = b.shape[1]
    c = out if out is not None else torch.empty(M, N, device=a.device, dtype=a.dtype)
    groups = denominator.shape[0]
    channels = K if rational_on == ON_A else M
    num, den, num_stride_group = kernel_coefficients(numerator, denominator)
    ieee = needs_ieee_dot(a.dtype)
    args = (a, b, c, bias if bias is not None else c, num, den, M, N, K, a.stride(0), a.stride(1), b.stride(0),
            b.stride(1), c.stride(0), c.stride(1), channels // groups, num_stride_group)
    flags = {"RATIONAL_ON": rational_on, "HAS_BIAS": bias is not None, "IEEE": ieee}
    if interpreted():
        grid = (triton.cdiv(M, INTERPRETER_BLOCKS["BLOCK_M"]) * triton.cdiv(N, INTERPRETER_BLOCKS["BLOCK_N"]),)
        _fused_matmul_kernel[grid](*args, **flags, **INTERPRETER_BLOCKS)
    else:
        def grid(meta: dict) -> tuple[int]:
            return (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]),)

        _TUNED[dots_on_tensor_cores(a.device)][grid](*args, **flags)
    return c


class _RationalLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,  # type: ignore[override]
                weight: torch.Tensor, bias: torch.Tensor | None, sign_at_zero: int) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        y = fused_matmul(x2, weight.T, numerator, denominator, ON_A, bias)
        ctx.save_for_backward(x2, numerator, denominator, weight)  # x, not F(x): the backward recomputes F
        ctx.has_bias, ctx.shape, ctx.sign_at_zero = bias is not None, x.shape, sign_at_zero
        return y.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, dy: torch.Tensor):  # type: ignore[override]
        x2, numerator, denominator, weight = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1]).contiguous()
        d_activated = dy2 @ weight  # dF, for the rational's own backward
        dx, da, db = rational_backward(d_activated, x2, numerator, denominator, ctx.sign_at_zero)
        dw = torch.empty_like(weight)
        fused_matmul(x2.T, dy2, numerator, denominator, ON_A_ROWS, out=dw.T)  # dWᵀ = F(X)ᵀ · dY
        dbias = dy2.sum(0).to(weight.dtype) if ctx.has_bias else None
        return dx.reshape(ctx.shape), da, db, dw, dbias, None


def rational_linear(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor | None = None, sign_at_zero: int = 1) -> torch.Tensor:
    """``F(x) @ weightᵀ + bias`` with F fused into the matmul; differentiable in all five inputs (sign(0) =
    ``sign_at_zero`` in the rational's gradients)."""
    check_rational_inputs(x, numerator, denominator)
    if weight.shape[1] != x.shape[-1]:
        raise ValueError(f"grkan triton_fused: weight is {tuple(weight.shape)} but x has {x.shape[-1]} channels; "
                         f"the weight must be (d_out, {x.shape[-1]}).")
    if weight.dtype != x.dtype:
        raise ValueError(f"grkan triton_fused: x ({x.dtype}) and the weight ({weight.dtype}) must share a dtype.")
    return _RationalLinear.apply(x, numerator, denominator, weight, bias, sign_at_zero)
