"""Memory: parameter bytes; bytes saved for backward (saved-tensor hooks: works on every device); and on CUDA the
peak allocated during one call over what was allocated before it (not absolute)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def parameter_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def saved_for_backward_bytes(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward of ``module(x)``, parameters excluded (they
    are held anyway); the input counts, since a layer that saves it keeps it alive."""
    parameter_storages = {p.untyped_storage().data_ptr() for p in module.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in parameter_storages:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    x = x.detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(storages.values())


def peak_over_baseline_bytes(fn: Callable[[], object], device: str) -> int:
    """Peak bytes allocated during ``fn()`` above those allocated before it (CUDA)."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - baseline
    del result
    return peak
