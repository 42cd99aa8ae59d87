"""Turn a configuration into a module, a random input and the callable each mode times."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from kanbench import registry
from kanbench.harness.results import Config
from kanbench.harness.timing import collector_paused


def sample_input(config: Config, seed_offset: int = 0, dtype: torch.dtype | None = None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + seed_offset + 1)
    return registry.make_input(config.variant, config.tokens, config.d_model,
                               dtype=dtype or config.torch_dtype, device=config.device, generator=generator)


def output_width(config: Config) -> int:
    return config.d_hidden if config.form == "layer" else config.d_model


# A 0.5 MB block (the default preset's MLP) needs ~1,900 copies to exceed twice a 480 MiB L3 (server CPUs report
# one that size); the count cap only stops tiny modules from asking for millions, the byte cap bounds the memory.
MAX_COPIES = 4096
COPIES_BYTES_LIMIT = 4 * 2**30  # never more than 4 GiB of weight copies


def last_level_cache_bytes(device: str) -> int:
    """The largest cache the weights could stay in between calls: the GPU's L2, or the CPU's largest cache level
    (from /sys; 32 MiB where it cannot be read)."""
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(torch.device(device))
        return int(getattr(props, "L2_cache_size", 0) or 50 * 2**20)
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip().upper()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        try:
            sizes.append(int(text.rstrip("KMG")) * scale)
        except ValueError:
            continue
    return max(sizes, default=32 * 2**20)


def copies_budget_bytes(device: str) -> int:
    """What the weight copies of one timed group may hold at once: half the memory the device has free now
    (MemAvailable on a CPU, cudaMemGetInfo's free bytes on a GPU); COPIES_BYTES_LIMIT where that cannot be read.
    A group of 20 configurations, each rotating over twice a 480 MiB L3, would otherwise hold 19 GiB."""
    if torch.device(device).type == "cuda":
        return torch.cuda.mem_get_info(torch.device(device))[0] // 2
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 2**10 // 2
    except (OSError, ValueError, IndexError):
        pass
    return COPIES_BYTES_LIMIT


def weight_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def decode_copies(size: int, device: str, minimum: int, limit_bytes: int = COPIES_BYTES_LIMIT) -> tuple[int, str]:
    """How many copies of ``size`` bytes of weights (:func:`weight_bytes`) to rotate over so that together they
    exceed twice the last-level cache (and the preset's ``minimum``): a decode call then finds its weights out of
    cache, as a model's next layer would. At most MAX_COPIES and ``limit_bytes``; where those stop it short of twice
    the cache, the note says so."""
    if size == 0:  # nothing a cache could keep between calls
        return 1, "no weights to rotate"
    cache = last_level_cache_bytes(device)
    wanted = max(minimum, math.ceil(2 * cache / size))
    limit_bytes = min(limit_bytes, COPIES_BYTES_LIMIT)
    copies = max(1, min(wanted, MAX_COPIES, limit_bytes // size))
    note = (f"weights rotated over {copies} copies ({copies * size / 2**20:.1f} MiB against a "
            f"{cache / 2**20:.0f} MiB last-level cache)")
    if copies * size < 2 * cache:
        note += (f": capped (at most {MAX_COPIES} copies and {limit_bytes / 2**30:.2f} GiB), the copies do not "
                 "exceed twice the cache")
    return copies, note


def fitting_chunks(sizes: dict[int, int], budget: int) -> list[list[int]]:
    """The keys of ``sizes`` in order, cut into consecutive chunks whose sizes sum to at most ``budget`` (a key
    larger than the budget alone is a chunk of its own)."""
    chunks: list[list[int]] = []
    total = 0
    for key, size in sizes.items():
        if not chunks or total + size > budget:
            chunks.append([])
            total = 0
        chunks[-1].append(key)
        total += size
    return chunks


@dataclass
class Workload:
    """A ready-to-time call: ``fn()`` runs one forward (and backward) of the configuration."""

    fn: Callable[[], object]
    modules: list[nn.Module]
    x: torch.Tensor


def workload(config: Config, mode: str, module: nn.Module, copies: int = 1) -> Workload:
    """``fwd_no_grad``: inference forward. ``fwd_bwd``: forward then backward of a fixed random upstream gradient
    into the input and every parameter (grads set to None first, as an optimizer's zero_grad does). ``decode``:
    inference forward over ``copies`` weight copies in turn, so the weights are not cache-resident between calls."""
    x = sample_input(config)
    if mode == "fwd_bwd":
        x.requires_grad_(True)
        upstream = torch.randn(config.tokens, output_width(config), device=config.device,
                               dtype=config.torch_dtype)

        def fn() -> object:
            module.zero_grad(set_to_none=True)
            x.grad = None
            y = module(x)
            y.backward(upstream)
            return y

        return Workload(fn, [module], x)
    # the collector paused: the copies' objects would wake it again and again to walk every live object (the
    # default preset's ten reference decode configurations: copies built in 20 s with it on, 11 s paused, on a
    # 2-core Xeon); copying leaves it no cycles to free
    with collector_paused():
        modules = [module] + [copy.deepcopy(module) for _ in range(max(copies, 1) - 1)]
    with torch.no_grad():  # every copy runs once before any timing: lazy work (cached layouts) is not timed
        for m in modules:
            m(x)
    state = {"i": 0}

    def fn() -> object:
        with torch.no_grad():
            m = modules[state["i"] % len(modules)]
            state["i"] += 1
            return m(x)

    return Workload(fn, modules, x)
