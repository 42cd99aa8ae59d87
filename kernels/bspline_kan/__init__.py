"""The ``triton`` impl of ``bspline_kan``: each B-spline KAN layer as fused Triton matmuls that evaluate SiLU and
the B-spline bases on their tiles in closed form (kernels/kan_linear_triton.py, shared with relu_kan), so the
(N, d_in, G+k) basis tensor and the recursion's intermediates are never written, forward or backward. Built from
the reference modules (same parameters, buffers and names), so the gate loads one state dict into both.

The closed form needs a uniform grid. The knots stay in fp32 whatever the module's dtype: rounded to bf16, the
grid (-2.2, -1.8, ... at G = 5) would no longer be uniform. The reference in bf16 rounds them, as efficient-kan does;
the gate's truth uses the impl's fp32 knots.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from kanbench.kernels.launch import triton_layer_impl, unfused_kan_impl
from kanbench.registry import register_impl
from kanbench.variants.bspline_kan import BSplineKANBlock, BSplineKANLayer


class FusedBSplineKANLayer(BSplineKANLayer):
    """:class:`BSplineKANLayer` computed by the fused kernels."""

    FUSED = True  # False: the same layer with torch's matmuls over a written feature tensor

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> nn.Module:
        grid = self.grid
        super()._apply(fn, recurse)
        self.grid = grid.to(device=self.grid.device, dtype=torch.float32)  # uniform knots: keep them fp32
        self._knots = None
        return self

    def knots(self) -> tuple[float, float]:
        """(first knot, spacing) of the uniform grid, read from the buffer once (a host read on a GPU)."""
        if getattr(self, "_knots", None) is None:
            row = self.grid[0].double().cpu()
            self._knots = (float(row[0]), float((row[-1] - row[0]) / (row.numel() - 1)))
        return self._knots

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.kan_linear_triton import bspline_kan_linear

        spline = (self.spline_weight * self.spline_scaler.unsqueeze(-1)).transpose(1, 2).reshape(self.d_out, -1)
        weight = torch.cat([self.base_weight, spline], dim=1)  # columns: SiLU features, then basis-major splines
        t0, h = self.knots()
        return bspline_kan_linear(x, weight, t0, h, self.spline_order, fused=self.FUSED)


register_impl("bspline_kan", triton_layer_impl(
    "triton", BSplineKANBlock, BSplineKANLayer, FusedBSplineKANLayer,
    description="fused Triton matmuls evaluating SiLU and the B-spline bases in closed form on their tiles, forward "
                "and backward (no basis tensor)",
))


class UnfusedBSplineKANLayer(FusedBSplineKANLayer):
    """The same layer, its feature tensor written by a Triton kernel and its matmuls torch's."""

    FUSED = False


register_impl("bspline_kan", unfused_kan_impl(BSplineKANBlock, BSplineKANLayer, UnfusedBSplineKANLayer,
                                              "SiLU and the B-spline bases"))
