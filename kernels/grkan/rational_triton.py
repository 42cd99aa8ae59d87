"""GR-KAN's group-rational op as Triton kernels, forward and backward (the ``triton`` impl of ``grkan``).

F(x) = P(x)/Q(x), P = a0 + a1·x + ... + a5·x⁵, Q = 1 + |b0||x| + |b1||x|² + |b2||x|³ + |b3||x|⁴, per channel group
(kanbench/variants/grkan.py has the math and the gradients). Inputs fp32, bf16 or fp16 of any leading shape; all
arithmetic in fp32, the output in the input's dtype (the authors' kernels force fp32 everywhere).

Forward: one pass, read x, write y: memory-bound, its floor is 2·N·D·bytes / bandwidth.

Backward: one pass reads x and dy and writes dx; the coefficient gradients are sums over all N·D/g elements of a
group. Instead of per-element atomics (the authors' kernel: ~10 global atomics per element, 800× over the floor),
each program owns a fixed set of channels and a fixed, strided set of row tiles, sums its terms per channel in
registers, and writes one partial row (R programs × D channels × 10 terms, ~1-3 % of the traffic). A second stage
sums the partials in a fixed order, no atomics: ``_sum_partials_kernel`` over the R rows (parallel over channels),
then ``_group_gradients_kernel`` (one program) over each group's channels, applying -sign(b) and, for a shared
numerator, summing over groups. Same inputs, bit-identical coefficient gradients; two launches instead of the
eight or so small torch ops a torch second stage costs (each a host round trip in eager mode).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kanbench.kernels.launch import check_launchable, sm_count

N_TERMS = 10  # 6 numerator + 4 denominator partial sums per channel


@triton.jit
def coefficient_vectors(a_ptr, b_ptr, channels, ok, group_width, a_stride_group):
    """Each channel's numerator a0..a5 and |b0|..|b3| as fp32 vectors over ``channels`` (any float dtype in)."""
    group = channels // group_width
    a_base = a_ptr + group * a_stride_group  # stride 0 when the numerator is shared by all groups
    b_base = b_ptr + group * 4
    a0 = tl.load(a_base + 0, mask=ok, other=0.0).to(tl.float32)
    a1 = tl.load(a_base + 1, mask=ok, other=0.0).to(tl.float32)
    a2 = tl.load(a_base + 2, mask=ok, other=0.0).to(tl.float32)
    a3 = tl.load(a_base + 3, mask=ok, other=0.0).to(tl.float32)
    a4 = tl.load(a_base + 4, mask=ok, other=0.0).to(tl.float32)
    a5 = tl.load(a_base + 5, mask=ok, other=0.0).to(tl.float32)
    b0 = tl.abs(tl.load(b_base + 0, mask=ok, other=0.0).to(tl.float32))
    b1 = tl.abs(tl.load(b_base + 1, mask=ok, other=0.0).to(tl.float32))
    b2 = tl.abs(tl.load(b_base + 2, mask=ok, other=0.0).to(tl.float32))
    b3 = tl.abs(tl.load(b_base + 3, mask=ok, other=0.0).to(tl.float32))
    return a0, a1, a2, a3, a4, a5, b0, b1, b2, b3


@triton.jit
def coefficients(a_ptr, b_ptr, cols, col_ok, group_width, a_stride_group):
    """The coefficients as row vectors (1, channels): for tiles whose dim 1 runs over the channels."""
    a0, a1, a2, a3, a4, a5, b0, b1, b2, b3 = coefficient_vectors(a_ptr, b_ptr, cols, col_ok, group_width,
                                                                 a_stride_group)
    return (a0[None, :], a1[None, :], a2[None, :], a3[None, :], a4[None, :], a5[None, :], b0[None, :], b1[None, :],
            b2[None, :], b3[None, :])


@triton.jit
def rational_of(x, a_ptr, b_ptr, cols, col_ok, group_width, a_stride_group):
    """F(x) in fp32 for a tile x whose dim 1 runs over the channels ``cols`` (P and Q by Horner's rule)."""
    a0, a1, a2, a3, a4, a5, b0, b1, b2, b3 = coefficients(a_ptr, b_ptr, cols, col_ok, group_width, a_stride_group)
    return rational_with(x, a0, a1, a2, a3, a4, a5, b0, b1, b2, b3)


@triton.jit
def rational_with(x, a0, a1, a2, a3, a4, a5, b0, b1, b2, b3):
    """F(x) in fp32 with coefficients already loaded (row vectors over x's channels, |b| taken)."""
    ax = tl.abs(x)
    p = a0 + x * (a1 + x * (a2 + x * (a3 + x * (a4 + x * a5))))
    q = 1.0 + ax * (b0 + ax * (b1 + ax * (b2 + ax * b3)))
    return p / q


