"""The ``triton`` impl of ``grkan``: the reference modules with the rational swapped for the Triton kernels.

The modules keep the reference's parameters and names (state dicts are interchangeable), so the correctness gate
loads one into the other and compares outputs and gradients.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from kanbench.registry import Impl, register_impl
from kanbench.variants.grkan import GRKANBlock, GRKANLayer, GroupRational


def triton_unavailable(device: str) -> str | None:
    """Why Triton kernels cannot run on ``device`` here, or None."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return "triton is not installed (pip install triton; Linux only)"
    if device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return ("Triton kernels need a CUDA GPU; on a CPU they run only under TRITON_INTERPRET=1 (slow, for "
                "correctness, not timing)")
    if device == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    return None


class TritonGroupRational(GroupRational):
    """:class:`GroupRational` computed by the fused Triton forward and backward kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.grkan_rational_triton import rational_triton

        return rational_triton(x, self.numerator, self.denominator)


def _use_triton(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if type(m) is GroupRational:
            m.__class__ = TritonGroupRational  # same parameters, kernel forward
    return module


def block(d_model: int, d_hidden: int, **hp: Any) -> nn.Module:
    return _use_triton(GRKANBlock(d_model, d_hidden, **hp))


def layer(d_in: int, d_out: int, **hp: Any) -> nn.Module:
    return _use_triton(GRKANLayer(d_in, d_out, **hp))


def op(width: int, groups: int = 8, init: str = "swish", shared_numerator: bool = True) -> nn.Module:
    return TritonGroupRational(groups, init, shared_numerator)


register_impl("grkan", Impl(
    "triton", block=block, layer=layer, op=op, devices=("cpu", "cuda"),
    dtypes=(torch.float32, torch.bfloat16, torch.float16), unavailable=triton_unavailable,
    description="fused Triton rational, forward and backward (deterministic two-stage coefficient reduction)",
))
