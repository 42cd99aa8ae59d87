"""AF-KAN's activations, feature functions func(a, b) and features R for the Triton kernels, with their
derivatives, in fp32.
Ids (constexprs) follow kanbench/variants/af_kan.py's ACTIVATIONS and FUNCS; each branch is the torch function of
the same name (SiLU x·σ(x), GELU with erf, softplus with torch's threshold 20)."""

import triton
import triton.language as tl

ACTIVATIONS = {"silu": 0, "relu": 1, "gelu": 2, "sigmoid": 3, "tanh": 4, "softplus": 5}
FUNCS = {"quad1": 0, "quad2": 1, "sum": 2, "prod": 3, "sum_prod": 4, "cubic1": 5, "cubic2": 6}


@triton.jit
def act(x, ACT: tl.constexpr):
    if ACT == 0:
        y = x / (1.0 + tl.exp(-x))
    elif ACT == 1:
        y = tl.maximum(x, 0.0)
    elif ACT == 2:
        y = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
    elif ACT == 3:
        y = 1.0 / (1.0 + tl.exp(-x))
    elif ACT == 4:
        y = 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)
    else:  # softplus, torch's threshold 20
        y = tl.where(x > 20.0, x, tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x))))
    return y


@triton.jit
def act_grad(x, ACT: tl.constexpr):
    """act'(x), taking autograd's value at ReLU's kink (0)."""
    if ACT == 0:
        sigma = 1.0 / (1.0 + tl.exp(-x))
        d = sigma * (1.0 + x * (1.0 - sigma))
    elif ACT == 1:
        d = tl.where(x > 0.0, 1.0, 0.0)
    elif ACT == 2:  # Φ(x) + x·φ(x)
        d = 0.5 * (1.0 + tl.math.erf(x * 0.7071067811865476)) + x * tl.exp(-0.5 * x * x) * 0.3989422804014327
    elif ACT == 3:
        sigma = 1.0 / (1.0 + tl.exp(-x))
        d = sigma * (1.0 - sigma)
    elif ACT == 4:
        t = 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)
        d = 1.0 - t * t
    else:
        d = tl.where(x > 20.0, 1.0, 1.0 / (1.0 + tl.exp(-x)))
    return d


@triton.jit
def feature_func(a, b, FUNC: tl.constexpr):
    """func(a, b) and its partial derivatives (∂/∂a, ∂/∂b)."""
    if FUNC == 0:  # quad1 (a·b)²
        ab = a * b
        f, fa, fb = ab * ab, 2.0 * ab * b, 2.0 * ab * a
    elif FUNC == 1:  # quad2 a·b + a² + b²
        f, fa, fb = a * b + a * a + b * b, b + 2.0 * a, a + 2.0 * b
    elif FUNC == 2:  # sum
        f, fa, fb = a + b, tl.full(a.shape, 1.0, tl.float32), tl.full(a.shape, 1.0, tl.float32)
    elif FUNC == 3:  # prod
        f, fa, fb = a * b, b, a
    elif FUNC == 4:  # sum_prod a + b + a·b
        f, fa, fb = a + b + a * b, 1.0 + b, 1.0 + a
    elif FUNC == 5:  # cubic1 (a + b)(a² + b²)
        sq = a * a + b * b
        f, fa, fb = (a + b) * sq, sq + 2.0 * a * (a + b), sq + 2.0 * b * (a + b)
    else:  # cubic2 (a·b)³
        ab = a * b
        f, fa, fb = ab * ab * ab, 3.0 * ab * ab * b, 3.0 * ab * ab * a
    return f, fa, fb


@triton.jit
def feature(x, s_ptr, e_ptr, j, ACT: tl.constexpr, FUNC: tl.constexpr):
    """R_ij = func(act(x − s_j), act(e_j − x)) for basis j (what passes that need no derivative evaluate)."""
    r, _, _ = feature_func(act(x - tl.load(s_ptr + j).to(tl.float32), ACT),
                           act(tl.load(e_ptr + j).to(tl.float32) - x, ACT), FUNC)
    return r


@triton.jit
def features(x, s_ptr, e_ptr, j, ACT: tl.constexpr, FUNC: tl.constexpr):
    """R_ij = func(act(u), act(v)) for basis j, u = x − s_j, v = e_j − x, and (∂R/∂u, ∂R/∂v)."""
    u = x - tl.load(s_ptr + j).to(tl.float32)
    v = tl.load(e_ptr + j).to(tl.float32) - x
    r, ra, rb = feature_func(act(u, ACT), act(v, ACT), FUNC)
    return r, ra * act_grad(u, ACT), rb * act_grad(v, ACT)
