"""What every Triton kernel wrapper checks before a launch."""

from __future__ import annotations

import os

import torch

FLOAT_INPUTS = (torch.float32, torch.bfloat16, torch.float16)


def check_launchable(x: torch.Tensor, who: str) -> None:
    """A ValueError, before any launch, for tensors a Triton kernel cannot take: not on a CUDA device (a launch with
    meta or host pointers would corrupt the CUDA context instead of failing; the CPU is fine under
    TRITON_INTERPRET=1), or not a float dtype the kernels compute in fp32."""
    if x.device.type != "cuda" and not (os.environ.get("TRITON_INTERPRET") == "1" and x.device.type == "cpu"):
        raise ValueError(f"{who}: tensors must be on a CUDA device (or on the CPU under TRITON_INTERPRET=1), "
                         f"got {x.device.type}.")
    if x.dtype not in FLOAT_INPUTS:
        raise ValueError(f"{who}: inputs must be float32, bfloat16 or float16, got {x.dtype}.")
