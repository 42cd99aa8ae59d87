"""A layer variant's FFN block, derived: ``d_model → d_hidden → d_model`` as two of its layers, the cost the two
layers' costs added. A KAN variant is then its layer, its layer cost and one :func:`register_layer_variant` call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from kanbench.costs import Cost
from kanbench.registry import register


def two_layer_block(layer: type[nn.Module]) -> type[nn.Module]:
    """The block class of ``layer``: ``fc2(fc1(x))`` with ``fc1 = layer(d_model, d_hidden)`` and
    ``fc2 = layer(d_hidden, d_model)``, both with the block's hyperparameters."""

    def __init__(self: nn.Module, d_model: int, d_hidden: int, **hp: Any) -> None:
        nn.Module.__init__(self)
        self.fc1 = layer(d_model, d_hidden, **hp)
        self.fc2 = layer(d_hidden, d_model, **hp)

    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))

    name = layer.__name__.removesuffix("Layer") + "Block"
    doc = f"Two {layer.__name__}s, d_model → d_hidden → d_model."
    return type(name, (nn.Module,), {"__init__": __init__, "forward": forward, "__doc__": doc,
                                     "__module__": layer.__module__, "__qualname__": name})


def two_layer_cost(layer_cost: Callable[..., Cost]) -> Callable[..., Cost]:
    def block_cost(d_model: int, d_hidden: int, **hp: Any) -> Cost:
        return layer_cost(d_model, d_hidden, **hp) + layer_cost(d_hidden, d_model, **hp)

    return block_cost


def register_layer_variant(name: str, *, layer: type[nn.Module], layer_cost: Callable[..., Cost],
                           **kwargs: Any) -> type[nn.Module]:
    """Register ``name`` from its layer alone (``kwargs`` as for :func:`kanbench.registry.register`); returns the
    derived block class."""
    block = two_layer_block(layer)
    register(name, block_cost=two_layer_cost(layer_cost), layer=layer, layer_cost=layer_cost, **kwargs)(block)
    return block
