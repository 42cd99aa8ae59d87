"""How a variant's inputs may be prepared for training (declared beside the variant, applied by
:mod:`kanbench.data.prepare` on the training split's statistics alone).

- ``standardize``: each feature centred and scaled by the training set's mean and std (+ 0.1 for near-constant
  pixels): what an MLP usually gets, and the ``uniform`` protocol gives every variant.
- ``minmax[lo,hi]``: one affine map, fitted on the training set's global min and max, onto [lo, hi]: the basis
  domain of a KAN whose bases live on a fixed interval (ReLU-KAN and AF-KAN on [0, 1], a B-spline grid on its grid
  range).

A preparation may carry layer hyperparameters that go with it, e.g. a B-spline grid range (-3, 3) that covers
standardized data (the default (-1, 1) would leave a third of it on the grid's linear tails).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preparation:
    kind: str  # standardize | minmax
    low: float = 0.0
    high: float = 1.0
    layer_hparams: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("standardize", "minmax"):
            raise ValueError(f"preparation kind must be standardize or minmax, got {self.kind!r}.")
        if self.kind == "minmax" and not self.low < self.high:
            raise ValueError(f"minmax needs low < high, got [{self.low}, {self.high}].")

    @property
    def name(self) -> str:
        """What the rows' ``hparams`` record as ``prep``: ``standardize`` or ``minmax[0,1]``."""
        return self.kind if self.kind == "standardize" else f"minmax[{self.low:g},{self.high:g}]"


STANDARDIZE = Preparation("standardize")
MINMAX_UNIT = Preparation("minmax", 0.0, 1.0)
MINMAX_SYMMETRIC = Preparation("minmax", -1.0, 1.0)
# what a variant gets when it declares nothing: its native first (the search tries both)
DEFAULT_PREPARATIONS = (STANDARDIZE, MINMAX_SYMMETRIC)
