"""MNIST-1D from the ``mnist1d`` package's procedural generator (``make_dataset``), never its downloader."""

from __future__ import annotations

import torch

from kanbench.data.splits import Split


def generated(seed: int = 0, num_samples: int = 5000) -> tuple[torch.Tensor, ...]:
    """The generator's own (x, y, x_test, y_test), 80/20, in its order; ``seed`` 0 is the authors' seed 42."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = 42 + seed
    data = make_dataset(args)
    return (torch.tensor(data["x"], dtype=torch.float32), torch.tensor(data["y"], dtype=torch.long),
            torch.tensor(data["x_test"], dtype=torch.float32), torch.tensor(data["y_test"], dtype=torch.long))


def mnist1d(seed: int = 0, num_samples: int = 5000) -> Split:
    """40-sample 1-D signals, 10 classes. The generator's own train/test split (80/20) is kept; its train part is
    split again 7/8 train, 1/8 validation."""
    x, y, x_test, y_test = generated(seed, num_samples)
    n_val = len(x) // 8
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return Split((x[train_idx], y[train_idx]), (x[val_idx], y[val_idx]), (x_test, y_test))
