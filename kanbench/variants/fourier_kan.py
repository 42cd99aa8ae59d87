"""``fourier_kan``: a Fourier-series KAN layer, in the formulation ikan ships (``FourierKANLinear``).

Each edge's function is a truncated Fourier series of its input (as in FourierKAN, Xu et al., "FourierKAN-GCF",
arXiv 2406.01034), plus ikan's SiLU base path and bias:

    y_o = Σ_i W_base[o, i]·SiLU(x_i) + Σ_{i, f=1..F} (A[o, i, f]·cos(f·x_i) + B[o, i, f]·sin(f·x_i)) + b_o

with the coefficients held as one tensor ``fourier_coeffs`` (2, d_out, d_in, F): [A, B]. Smooth and 2π-periodic in
each input apart from the base path: inputs belong within about ±π (standardized data). Parameters:
d_out·d_in·(2F+1) + d_out (F = 10: 21 per edge). ``kanbench/peers/ikan.py`` registers ikan's layer as the
``ikan`` impl, checked against this reference by the gate.
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

DEFAULTS = {"frequencies": 10, "scale_base": 1.0, "scale_fourier": 1.0}


def validate(d_in: int, d_out: int, frequencies: int = 10, **_: float) -> None:
    if not isinstance(frequencies, int) or frequencies < 1:
        raise ValueError(f"fourier_kan: frequencies must be an integer >= 1, got {frequencies!r}.")


class FourierKANLayer(nn.Module):
    """``y = W_base·SiLU(x) + A·cos(f·x) + B·sin(f·x) + b`` (see the module docstring)."""

    def __init__(self, d_in: int, d_out: int, frequencies: int = 10, scale_base: float = 1.0,
                 scale_fourier: float = 1.0) -> None:
        super().__init__()
        self.d_in, self.d_out, self.frequencies = d_in, d_out, frequencies
        self.base_weight = nn.Parameter(torch.empty(d_out, d_in))
        self.fourier_coeffs = nn.Parameter(torch.empty(2, d_out, d_in, frequencies))
        self.bias = nn.Parameter(torch.empty(d_out))
        # ikan's initialisation: kaiming-uniform base weights, coefficients U(±scale/√d_in), bias U(±1/√d_in)
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5) * scale_base)
        bound = scale_fourier / math.sqrt(d_in)
        nn.init.uniform_(self.fourier_coeffs, -bound, bound)
        nn.init.uniform_(self.bias, -1 / math.sqrt(d_in), 1 / math.sqrt(d_in))

    def harmonics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, d_in) → cos(f·x), sin(f·x), each (N, d_in·F) input-major, in x's dtype. The angle is formed in
        fp32 for 16-bit x (:mod:`kanbench.variants.precision`): rounded to bf16 first, f·x at f = 10, x = 3 would be
        off by up to 0.06 rad."""
        (wide,) = upcast(x)
        angles = wide.unsqueeze(-1) * torch.arange(1, self.frequencies + 1, device=x.device, dtype=wide.dtype)
        return torch.cos(angles).flatten(1).to(x.dtype), torch.sin(angles).flatten(1).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in)
        cosine, sine = self.harmonics(x)
        cosine = F.linear(cosine, self.fourier_coeffs[0].flatten(1), self.bias)
        sine = F.linear(sine, self.fourier_coeffs[1].flatten(1))
        return (F.linear(F.silu(x), self.base_weight) + cosine + sine).reshape(*lead, self.d_out)


def layer_cost(d_in: int, d_out: int, frequencies: int = 10, **_: float) -> Cost:
    params = d_out * d_in * (2 * frequencies + 1) + d_out
    matmul = 2 * d_in * d_out * (2 * frequencies + 1)
    # per input: SiLU; per (input, frequency): the product, cos and sin; per output: bias and two adds
    elementwise = d_in * SILU + 3 * d_in * frequencies + 3 * d_out
    return Cost(params, matmul, elementwise)


FourierKANBlock = register_layer_variant(
    "fourier_kan",
    layer=FourierKANLayer,
    layer_cost=layer_cost,
    description="Fourier KAN as ikan ships it: W_base·SiLU(x) + A·cos(f·x) + B·sin(f·x) + b",
    paper="Xu et al. 2024, FourierKAN-GCF (arXiv 2406.01034); the ikan formulation",
    defaults=DEFAULTS,
    validate=validate,
    preparations=(STANDARDIZE, MINMAX_SYMMETRIC),
)
