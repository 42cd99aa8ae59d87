"""``spark_ffn``: the Spark Transformer's sparse FFN with statistical top-k.

You et al., "Spark Transformer: Reactivating Sparsity in FFN and Attention" (arXiv 2506.06644, NeurIPS 2025).

Statistical top-k of a row z of length d with target k (no sort, ~2d FLOPs): with the population mean and std,

    θ = mean(z) + std(z) · Q(1 - k/d),   StatTopk_k(z) = max(z - θ, 0)

where Q is the standard-normal quantile (Q(0.92) = 1.4051 for 8 % active). Its gradient, autodiff through the mean
and std as the public code does, with m = 1[z > θ], g the upstream gradient, G = Σ g·m, c = Q(1 - k/d), σ = std:

    dz_j = g_j·m_j - G·(1/d + c·(z_j - μ)/(d·σ))

The FFN, for input q of size d_model, one first-layer matrix K (d_model × d_ff) split by input rows at r, and the
down projection V (d_model × d_ff):

    y = V · [ GELU(StatTopk_k(K1ᵀ q[:r])) ⊙ (K2ᵀ q[r:]) ],   K1 = K[:r, :],  K2 = K[r:, :]

The predictor ``K1ᵀ q[:r]`` costs r·d_ff multiply-adds; only the ~k selected neurons need ``K2ᵀ q[r:]`` and V's
rows: effective FLOPs per token ≈ 2·(r·d_ff + (d_model - r)·k + d_model·k). This reference computes all of it
densely (GELU(0) = 0 zeroes the unselected neurons); the sparse decode kernels skip the zeros.
Defaults (Gemma-2 2B): d_ff = 13824 (parameter-matched to a 9216-wide gated FFN), k = 8 % of d_ff, r = 1024; for
other widths keep k/d_ff = 8 % and r = d_model // 2 (``r=None``).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
import torch.nn.functional as F
from torch import nn

from kanbench.costs import ELEMENTWISE, GELU, REDUCTION, Cost
from kanbench.registry import register

DEFAULTS = {"k_fraction": 0.08, "r": None}


def resolve_r(d_model: int, r: int | None) -> int:
    return d_model // 2 if r is None else r


def active_count(d_hidden: int, k_fraction: float) -> int:
    """Target number of active neurons k = round(k_fraction · d_ff)."""
    return round(k_fraction * d_hidden)


def validate(d_model: int, d_hidden: int, k_fraction: float = 0.08, r: int | None = None) -> None:
    if not 0.0 < k_fraction < 1.0:
        raise ValueError(f"spark_ffn: k_fraction must be in (0, 1) (k = k_fraction·d_ff), got {k_fraction!r}.")
    k = active_count(d_hidden, k_fraction)
    if not 1 <= k < d_hidden:
        raise ValueError(f"spark_ffn: k = round({k_fraction}·{d_hidden}) = {k} must satisfy 1 <= k < d_ff={d_hidden}; "
                         f"raise d_hidden or k_fraction.")
    rr = resolve_r(d_model, r)
    if not isinstance(rr, int) or not 1 <= rr < d_model:
        raise ValueError(f"spark_ffn: r (predictor rows) must be an integer with 1 <= r < d_model={d_model}, "
                         f"got {rr!r}.")


@torch.compiler.assume_constant_result  # a function of the shapes alone: no graph break in the compiled impl
def quantile_factor(k: int, d: int) -> float:
    """c = Q(1 - k/d), the standard-normal quantile of the kept fraction."""
    return NormalDist().inv_cdf(1.0 - k / d)


def statistical_threshold(z: torch.Tensor, k: int) -> torch.Tensor:
    """θ = mean + std·Q(1 - k/d) over the last dim (population std), kept as a (..., 1) column."""
    var, mean = torch.var_mean(z, dim=-1, keepdim=True, correction=0)
    return mean + var.sqrt() * quantile_factor(k, z.shape[-1])


def statistical_topk(z: torch.Tensor, k: int) -> torch.Tensor:
    """Soft threshold ``max(z - θ, 0)`` over the last dim, θ = :func:`statistical_threshold`."""
    return F.relu(z - statistical_threshold(z, k))


class StatisticalTopK(torch.autograd.Function):
    """Statistical top-k with the hand-written backward of the module docstring (what the kernels implement)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, k: int) -> torch.Tensor:  # type: ignore[override]
        c = quantile_factor(k, z.shape[-1])
        var, mean = torch.var_mean(z, dim=-1, keepdim=True, correction=0)
        std = var.sqrt()
        out = F.relu(z - (mean + std * c))
        ctx.save_for_backward(z, mean, std, out)
        ctx.c = c
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        z, mean, std, out = ctx.saved_tensors
        d = z.shape[-1]
        masked = grad * (out > 0)
        total = masked.sum(dim=-1, keepdim=True)
        return masked - total * (1.0 / d + ctx.c * (z - mean) / (d * std)), None


