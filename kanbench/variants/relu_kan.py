"""``relu_kan``: ReLU-KAN, bases made of ReLUs and a square instead of B-splines.

Qiu et al., "ReLU-KAN: New Kolmogorov-Arnold Networks that Only Need Matrix Addition, Dot Multiplication, and ReLU"
(arXiv 2406.02075). For input coordinate i and basis j = 0 .. G+k-1, with trainable interval ends initialised to
``s_j = (j - k)/G`` and ``e_j = s_j + (k+1)/G``:

    R_ij(x) = [ReLU(e_ij - x_i) · ReLU(x_i - s_ij)]² · r,   r = 16·G⁴/(k+1)⁴

so each bump peaks at 1 at its interval's midpoint. Then ``y = W · vec(R(x)) + b`` with W of shape
(d_out, (G+k)·d_in) in the paper's layout (basis index outer, input index inner: column ``j·d_in + i``).
The intervals cover [-k/G, 1 + k/G]: inputs are expected roughly in [0, 1].
Parameters: d_out·(G+k)·d_in + d_out + 2·d_in·(G+k).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kanbench.costs import Cost, linear_cost
from kanbench.preparation import MINMAX_UNIT, STANDARDIZE
from kanbench.variants.precision import upcast
from kanbench.variants.two_layer import register_layer_variant

DEFAULTS = {"grid_size": 5, "k": 3, "train_intervals": True}


def validate(d_in: int, d_out: int, grid_size: int = 5, k: int = 3, train_intervals: bool = True) -> None:
    if not isinstance(grid_size, int) or grid_size < 1:
        raise ValueError(f"relu_kan: grid_size must be an integer >= 1, got {grid_size!r}.")
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"relu_kan: k must be an integer >= 0, got {k!r}.")


def edge_inputs(grid_size: int = 5, k: int = 3, **_: object) -> list[float]:
    """The interval ends s_j and e_j (a bump's kinks) and points outside [-k/G, 1 + k/G]."""
    ends = [(j - k) / grid_size for j in range(grid_size + 2 * k + 2)]
    return ends + [ends[0] - 1.0, ends[-1] + 1.0]


class ReLUKANLayer(nn.Module):
    """``y = W · vec([ReLU(e - x)·ReLU(x - s)]²·r) + b`` (see the module docstring)."""

    def __init__(self, d_in: int, d_out: int, grid_size: int = 5, k: int = 3, train_intervals: bool = True) -> None:
        super().__init__()
        self.d_in, self.d_out, self.n_bases = d_in, d_out, grid_size + k
        start = (torch.arange(-k, grid_size, dtype=torch.float32) / grid_size).expand(d_in, -1).contiguous()
        end = start + (k + 1) / grid_size
        if train_intervals:  # s and e, each (d_in, G+k)
            self.start, self.end = nn.Parameter(start), nn.Parameter(end)
        else:
            self.register_buffer("start", start)
            self.register_buffer("end", end)
        self.r = 16 * grid_size**4 / (k + 1) ** 4
        # nn.Linear's default init equals the reference Conv2d's: fan_in = (G+k)·d_in.
        self.linear = nn.Linear(self.n_bases * d_in, d_out)

    def bases(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d_in) → (N, G+k, d_in) basis values, basis index outer as in the paper's Conv2d layout, in x's
        dtype; evaluated in fp32 for 16-bit x (:mod:`kanbench.variants.precision`): rounded after each of its five
        ops in bf16, a basis value would carry five roundings of up to 0.2 % each instead of one."""
        wide, start, end = upcast(x.unsqueeze(-1), self.start, self.end)
        bump = F.relu(end - wide) * F.relu(wide - start)  # (N, d_in, G+k)
        return (bump * bump * self.r).transpose(1, 2).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in)
        features = self.bases(x).reshape(x.shape[0], -1)
        return self.linear(features).reshape(*lead, self.d_out)


def layer_cost(d_in: int, d_out: int, grid_size: int = 5, k: int = 3, train_intervals: bool = True) -> Cost:
    n_bases = grid_size + k
    # per (input, basis): two subs, two ReLUs, the product, the square and the scale by r
    bases = Cost(2 * d_in * n_bases if train_intervals else 0, 0, 7 * d_in * n_bases)
    return bases + linear_cost(n_bases * d_in, d_out)


ReLUKANBlock = register_layer_variant(
    "relu_kan",
    layer=ReLUKANLayer,
    layer_cost=layer_cost,
    description="ReLU-KAN: bases [ReLU(e-x)·ReLU(x-s)]²·r, then one matmul",
    paper="Qiu et al. 2024, ReLU-KAN (arXiv 2406.02075)",
    defaults=DEFAULTS,
    validate=validate,
    edge_inputs=edge_inputs,
    input_kind="unit",
    # the bumps cover about [0, 1] (the module docstring): the authors' inputs are scaled there
    preparations=(MINMAX_UNIT, STANDARDIZE),
)
