"""The ``triton`` impl of ``relu_kan``: each ReLU-KAN layer as fused Triton matmuls that compute the bases on their
tiles (kernels/kan_linear_triton.py, shared with bspline_kan), so the (N, (G+k)·d_in) basis tensor is never
written, forward or backward. Built from the reference modules (same parameters and names), so the gate loads one
state dict into both.
"""

from __future__ import annotations

import torch

from kanbench.kernels.launch import triton_layer_impl, unfused_kan_impl
from kanbench.registry import register_impl
from kanbench.variants.relu_kan import ReLUKANBlock, ReLUKANLayer


class FusedReLUKANLayer(ReLUKANLayer):
    """:class:`ReLUKANLayer` computed by the fused kernels."""

    FUSED = True  # False: the same layer with torch's matmuls over a written feature tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.kan_linear_triton import relu_kan_linear

        return relu_kan_linear(x, self.start, self.end, self.linear.weight, self.linear.bias, self.r,
                               fused=self.FUSED)


register_impl("relu_kan", triton_layer_impl(
    "triton", ReLUKANBlock, ReLUKANLayer, FusedReLUKANLayer,
    description="fused Triton matmuls computing the bases on their tiles, forward and backward (no basis tensor)",
))


class UnfusedReLUKANLayer(FusedReLUKANLayer):
    """The same layer, its feature tensor written by a Triton kernel and its matmuls torch's."""

    FUSED = False


register_impl("relu_kan", unfused_kan_impl(ReLUKANBlock, ReLUKANLayer, UnfusedReLUKANLayer, "the bases"))