@triton.jit
def _rational_fwd_kernel(
        # pointers: input x and output y, both (N, D) contiguous; numerator a and denominator b
        x_ptr, a_ptr, b_ptr, y_ptr,
        # sizes; channels per group; numerator stride between groups (0 when shared)
        N, D, group_width, a_stride_group,
        # constexpr: the tile (rows × channels) one program computes
        BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    # -- this program's tile of rows and channels
    pid_n = tl.program_id(0)
    pid_d = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < D
    mask = (rows[:, None] < N) & col_ok[None, :]
    offsets = rows[:, None].to(tl.int64) * D + cols[None, :]
    # -- load in any float dtype, F in fp32, store in the output's dtype
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    y = rational_of(x, a_ptr, b_ptr, cols, col_ok, group_width, a_stride_group)
    tl.store(y_ptr + offsets, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rational_bwd_kernel(
        # pointers: x and dy in, dx out (all (N, D)); a, b; partial (row programs, D, 10) fp32 coefficient sums
        x_ptr, dy_ptr, a_ptr, b_ptr, dx_ptr, partial_ptr,
        # sizes; channels per group; numerator stride between groups (0 when shared)
        N, D, group_width, a_stride_group,
        # constexpr: the tile (rows × channels) of one loop step; sign(0) in d|x|/dx (1.0 as KAT's kernels, or 0.0)
        BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, ZERO_SIGN: tl.constexpr):
    # -- this program's channels; its rows are every n_row_programs-th tile (a grid-stride loop)
    pid_r = tl.program_id(0)
    pid_d = tl.program_id(1)
    n_row_programs = tl.num_programs(0)
    cols = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    col_ok = cols < D
    a0, a1, a2, a3, a4, a5, b0, b1, b2, b3 = coefficients(a_ptr, b_ptr, cols, col_ok, group_width, a_stride_group)
    # Running sums, elementwise over the tile, of t·xⁱ for da_i (t = dy/Q) and u·|x|^(j+1) for db_j
    # (u = dy·P/Q²); reduced over the tile's rows once, after the loop (a cross-thread reduction per iteration
    # would cost more than the arithmetic).
    s_a0 = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    s_a1 = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    s_a2 = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    s_a3 = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    s_a4 = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    s_a5 = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    s_b0 = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    s_b1 = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    s_b2 = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    s_b3 = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    # -- per tile: load x and dy, write dx = dy·dF/dx, add the tile's terms to the running coefficient sums
    for row0 in range(pid_r * BLOCK_N, N, n_row_programs * BLOCK_N):
        rows = row0 + tl.arange(0, BLOCK_N)
        mask = (rows[:, None] < N) & col_ok[None, :]
        offsets = rows[:, None].to(tl.int64) * D + cols[None, :]
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(dy_ptr + offsets, mask=mask, other=0.0).to(tl.float32)  # 0 outside: no contribution
        ax = tl.abs(x)
        sx = tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, ZERO_SIGN))
        p = a0 + x * (a1 + x * (a2 + x * (a3 + x * (a4 + x * a5))))
        dp = a1 + x * (2.0 * a2 + x * (3.0 * a3 + x * (4.0 * a4 + x * (5.0 * a5))))
        q = 1.0 + ax * (b0 + ax * (b1 + ax * (b2 + ax * b3)))
        dq = b0 + ax * (2.0 * b1 + ax * (3.0 * b2 + ax * (4.0 * b3)))
        inv_q = 1.0 / q
        f = p * inv_q
        dx = dy * inv_q * (dp - sx * dq * f)
        tl.store(dx_ptr + offsets, dx.to(dx_ptr.dtype.element_ty), mask=mask)
        t = dy * inv_q
        s_a0 += t
        t = t * x
        s_a1 += t
        t = t * x
        s_a2 += t
        t = t * x
        s_a3 += t
        t = t * x
        s_a4 += t
        t = t * x
        s_a5 += t
        u = dy * f * inv_q * ax
        s_b0 += u
        u = u * ax
        s_b1 += u
        u = u * ax
        s_b2 += u
        u = u * ax
        s_b3 += u
    # -- reduce the sums over the tile's rows once, store this program's partial row (no atomics: deterministic)
    out = partial_ptr + (pid_r.to(tl.int64) * D + cols) * 10
    tl.store(out + 0, tl.sum(s_a0, axis=0), mask=col_ok)
    tl.store(out + 1, tl.sum(s_a1, axis=0), mask=col_ok)
    tl.store(out + 2, tl.sum(s_a2, axis=0), mask=col_ok)
    tl.store(out + 3, tl.sum(s_a3, axis=0), mask=col_ok)
    tl.store(out + 4, tl.sum(s_a4, axis=0), mask=col_ok)
    tl.store(out + 5, tl.sum(s_a5, axis=0), mask=col_ok)
    tl.store(out + 6, tl.sum(s_b0, axis=0), mask=col_ok)
    tl.store(out + 7, tl.sum(s_b1, axis=0), mask=col_ok)
    tl.store(out + 8, tl.sum(s_b2, axis=0), mask=col_ok)
    tl.store(out + 9, tl.sum(s_b3, axis=0), mask=col_ok)


