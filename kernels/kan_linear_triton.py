"""A KAN layer ``y = Φ(x) Wᵀ (+ b)`` whose matmuls compute the features Φ on their tiles as they load them: the
(N, n_features·d_in) feature tensor never goes to memory, forward or backward. It serves four variants
(kernels/relu_kan/, bspline_kan/, cheby_kan/, fourier_kan/), chosen by the constexpr FAMILY, whose features and
slopes (with their math) are in kernels/kan_features_triton.py; feature column c = j·d_in + i (feature index j
outer, input coordinate i inner). Every family but ReLU-KAN's has SiLU(x) at j = 0 and its bases at j ≥ 1; its
weight is [W_base | the bases' coefficients, basis-major] in this column order, assembled by the caller (its
gradient flows back through torch).

Kernels, each a matmul whose Φ tiles are computed from x as they are loaded:

    forward      Y  = Φ(X) · Wᵀ + b                  K loop over the feature columns
    weights      dW = dYᵀ · Φ(X)                      K loop over the N rows
    inputs       G_j = dY · W[:, j·d_in + i]          for each feature j, K loop over d_out, then
                 dx_i = Σ_j G_j·∂Φ_j/∂x and (RELU) per row block partial sums Σ_rows G_j·∂Φ_j/∂s|e
                 (summed over the row blocks afterwards: deterministic, no atomics)
    db = Σ_rows dY

Saved for backward: x (and the small per-feature parameters), never Φ. Features are evaluated in fp32; the matmul
operands are rounded to the input's dtype (fp32 operands multiplied in IEEE fp32, not TF32) with fp32 accumulation.
The tiles (autotuned with 16-bit operands on a GPU with tensor-core dots, sm_80 on; fixed otherwise) are in
kernels/kan_linear_tiles.py.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kanbench.kernels import kan_linear_tiles as tiles
from kanbench.kernels.af_kan.pointwise_triton import ACTIVATIONS, act, act_grad
from kanbench.kernels.kan_features_triton import (
    BSPLINE,
    CHEBY,
    FOURIER,
    RELU,
    basis,
    basis_slope,
    relu_bumps,
)
from kanbench.kernels.launch import check_launchable, needs_ieee_dot
from kanbench.kernels.triton_dot import dot

SILU = tl.constexpr(ACTIVATIONS["silu"])  # the base path's activation (act, act_grad)


@triton.jit
def _interval_ends(s_ptr, e_ptr, i, j, ok, n_features):
    """ReLU-KAN's s_ij and e_ij (fp32, as a row to broadcast over the rows of a tile) for input coordinates i."""
    s = tl.load(s_ptr + i * n_features + j, mask=ok, other=0.0).to(tl.float32)[None, :]
    e = tl.load(e_ptr + i * n_features + j, mask=ok, other=0.0).to(tl.float32)[None, :]
    return s, e


@triton.jit
def _feature(x, j, s, e, r, t0, h, FAMILY: tl.constexpr, ORDER: tl.constexpr):
    """Φ_j(x) in fp32 (``s``, ``e``: ReLU-KAN's interval ends, unused by the other families)."""
    if FAMILY == 0:
        _, _, phi = relu_bumps(x, s, e, r)
    else:
        phi = tl.where(j == 0, act(x, SILU), basis(x, j, t0, h, FAMILY, ORDER))
    return phi


@triton.jit
def _feature_tile(x_ptr, s_ptr, e_ptr, rows, cols, row_ok, col_ok, d_in, n_features, r, t0, h,
                  FAMILY: tl.constexpr, ORDER: tl.constexpr):
    """Φ(X)[rows, cols] (fp32) for feature columns ``cols`` (c = j·d_in + i); zero outside the bounds."""
    i = cols % d_in
    j = cols // d_in
    x = tl.load(x_ptr + rows[:, None] * d_in + i[None, :], mask=row_ok[:, None] & col_ok[None, :], other=0.0)
    if FAMILY == 0:
        s, e = _interval_ends(s_ptr, e_ptr, i, j, col_ok, n_features)
    else:
        s = 0.0
        e = 0.0
    phi = _feature(x.to(tl.float32), j[None, :], s, e, r, t0, h, FAMILY, ORDER)
    return tl.where(row_ok[:, None] & col_ok[None, :], phi, 0.0)


