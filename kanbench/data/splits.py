"""Train / validation / test splits as tensors, disjoint by construction."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Split:
    """(inputs, targets) for each of train, val and test."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def three_way(x: torch.Tensor, y: torch.Tensor, val: float, test: float, seed: int) -> Split:
    """A seeded random permutation cut into train / val / test (fractions of the whole)."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val, n_test = round(val * len(x)), round(test * len(x))
    test_idx, val_idx, train_idx = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return Split((x[train_idx], y[train_idx]), (x[val_idx], y[val_idx]), (x[test_idx], y[test_idx]))


def standardized(split: Split, eps: float = 0.1) -> Split:
    """Each input feature centred and scaled by the training set's mean and std (+ eps for near-constant pixels);
    validation and test use the same statistics."""
    mean, std = split.train[0].mean(0), split.train[0].std(0) + eps

    def scale(part: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return (part[0] - mean) / std, part[1]

    return Split(scale(split.train), scale(split.val), scale(split.test))
