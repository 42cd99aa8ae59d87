"""Latency: CUDA events after warm-up with L2 flushed before every call, or ``torch.utils.benchmark`` on a CPU;
every sample kept, the median and the p20/p80 spread reported."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.utils.benchmark as benchmark


@dataclass
class Timing:
    samples_ms: list[float]
    method: str

    def stats(self) -> dict[str, float]:
        s = np.asarray(self.samples_ms)
        return {"median": float(np.median(s)), "p20": float(np.percentile(s, 20)),
                "p80": float(np.percentile(s, 80)), "min": float(s.min()), "n": float(len(s))}


def time_cpu(fn: Callable[[], object], threads: int, min_run_time: float) -> Timing:
    """``torch.utils.benchmark``'s blocked autorange: each sample is one block's mean per call."""
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return Timing([t * 1e3 for t in measurement.times], f"torch.utils.benchmark, {threads} threads")


def _l2_flush_buffer(device: torch.device) -> torch.Tensor:
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 * 2**20) or 50 * 2**20
    return torch.empty(2 * l2 // 4, dtype=torch.float32, device=device)  # twice the L2, rewritten per call


def time_cuda(fn: Callable[[], object], samples: int, warmup_ms: float = 25.0, flush: bool = True,
              budget_s: float = 2.0) -> Timing:
    """Events around each call; the L2 is flushed (outside the events) before every call. Up to ``samples``
    samples, fewer (at least 10) where one call is so slow that they would take more than ``budget_s``."""
    device = torch.device("cuda", torch.cuda.current_device())
    cache = _l2_flush_buffer(device) if flush else None
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    calls = 0
    while (time.perf_counter() - t0) * 1e3 < warmup_ms or calls < 2:
        fn()
        torch.cuda.synchronize()
        calls += 1
    per_call = (time.perf_counter() - t0) / calls
    samples = max(10, min(samples, int(budget_s / per_call)))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(samples)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(samples)]
    for start, end in zip(starts, ends, strict=True):
        if cache is not None:
            cache.zero_()
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return Timing([s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)],
                  f"CUDA events, {samples} samples, L2 {'flushed' if flush else 'warm'}")


def time_cuda_graph(fn: Callable[[], object], samples: int) -> Timing:
    """The same call captured in a CUDA graph and replayed: removes launch overhead (inference modes only)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    timing = time_cuda(graph.replay, samples)
    return Timing(timing.samples_ms, timing.method + ", CUDA graph replay")


def time_cuda_graph_training(module: torch.nn.Module, x: torch.Tensor, upstream: torch.Tensor,
                              samples: int) -> Timing:
    """Forward+backward with both passes captured as CUDA graphs (``torch.cuda.make_graphed_callables``) and
    replayed: the kernels' time without the eager host overhead. Gradients are set to None before each call, as
    in the eager mode. (Until commit 572a8b8 they accumulated: one extra read-modify-write of the input gradient
    per call, which the fwd_bwd graph column of results/h100-2026-11-22/kat-b includes.)

    ``make_graphed_callables`` replaces a module's forward with the graph replay, so it gets a copy: graphing the
    runner's cached module made every later harness see a forward that dispatches no ops (counted FLOPs and saved
    bytes of 0 in results/h100-2026-11-22/kat-b; see its ERRATA.md)."""
    module = copy.deepcopy(module)
    graphed = torch.cuda.make_graphed_callables(module, (x,))

    def fn() -> object:
        module.zero_grad(set_to_none=True)  # fresh gradients, as in eager mode: no accumulation add
        x.grad = None
        y = graphed(x)
        y.backward(upstream)
        return y

    timing = time_cuda(fn, samples)
    return Timing(timing.samples_ms, timing.method + ", forward and backward CUDA graphs")


def time_call(fn: Callable[[], object], device: str, threads: int, min_run_time: float, samples: int) -> Timing:
    if torch.device(device).type == "cuda":
        return time_cuda(fn, samples)
    return time_cpu(fn, threads, min_run_time)
