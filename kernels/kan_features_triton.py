"""The per-input features Φ_j(x) of the basis-expansion KANs and their slopes ∂Φ_j/∂x, as Triton functions that
the fused KAN-layer matmuls (kernels/kan_linear_triton.py) evaluate on their tiles. One family per variant, chosen
by the constexpr FAMILY; ORDER is the family's size (spline order K, Chebyshev degree D, Fourier frequencies F).
Every family but ReLU-KAN's puts SiLU(x) at feature 0 (the base path: AF-KAN's activation kernels serve it,
kernels/af_kan/pointwise_triton.py) and its bases at features j ≥ 1.

RELU (ReLU-KAN, kanbench/variants/relu_kan.py): for basis j with interval ends s_ij, e_ij,

    a = ReLU(e_ij − x_i),  b = ReLU(x_i − s_ij),  Φ_ij = r·(a·b)²,  r = 16·G⁴/(k+1)⁴
    ∂Φ/∂x = 2r·a·b·(a − b),   ∂Φ/∂s = −2r·a²·b,   ∂Φ/∂e = 2r·a·b²

(zero wherever a or b is: ReLU's zero subgradient at the kinks, as autograd takes it).

BSPLINE (B-spline KAN, kanbench/variants/bspline_kan.py): feature j ≥ 1 is the B-spline basis b = j − 1 of order
K on the uniform grid t_b = t0 + b·h. On a uniform grid every basis is the cardinal B-spline N_K shifted and
scaled, evaluated in closed form (a few multiply-adds, no recursion):

    B_b(x) = N_K(u),  u = (x − t_b)/h,  N_K(u) = 1/K! · Σ_{m=0}^{K+1} (−1)^m·C(K+1, m)·(v − m)₊^K  on [0, K+1)

with v = min(u, K+1−u) (N_K is symmetric, and the smaller argument keeps the alternating sum free of
cancellation), and ∂B_b/∂x = (N_{K−1}(u) − N_{K−1}(u−1))/h. At order 1 that derivative jumps at the knots: an
input exactly on one may take the other one-sided derivative than autograd (u from fp32 knots lands within an
ulp of the integer); orders ≥ 2 are continuous there.

CHEBY (Chebyshev KAN, kanbench/variants/cheby_kan.py): feature j ≥ 1 is T_n(t), n = j − 1, of t = tanh(clamp(x,
−1, 1)), by the three-term recurrences instead of cos(n·arccos t) (the same polynomials, no arccos):

    T_0 = 1,  T_1 = t,   T_{m+1} = 2t·T_m − T_{m−1}
    ∂T_n/∂t = n·U_{n−1}(t),   U_0 = 1,  U_1 = 2t,  U_{m+1} = 2t·U_m − U_{m−1}
    ∂t/∂x = 1 − t² on −1 < x < 1, 0 outside; at exactly ±1, (1 − t²)·g with g the subgradient the installed
    torch's clamp gives there, since the reference's clamp is torch's: g = 1 up to torch 2.13, 0 from torch 2.14
    (the minimum-norm subgradient, pytorch/pytorch#184574). Probed once at import, each bound on its own
    (CLAMP_GRAD_AT_LOWER, CLAMP_GRAD_AT_UPPER), so any convention a later torch takes is followed, not refused.

FOURIER (Fourier KAN, kanbench/variants/fourier_kan.py): features 1..F are cos(f·x), F+1..2F are sin(f·x),
f = 1..F, with slopes −f·sin(f·x) and f·cos(f·x).

Everything here is fp32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

RELU, BSPLINE, CHEBY, FOURIER = 0, 1, 2, 3  # FAMILY


def torch_clamp_gradients_at_bounds() -> tuple[float, float]:
    """The gradient the installed torch's ``clamp(x, −1, 1)`` passes to an input exactly at its lower and at its upper
    bound. Gradients on whatever mode the import happens in (a first kernel call under ``torch.no_grad()`` imports
    this module)."""
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.tensor([-1.0, 1.0], dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(x.clamp(-1.0, 1.0).sum(), x)
    lower, upper = grad.tolist()
    return lower, upper


CLAMP_GRAD_AT_LOWER, CLAMP_GRAD_AT_UPPER = (tl.constexpr(g) for g in torch_clamp_gradients_at_bounds())


@triton.jit
def relu_bumps(x, s, e, r):
    """ReLU-KAN: (a, b, Φ) of inputs ``x`` against interval ends ``s``, ``e`` (broadcast)."""
    a = tl.maximum(e - x, 0.0)
    b = tl.maximum(x - s, 0.0)
    ab = a * b
    return a, b, r * ab * ab


@triton.jit
def _cardinal(u, K: tl.constexpr):
    """N_K(u), the cardinal B-spline of order K (support [0, K+1)), in closed form (module docstring)."""
    v = tl.minimum(u, K + 1 - u)
    total = tl.zeros_like(u)
    binom = 1.0
    sign = 1.0
    factorial = 1.0
    for m in tl.static_range(K + 2):
        d = tl.maximum(v - m, 0.0)
        power = tl.where(v >= m, 1.0, 0.0)
        for _ in tl.static_range(K):
            power = power * d
        total += sign * binom * power
        binom = binom * (K + 1 - m) / (m + 1)
        sign = -sign
    for q in tl.static_range(1, K + 1):
        factorial = factorial * q
    return tl.where((u >= 0.0) & (u < K + 1), total / factorial, 0.0)


@triton.jit
def _spline_argument(x, j, t0, h):
    """u = (x − t_b)/h for the B-spline of feature j ≥ 1 (basis b = j − 1, knot t_b = t0 + b·h)."""
    return (x - (t0 + (j - 1) * h)) / h


@triton.jit
def _squashed(x):
    """t = tanh(clamp(x, −1, 1)) as (1 − e)/(1 + e)·sign, e = exp(−2|c|): no cancellation near 0."""
    c = tl.minimum(tl.maximum(x, -1.0), 1.0)
    e = tl.exp(-2.0 * tl.abs(c))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(c < 0.0, -t, t)


@triton.jit
def _chebyshev(t, n, DEGREE: tl.constexpr):
    """T_n(t) for orders ``n`` ≤ DEGREE (a tensor or a scalar), by the recurrence."""
    previous = tl.zeros_like(t) + 1.0
    current = t
    out = tl.where(n == 0, previous, t)
    for m in tl.static_range(2, DEGREE + 1):
        following = 2.0 * t * current - previous
        out = tl.where(n == m, following, out)
        previous = current
        current = following
    return out


@triton.jit
def _chebyshev_slope(t, n, DEGREE: tl.constexpr):
    """∂T_n/∂t = n·U_{n−1}(t) for orders ``n`` ≤ DEGREE."""
    previous = tl.zeros_like(t)  # U_{-1}
    current = tl.zeros_like(t) + 1.0  # U_0
    out = tl.zeros_like(t)
    for m in tl.static_range(1, DEGREE + 1):
        out = tl.where(n == m, m * current, out)
        following = 2.0 * t * current - previous
        previous = current
        current = following
    return out


@triton.jit
def basis(x, j, t0, h, FAMILY: tl.constexpr, ORDER: tl.constexpr):
    """Φ_j(x) of feature j ≥ 1 (a tensor or a scalar) of the BSPLINE, CHEBY or FOURIER family."""
    if FAMILY == 1:
        phi = _cardinal(_spline_argument(x, j, t0, h), ORDER)
    elif FAMILY == 2:
        phi = _chebyshev(_squashed(x), j - 1, ORDER)
    else:
        f = tl.where(j > ORDER, j - ORDER, j).to(tl.float32)
        phi = tl.where(j > ORDER, tl.sin(f * x), tl.cos(f * x))
    return phi


@triton.jit
def basis_slope(x, j, t0, h, FAMILY: tl.constexpr, ORDER: tl.constexpr):
    """∂Φ_j/∂x of feature j ≥ 1 (a scalar) of the BSPLINE, CHEBY or FOURIER family."""
    if FAMILY == 1:
        u = _spline_argument(x, j, t0, h)
        slope = (_cardinal(u, ORDER - 1) - _cardinal(u - 1.0, ORDER - 1)) / h
    elif FAMILY == 2:
        t = _squashed(x)
        clamp_grad = tl.where((x > -1.0) & (x < 1.0), 1.0, 0.0)
        clamp_grad = tl.where(x == -1.0, CLAMP_GRAD_AT_LOWER, clamp_grad)
        clamp_grad = tl.where(x == 1.0, CLAMP_GRAD_AT_UPPER, clamp_grad)
        slope = tl.where(clamp_grad != 0.0, _chebyshev_slope(t, j - 1, ORDER) * (1.0 - t * t) * clamp_grad, 0.0)
    else:
        f = tl.where(j > ORDER, j - ORDER, j).to(tl.float32)
        slope = tl.where(j > ORDER, f * tl.cos(f * x), -f * tl.sin(f * x))
    return slope