@triton.jit
def _sum_partials_kernel(
        # pointers: partial (R, M) fp32 in, out (M,) fp32
        partial_ptr, out_ptr,
        # sizes: row programs of the backward, M = D·10
        R, M,
        # constexpr: columns per program
        BLOCK: tl.constexpr):
    """out[m] = Σ_r partial[r, m] in row order, for a (R, M) fp32 matrix (M = D·10)."""
    cols = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = cols < M
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for r in range(R):
        acc += tl.load(partial_ptr + r * M + cols, mask=ok, other=0.0)  # R·M = the partials, far below 2³¹
    tl.store(out_ptr + cols, acc, mask=ok)


@triton.jit
def _group_gradients_kernel(
        # pointers: per-channel sums (D, 10) in; the denominator b (for sign(b)); da and db out
        sums_ptr, b_ptr, da_ptr, db_ptr,
        # sizes
        groups, group_width,
        # constexpr: one numerator for all groups (da summed over them); channels per loop step; sign(0) of b
        SHARED: tl.constexpr, BLOCK_W: tl.constexpr, ZERO_SIGN: tl.constexpr):
    """da (groups or 1, 6) and db (groups, 4) from the per-channel sums (D, 10), groups and channels in order."""
    terms = tl.arange(0, 16)  # 10 terms, padded to a power of two
    da_total = tl.zeros([16], dtype=tl.float32)
    for g in range(groups):
        acc = tl.zeros([BLOCK_W, 16], dtype=tl.float32)
        for c0 in range(0, group_width, BLOCK_W):
            c = c0 + tl.arange(0, BLOCK_W)
            mask = (c < group_width)[:, None] & (terms < 10)[None, :]
            acc += tl.load(sums_ptr + (g * group_width + c)[:, None] * 10 + terms[None, :], mask=mask, other=0.0)
        s = tl.sum(acc, axis=0)  # (16,): the group's ten sums
        b = tl.load(b_ptr + g * 4 + terms - 6, mask=(terms >= 6) & (terms < 10), other=0.0)
        sign_b = tl.where(b > 0, 1.0, tl.where(b < 0, -1.0, ZERO_SIGN))
        tl.store(db_ptr + g * 4 + terms - 6, -sign_b * s, mask=(terms >= 6) & (terms < 10))
        if SHARED:
            da_total += s
        else:
            tl.store(da_ptr + g * 6 + terms, s, mask=terms < 6)
    if SHARED:
        tl.store(da_ptr + terms, da_total, mask=terms < 6)


# Tile sizes (elements per program and loop step), warps and backward programs per SM: chosen on an H100 by sweeping
# them (kernel time, registers and spills per configuration). At (12608, 768) fp32 the backward kernel
# ran 0.068 ms at 1024/4/2 (204 registers, no spills) against 0.09-0.12 ms for the neighbours; 4096-element tiles
# spill (48-278 registers' worth) and ran 0.10-0.30 ms.
FWD_TILE = 4096
BWD_TILE = 1024
BWD_WARPS = 4
BWD_PROGRAMS_PER_SM = 2
SUM_BLOCK = 256  # second stage: channel-terms per program (D·10 / 256 programs, each reading R rows); untuned


