"""``glu``: the gated FFN of Gemma / LLaMA, ``W2 · (act(Wg x) ⊙ (Wu x))`` (SwiGLU by default, no biases;
``activation='none'`` is the bilinear GLU in the block, and a plain Linear as a network's last layer).

Its three matrices make it 1.5× the MLP's parameters at the same hidden width: the parameter-matched hidden width is
2/3 of the MLP's (Shazeer 2020, "GLU Variants Improve Transformer").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kanbench.costs import ELEMENTWISE, Cost, linear_cost
from kanbench.registry import register

ACTIVATIONS = ("silu", "gelu", "none")


def validate(d_in: int, d_out: int, activation: str = "silu") -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"glu: activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}.")


def _act(x: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "none":  # the bilinear GLU of Shazeer 2020
        return x
    return F.silu(x) if activation == "silu" else F.gelu(x)


def _gating_cost(width: int, activation: str) -> Cost:
    return Cost(0, 0, (ELEMENTWISE.get(activation, 0) + ELEMENTWISE["mul"]) * width)


class GLULayer(nn.Module):
    """Layer form for stacking: ``act(Wg x + bg) ⊙ (Wu x + bu)``; ``activation='none'`` makes it a plain
    ``W x + b`` (the last layer of a network)."""

    def __init__(self, d_in: int, d_out: int, activation: str = "silu") -> None:
        super().__init__()
        self.activation = activation
        self.up = nn.Linear(d_in, d_out)
        self.gate = nn.Linear(d_in, d_out) if activation != "none" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return self.up(x)
        return _act(self.gate(x), self.activation) * self.up(x)


def layer_cost(d_in: int, d_out: int, activation: str = "silu") -> Cost:
    if activation == "none":
        return linear_cost(d_in, d_out)
    return linear_cost(d_in, d_out) + linear_cost(d_in, d_out) + _gating_cost(d_out, activation)


def block_cost(d_model: int, d_hidden: int, activation: str = "silu") -> Cost:
    return (linear_cost(d_model, d_hidden, bias=False) + linear_cost(d_model, d_hidden, bias=False)
            + _gating_cost(d_hidden, activation) + linear_cost(d_hidden, d_model, bias=False))


@register(
    "glu",
    description="gated FFN W2·(act(Wg x) ⊙ Wu x), SwiGLU by default (baseline)",
    paper="Shazeer 2020, GLU Variants Improve Transformer (arXiv 2002.05202)",
    block_cost=block_cost,
    defaults={"activation": "silu"},
    validate=validate,
    layer=GLULayer,
    layer_cost=layer_cost,
    last_layer_hparams={"activation": "none"},
)
class GLUBlock(nn.Module):
    """``y = W2 · (act(Wg x) ⊙ (Wu x))``, no biases, d_model → d_hidden → d_model."""

    def __init__(self, d_model: int, d_hidden: int, activation: str = "silu") -> None:
        super().__init__()
        self.activation = activation
        self.gate = nn.Linear(d_model, d_hidden, bias=False)
        self.up = nn.Linear(d_model, d_hidden, bias=False)
        self.down = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(_act(self.gate(x), self.activation) * self.up(x))
