"""``bspline_kan``: the B-spline KAN layer in the efficient-kan formulation.

Liu et al., "KAN: Kolmogorov-Arnold Networks" (arXiv 2404.19756), reformulated as in efficient-kan (KANLinear) so
the bases are computed once per input coordinate, not once per edge:

    y = W_base · SiLU(x) + W_spline' · B(x),   W_spline'[o, i, :] = W_spline[o, i, :] · s[o, i]

``B(x)`` holds the G+k B-spline bases of order k of every input coordinate on the uniform grid with k extra knots
each side, ``t_j = lo + (j - k)·h``, ``j = 0 .. G+2k``, ``h = (hi - lo)/G``, evaluated with Cox–de Boor:

    B_j^0(x) = 1[t_j <= x < t_{j+1}]
    B_j^p(x) = (x - t_j)/(t_{j+p} - t_j) · B_j^{p-1}(x) + (t_{j+p+1} - x)/(t_{j+p+1} - t_{j+1}) · B_{j+1}^{p-1}(x)

Parameters: d_out·d_in·(G+k) spline + d_out·d_in base + d_out·d_in scaler, no bias (10·d_in·d_out at G=5, k=3).
Outside the grid range the bases vanish and only the SiLU base path remains. The grid update from data and the
L1/entropy regulariser of efficient-kan are not part of the benchmark.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kanbench.costs import ELEMENTWISE, SILU, Cost
from kanbench.preparation import MINMAX_SYMMETRIC, Preparation
from kanbench.variants.precision import upcast
from kanbench.variants.two_layer import register_layer_variant

DEFAULTS = {"grid_size": 5, "spline_order": 3, "grid_range": (-1.0, 1.0), "scale_noise": 0.1, "scale_base": 1.0,
            "scale_spline": 1.0}


def validate(d_in: int, d_out: int, grid_size: int = 5, spline_order: int = 3,
             grid_range: tuple[float, float] = (-1.0, 1.0), **_: float) -> None:
    if not isinstance(grid_size, int) or grid_size < 1:
        raise ValueError(f"bspline_kan: grid_size must be an integer >= 1, got {grid_size!r}.")
    if not isinstance(spline_order, int) or spline_order < 1:
        raise ValueError(f"bspline_kan: spline_order must be an integer >= 1, got {spline_order!r}.")
    lo, hi = grid_range
    if not lo < hi:
        raise ValueError(f"bspline_kan: grid_range must be (lo, hi) with lo < hi, got {grid_range!r}.")


def make_grid(d_in: int, grid_size: int, spline_order: int, grid_range: tuple[float, float]) -> torch.Tensor:
    """Uniform knots extended by ``spline_order`` each side, one row per input coordinate: (d_in, G+2k+1)."""
    lo, hi = grid_range
    h = (hi - lo) / grid_size
    knots = lo + (torch.arange(grid_size + 2 * spline_order + 1, dtype=torch.float64) - spline_order) * h
    return knots.expand(d_in, -1).contiguous()


def bspline_bases(x: torch.Tensor, grid: torch.Tensor, spline_order: int) -> torch.Tensor:
    """Cox–de Boor: (..., d_in) inputs on a (d_in, G+2k+1) grid → (..., d_in, G+k) basis values."""
    x = x.unsqueeze(-1)
    bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)
    for p in range(1, spline_order + 1):
        left = (x - grid[:, : -(p + 1)]) / (grid[:, p:-1] - grid[:, : -(p + 1)]) * bases[..., :-1]
        right = (grid[:, p + 1 :] - x) / (grid[:, p + 1 :] - grid[:, 1:-p]) * bases[..., 1:]
        bases = left + right
    return bases


def edge_inputs(grid_size: int = 5, spline_order: int = 3, grid_range: tuple[float, float] = (-1.0, 1.0),
                **_: float) -> list[float]:
    """Every knot (the bases change polynomial piece there), the extended grid's ends and beyond them."""
    knots = make_grid(1, grid_size, spline_order, grid_range)[0].tolist()
    return knots + [knots[0] - 1.0, knots[-1] + 1.0]


