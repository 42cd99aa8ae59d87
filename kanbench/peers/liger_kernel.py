"""The ``liger`` impl of ``glu``: Liger-Kernel's fused SwiGLU (pip ``liger-kernel``, BSD-2), the elementwise
``SiLU(g) ⊙ u`` of LLaMA's FFN as one Triton kernel each way (``LigerSiLUMulFunction``; its backward recomputes
SiLU instead of saving it and writes the gradients over its saved inputs).

Same function, exactly: the block is the reference's ``W2 · (SiLU(Wg x) ⊙ (Wu x))`` with the three matmuls left to
torch and the product to Liger, the reference's parameters as they are. SwiGLU only (``activation='silu'``); Liger's
GEGLU uses the tanh approximation of GELU, another function. Liger's kernels need a CUDA GPU: they do not run in
the Triton interpreter (triton 3.9 rejects their scalar casts), so on a CPU the impl is unavailable and its tests
check the adapter's wiring with the kernel stood in.
"""

from __future__ import annotations

import torch

from kanbench.kernels.launch import FLOAT_INPUTS, swapped
from kanbench.peers import missing
from kanbench.registry import Impl, register_impl
from kanbench.variants.glu import GLUBlock, GLULayer


def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Liger's fused ``SiLU(gate) ⊙ up``."""
    from liger_kernel.ops.swiglu import LigerSiLUMulFunction

    return LigerSiLUMulFunction.apply(gate, up)


def _swiglu_only(activation: str) -> None:
    if activation != "silu":
        raise ValueError(f"liger computes SwiGLU only: glu's activation must be 'silu', got {activation!r}.")


class LigerGLUBlock(GLUBlock):
    """``W2 · liger(Wg x, Wu x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _swiglu_only(self.activation)
        return self.down(silu_mul(self.gate(x), self.up(x)))


class LigerGLULayer(GLULayer):
    """``liger(Wg x + bg, Wu x + bu)``; a network's last layer stays ``W x + b``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return self.up(x)
        _swiglu_only(self.activation)
        return silu_mul(self.gate(x), self.up(x))


def liger_unavailable(device: str) -> str | None:
    if why := missing("liger-kernel", "liger_kernel")(device):
        return why
    if device != "cuda":
        return "Liger-Kernel's Triton kernels need a CUDA GPU (they do not run in the Triton interpreter)"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


register_impl("glu", Impl(
    "liger", block=swapped(GLUBlock, GLUBlock, LigerGLUBlock), layer=swapped(GLULayer, GLULayer, LigerGLULayer),
    dtypes=FLOAT_INPUTS, package="liger-kernel",
    unavailable=liger_unavailable,
    description="Liger-Kernel's fused SwiGLU (pip liger-kernel): SiLU(g)·u in one Triton kernel each way, the "
                "matmuls torch's",
))
