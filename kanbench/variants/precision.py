"""The precision a layer's feature math runs in: 16-bit inputs are evaluated in fp32 and the features rounded to
the input's dtype once, before the matmul that contracts them, as kanbench's kernels (and KAT's) do.

A 16-bit reference that rounded every intermediate would be a poor yardstick: in bf16 (8 significant bits) the
angle f·x of a Fourier basis at f = 10, x = 3 is off by up to 0.06 rad before its cosine is taken, and a feature
tensor off by that much hides any kernel error of the same size from the correctness gate, which allows twice the
reference's own error. What remains in 16-bit is what any implementation in that dtype must round: the input, the
parameters, the features (or the layer's activations) written once, and the matmul's output.
"""

from __future__ import annotations

import torch

SIXTEEN_BIT = (torch.float16, torch.bfloat16)


def math_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for a 16-bit ``dtype``, else ``dtype`` itself (fp32 and fp64 compute as they are)."""
    return torch.float32 if dtype in SIXTEEN_BIT else dtype


def upcast(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each tensor in :func:`math_dtype` of its own dtype (an fp32 or fp64 tensor is returned itself, no copy)."""
    return tuple(t.to(math_dtype(t.dtype)) for t in tensors)
