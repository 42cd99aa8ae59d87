"""What the B-spline KAN peers share: :class:`BSplineKANLayer`'s parameters and names, a package's B-spline KAN
layer as the forward (:class:`~kanbench.peers.call.PeerCall`). Each package's file names its layer, how it is built
and the mapping."""

from __future__ import annotations

import torch

from kanbench.peers.call import PeerCall
from kanbench.variants.bspline_kan import BSplineKANLayer


class PeerBSplineLayer(PeerCall, BSplineKANLayer):
    """:class:`BSplineKANLayer`'s parameters, a peer package's B-spline ``KANLayer`` forward."""

    cubic_only = True  # the package computes cubic B-splines only

    @property
    def grid_range(self) -> tuple[float, float]:
        """The (lo, hi) the uniform grid covers, read back from the extended knots."""
        k = self.spline_order
        return float(self.grid[0, k]), float(self.grid[0, -k - 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cubic_only and self.spline_order != 3:
            raise ValueError(f"{self.package} computes cubic B-splines only: spline_order must be 3, got "
                             f"{self.spline_order}.")
        return self.call_peer(x)
