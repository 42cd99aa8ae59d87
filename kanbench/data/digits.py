"""scikit-learn's bundled 8×8 digits (1797 images, 10 classes): read from the package, never downloaded."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits

from kanbench.data.splits import Split, three_way


def digits(seed: int = 0) -> Split:
    """Pixels scaled to [0, 1], flattened to 64; 70 / 10 / 20 train / val / test split by ``seed``."""
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    return three_way(x, y, val=0.1, test=0.2, seed=seed)
