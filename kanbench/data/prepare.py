"""Applying a :class:`~kanbench.preparation.Preparation` to a split: fitted on the training split only, then applied
unchanged to validation and test. ``minmax`` uses the training set's global min and max rather than per-feature
ones, so that a feature that is constant on the training set (a digit's corner pixel) is not blown up on test;
held-out values may fall a little outside [lo, hi] and are not clipped."""

from __future__ import annotations

import torch

from kanbench.data.splits import Split, standardized
from kanbench.preparation import Preparation


def prepare(split: Split, prep: Preparation) -> Split:
    """The split with its inputs prepared by statistics of ``split.train`` alone."""
    if prep.kind == "standardize":
        return standardized(split)
    lo, hi = split.train[0].min(), split.train[0].max()
    scale = (prep.high - prep.low) / torch.clamp(hi - lo, min=1e-12)

    def fit(part: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return (part[0] - lo) * scale + prep.low, part[1]

    return Split(fit(split.train), fit(split.val), fit(split.test))
