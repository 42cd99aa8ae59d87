"""The ``triton`` impl of ``spark_ffn``: the reference FFN with the fused statistical top-k kernels (the matmuls
stay dense: this is the training path). Triton is imported when the kernel first runs."""

from __future__ import annotations

from typing import Any

import torch

from kanbench.kernels.grkan import triton_unavailable
from kanbench.registry import Impl, register_impl
from kanbench.variants.spark_ffn import SparkFFN


class TritonSparkFFN(SparkFFN):
    """:class:`SparkFFN` with the fused statistical top-k."""

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.spark_topk_triton import statistical_topk_triton

        scores = q[..., : self.r] @ self.K[: self.r]
        sparse = statistical_topk_triton(scores, self.k)
        if self.track_active:
            self._active = (sparse > 0).float().mean().detach()
        gate = q[..., self.r :] @ self.K[self.r :]
        return (torch.nn.functional.gelu(sparse) * gate) @ self.V.T


def block(d_model: int, d_hidden: int, **hp: Any) -> TritonSparkFFN:
    return TritonSparkFFN(d_model, d_hidden, **hp)


register_impl("spark_ffn", Impl(
    "triton", block=block, devices=("cpu", "cuda"), dtypes=(torch.float32, torch.bfloat16, torch.float16),
    unavailable=triton_unavailable, description="fused statistical top-k (forward and backward), dense matmuls",
))
