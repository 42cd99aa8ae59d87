"""The ``compiled`` impl of every variant: ``torch.compile`` (inductor, static shapes) of its readable reference.

It is the baseline a hand-written kernel must beat and the fastest thing a CPU user can run. The registry adds it to
every variant it registers (:func:`kanbench.registry.register`), so a new variant has one without writing anything.

How it compiles. The module is the reference module itself, its class swapped for a subclass whose ``forward``
calls ``torch.compile(ReferenceClass.forward)`` with the module as an argument. So the parameters and their names
are the reference's (the correctness gate loads the same state dict into both), a deep copy (the decode harness
rotates over weight copies) runs its own weights through the same compiled graph, and one compiled function serves
every instance of a class, each shape, dtype and grad mode getting its own static graph.

Compile time. The first forward of each (class, input shape, dtype, grad mode) in the process is timed, and with
gradients the first backward too (inductor compiles the backward graph when it first runs): ``compile_seconds`` on
the module, read by the latency harness as the ``compile_time`` metric. That is wall time of the call that compiled
the graph; ``cache_note`` says how many of inductor's on-disk FX-graph cache lookups hit, since a warm cache
shortens it. Two configurations that differ only in hyperparameters share the first one's figure (their graphs are
guarded apart, but the log is per class and shape).

Start-up. A process's first compile on a device type also pays torch.compile's one-time costs (on a CPU, inductor
probing the C++ compiler and the vector ISAs; on CUDA, Triton building its driver helpers): ~10 s of the first
15 s on a 2-core Xeon, which would otherwise be charged to whichever variant happens to compile first. So before
the first timed compile a one-op function is compiled (:func:`startup_seconds`); its wall time is reported in
every ``cache_note`` instead of in any variant's figure.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

COMPILED = "compiled"
RECOMPILE_LIMIT = 256  # graphs per forward: every shape x dtype x grad mode of a sweep gets its own static graph

_compiled_forward: dict[type, Callable[..., Any]] = {}
_subclasses: dict[type, type] = {}


def compile_unavailable(device: str) -> str | None:
    """Why torch.compile cannot generate code for ``device`` here, or None."""
    if not torch._dynamo.is_dynamo_supported():
        return f"torch.compile does not support Python {sys.version.split()[0]} with torch {torch.__version__}"
    if device == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++")):
        return "torch.compile on a CPU needs a C++ compiler (g++ or clang++) on PATH"
    if device == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "torch.compile on CUDA generates Triton kernels: pip install 'kanbench[triton]'"
    return None


def _configure_dynamo() -> None:
    """Enough recompiles for a sweep, and an error (never a silent fall-back to eager) past the limit."""
    config = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
    for name in ("fail_on_recompile_limit_hit", "fail_on_cache_limit_hit"):
        if hasattr(config, name):
            setattr(config, name, True)


def _cache_counts() -> tuple[int, int]:
    """Inductor's FX-graph cache (hits, misses) so far in this process; (0, 0) where torch does not count them."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["inductor"]["fxgraph_cache_hit"]), int(counters["inductor"]["fxgraph_cache_miss"])
    except Exception:  # noqa: BLE001 - an internal counter: absent in some versions
        return 0, 0


def _sync(x: torch.Tensor) -> None:
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def _one_op(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x) * 2 + 1


_startup: dict[str, float] = {}  # device type -> seconds of the one-op compile that paid the start-up


def startup_seconds(device: torch.device) -> float:
    """Wall time of torch.compile's one-time start-up in this process on ``device``'s type, paid on the first call
    by compiling and running a one-op function (on random numbers) and remembered after that."""
    if device.type not in _startup:
        x = torch.randn(64, device=device)
        start = time.perf_counter()
        _compile_one_op(x)
        _startup[device.type] = time.perf_counter() - start
    return _startup[device.type]


def _compile_one_op(x: torch.Tensor) -> None:
    _sync(x)
    torch.compile(_one_op, dynamic=False)(x)
    _sync(x)


