"""``mlp``: the transformer FFN baseline, ``W2 · GELU(W1 x + b1) + b2`` (ViT / GPT-2; hidden = 4·d_model)."""

from __future__ import annotations

import torch
from torch import nn

from kanbench.costs import GELU, Cost, linear_cost
from kanbench.registry import register

ACTIVATIONS = ("gelu", "none")


def validate(d_in: int, d_out: int, activation: str = "gelu") -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"mlp: activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}.")


class MLPLayer(nn.Module):
    """Layer form for stacking: ``act(W x + b)``; the last layer of a network uses ``activation='none'``."""

    def __init__(self, d_in: int, d_out: int, activation: str = "gelu") -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.activation = nn.GELU() if activation == "gelu" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


def layer_cost(d_in: int, d_out: int, activation: str = "gelu") -> Cost:
    act = Cost(0, 0, GELU * d_out) if activation == "gelu" else Cost(0, 0, 0)
    return linear_cost(d_in, d_out) + act


def block_cost(d_model: int, d_hidden: int, activation: str = "gelu") -> Cost:
    return layer_cost(d_model, d_hidden, activation) + layer_cost(d_hidden, d_model, "none")


def make_op(width: int, activation: str = "gelu") -> nn.Module:
    """The MLP's activation alone (the scale against which GR-KAN's rational op is measured)."""
    return nn.GELU() if activation == "gelu" else nn.Identity()


def op_cost(width: int, activation: str = "gelu") -> Cost:
    return Cost(0, 0, GELU * width if activation == "gelu" else 0)


@register(
    "mlp",
    description="Linear-GELU-Linear transformer FFN (baseline)",
    paper="Vaswani et al. 2017; Dosovitskiy et al. 2021 (ViT)",
    block_cost=block_cost,
    defaults={"activation": "gelu"},
    validate=validate,
    layer=MLPLayer,
    layer_cost=layer_cost,
    last_layer_hparams={"activation": "none"},
    op=make_op,
    op_cost=op_cost,
    baseline=True,
)
class MLPBlock(nn.Module):
    """``y = W2 · GELU(W1 x + b1) + b2``, d_model → d_hidden → d_model."""

    def __init__(self, d_model: int, d_hidden: int, activation: str = "gelu") -> None:
        super().__init__()
        self.fc1 = MLPLayer(d_model, d_hidden, activation)
        self.fc2 = MLPLayer(d_hidden, d_model, "none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))
