"""The ``sparse_cpu`` impl of ``spark_ffn``: the sparse decode path in plain PyTorch, so the Spark paper's CPU claim
(1.79× at batch 1 on 16 cores) can be measured on any machine.

Per decode step: the predictor ``z = q[:r] @ K1`` (r·d_ff multiply-adds), the statistical threshold per row, the
indices of the active neurons (for a batch, the union of every row's active set, whose size grows like
1 - (1 - k/d_ff)^B), then only those neurons: ``K2ᵀ q[r:]`` over the selected columns of K2 and ``V`` over the
selected rows of Vᵀ. Neurons in the union but inactive for a row get GELU(max(z - θ, 0)) = 0 there, so the output
equals the dense computation with the same mask.

Each selected neuron's weights are read as one contiguous row of K2ᵀ and Vᵀ (kernels/spark_ffn/decode_layout.py). With
gradients enabled it gathers from the parameters themselves, so the same sparse computation also trains.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kanbench.kernels.spark_ffn.decode_layout import neuron_rows
from kanbench.registry import Impl, register_impl
from kanbench.variants.spark_ffn import SparkFFN, statistical_threshold

CHUNK = 256  # active neurons gathered at a time: 1.3 MB of K2ᵀ rows and 2.4 MB of Vᵀ rows at Gemma-2-2B size, fp32


class SparseCPUSparkFFN(SparkFFN):
    """:class:`SparkFFN` computing only the active neurons (the union over the batch)."""

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        lead, d = q.shape[:-1], q.shape[-1]
        q = q.reshape(-1, d)
        scores = q[:, : self.r] @ self.K[: self.r]
        theta = statistical_threshold(scores, self.k)
        kept = scores > theta
        active = kept.any(dim=0).nonzero().squeeze(-1)  # union of the rows' active sets
        self._union_count = active.numel()
        if self.track_active:
            self._active = kept.float().mean().detach()
        sparse = F.relu(scores.index_select(-1, active) - theta)
        if self.needs_gradients(q):
            gate = q[:, self.r:] @ self.K[self.r:].index_select(1, active)
            out = (F.gelu(sparse) * gate) @ self.V.index_select(1, active).T
        else:
            out = self._gather_matmuls(q, F.gelu(sparse), active)
        return out.reshape(*lead, d)

    def _gather_matmuls(self, q: torch.Tensor, activated: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """``Σ_chunks (activated ⊙ (q[r:] K2ᵀ[chunk]ᵀ)) Vᵀ[chunk]`` over the active neurons, CHUNK at a time, the
        selected weight rows gathered into two reused buffers: gathering every active row at once allocates up to
        the size of K2 and V per call, and at batch 8 (half the neurons active) the fresh pages cost more than
        the arithmetic (measured here: 125 ms against 32 ms dense)."""
        k2_rows, v_rows = neuron_rows(self)
        key = (k2_rows.dtype, k2_rows.device)
        if getattr(self, "_gather_buffers", (None,))[0] != key:
            self._gather_buffers = (key, k2_rows.new_empty(CHUNK, k2_rows.shape[1]),
                                    v_rows.new_empty(CHUNK, v_rows.shape[1]))
        _, k2_buffer, v_buffer = self._gather_buffers
        out = q.new_zeros(q.shape[0], self.d_model)
        for start in range(0, active.numel(), CHUNK):
            index = active[start:start + CHUNK]
            n = index.numel()
            k2 = torch.index_select(k2_rows, 0, index, out=k2_buffer[:n])
            v = torch.index_select(v_rows, 0, index, out=v_buffer[:n])
            out.addmm_(activated[:, start:start + n] * (q[:, self.r:] @ k2.T), v)
        return out


def block(d_model: int, d_hidden: int, **hp: Any) -> SparseCPUSparkFFN:
    return SparseCPUSparkFFN(d_model, d_hidden, **hp)


register_impl("spark_ffn", Impl(
    "sparse_cpu", block=block, devices=("cpu", "cuda"),
    description="PyTorch sparse decode: index-select the active neurons' weights, then small matmuls",
))
