"""The ``triton`` impl of ``af_kan``: each AF-KAN layer's features, global attention and LayerNorm computed by
Triton kernels over chunks of each input row (kernels/af_kan/attention_triton.py), so the (N, d_in, G+k) feature
tensor is never written, forward or backward; the output matmul ``h·Wᵀ`` stays torch's (cuBLAS). Built from the
reference modules (same parameters and names), so the gate loads one state dict into both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kanbench.kernels.launch import triton_layer_impl
from kanbench.registry import register_impl
from kanbench.variants.af_kan import AFKANBlock, AFKANLayer


class FusedAFKANLayer(AFKANLayer):
    """:class:`AFKANLayer` with its features-to-hidden path in Triton kernels (the feature tensor never stored)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.af_kan.hidden import af_kan_hidden

        lead = x.shape[:-1]
        running = self.running_extremes
        # eval mode scales by the running extremes once there are any (the reference's batch_extremes)
        fixed = None if self.training or bool(running.isnan().any()) else running
        h, extremes = af_kan_hidden(x.reshape(-1, self.d_in), self.start, self.end, self.attention.weight.reshape(-1),
                                    self.attention.bias, self.temperature.clamp(min=1.0), self.norm.weight,
                                    self.norm.bias, self.norm.eps, self.activation, self.func_name, self.func_norm,
                                    fixed)
        if self.func_norm == "batch" and self.training:
            self.batch_extremes(extremes)  # updates the running extremes as the reference does
        return F.linear(h, self.base_weight).reshape(*lead, self.d_out)


register_impl("af_kan", triton_layer_impl(
    "triton", AFKANBlock, AFKANLayer, FusedAFKANLayer,
    description="features, global attention and LayerNorm in Triton kernels over row chunks, forward and backward "
                "(no feature tensor); the output matmul is torch's",
))
