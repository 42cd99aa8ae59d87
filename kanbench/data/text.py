"""Character-level text: the English documentation that ships with CPython (``pydoc_data.topics``)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch


@dataclass
class CharCorpus:
    train: torch.Tensor  # int64 character ids
    val: torch.Tensor
    test: torch.Tensor
    vocab: list[str]

    def unigram_entropy_bits(self) -> float:
        """Entropy of the training text's character frequencies, bits per character: the score of a model that
        ignores context, which a language model must beat."""
        counts = torch.bincount(self.train, minlength=len(self.vocab)).double()
        p = counts[counts > 0] / counts.sum()
        return float(-(p * p.log2()).sum())


def pydoc_text() -> str:
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


def char_corpus(max_chars: int | None = None) -> CharCorpus:
    """Printable ASCII and newlines (other characters mapped to '?'), split contiguously 72 / 14 / 14: about 65k
    characters each for validation and test (of 465k), so that their bits per character agree within noise (a
    5 / 5 split left 23k each, whose scores differed by 0.85 bits)."""
    text = pydoc_text()
    if max_chars is not None:
        text = text[:max_chars]
    text = "".join(c if (32 <= ord(c) < 127 or c == "\n") else "?" for c in text)
    vocab = sorted(Counter(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    n = len(ids)
    a, b = math.floor(0.72 * n), math.floor(0.86 * n)
    return CharCorpus(ids[:a], ids[a:b], ids[b:], vocab)
