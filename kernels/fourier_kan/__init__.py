"""The ``triton`` impl of ``fourier_kan``: each Fourier KAN layer as fused Triton matmuls that evaluate SiLU,
cos(f·x) and sin(f·x) on their tiles (kernels/kan_linear_triton.py, shared with bspline_kan, relu_kan and
cheby_kan), so the two (N, d_in·F) trigonometric tensors are never written, forward or backward. Built from the
reference modules (same parameters and names), so the gate loads one state dict into both.
"""

from __future__ import annotations

import torch

from kanbench.kernels.launch import triton_layer_impl, unfused_kan_impl
from kanbench.registry import register_impl
from kanbench.variants.fourier_kan import FourierKANBlock, FourierKANLayer


class FusedFourierKANLayer(FourierKANLayer):
    """:class:`FourierKANLayer` computed by the fused kernels."""

    FUSED = True  # False: the same layer with torch's matmuls over a written feature tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.kan_linear_triton import fourier_kan_linear

        cosine, sine = (c.transpose(1, 2).reshape(self.d_out, -1) for c in self.fourier_coeffs)  # f·d_in + i
        weight = torch.cat([self.base_weight, cosine, sine], dim=1)  # SiLU, cos(f·x) f = 1..F, sin(f·x)
        return fourier_kan_linear(x, weight, self.bias, self.frequencies, fused=self.FUSED)


register_impl("fourier_kan", triton_layer_impl(
    "triton", FourierKANBlock, FourierKANLayer, FusedFourierKANLayer,
    description="fused Triton matmuls evaluating SiLU, cos(f·x) and sin(f·x) on their tiles, forward and "
                "backward (no trigonometric tensor)",
))


class UnfusedFourierKANLayer(FusedFourierKANLayer):
    """The same layer, its feature tensor written by a Triton kernel and its matmuls torch's."""

    FUSED = False


register_impl("fourier_kan", unfused_kan_impl(FourierKANBlock, FourierKANLayer, UnfusedFourierKANLayer,
                                              "SiLU, cos(f·x) and sin(f·x)"))