@dataclass
class FirstCall:
    """The call that compiled one graph: its wall time (with gradients, the first backward's added), the FX-graph
    cache hits and misses it saw, and whether the backward has been timed yet."""

    seconds: float
    cache_note: str
    backward_timed: bool = False


# Per (class, (shape, dtype, grad mode)). Kept per class, not per module, because the graph is: a module built later
# (the harness rebuilds modules between comparison groups) finds it compiled and would otherwise report a lookup as
# its compile time.
_first_calls: dict[tuple, FirstCall] = {}


def _time_first_backward(first: FirstCall, output: torch.Tensor) -> None:
    """Add the first backward's wall time (its lazy compilation included) to ``first.seconds``."""
    node = output.grad_fn
    if node is None:
        return
    started: list[float] = []

    def before(grad_outputs: tuple) -> None:
        started.append(time.perf_counter())

    def after(grad_inputs: tuple, grad_outputs: tuple) -> None:
        if started and not first.backward_timed:
            first.backward_timed = True
            first.seconds += time.perf_counter() - started[0]

    node.register_prehook(before)
    node.register_hook(after)


class CompiledForward:
    """Mixin of the swapped-in subclass: ``forward`` runs the class's compiled reference forward."""

    keys_used: set

    @property
    def compile_seconds(self) -> dict[tuple, float]:
        """(input shape, dtype, grad mode) -> seconds of the first call that compiled that graph in this process
        (forward, and with gradients the first backward too)."""
        base = _base_class(type(self))
        return {key: _first_calls[(base, key)].seconds for key in self.keys_used}

    def cache_note(self, key: tuple) -> str:
        first = _first_calls.get((_base_class(type(self)), key))
        return first.cache_note if first else ""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        base = _base_class(type(self))
        compiled = _compiled_forward[base]
        key = (tuple(x.shape), x.dtype, torch.is_grad_enabled())
        self.keys_used.add(key)
        if (base, key) in _first_calls:
            return compiled(self, x, *args, **kwargs)
        startup = startup_seconds(x.device)  # before the clock starts: no variant is charged for it
        hits, misses = _cache_counts()
        _sync(x)
        start = time.perf_counter()
        out = compiled(self, x, *args, **kwargs)
        _sync(x)
        seconds = time.perf_counter() - start
        new_hits, new_misses = _cache_counts()
        first = FirstCall(seconds, f"FX-graph cache: {new_hits - hits} hit(s), {new_misses - misses} miss(es); "
                                   f"torch.compile's one-time start-up in this process not included ({startup:.2g} s, "
                                   "paid first by a one-op graph)")
        _first_calls[(base, key)] = first
        if key[2] and isinstance(out, torch.Tensor) and out.requires_grad:
            _time_first_backward(first, out)
        return out


def _base_class(cls: type) -> type:
    return next(c for c in cls.__mro__ if c in _compiled_forward)


def compile_module(module: nn.Module) -> nn.Module:
    """``module`` with its forward compiled (in place; the same object, parameters and state-dict names)."""
    base = type(module)
    if base not in _subclasses:
        _configure_dynamo()
        _compiled_forward[base] = torch.compile(base.forward, dynamic=False)
        _subclasses[base] = type(f"Compiled{base.__name__}", (CompiledForward, base), {})
    module.__class__ = _subclasses[base]
    module.keys_used = set()
    return module


def compiled(build: Callable[..., nn.Module] | None) -> Callable[..., nn.Module] | None:
    """A constructor building the reference and compiling it; None stays None (a form the variant lacks)."""
    if build is None:
        return None

    def make(*args: Any, **kwargs: Any) -> nn.Module:
        return compile_module(build(*args, **kwargs))

    return make


def compiled_impl(block: Callable[..., nn.Module], layer: Callable[..., nn.Module] | None,
                  op: Callable[..., nn.Module] | None) -> Any:
    """The ``compiled`` :class:`~kanbench.registry.Impl` of a variant with these reference constructors."""
    from kanbench.impl import Impl

    return Impl(COMPILED, block=compiled(block), layer=compiled(layer), op=compiled(op),
                unavailable=compile_unavailable,
                description="torch.compile of the reference (inductor, static shapes); compile_time records the "
                            "first call of each shape")
