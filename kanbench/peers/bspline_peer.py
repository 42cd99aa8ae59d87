"""What the B-spline KAN peers share: a layer that keeps :class:`BSplineKANLayer`'s parameters and names (so the gate
loads one state dict into both and compares every gradient by name) and runs a package's B-spline KAN layer on the
weights mapped onto its parametrization, through ``torch.func.functional_call``. Each package's file names its
layer, how it is built and the mapping."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from kanbench.variants.bspline_kan import BSplineKANLayer


class PeerBSplineLayer(BSplineKANLayer):
    """:class:`BSplineKANLayer`'s parameters, a peer package's B-spline ``KANLayer`` forward: a subclass builds the
    package's layer for this geometry (:meth:`build_peer`) and maps the weights onto it (:meth:`peer_weights`)."""

    package = ""
    cubic_only = True  # the package computes cubic B-splines only

    def build_peer(self, grid_range: tuple[float, float]) -> nn.Module:
        """The package's layer for this geometry (its own parameters are never used: the mapped ones are passed)."""
        raise NotImplementedError

    def peer_weights(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def peer_output(self, out: Any) -> torch.Tensor:
        """The output tensor of the package's forward (a layer that returns more than ``y`` overrides this)."""
        return out

    def peer(self, x: torch.Tensor) -> nn.Module:
        """The package's layer, built once per device and dtype and kept outside the module's state, so state dicts
        stay the reference's."""
        if self.cubic_only and self.spline_order != 3:
            raise ValueError(f"{self.package} computes cubic B-splines only: spline_order must be 3, got "
                             f"{self.spline_order}.")
        peers = self.__dict__.setdefault("_peers", {})
        key = (x.device, x.dtype)
        if key not in peers:
            k = self.spline_order
            grid_range = (float(self.grid[0, k]), float(self.grid[0, -k - 1]))
            # nn.Module.to itself: some packages override ``to`` with a narrower signature (pykan takes a device)
            peers[key] = nn.Module.to(self.build_peer(grid_range), device=x.device, dtype=x.dtype)
        return peers[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in)
        out = functional_call(self.peer(x), self.peer_weights(), (x,))
        return self.peer_output(out).reshape(*lead, self.d_out)
