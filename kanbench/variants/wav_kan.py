"""``wav_kan``: a wavelet KAN layer (Wav-KAN), in the formulation ikan ships (``WaveletKANLinear``, Mexican hat).

Bozorgasl & Chen, "Wav-KAN: Wavelet Kolmogorov-Arnold Networks" (arXiv 2405.12832): every edge (o, i) carries a
wavelet with its own scale s and translation t, weighted by w; ikan adds a SiLU base path and a bias:

    u_oi = (x_i − t_oi) / s_oi,   ψ(u) = (u² − 1)·exp(−u²/2)
    y_o  = Σ_i W_base[o, i]·SiLU(x_i) + Σ_i w_oi·ψ(u_oi) + b_o

ψ is the Mexican hat up to its sign and normalising constant (w absorbs both). Unlike the basis-expansion KANs, the
edge functions do not factor into bases of x_i times weights: every token evaluates d_in·d_out wavelets, so the
layer is elementwise work of order tokens·d_in·d_out (and as much memory for the backward) beside one matmul.
Initialised as ikan: s = 1, t = 0, w ~ U(±scale/√d_in). Parameters: 4·d_in·d_out + d_out.
``kanbench/peers/ikan.py`` registers ikan's layer as the ``ikan`` impl, checked against this reference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kanbench.costs import SILU, Cost
from kanbench.preparation import MINMAX_SYMMETRIC, STANDARDIZE
from kanbench.variants.two_layer import register_layer_variant

DEFAULTS = {"scale_base": 1.0, "scale_wavelet": 1.0}
WAVELET_FLOPS = 9  # per edge: subtract, divide, square, minus 1, times -1/2, exp, product, weight, sum


def validate(d_in: int, d_out: int, **_: float) -> None:
    """Any positive widths (checked by the registry); no hyperparameter constrains the shapes."""


class WavKANLayer(nn.Module):
    """``y = W_base·SiLU(x) + Σ_i w·ψ((x_i − t)/s) + b`` (see the module docstring)."""

    def __init__(self, d_in: int, d_out: int, scale_base: float = 1.0, scale_wavelet: float = 1.0) -> None:
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        self.base_weight = nn.Parameter(torch.empty(d_out, d_in))
        self.wavelet_weights = nn.Parameter(torch.empty(d_out, d_in))
        self.scale = nn.Parameter(torch.ones(d_out, d_in))
        self.translation = nn.Parameter(torch.zeros(d_out, d_in))
        self.bias = nn.Parameter(torch.empty(d_out))
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5) * scale_base)
        bound = scale_wavelet / math.sqrt(d_in)
        nn.init.uniform_(self.wavelet_weights, -bound, bound)
        nn.init.uniform_(self.bias, -1 / math.sqrt(d_in), 1 / math.sqrt(d_in))

    def wavelets(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d_in) → (N, d_out): ``Σ_i w_oi·ψ(u_oi)``, every edge's wavelet evaluated."""
        u = (x.unsqueeze(1) - self.translation) / self.scale  # (N, d_out, d_in)
        u2 = u * u
        psi = (u2 - 1) * torch.exp(-0.5 * u2)
        return (psi * self.wavelet_weights).sum(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in)
        y = F.linear(F.silu(x), self.base_weight, self.bias) + self.wavelets(x)
        return y.reshape(*lead, self.d_out)


def token_state(d_in: int, d_out: int, **_: float) -> int:
    """Numbers per token the reference keeps for its backward: autograd saves five (d_out, d_in) tensors per token
    (counted with saved_tensors_hooks), and the backward's gradients of them add about three more at its peak."""
    return 8 * d_in * d_out


def layer_cost(d_in: int, d_out: int, **_: float) -> Cost:
    params = 4 * d_in * d_out + d_out
    elementwise = d_in * SILU + WAVELET_FLOPS * d_in * d_out + 2 * d_out  # + the bias and the final add
    return Cost(params, 2 * d_in * d_out, elementwise)


WavKANBlock = register_layer_variant(
    "wav_kan",
    layer=WavKANLayer,
    layer_cost=layer_cost,
    description="Wav-KAN as ikan ships it: W_base·SiLU(x) + Σ w·ψ((x−t)/s) + b, Mexican-hat wavelet per edge",
    paper="Bozorgasl & Chen 2024, Wav-KAN (arXiv 2405.12832); the ikan formulation",
    defaults=DEFAULTS,
    validate=validate,
    preparations=(STANDARDIZE, MINMAX_SYMMETRIC),
    token_state=token_state,
)
