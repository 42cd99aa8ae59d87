"""What both sparse decode paths share: the neuron-major weight layout (K2ᵀ and Vᵀ, one contiguous row per neuron)
and the largest batch the Triton decode path takes.

K and V are (d_model × d_ff) row-major, so one neuron's weights are a strided column; a sparse path that selects
~8 % of the neurons would gather 2-byte weights from scattered cache lines. A decode engine lays the weights out
for its kernel once; here the module keeps that layout as a cache keyed on the parameters' versions and storage, so
an in-place update (an optimizer step, ``load_state_dict``) or a move rebuilds it. It costs a second copy of K2 and
V in memory, which the memory harness counts.
"""

from __future__ import annotations

import torch

from kanbench.variants.spark_ffn import SparkFFN

# Rows per decode call for the Triton path: its tl.dot tiles hold every row at once, and past ~64 rows the union of
# active neurons is nearly all of them (1 - 0.92^64 > 99.5 %), so the dense path is the right one.
MAX_DECODE_ROWS = 64


def neuron_rows(module: SparkFFN) -> tuple[torch.Tensor, torch.Tensor]:
    """Contiguous K2ᵀ (d_ff × (d_model - r)) and Vᵀ (d_ff × d_model) of ``module``, built once per weight version."""
    K, V = module.K, module.V
    key = (K._version, V._version, K.data_ptr(), V.data_ptr(), K.dtype, K.device)
    cached = getattr(module, "_neuron_rows", None)
    if cached is None or cached[0] != key:
        cached = (key, K[module.r:].detach().T.contiguous(), V.detach().T.contiguous())
        module._neuron_rows = cached
    return cached[1], cached[2]
