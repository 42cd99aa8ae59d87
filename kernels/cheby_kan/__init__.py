"""The ``triton`` impl of ``cheby_kan``: each Chebyshev KAN layer as fused Triton matmuls that evaluate SiLU and
T_n(tanh(clamp(x))) on their tiles by the three-term recurrence (kernels/kan_linear_triton.py, shared with
bspline_kan, relu_kan and fourier_kan), so the (N, d_in, D+1) polynomial tensor and the arccos/cos chain's
intermediates are never written, forward or backward. Built from the reference modules (same parameters and
names), so the gate loads one state dict into both.
"""

from __future__ import annotations

import torch

from kanbench.kernels.launch import triton_layer_impl, unfused_kan_impl
from kanbench.registry import register_impl
from kanbench.variants.cheby_kan import ChebyKANBlock, ChebyKANLayer


class FusedChebyKANLayer(ChebyKANLayer):
    """:class:`ChebyKANLayer` computed by the fused kernels."""

    FUSED = True  # False: the same layer with torch's matmuls over a written feature tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.kan_linear_triton import cheby_kan_linear

        coefficients = self.cheby_coeffs.transpose(1, 2).reshape(self.d_out, -1)  # column n·d_in + i
        weight = torch.cat([self.base_weight, coefficients], dim=1)  # SiLU features, then T_0 .. T_D
        return cheby_kan_linear(x, weight, self.bias, self.degree, fused=self.FUSED)


register_impl("cheby_kan", triton_layer_impl(
    "triton", ChebyKANBlock, ChebyKANLayer, FusedChebyKANLayer,
    description="fused Triton matmuls evaluating SiLU and the Chebyshev polynomials (by their recurrence) on "
                "their tiles, forward and backward (no polynomial tensor)",
))


class UnfusedChebyKANLayer(FusedChebyKANLayer):
    """The same layer, its feature tensor written by a Triton kernel and its matmuls torch's."""

    FUSED = False


register_impl("cheby_kan", unfused_kan_impl(ChebyKANBlock, ChebyKANLayer, UnfusedChebyKANLayer,
                                              "SiLU and the Chebyshev polynomials"))