@triton.jit
def _forward_kernel(x_ptr, s_ptr, e_ptr, w_ptr, bias_ptr, y_ptr, M, N, d_in, n_features, r, t0, h,
                    FAMILY: tl.constexpr, ORDER: tl.constexpr, HAS_BIAS: tl.constexpr, IEEE: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """Y[M, N] = Φ(X) · Wᵀ + b, W of shape (N, K), K = n_features·d_in."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    outs = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok, out_ok = rows < M, outs < N
    K = n_features * d_in
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        col_ok = cols < K
        phi = _feature_tile(x_ptr, s_ptr, e_ptr, rows, cols, row_ok, col_ok, d_in, n_features, r, t0, h, FAMILY,
                            ORDER)
        w = tl.load(w_ptr + outs[None, :] * K + cols[:, None], mask=col_ok[:, None] & out_ok[None, :], other=0.0)
        acc += dot(phi.to(w.dtype), w, IEEE)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + outs, mask=out_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + rows[:, None] * N + outs[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=row_ok[:, None] & out_ok[None, :])


@triton.jit
def _weight_grad_kernel(x_ptr, s_ptr, e_ptr, dy_ptr, dw_ptr, M, N, d_in, n_features, r, t0, h,
                        FAMILY: tl.constexpr, ORDER: tl.constexpr, IEEE: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """dW[N, K] = dYᵀ · Φ(X): this program's (outputs × feature columns) tile, the loop over row tiles."""
    outs = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    K = n_features * d_in
    out_ok, col_ok = outs < N, cols < K
    acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
    for m0 in range(0, M, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < M
        phi = _feature_tile(x_ptr, s_ptr, e_ptr, rows, cols, row_ok, col_ok, d_in, n_features, r, t0, h, FAMILY,
                            ORDER)
        dy_t = tl.load(dy_ptr + rows[None, :] * N + outs[:, None], mask=out_ok[:, None] & row_ok[None, :], other=0.0)
        acc += dot(dy_t, phi.to(dy_t.dtype), IEEE)
    tl.store(dw_ptr + outs[:, None] * K + cols[None, :], acc.to(dw_ptr.dtype.element_ty),
             mask=out_ok[:, None] & col_ok[None, :])


@triton.jit
def _input_grad_kernel(x_ptr, s_ptr, e_ptr, w_ptr, dy_ptr, g_ptr, dx_ptr, ds_part_ptr, de_part_ptr,
                       M, N, d_in, n_features, r, t0, h, FAMILY: tl.constexpr, ORDER: tl.constexpr,
                       IEEE: tl.constexpr, G_GIVEN: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       BLOCK_I: tl.constexpr):
    """dx[rows, i] and (RELU) this row block's partial ds, de[i, :] for a tile of rows × input coordinates.
    G_GIVEN: G = dY·W was computed by a matmul and is read from ``g_ptr`` (M, K) (the unfused layer,
    kernels/kan_linear_unfused.py); otherwise each G_j is computed here from dY and W."""
    pid_m = tl.program_id(0)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    ins = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    row_ok, in_ok = rows < M, ins < d_in
    both = row_ok[:, None] & in_ok[None, :]
    K = n_features * d_in
    x = tl.load(x_ptr + rows[:, None] * d_in + ins[None, :], mask=both, other=0.0).to(tl.float32)
    dx = tl.zeros([BLOCK_M, BLOCK_I], dtype=tl.float32)
    for j in range(0, n_features):
        cols = j * d_in + ins
        if G_GIVEN:
            g = tl.load(g_ptr + rows[:, None] * K + cols[None, :], mask=both, other=0.0).to(tl.float32)
        else:
            g = tl.zeros([BLOCK_M, BLOCK_I], dtype=tl.float32)  # G_j = dY · W[:, cols]
            for n0 in range(0, N, BLOCK_N):
                outs = n0 + tl.arange(0, BLOCK_N)
                out_ok = outs < N
                dy = tl.load(dy_ptr + rows[:, None] * N + outs[None, :], mask=row_ok[:, None] & out_ok[None, :],
                             other=0.0)
                w = tl.load(w_ptr + outs[:, None] * K + cols[None, :], mask=out_ok[:, None] & in_ok[None, :],
                            other=0.0)
                g += dot(dy, w, IEEE)
        g = tl.where(both, g, 0.0)
        if FAMILY == 0:
            s, e = _interval_ends(s_ptr, e_ptr, ins, j, in_ok, n_features)
            a, b, _ = relu_bumps(x, s, e, r)
            g = g * (2.0 * r) * a * b  # 2r·a·b·G, shared by the three derivatives
            dx += g * (a - b)
            tl.store(ds_part_ptr + (pid_m * d_in + ins) * n_features + j, tl.sum(-g * a, axis=0), mask=in_ok)
            tl.store(de_part_ptr + (pid_m * d_in + ins) * n_features + j, tl.sum(g * b, axis=0), mask=in_ok)
        else:
            if j == 0:
                dx += g * act_grad(x, SILU)
            else:
                dx += g * basis_slope(x, j, t0, h, FAMILY, ORDER)
    tl.store(dx_ptr + rows[:, None] * d_in + ins[None, :], dx.to(dx_ptr.dtype.element_ty), mask=both)


_TUNED = {"fwd": tiles.autotuned("fwd", _forward_kernel), "dW": tiles.autotuned("dW", _weight_grad_kernel),
          "dx": tiles.autotuned("dx", _input_grad_kernel)}


def operands(x: torch.Tensor, start: torch.Tensor | None, end: torch.Tensor | None, weight: torch.Tensor,
             who: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The launches' operands: x as a contiguous (rows, d_in), the interval ends (RELU reads them; the other
    families have none, and x stands in for the unused pointers) and the weight in x's dtype."""
    check_launchable(x, who)
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    start = start.contiguous() if start is not None else x2
    end = end.contiguous() if end is not None else x2
    return x2, start, end, weight.to(x.dtype).contiguous()


def input_gradients(x2: torch.Tensor, start: torch.Tensor, end: torch.Tensor, weight: torch.Tensor,
                    dy: torch.Tensor, g: torch.Tensor | None, family: int, n_features: int,
                    scalars: tuple[float, float, float], order: int
                    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """dx and (RELU) ds, de through Σ_j G_j·∂Φ_j/∂x, with G = dY·W computed in the kernel (``g`` None: the fused
    layer, its tile chosen by kan_linear_tiles.fixed_tile) or read from ``g`` (the unfused layer: fixed tile)."""
    M, d_in = x2.shape
    ieee = needs_ieee_dot(x2.dtype)
    fixed = tiles.fixed_tile(ieee, x2.device) or g is not None
    dx = torch.empty_like(x2)
    parts = (triton.cdiv(M, tiles.dx_block_m(fixed)), d_in, n_features) if family == RELU else (1,)
    ds_part = torch.zeros(parts, device=x2.device, dtype=torch.float32)
    de_part = torch.zeros_like(ds_part)
    tiles.launch("dx", _input_grad_kernel, _TUNED["dx"],
                 lambda meta: (triton.cdiv(M, meta["BLOCK_M"]), triton.cdiv(d_in, meta["BLOCK_I"])),
                 (x2, start, end, weight, dy, dy if g is None else g, dx, ds_part, de_part, M, weight.shape[0], d_in,
                  n_features, *scalars),
                 {"FAMILY": family, "ORDER": order, "IEEE": ieee, "G_GIVEN": g is not None}, fixed=fixed)
    if family != RELU:
        return dx, None, None
    return dx, ds_part.sum(0).to(start.dtype), de_part.sum(0).to(end.dtype)  # row blocks in a fixed order


class KANLinear(torch.autograd.Function):
    """``y = Φ(x)·Wᵀ + b`` with the features computed inside the matmuls, forward and backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, start: torch.Tensor | None, end: torch.Tensor | None, weight: torch.Tensor,
                bias: torch.Tensor | None, family: int, n_features: int, r: float, t0: float, h: float,
                order: int) -> torch.Tensor:
        lead, d_in = x.shape[:-1], x.shape[-1]
        x2, start, end, weight = operands(x, start, end, weight, "KAN linear (triton)")
        M, N = x2.shape[0], weight.shape[0]
        y = torch.empty(M, N, device=x.device, dtype=x.dtype)
        scalars = (r, t0, h)
        ieee = needs_ieee_dot(x.dtype)
        tiles.launch("fwd", _forward_kernel, _TUNED["fwd"],
                     lambda meta: (triton.cdiv(M, meta["BLOCK_M"]), triton.cdiv(N, meta["BLOCK_N"])),
                     (x2, start, end, weight, bias if bias is not None else y, y, M, N, d_in, n_features, *scalars),
                     {"FAMILY": family, "ORDER": order, "HAS_BIAS": bias is not None, "IEEE": ieee},
                     fixed=tiles.fixed_tile(ieee, x2.device))
        ctx.save_for_backward(x2, start, end, weight)
        ctx.meta = (lead, bias is not None, family, n_features, scalars, order)
        return y.reshape(*lead, N)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x2, start, end, weight = ctx.saved_tensors
        lead, has_bias, family, n_features, scalars, order = ctx.meta
        M, d_in = x2.shape
        N = weight.shape[0]
        dy = dy.reshape(M, N).to(x2.dtype).contiguous()
        ieee = needs_ieee_dot(x2.dtype)
        K = n_features * d_in
        flags = {"FAMILY": family, "ORDER": order, "IEEE": ieee}
        dw = torch.empty(N, K, device=x2.device, dtype=torch.float32)
        tiles.launch("dW", _weight_grad_kernel, _TUNED["dW"],
                     lambda meta: (triton.cdiv(N, meta["BLOCK_N"]), triton.cdiv(K, meta["BLOCK_K"])),
                     (x2, start, end, dy, dw, M, N, d_in, n_features, *scalars), flags,
                     fixed=tiles.fixed_tile(ieee, x2.device))
        dx, ds, de = input_gradients(x2, start, end, weight, dy, None, family, n_features, scalars, order)
        db = dy.float().sum(0).to(weight.dtype) if has_bias else None
        return dx.reshape(*lead, d_in), ds, de, dw.to(weight.dtype), db, None, None, None, None, None, None


def _layer(fused: bool) -> type[torch.autograd.Function]:
    """The fused layer, or the same layer with torch's matmuls (kernels/kan_linear_unfused.py)."""
    if fused:
        return KANLinear
    from kanbench.kernels.kan_linear_unfused import KANLinearUnfused

    return KANLinearUnfused


def relu_kan_linear(x: torch.Tensor, start: torch.Tensor, end: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor | None, r: float, fused: bool = True) -> torch.Tensor:
    """A ReLU-KAN layer: ``weight`` (d_out, (G+k)·d_in) in the paper's column order, ``start``/``end`` (d_in, G+k)."""
    return _layer(fused).apply(x, start, end, weight, bias, RELU, start.shape[1], r, 0.0, 1.0, 1)


def bspline_kan_linear(x: torch.Tensor, weight: torch.Tensor, t0: float, h: float, order: int,
                       fused: bool = True) -> torch.Tensor:
    """A B-spline KAN layer: ``weight`` = [W_base | W_spline ⊙ scaler] of shape (d_out, (1 + G+k)·d_in), columns
    feature-major; knots ``t_b = t0 + b·h`` (the first knot of the extended grid and the spacing)."""
    n_features = weight.shape[1] // x.shape[-1]
    return _layer(fused).apply(x, None, None, weight, None, BSPLINE, n_features, 0.0, t0, h, order)


def cheby_kan_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, degree: int,
                     fused: bool = True) -> torch.Tensor:
    """A Chebyshev KAN layer: ``weight`` = [W_base | C basis-major] of shape (d_out, (degree + 2)·d_in)."""
    return _layer(fused).apply(x, None, None, weight, bias, CHEBY, degree + 2, 0.0, 0.0, 1.0, degree)


def fourier_kan_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, frequencies: int,
                       fused: bool = True) -> torch.Tensor:
    """A Fourier KAN layer: ``weight`` = [W_base | A basis-major | B basis-major] of shape (d_out, (2F + 1)·d_in)."""
    n_features = 2 * frequencies + 1
    return _layer(fused).apply(x, None, None, weight, bias, FOURIER, n_features, 0.0, 0.0, 1.0, frequencies)
