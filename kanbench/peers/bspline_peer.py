"""What the B-spline KAN peers share: a layer that keeps :class:`BSplineKANLayer`'s parameters and names (so the gate
loads one state dict into both and compares every gradient by name) and runs a package's cubic ``KANLayer`` on the
weights mapped onto its parametrization, through ``torch.func.functional_call``. Each package's file names its
layer and the mapping."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from kanbench.variants.bspline_kan import BSplineKANLayer


class PeerBSplineLayer(BSplineKANLayer):
    """:class:`BSplineKANLayer`'s parameters, a peer package's cubic B-spline ``KANLayer`` forward: a subclass
    names the package's layer (:meth:`peer_class`) and maps the weights onto it (:meth:`peer_weights`)."""

    package = ""

    def peer_class(self) -> type[nn.Module]:
        raise NotImplementedError

    def peer_weights(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def peer(self, x: torch.Tensor) -> nn.Module:
        """FlashKAN's layer for this geometry, built once per device and dtype (its parameters are never used:
        the reference's are passed in). Kept outside the module's state, so state dicts stay the reference's."""
        if self.spline_order != 3:
            raise ValueError(f"{self.package} computes cubic B-splines only: spline_order must be 3, got "
                             f"{self.spline_order}.")
        peers = self.__dict__.setdefault("_peers", {})
        key = (x.device, x.dtype)
        if key not in peers:
            k = self.spline_order
            grid_range = (float(self.grid[0, k]), float(self.grid[0, -k - 1]))
            peers[key] = self.peer_class()(self.d_in, self.d_out, grid_size=self.grid_size, spline_order=k,
                                  grid_range=grid_range).to(device=x.device, dtype=x.dtype)
        return peers[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in)
        return functional_call(self.peer(x), self.peer_weights(), (x,)).reshape(*lead, self.d_out)
