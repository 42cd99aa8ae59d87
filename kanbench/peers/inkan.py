"""The ``inkan`` impl of ``bspline_kan``: INKAN's ``KANLayer`` (pip ``inkan``, MIT), cubic B-spline bases by a
piecewise polynomial on the active span ("local" mode, its default, compiled with ``torch.compile``), spline and
residual terms in one packed weight.

Same function as the reference: INKAN's layer is ``y = W · [vec(B(x)) | SiLU(x)]`` with the uniform knots of
``grid_range`` extended by the order, so its packed weight is ``[vec(W_spline ⊙ s) | W_base]`` (basis index inner,
as the reference flattens); no bias. Cubic only.
"""

from __future__ import annotations

import torch
from torch import nn

from kanbench.kernels.launch import swapped
from kanbench.peers import missing
from kanbench.peers.bspline_peer import PeerBSplineLayer
from kanbench.registry import Impl, register_impl
from kanbench.variants.bspline_kan import BSplineKANBlock, BSplineKANLayer


class INKANLayer(PeerBSplineLayer):
    """INKAN's layer: one ``weight`` (out, in·(G+k) + in)."""

    package = "inkan"

    def build_peer(self) -> nn.Module:
        from inkan import KANLayer

        return KANLayer(self.d_in, self.d_out, grid_size=self.grid_size, spline_order=3, grid_range=self.grid_range)

    def peer_weights(self) -> dict[str, torch.Tensor]:
        spline = (self.spline_weight * self.spline_scaler.unsqueeze(-1)).reshape(self.d_out, -1)
        return {"weight": torch.cat([spline, self.base_weight], dim=1)}


register_impl("bspline_kan", Impl(
    "inkan", block=swapped(BSplineKANBlock, BSplineKANLayer, INKANLayer),
    layer=swapped(BSplineKANLayer, BSplineKANLayer, INKANLayer), package="inkan",
    unavailable=missing("inkan", "inkan"),
    description="INKAN's KANLayer (pip inkan): cubic B-spline bases on the active span under torch.compile, one "
                "packed weight mapped from the reference's (exactly its function)",
))