def _blocks(D: int, tile: int) -> tuple[int, int]:
    block_d = min(128, triton.next_power_of_2(D))
    return max(1, tile // block_d), block_d


def check_rational_inputs(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor) -> int:
    check_launchable(x, "grkan triton")
    groups = denominator.shape[0]
    D = x.shape[-1]
    if D % groups:
        raise ValueError(f"grkan triton: width {D} is not divisible by groups={groups}.")
    if numerator.shape not in ((1, 6), (groups, 6)) or denominator.shape != (groups, 4):
        raise ValueError(f"grkan triton: numerator must be (1, 6) or ({groups}, 6) and denominator ({groups}, 4); "
                         f"got {tuple(numerator.shape)} and {tuple(denominator.shape)}.")
    return groups


def kernel_coefficients(numerator: torch.Tensor, denominator: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The coefficients as the kernels read them: contiguous fp32 numerator and denominator, and the numerator's
    stride between groups (0 when one numerator is shared by all groups)."""
    a = numerator.detach().float().contiguous()
    return a, denominator.detach().float().contiguous(), 6 if a.shape[0] > 1 else 0


def rational_forward(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    groups = check_rational_inputs(x, numerator, denominator)
    D = x.shape[-1]
    x2 = x.reshape(-1, D).contiguous()
    N = x2.shape[0]
    a, b, a_stride_group = kernel_coefficients(numerator, denominator)
    y = torch.empty_like(x2)
    block_n, block_d = _blocks(D, FWD_TILE)
    grid = (triton.cdiv(N, block_n), triton.cdiv(D, block_d))
    _rational_fwd_kernel[grid](x2, a, b, y, N, D, D // groups, a_stride_group, BLOCK_N=block_n, BLOCK_D=block_d)
    return y.reshape(x.shape)


def _row_programs(N: int, D: int, block_n: int, block_d: int, device: torch.device) -> int:
    col_programs = triton.cdiv(D, block_d)
    # the interpreter: few programs, each looping over several row tiles
    target = BWD_PROGRAMS_PER_SM * sm_count(device) if device.type == "cuda" else 4
    return max(1, min(triton.cdiv(N, block_n), triton.cdiv(target, col_programs)))


def coefficient_gradients(partial: torch.Tensor, b: torch.Tensor, shared_numerator: bool, sign_at_zero: int = 1
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """The second stage: (da, db) in fp32 from the (row programs, D, 10) partial sums and the fp32 denominator, in a
    fixed order (over row programs, then over each group's channels, then over groups for a shared numerator)."""
    rows, D = partial.shape[0], partial.shape[1]
    groups = b.shape[0]
    sums = torch.empty(D, N_TERMS, device=partial.device, dtype=torch.float32)
    _sum_partials_kernel[(triton.cdiv(D * N_TERMS, SUM_BLOCK),)](partial, sums, rows, D * N_TERMS, BLOCK=SUM_BLOCK)
    da = torch.empty(1 if shared_numerator else groups, 6, device=partial.device, dtype=torch.float32)
    db = torch.empty(groups, 4, device=partial.device, dtype=torch.float32)
    group_width = D // groups
    _group_gradients_kernel[(1,)](sums, b, da, db, groups, group_width, SHARED=shared_numerator,
                                  BLOCK_W=min(64, triton.next_power_of_2(group_width)),
                                  ZERO_SIGN=float(sign_at_zero))
    return da, db


def rational_backward(dy: torch.Tensor, x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,
                      sign_at_zero: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dx, da, db for upstream dy; sign(0) = ``sign_at_zero`` in the gradients of |x| and |b| (as the reference)."""
    groups = check_rational_inputs(x, numerator, denominator)
    D = x.shape[-1]
    x2 = x.reshape(-1, D).contiguous()
    dy2 = dy.reshape(-1, D).contiguous()
    N = x2.shape[0]
    a, b, a_stride_group = kernel_coefficients(numerator, denominator)
    dx = torch.empty_like(x2)
    block_n, block_d = _blocks(D, BWD_TILE)
    rows = _row_programs(N, D, block_n, block_d, x.device)
    partial = torch.empty(rows, D, N_TERMS, device=x.device, dtype=torch.float32)
    _rational_bwd_kernel[(rows, triton.cdiv(D, block_d))](x2, dy2, a, b, dx, partial, N, D, D // groups,
                                                          a_stride_group, BLOCK_N=block_n, BLOCK_D=block_d,
                                                          ZERO_SIGN=float(sign_at_zero), num_warps=BWD_WARPS)
    da, db = coefficient_gradients(partial, b, numerator.shape[0] == 1, sign_at_zero)
    return dx.reshape(x.shape), da.to(numerator.dtype), db.to(denominator.dtype)


class _RationalFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,  # type: ignore[override]
                sign_at_zero: int) -> torch.Tensor:
        ctx.save_for_backward(x, numerator, denominator)
        ctx.sign_at_zero = sign_at_zero
        return rational_forward(x, numerator, denominator)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):  # type: ignore[override]
        x, numerator, denominator = ctx.saved_tensors
        dx, da, db = rational_backward(dy, x, numerator, denominator, ctx.sign_at_zero)
        return dx, da, db, None


def rational_triton(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor,
                    sign_at_zero: int = 1) -> torch.Tensor:
    """F(x) per channel group with Triton kernels, differentiable in x and both coefficient sets; sign(0) =
    ``sign_at_zero`` in the gradients of |x| and |b|."""
    return _RationalFunction.apply(x, numerator, denominator, sign_at_zero)
