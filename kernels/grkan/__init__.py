"""The Triton impls of ``grkan``, both built from the reference modules so that parameters and names match:

- ``triton``: the rational op swapped for the fused Triton kernels (kernels/grkan/rational_triton.py);
- ``triton_fused``: each GR-KAN layer ``Linear(F(x))`` as one matmul that applies F to its input tiles as it loads
  them (kernels/grkan/fused_triton.py); the KAT block uses it for both layers.

The modules keep the reference's parameters and names (state dicts are interchangeable), so the correctness gate
loads one into the other and compares outputs and gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from kanbench.kernels.launch import swapped, triton_layer_impl, triton_runs
from kanbench.registry import Impl, register_impl
from kanbench.variants.grkan import GRKANBlock, GRKANLayer, GroupRational


class TritonGroupRational(GroupRational):
    """:class:`GroupRational` computed by the fused Triton forward and backward kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.grkan.rational_triton import rational_triton

        return rational_triton(x, self.numerator, self.denominator, self.sign_at_zero)


def with_rational(rational: type[GroupRational]) -> dict[str, Callable[..., nn.Module]]:
    """The block, layer and op constructors of the reference modules with every :class:`GroupRational` computed by
    ``rational`` (same parameters and names; only the class changes)."""

    def op(width: int, groups: int = 8, init: str = "swish", shared_numerator: bool = True, sign_at_zero: int = 1,
           linear_init: str = "trunc_normal") -> nn.Module:
        return rational(groups, init, shared_numerator, sign_at_zero)

    return {"block": swapped(GRKANBlock, GroupRational, rational),
            "layer": swapped(GRKANLayer, GroupRational, rational), "op": op}


class FusedGRKANLayer(GRKANLayer):
    """:class:`GRKANLayer` as one Triton matmul with F applied to the input tiles (F(x) never in memory)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kanbench.kernels.grkan.fused_triton import rational_linear

        return rational_linear(x, self.rational.numerator, self.rational.denominator, self.linear.weight,
                               self.linear.bias, self.rational.sign_at_zero)


register_impl("grkan", Impl(
    "triton", **with_rational(TritonGroupRational), **triton_runs(),
    description="fused Triton rational, forward and backward (deterministic two-stage coefficient reduction)",
))
register_impl("grkan", triton_layer_impl(
    "triton_fused", GRKANBlock, GRKANLayer, FusedGRKANLayer,
    description="each layer one Triton matmul applying F to its input tiles as loaded; backward recomputes F",
))

from kanbench.kernels.grkan import cuda  # noqa: E402, F401 - registers the cuda impl (it builds on with_rational)