def stat_topk_elementwise_flops(d: int) -> int:
    """Per row: var_mean (4/elem), z - θ and the ReLU (2/elem); θ itself is per row (negligible, 3 ops)."""
    return REDUCTION["var_mean"] * d + 2 * d + 3


def block_cost(d_model: int, d_hidden: int, k_fraction: float = 0.08, r: int | None = None) -> Cost:
    """Dense cost of the reference (every neuron computed); see :func:`effective_flops` for the sparse one."""
    matmul = 2 * d_model * d_hidden + 2 * d_model * d_hidden  # K (both splits) and V
    elementwise = stat_topk_elementwise_flops(d_hidden) + (GELU + ELEMENTWISE["mul"]) * d_hidden
    return Cost(2 * d_model * d_hidden, matmul, elementwise)


def effective_flops(d_model: int, d_hidden: int, active_fraction: float, r: int | None = None) -> float:
    """Matmul FLOPs per token when only the active neurons' K2 columns and V rows are used (the paper's count)."""
    rr, active = resolve_r(d_model, r), active_fraction * d_hidden
    return 2.0 * (rr * d_hidden + (d_model - rr) * active + d_model * active)


def op_cost(width: int, k_fraction: float = 0.08, r: int | None = None) -> Cost:
    """The statistical top-k alone, per row of ``width`` scores: no parameters, no matmul."""
    return Cost(0, 0, stat_topk_elementwise_flops(width))


class StatisticalTopKOp(nn.Module):
    """The op form: statistical top-k over rows of ``width`` predictor scores (what the fused kernel replaces;
    the training path's only non-matmul work). ``r`` is accepted for the shared hyperparameters and unused."""

    def __init__(self, width: int, k_fraction: float = 0.08, r: int | None = None) -> None:
        super().__init__()
        self.k = active_count(width, k_fraction)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return statistical_topk(z, self.k)


def extra_flop_metrics(form: str, module: nn.Module, x: torch.Tensor,
                       backward: bool) -> list[tuple[str, float, str, str]]:
    """The FLOP harness's Spark rows, measured on the impl's own module (a kernel reports its own counts) and a
    held-out input: the share of (row, neuron) pairs kept, the share of neurons active in some row (what a sparse
    decode path computes), and the matmul FLOPs over the active neurons only."""
    if form != "block":
        return []
    module.track_active = True
    try:
        with torch.no_grad():
            module(x)
        fraction, union = module.last_active_fraction, module.last_union_fraction
    finally:
        module.track_active = False
    rows = x.numel() // x.shape[-1]
    effective = rows * effective_flops(module.d_model, module.d_hidden, fraction, module.r)
    return [("active_fraction", fraction, "fraction", f"target k/d_ff = {module.k / module.d_hidden:.4f}"),
            ("active_union_fraction", union, "fraction",
             f"neurons active in any of the {rows} rows (a sparse path computes these)"),
            ("flops_effective", 3 * effective if backward else effective, "FLOP",
             "matmul FLOPs over the active neurons only")]


