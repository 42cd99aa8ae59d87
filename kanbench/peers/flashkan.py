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
from torch.func import functional_call

from kanbench.kernels.launch import swapped
from kanbench.peers import missing
from kanbench.registry import Impl, register_impl
from kanbench.variants.bspline_kan import BSplineKANBlock, BSplineKANLayer


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


class FlashKANLayer(PeerBSplineLayer):
    """FlashKAN's layer: ``spline_weight`` (out, in, G+k) and ``base_weight`` (out, in)."""

    package = "flashkan"

    def peer_class(self) -> type[nn.Module]:
        from flashkan import KANLayer

        return KANLayer

    def peer_weights(self) -> dict[str, torch.Tensor]:
        return {"spline_weight": self.spline_weight * self.spline_scaler.unsqueeze(-1),
                "base_weight": self.base_weight}


register_impl("bspline_kan", Impl(
    "flashkan", block=swapped(BSplineKANBlock, BSplineKANLayer, FlashKANLayer),
    layer=swapped(BSplineKANLayer, BSplineKANLayer, FlashKANLayer), unavailable=missing("flashkan", "flashkan"),
    description="FlashKAN's KANLayer (pip flashkan): truncated-power cubic B-spline bases under torch.compile, "
                "weights mapped from the reference's (exactly its function)",
))
