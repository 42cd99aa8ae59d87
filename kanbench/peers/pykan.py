"""The ``pykan`` impl of ``bspline_kan``: the original KAN's ``KANLayer`` (pip ``pykan``, MIT; imported as ``kan``),
Liu et al.'s own code, which evaluates every edge's B-spline and keeps each edge's activation.

Same function, exactly. pykan's layer is, per output o,

    y_o = Σ_i mask[i, o] · (scale_base[i, o] · SiLU(x_i) + scale_sp[i, o] · Σ_n coef[i, o, n] · B_n(x_i))

with the bases of Cox–de Boor on the uniform knots of ``grid_range`` extended by the order each side, as
efficient-kan's. So ``scale_base = W_baseᵀ``, ``scale_sp = sᵀ``, ``coef[i, o, :] = W_spline[o, i, :]`` and
``mask = 1``: the reference's factorisation, transposed (the transposes are views, part of what is timed). Any
spline order. pykan materialises the (tokens, d_in, d_out) edge activations three times over (its forward returns
them for plotting and pruning), so its memory grows with tokens·d_in·d_out: at FFN sizes it is the finding.
"""

from __future__ import annotations

import torch
from torch import nn

from kanbench.kernels.launch import swapped
from kanbench.peers import missing
from kanbench.peers.bspline_peer import PeerBSplineLayer
from kanbench.registry import Impl, register_impl
from kanbench.variants.bspline_kan import BSplineKANBlock, BSplineKANLayer


class PyKANLayer(PeerBSplineLayer):
    """pykan's layer: ``coef`` (in, out, G+k), ``scale_base`` and ``scale_sp`` (in, out), a fixed ``mask``."""

    package = "pykan"
    cubic_only = False

    def build_peer(self) -> nn.Module:
        from kan.KANLayer import KANLayer

        return KANLayer(in_dim=self.d_in, out_dim=self.d_out, num=self.grid_size, k=self.spline_order,
                        grid_range=list(self.grid_range))

    def peer_weights(self) -> dict[str, torch.Tensor]:
        return {"coef": self.spline_weight.transpose(0, 1), "scale_base": self.base_weight.t(),
                "scale_sp": self.spline_scaler.t()}

    def peer_output(self, out: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return out[0]  # (y, preacts, postacts, postspline)


register_impl("bspline_kan", Impl(
    "pykan", block=swapped(BSplineKANBlock, BSplineKANLayer, PyKANLayer),
    layer=swapped(BSplineKANLayer, BSplineKANLayer, PyKANLayer), package="pykan",
    unavailable=missing("pykan", "kan"),
    description="pykan's KANLayer (pip pykan, the original KAN): per-edge B-splines with the edge activations "
                "kept, weights mapped from the reference's (exactly its function)",
))