@register(
    "spark_ffn",
    description="Spark FFN: statistical top-k over a predictor split of K, gated by the rest",
    paper="You et al. 2025, Spark Transformer (arXiv 2506.06644)",
    block_cost=block_cost,
    defaults=DEFAULTS,
    validate=validate,
    op=StatisticalTopKOp,
    op_cost=op_cost,
    extra_flop_metrics=extra_flop_metrics,
)
class SparkFFN(nn.Module):
    """``y = V · [GELU(StatTopk_k(K1ᵀ q[:r])) ⊙ (K2ᵀ q[r:])]`` (see the module docstring).

    With ``track_active = True``, each forward records the fraction of neurons the threshold kept
    (``last_active_fraction``, over every row) and the fraction active in at least one row of the batch
    (``last_union_fraction``: what a sparse decode path must compute), since the achieved fraction drifts from
    k/d_ff when the predictor's outputs are not Gaussian. It is off by default so that timing and FLOP counting see
    only the FFN's own work; the sparse impls report the union from their own kernels on every call.
    """

    def __init__(self, d_model: int, d_hidden: int, k_fraction: float = 0.08, r: int | None = None) -> None:
        super().__init__()
        self.d_model, self.d_hidden = d_model, d_hidden
        self.r = resolve_r(d_model, r)
        self.k = active_count(d_hidden, k_fraction)
        bound_k, bound_v = 1 / math.sqrt(d_model), 1 / math.sqrt(d_hidden)  # nn.Linear's default ranges
        self.K = nn.Parameter(torch.empty(d_model, d_hidden).uniform_(-bound_k, bound_k))
        self.V = nn.Parameter(torch.empty(d_model, d_hidden).uniform_(-bound_v, bound_v))
        self.track_active = False
        self._active: torch.Tensor | None = None
        self._union_count: torch.Tensor | int | None = None  # neurons active in any row; a device tensor is read lazily

    @property
    def last_active_fraction(self) -> float:
        """Fraction of neurons kept by the last forward with ``track_active`` on (NaN when none was tracked)."""
        return float("nan") if self._active is None else float(self._active)

    @property
    def last_union_fraction(self) -> float:
        """Fraction of neurons active in at least one row of the last tracked (or sparse) forward, else NaN."""
        return float("nan") if self._union_count is None else float(self._union_count) / self.d_hidden

    def _track(self, kept: torch.Tensor) -> None:
        """Record the active and union fractions of a boolean (..., d_ff) mask of kept neurons."""
        self._active = kept.float().mean().detach()
        self._union_count = kept.reshape(-1, self.d_hidden).any(dim=0).sum().detach()

    def needs_gradients(self, q: torch.Tensor) -> bool:
        """Whether this call builds an autograd graph (a sparse path that only does inference must not be taken)."""
        return torch.is_grad_enabled() and (q.requires_grad or self.K.requires_grad or self.V.requires_grad)

    def inference_weight_bytes(self, q: torch.Tensor) -> tuple[int, float]:
        """The fewest weight bytes an inference forward on ``q`` must read, and the union fraction it rests on:
        the predictor K1 (r × d_ff) in full, then only the active neurons' rows of K2ᵀ and Vᵀ, for the neurons
        active in some row of the batch. A dense path reads all of K and V; the latency harness reports this
        floor beside the dense one so that a sparse path is held to what it must read."""
        tracking, self.track_active = self.track_active, True
        try:
            with torch.no_grad():
                SparkFFN.forward(self, q)
            union = self.last_union_fraction
        finally:
            self.track_active = tracking
        active = round(union * self.d_hidden)
        per_neuron = (self.d_model - self.r) + self.d_model  # a row of K2ᵀ and a row of Vᵀ
        return (self.r * self.d_hidden + active * per_neuron) * self.K.element_size(), union

    def topk(self, scores: torch.Tensor) -> torch.Tensor:
        """The statistical top-k of the predictor scores (an impl with a fused kernel overrides this alone)."""
        return statistical_topk(scores, self.k)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        scores = q[..., : self.r] @ self.K[: self.r]  # the predictor K1ᵀ q[:r]
        sparse = self.topk(scores)
        if self.track_active:
            self._track(sparse > 0)
        gate = q[..., self.r :] @ self.K[self.r :]  # K2ᵀ q[r:], dense here
        return (F.gelu(sparse) * gate) @ self.V.T
