"""Count a module's FLOPs by dispatch: matmuls as torch's ``FlopCounterMode`` counts them, and elementwise work by
the convention of :mod:`kanbench.costs`.

Both counters see the aten ops after autograd, so a backward pass is counted op by op as it really dispatches.
Kernels that kanbench registers as torch custom ops are counted through ``custom`` (op name → FLOPs function).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from kanbench.costs import ELEMENTWISE, MATMUL_BIAS_ADD, REDUCTION

# Tagged pointwise by aten but pure data movement: 0 FLOPs.
_MOVEMENT = {"clone", "masked_fill", "alias", "lift_fresh", "detach", "_to_copy", "copy", "expand", "view"}


def _numel(value: Any) -> int:
    tensors = [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]
    return tensors[0].numel() if tensors else 0


class ElementwiseFlopCounter(TorchDispatchMode):
    """Counts elementwise and reduction FLOPs; ops tagged pointwise but missing from the table count 1 per element
    and are listed in ``assumed`` so a report can say so."""

    def __init__(self, custom: dict[str, Callable[..., int]] | None = None) -> None:
        super().__init__()
        self.flops = 0
        self.by_op: Counter[str] = Counter()
        self.assumed: set[str] = set()
        self.custom = custom or {}

    def _cost(self, func: Any, args: tuple, kwargs: dict, out: Any) -> int:
        name = func.overloadpacket.__name__
        qualified = f"{func.namespace}::{name}"
        if qualified in self.custom:
            return int(self.custom[qualified](*args, **kwargs))
        if name in ELEMENTWISE:
            return ELEMENTWISE[name] * _numel(out)
        if name in REDUCTION:
            return REDUCTION[name] * _numel(args[0])
        if name in MATMUL_BIAS_ADD:
            return _numel(out)
        if name.rstrip("_") in ELEMENTWISE:  # in-place twins: add_, mul_, ...
            return ELEMENTWISE[name.rstrip("_")] * _numel(out)
        if torch.Tag.pointwise in func.tags and name not in _MOVEMENT:
            self.assumed.add(name)
            return _numel(out)
        return 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        cost = self._cost(func, args, kwargs, out)
        if cost:
            self.flops += cost
            self.by_op[func.overloadpacket.__name__] += cost
        return out


@dataclass
class CountedFlops:
    """FLOPs of one call (all tokens), forward or forward+backward."""

    matmul: int
    elementwise: int
    assumed_ops: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return self.matmul + self.elementwise


def count_flops(
    module: torch.nn.Module,
    x: torch.Tensor,
    backward: bool = False,
    custom_matmul: dict[Any, Callable[..., int]] | None = None,
    custom_elementwise: dict[str, Callable[..., int]] | None = None,
) -> CountedFlops:
    """Run ``module(x)`` (and a backward with respect to x and the parameters when ``backward``)
    under both counters; the backward is seeded with a random upstream gradient."""
    x = x.detach().requires_grad_(backward)
    matmul = FlopCounterMode(display=False, custom_mapping=custom_matmul or {})
    elementwise = ElementwiseFlopCounter(custom_elementwise)
    # One context for both passes: FlopCounterMode resets its counts on every entry.
    with matmul, elementwise:
        y = module(x)
        if backward:
            y.backward(torch.randn_like(y))
    return CountedFlops(matmul.get_total_flops(), elementwise.flops, elementwise.assumed)
