"""``cheby_kan``: a Chebyshev-polynomial KAN layer, in the formulation ikan ships (``ChebyKANLinear``).

SS et al., "Chebyshev Polynomial-Based Kolmogorov-Arnold Networks" (arXiv 2405.07200) replace the B-splines by
Chebyshev polynomials of the first kind of a squashed input. The layer measured here is the one people install
(pip ``ikan``), which adds a SiLU base path and a bias, and clamps before squashing:

    t_i = tanh(clamp(x_i, -1, 1)),   T_n(t) = cos(n · arccos t),   n = 0 .. D
    y   = W_base · SiLU(x) + Σ_{i,n} C[o, i, n] · T_n(t_i) + b

The clamp keeps t within ±tanh(1) ≈ ±0.76, away from arccos's infinite slope at ±1; it also makes the polynomial
part constant (and its input gradient 0) for |x| > 1, so inputs belong roughly in [-1, 1]. Parameters:
d_out·d_in·(D+2) + d_out (D = 5: 7 per edge). ``kanbench/peers/ikan.py`` registers ikan's layer as the ``ikan``
impl, checked against this reference by the gate.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kanbench.costs import SILU, Cost
from kanbench.preparation import MINMAX_SYMMETRIC, STANDARDIZE
from kanbench.variants.precision import upcast
from kanbench.variants.two_layer import register_layer_variant

DEFAULTS = {"degree": 5, "scale_base": 1.0, "scale_cheby": 1.0}


def validate(d_in: int, d_out: int, degree: int = 5, **_: float) -> None:
    if not isinstance(degree, int) or degree < 0:
        raise ValueError(f"cheby_kan: degree must be an integer >= 0, got {degree!r}.")


def edge_inputs(**_: object) -> list[float]:
    """The clamp's corners at ±1 and points beyond them, where the polynomial part turns constant."""
    return [-2.0, -1.0, 0.0, 1.0, 2.0]


class ChebyKANLayer(nn.Module):
    """``y = W_base·SiLU(x) + C · T(tanh(clamp(x, -1, 1))) + b`` (see the module docstring)."""

    def __init__(self, d_in: int, d_out: int, degree: int = 5, scale_base: float = 1.0,
                 scale_cheby: float = 1.0) -> None:
        super().__init__()
        self.d_in, self.d_out, self.degree = d_in, d_out, degree
        self.base_weight = nn.Parameter(torch.empty(d_out, d_in))
        self.cheby_coeffs = nn.Parameter(torch.empty(d_out, d_in, degree + 1))
        self.bias = nn.Parameter(torch.empty(d_out))
        # ikan's initialisation: kaiming-normal base weights, coefficients N(0, scale²/d_in), bias N(0, 1/d_in)
        nn.init.kaiming_normal_(self.base_weight, a=math.sqrt(5) * scale_base)
        nn.init.normal_(self.cheby_coeffs, 0.0, scale_cheby / math.sqrt(d_in))
        nn.init.normal_(self.bias, 0.0, 1 / math.sqrt(d_in))

    def polynomials(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d_in) → (N, d_in, D+1): ``T_n(tanh(clamp(x)))`` by the trigonometric definition, in x's dtype;
        evaluated in fp32 for 16-bit x (:mod:`kanbench.variants.precision`): θ and n·θ, each rounded in bf16, would
        put up to 0.07 rad into the cosine's argument at n = 5."""
        (wide,) = upcast(x)
        theta = torch.acos(torch.tanh(wide.clamp(-1.0, 1.0)))
        orders = torch.arange(self.degree + 1, device=x.device, dtype=wide.dtype)
        return torch.cos(theta.unsqueeze(-1) * orders).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in)
        chebyshev = F.linear(self.polynomials(x).flatten(1), self.cheby_coeffs.flatten(1), self.bias)
        return (F.linear(F.silu(x), self.base_weight) + chebyshev).reshape(*lead, self.d_out)


def layer_cost(d_in: int, d_out: int, degree: int = 5, **_: float) -> Cost:
    n = degree + 1
    params = d_out * d_in * (n + 1) + d_out
    matmul = 2 * d_in * d_out * (n + 1)
    # per input: SiLU, clamp, tanh, arccos; per (input, order): the product and the cosine; per output: bias, add
    elementwise = d_in * (SILU + 3) + 2 * d_in * n + 2 * d_out
    return Cost(params, matmul, elementwise)


ChebyKANBlock = register_layer_variant(
    "cheby_kan",
    layer=ChebyKANLayer,
    layer_cost=layer_cost,
    description="Chebyshev KAN as ikan ships it: W_base·SiLU(x) + C·T_n(tanh(clamp(x))) + b",
    paper="SS et al. 2024, Chebyshev Polynomial-Based KANs (arXiv 2405.07200); the ikan formulation",
    defaults=DEFAULTS,
    validate=validate,
    edge_inputs=edge_inputs,
    # the clamp at ±1 flattens the polynomial part outside [-1, 1]: min-max there first, standardized second
    preparations=(MINMAX_SYMMETRIC, STANDARDIZE),
)
