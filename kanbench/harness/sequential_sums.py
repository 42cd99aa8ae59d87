"""Run torch code with every floating-point ``sum`` rounded as a sequential fp32 loop would round it.

The correctness gate's tolerance is the reference's own error, and torch's CPU ``sum`` adds pairwise, whose
rounding error grows like √(log n) with the number of terms; a kernel or an inductor loop that adds one term after
another into an fp32 accumulator errs like √n, and on a sum that cancels (AF-KAN's interval ends and τ: the
gradient of a broadcast parameter is such a sum over every token and input) that is tens of times the reference's
error with nothing wrong. So the gate also runs the reference once under :class:`SequentialSums` and allows the
larger error.

The model: a loop adding x_1 … x_n keeps each partial sum S_k in its fp32 accumulator, rounding it by at most
u·|S_k| (u = 2⁻²⁴), so its error is Σ_{k≥2} δ_k·S_k with |δ_k| ≤ u. Taking each step at that full bound with an
unknown sign, the error's standard deviation is σ = u·√(Σ_{k≥2} S_k²); the sum is returned moved by σ (in the
direction fp32 rounds the exact total), computed from float64 partial sums, then rounded to its dtype. A scale,
not a draw: a single random realisation would itself come out small now and then, and the allowance twice it
would then reject a correct loop often (over 40 sums of 4096 cancelling normal terms, a real fp32 loop's error
exceeded twice a drawn realisation's in 12 % of them). Over those sums σ is 2.7× the RMS error of a real fp32
loop (torch's pairwise sum: 0.15×) and the loop's error never exceeded 1.03 σ: twice σ bounds a loop's error by
about 5.5 of its standard deviations. Deterministic: the same inputs give the same result. Accumulation is fp32
for every dtype below float64, as in torch and in kanbench's kernels; float64 sums are left alone. Only
``aten.sum`` is replaced (the reduction autograd uses for a broadcast parameter's gradient); matmuls and fused
reductions such as LayerNorm's keep their own, blocked, order.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ACCUMULATOR_UNIT_ROUNDOFF = 2.0**-24  # u of fp32, the accumulator of every sum below float64
_SUMS = (torch.ops.aten.sum.default, torch.ops.aten.sum.dim_IntList)


def sequential_sum(x: torch.Tensor, dims: list[int] | None = None, keepdim: bool = False,
                   dtype: torch.dtype | None = None) -> torch.Tensor:
    """``x.sum(dims, keepdim, dtype=dtype)`` moved by the rounding a loop over the reduced elements (row-major
    order) into an fp32 accumulator may make: one standard deviation of it, every step at the full bound."""
    rank = x.dim()
    reduced = sorted({d % rank for d in dims}) if dims else list(range(rank))
    kept = [d for d in range(rank) if d not in reduced]
    terms = x.permute(*kept, *reduced).reshape(*[x.shape[d] for d in kept], -1).double()
    partial = terms.cumsum(-1)
    exact = partial[..., -1]
    sigma = ACCUMULATOR_UNIT_ROUNDOFF * partial[..., 1:].square().sum(-1).sqrt()  # the first term enters unrounded
    direction = torch.where(exact.float().double() < exact, -1.0, 1.0)
    total = exact + direction * sigma
    if keepdim:
        total = total.reshape([1 if d in reduced else x.shape[d] for d in range(rank)])
    return total.to(dtype or x.dtype)


class SequentialSums(TorchDispatchMode):
    """Within this mode every ``torch.sum`` of a floating tensor below float64, forward and backward, is
    :func:`sequential_sum`."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        x = args[0] if args else None
        dtype = kwargs.get("dtype") or (x.dtype if isinstance(x, torch.Tensor) else None)
        if (func not in _SUMS or not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() == 0
                or x.numel() == 0 or torch.float64 in (x.dtype, dtype)):
            return func(*args, **kwargs)
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
        return sequential_sum(x, list(dims) if dims else None, bool(keepdim), dtype)