class BSplineKANLayer(nn.Module):
    """``y = W_base · SiLU(x) + (W_spline ⊙ s) · B(x)``: one KAN layer d_in → d_out (see the module docstring)."""

    def __init__(self, d_in: int, d_out: int, grid_size: int = 5, spline_order: int = 3,
                 grid_range: tuple[float, float] = (-1.0, 1.0), scale_noise: float = 0.1, scale_base: float = 1.0,
                 scale_spline: float = 1.0) -> None:
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        self.grid_size, self.spline_order = grid_size, spline_order
        self.register_buffer("grid", make_grid(d_in, grid_size, spline_order, grid_range).float())
        self.base_weight = nn.Parameter(torch.empty(d_out, d_in))
        self.spline_weight = nn.Parameter(torch.empty(d_out, d_in, grid_size + spline_order))
        self.spline_scaler = nn.Parameter(torch.empty(d_out, d_in))
        self.reset_parameters(scale_noise, scale_base, scale_spline)

    @torch.no_grad()
    def reset_parameters(self, scale_noise: float, scale_base: float, scale_spline: float) -> None:
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5) * scale_base)
        # W_spline: least-squares fit of small uniform noise at the G+1 grid points inside the range (efficient-kan).
        k, grid = self.spline_order, self.grid.double()
        points = grid[:, k:-k].T  # (G+1, d_in)
        noise = (torch.rand(self.grid_size + 1, self.d_in, self.d_out, dtype=torch.float64) - 0.5)
        noise *= scale_noise / self.grid_size
        bases = bspline_bases(points, grid, k).transpose(0, 1)  # (d_in, G+1, G+k)
        coeff = torch.linalg.lstsq(bases, noise.transpose(0, 1)).solution  # (d_in, G+k, d_out)
        self.spline_weight.copy_(coeff.permute(2, 0, 1))
        nn.init.kaiming_uniform_(self.spline_scaler, a=math.sqrt(5) * scale_spline)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in)
        base = F.linear(F.silu(x), self.base_weight)
        # the bases in fp32 for 16-bit x (kanbench.variants.precision), rounded once for the matmul
        (wide,) = upcast(x)
        bases = bspline_bases(wide, self.grid.to(wide.dtype), self.spline_order).reshape(x.shape[0], -1).to(x.dtype)
        weight = (self.spline_weight * self.spline_scaler.unsqueeze(-1)).reshape(self.d_out, -1)
        return (base + F.linear(bases, weight)).reshape(*lead, self.d_out)


def bases_elementwise_flops(grid_size: int, spline_order: int) -> int:
    """Per input coordinate: order 0 is two compares and an and over G+2k intervals; order p adds
    (sub, div, mul) twice and one add over its G+2k-p bases. Knot differences are per call, not per token."""
    n0 = grid_size + 2 * spline_order
    per_order = 2 * 3 * ELEMENTWISE["mul"] + ELEMENTWISE["add"]
    return 3 * n0 + sum(per_order * (n0 - p) for p in range(1, spline_order + 1))


def layer_cost(d_in: int, d_out: int, grid_size: int = 5, spline_order: int = 3, **_: object) -> Cost:
    n_bases = grid_size + spline_order
    params = d_out * d_in * (n_bases + 2)
    matmul = 2 * d_in * d_out + 2 * d_in * n_bases * d_out
    elementwise = d_in * (SILU + bases_elementwise_flops(grid_size, spline_order)) + d_out  # + the final add
    return Cost(params, matmul, elementwise)


BSplineKANBlock = register_layer_variant(
    "bspline_kan",
    layer=BSplineKANLayer,
    layer_cost=layer_cost,
    description="B-spline KAN, efficient-kan formulation: W_base·SiLU(x) + W_spline·B(x)",
    paper="Liu et al. 2024, KAN: Kolmogorov-Arnold Networks (arXiv 2404.19756)",
    defaults=DEFAULTS,
    validate=validate,
    edge_inputs=edge_inputs,
    # The grid must cover the data: min-max onto the default grid range (-1, 1), or standardized inputs with a grid
    # over (-3, 3) (±3 std); outside the grid only the SiLU base term is left (efficient-kan's linear tails).
    preparations=(MINMAX_SYMMETRIC, Preparation("standardize", layer_hparams={"grid_range": (-3.0, 3.0)})),
)
