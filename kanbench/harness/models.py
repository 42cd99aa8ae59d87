"""The small networks the accuracy harness trains: a stack of a variant's layers, and two tiny transformers whose
every FFN is the variant's block (the KAT setting on image patches, the Spark setting on characters)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kanbench import registry
from kanbench.costs import Cost


def network_layers(variant: str, d_in: int, hidden: int, d_out: int,
                   **hparams: Any) -> list[tuple[int, int, dict[str, Any]]]:
    """``d_in → hidden → d_out`` as (d_in, d_out, hparams) per layer; the last layer takes the variant's
    ``last_layer_hparams`` (e.g. no activation after the MLP's last Linear)."""
    last = registry.get_variant(variant).last_layer_hparams
    return [(d_in, hidden, dict(hparams)), (hidden, d_out, {**hparams, **last})]


def build_network(variant: str, d_in: int, hidden: int, d_out: int, **hparams: Any) -> nn.Module:
    """The network of :func:`network_layers`, from the variant's layer form."""
    return nn.Sequential(*(registry.create_layer(variant, a, b, **hp)
                           for a, b, hp in network_layers(variant, d_in, hidden, d_out, **hparams)))


def network_cost(variant: str, d_in: int, hidden: int, d_out: int, **hparams: Any) -> Cost:
    total = Cost(0, 0, 0)
    for a, b, hp in network_layers(variant, d_in, hidden, d_out, **hparams):
        total = total + registry.layer_cost(variant, a, b, **hp)
    return total


class Block(nn.Module):
    """Pre-norm transformer block; the FFN is the variant under test."""

    def __init__(self, d_model: int, heads: int, ffn: nn.Module, causal: bool) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.heads, self.causal, self.ffn = heads, causal, ffn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, d))
        return x + self.ffn(self.norm2(x))


class TinyViT(nn.Module):
    """ViT on 8×8 digit images cut into ``patch``×``patch`` patches, a class token, ``depth`` blocks."""

    def __init__(self, variant: str, d_model: int, hidden: int, depth: int = 2, heads: int = 2, patch: int = 2,
                 classes: int = 10, **hparams: Any) -> None:
        super().__init__()
        self.patch = patch
        n_patches = (8 // patch) ** 2
        self.embed = nn.Linear(patch * patch, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos = nn.Parameter(torch.randn(1, n_patches + 1, d_model) * 0.02)
        self.blocks = nn.ModuleList(
            Block(d_model, heads, registry.create_block(variant, d_model, hidden, **hparams), causal=False)
            for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(d_model), nn.Linear(d_model, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, p = x.shape[0], self.patch
        patches = x.view(b, 8 // p, p, 8 // p, p).permute(0, 1, 3, 2, 4).reshape(b, -1, p * p)
        h = torch.cat([self.cls.expand(b, -1, -1), self.embed(patches)], dim=1) + self.pos
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h[:, 0]))


class CharLM(nn.Module):
    """Decoder-only character model: embeddings, ``depth`` causal blocks, tied output projection."""

    def __init__(self, variant: str, vocab: int, d_model: int, hidden: int, context: int, depth: int = 2,
                 heads: int = 2, **hparams: Any) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.randn(1, context, d_model) * 0.02)
        self.blocks = nn.ModuleList(
            Block(d_model, heads, registry.create_block(variant, d_model, hidden, **hparams), causal=True)
            for _ in range(depth))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids) + self.pos[:, : ids.shape[1]]
        for block in self.blocks:
            h = block(h)
        return self.norm(h) @ self.embed.weight.T
