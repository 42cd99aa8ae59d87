"""The ``triton`` impl of ``spark_ffn``: one module, two paths, chosen per call from what the call needs.

- Decode (no gradient needed, at most ``MAX_DECODE_ROWS`` rows): the sparse decode kernels
  (kernels/spark_ffn/decode_triton.py) compute only the neurons active in some row; the union's size is kept on the
  device (``last_union_fraction`` reads it).
- Training, or more rows than a decode batch (where the union is nearly every neuron): the fused statistical top-k
  kernels (kernels/spark_ffn/topk_triton.py) with dense matmuls.

The rule depends only on shapes and grad mode, never on data, so a CUDA graph captures one fixed path. Triton is
imported when a kernel first runs.
"""

from __future__ import annotations

from typing import Any

import torch

from kanbench.kernels.launch import triton_runs
from kanbench.kernels.spark_ffn.decode_layout import MAX_DECODE_ROWS, neuron_rows
from kanbench.registry import Impl, register_impl
from kanbench.variants.spark_ffn import SparkFFN, StatisticalTopKOp, quantile_factor


class TritonSparkFFN(SparkFFN):
    """:class:`SparkFFN` with the sparse decode kernels (inference, small batches) and the fused top-k (training)."""

    def uses_decode_path(self, q: torch.Tensor) -> bool:
        rows = q.numel() // q.shape[-1]
        return not self.needs_gradients(q) and 1 <= rows <= MAX_DECODE_ROWS

    def topk(self, scores: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.spark_ffn.topk_triton import statistical_topk_triton

        return statistical_topk_triton(scores, self.k)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self._decode(q) if self.uses_decode_path(q) else super().forward(q)

    def _decode(self, q: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.spark_ffn.decode_triton import sparse_decode

        k2_rows, v_rows = neuron_rows(self)
        rows = q.reshape(-1, q.shape[-1])
        y, z, theta, _, count = sparse_decode(rows, self.K, k2_rows, v_rows, self.r,
                                              quantile_factor(self.k, self.d_hidden))
        self._union_count = count  # the kernels' own count, read only when asked
        if self.track_active:
            self._active = (z.float() > theta[:, None]).float().mean()
        return y.reshape(q.shape)


class TritonStatisticalTopK(StatisticalTopKOp):
    """The op form with the fused statistical top-k kernels, forward and backward."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.spark_ffn.topk_triton import statistical_topk_triton

        return statistical_topk_triton(z, self.k)


def block(d_model: int, d_hidden: int, **hp: Any) -> TritonSparkFFN:
    return TritonSparkFFN(d_model, d_hidden, **hp)


register_impl("spark_ffn", Impl(
    "triton", block=block, op=TritonStatisticalTopK, **triton_runs(),
    description=f"inference at <= {MAX_DECODE_ROWS} rows: sparse decode kernels (predictor, threshold, compaction "
                "of the union of active neurons, gather-matvecs); training and larger batches: fused statistical "
                "top-k with dense matmuls",
))

from kanbench.kernels.spark_ffn import sparse_cpu  # noqa: E402, F401 - registers the sparse_cpu impl
