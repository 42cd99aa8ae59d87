"""The ``flashkan`` impl of ``bspline_kan``: FlashKAN's ``KANLayer`` (pip ``flashkan``, MIT), which evaluates cubic
B-spline bases in the truncated-power closed form compiled with ``torch.compile``.

Same function, exactly. FlashKAN's layer is ``y = Σ_n C[o, i, n]·N_n(x_i) + W_b·SiLU(x)`` with the uniform knots of
``grid_range`` extended by the order on each side, as efficient-kan's (and kanbench's reference): so
``C = W_spline ⊙ s`` (the reference's spline weight times its scaler) and ``W_b = W_base``; no bias in either. The
adapter keeps the reference's parameters; each call maps them (one elementwise product of the spline weight, part
of what is timed) and runs FlashKAN's forward on them. FlashKAN computes cubic splines only: ``spline_order=3``.
"""

from __future__ import annotations

import torch
from torch import nn

from kanbench.kernels.launch import swapped
from kanbench.peers import missing
from kanbench.peers.bspline_peer import PeerBSplineLayer
from kanbench.registry import Impl, register_impl
from kanbench.variants.bspline_kan import BSplineKANBlock, BSplineKANLayer


class FlashKANLayer(PeerBSplineLayer):
    """FlashKAN's layer: ``spline_weight`` (out, in, G+k) and ``base_weight`` (out, in)."""

    package = "flashkan"

    def build_peer(self) -> nn.Module:
        from flashkan import KANLayer

        return KANLayer(self.d_in, self.d_out, grid_size=self.grid_size, spline_order=3, grid_range=self.grid_range)

    def peer_weights(self) -> dict[str, torch.Tensor]:
        return {"spline_weight": self.spline_weight * self.spline_scaler.unsqueeze(-1),
                "base_weight": self.base_weight}


register_impl("bspline_kan", Impl(
    "flashkan", block=swapped(BSplineKANBlock, BSplineKANLayer, FlashKANLayer),
    layer=swapped(BSplineKANLayer, BSplineKANLayer, FlashKANLayer), package="flashkan",
    unavailable=missing("flashkan", "flashkan"),
    description="FlashKAN's KANLayer (pip flashkan): truncated-power cubic B-spline bases under torch.compile, "
                "weights mapped from the reference's (exactly its function)",
))
