"""Function fitting from the KAN paper (Liu et al. 2024, §3 and the Feynman set), generated on the fly."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from kanbench.data.splits import Split

# name -> (number of variables, f(x) with x of shape (N, n_vars))
FORMULAS: dict[str, tuple[int, Callable[[torch.Tensor], torch.Tensor]]] = {
    "exp_sin_sq": (2, lambda x: torch.exp(torch.sin(math.pi * x[:, 0]) + x[:, 1] ** 2)),
    "product": (2, lambda x: x[:, 0] * x[:, 1]),
    # KAN paper eq. (3.3): a 4-variable composition
    "exp_sin_4d": (4, lambda x: torch.exp(0.5 * (torch.sin(math.pi * (x[:, 0] ** 2 + x[:, 1] ** 2))
                                                 + torch.sin(math.pi * (x[:, 2] ** 2 + x[:, 3] ** 2))))),
    # Feynman I.12.11-style distance: sqrt(x1² + x2² + x3²)
    "norm_3d": (3, lambda x: torch.sqrt((x ** 2).sum(dim=1))),
}


def kan_fit(formula: str, seed: int = 0, n_train: int = 1000, n_val: int = 500, n_test: int = 1000) -> Split:
    """Inputs uniform in [-1, 1]^n (the KAN paper's range), targets f(x) of shape (N, 1)."""
    if formula not in FORMULAS:
        raise ValueError(f"unknown kan-fit formula '{formula}'; formulas: {', '.join(FORMULAS)}.")
    n_vars, f = FORMULAS[formula]
    g = torch.Generator().manual_seed(1000 + seed)
    parts = []
    for n in (n_train, n_val, n_test):
        x = torch.rand(n, n_vars, generator=g) * 2 - 1
        parts.append((x, f(x).unsqueeze(1)))
    return Split(*parts)
